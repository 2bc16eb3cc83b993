//! `incq profile`: where the time of one training step goes, per kernel and per layer, and a
//! Chrome trace (chrome://tracing, Perfetto) of the step.
//!
//! Each dispatch is timed on its own: with timestamp queries written around it inside the pass
//! where the adapter has them and they are trusted, otherwise (CPU-backed adapters such as
//! lavapipe, where timestamps were measured to be wrong) with the wall clock around a submit and a
//! device sync. The report says which. The whole step is also timed in one submit, and the table
//! states what share of it the named dispatches account for.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::gpu::device::Gpu;
use crate::gpu::profile::{time_pass, timestamps_trusted};
use crate::graph::model::Model;
use crate::graph::plan::{Net, OptimConfig, Plan};

/// One timed dispatch.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub kernel: String,
    pub layer: String,
    pub start_us: f64,
    pub dur_us: f64,
}

/// A profile of one step.
#[derive(Clone, Debug)]
pub struct Profile {
    pub clock: &'static str,
    pub step_ms: f64,
    pub events: Vec<Event>,
}

impl Profile {
    /// Sum of the dispatch times, ms.
    pub fn named_ms(&self) -> f64 {
        self.events.iter().map(|e| e.dur_us).sum::<f64>() / 1e3
    }

    /// (name, calls, ms) aggregated by `key`, largest first.
    pub fn by(&self, key: impl Fn(&Event) -> String) -> Vec<(String, usize, f64)> {
        let mut m: BTreeMap<String, (usize, f64)> = BTreeMap::new();
        for e in &self.events {
            let v = m.entry(key(e)).or_default();
            v.0 += 1;
            v.1 += e.dur_us / 1e3;
        }
        let mut v: Vec<_> = m.into_iter().map(|(k, (c, t))| (k, c, t)).collect();
        v.sort_by(|a, b| b.2.total_cmp(&a.2));
        v
    }

    /// Chrome trace JSON: one complete ("X") event per dispatch on one track, in order.
    pub fn chrome_trace(&self) -> String {
        let events: Vec<serde_json::Value> = self
            .events
            .iter()
            .map(|e| {
                serde_json::json!({
                    "name": e.kernel, "cat": e.layer, "ph": "X", "ts": e.start_us, "dur": e.dur_us,
                    "pid": 1, "tid": 1, "args": { "layer": e.layer },
                })
            })
            .collect();
        serde_json::json!({
            "traceEvents": events,
            "displayTimeUnit": "ms",
            "otherData": { "clock": self.clock, "step_ms": self.step_ms },
        })
        .to_string()
    }
}

/// Profiles `steps` training steps of `model` at `batch` (the per-dispatch times are medians).
pub fn profile(gpu: &Gpu, model: &Model, batch: usize, steps: usize) -> Result<Profile> {
    if steps == 0 {
        return Err(Error::BadArg {
            flag: "--steps".into(),
            msg: "must be at least 1".into(),
        });
    }
    let net = Net::new(gpu, model, 0)?;
    let opt = OptimConfig::WORKLOAD;
    let plan = Plan::new(gpu, &net, batch, Some(opt))?;
    let (c, h, w) = model.input;
    let x: Vec<f32> = (0..batch * c * h * w)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    plan.input.write_f32(gpu, &x)?;
    plan.labels
        .write_u32(gpu, &(0..batch as u32).map(|i| i % 10).collect::<Vec<_>>())?;
    // The steps run as training runs them: with a CPU adapter's cores kept awake.
    let _warm = gpu.keep_warm();
    let whole = time_pass(gpu, "step", 1, steps, false, &|p| plan.encode_train(p))?;
    let clock = if timestamps_trusted(gpu) {
        "timestamps"
    } else {
        "wall (device sync per dispatch)"
    };
    let mut events = Vec::new();
    let mut t = 0.0;
    for (layer, d) in plan.dispatches(true) {
        let tm = time_pass(gpu, d.label(), 0, steps, false, &|p| d.encode(p))?;
        let dur = tm.median() * 1e6;
        events.push(Event {
            kernel: d.label().to_string(),
            layer,
            start_us: t,
            dur_us: dur,
        });
        t += dur;
    }
    Ok(Profile {
        clock,
        step_ms: whole.median() * 1e3,
        events,
    })
}
