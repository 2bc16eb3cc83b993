//! The keep-warm guard on a CPU adapter: while training steps run, it pins the driver's busiest
//! threads (llvmpipe's compute workers), one per core, and gives them the whole mask back when
//! dropped. Skipped (loudly) where the device does not keep warm (a real GPU, or not Linux).

#![cfg(target_os = "linux")]

mod common;
use common::gpu;
use incq::graph::model::lenet_bn;
use incq::graph::plan::{Net, OptimConfig, Plan};
use std::time::{Duration, Instant};

/// Each thread of this process with its `Cpus_allowed_list`.
fn masks() -> Vec<(i32, String)> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let tid = e.file_name().to_str()?.parse().ok()?;
            let st = std::fs::read_to_string(e.path().join("status")).ok()?;
            let m = st
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
            Some((tid, m.trim().to_string()))
        })
        .collect()
}

#[test]
fn keep_warm_pins_the_drivers_workers_while_steps_run() {
    let Some(g) = gpu() else { return };
    if !g.keep_warm {
        eprintln!(
            "keep-warm is off for this adapter ({}): nothing to pin",
            g.describe()
        );
        return;
    }
    let net = Net::new(g, &lenet_bn(), 0).unwrap();
    let opt = OptimConfig::WORKLOAD;
    let plan = Plan::new(g, &net, 64, Some(opt)).unwrap();
    // SAFETY: gettid has no preconditions.
    let me = unsafe { libc::gettid() };
    let whole = masks().into_iter().find(|(tid, _)| *tid == me).unwrap().1;
    let cores = std::thread::available_parallelism().unwrap().get();
    let guard = g.keep_warm();
    let t0 = Instant::now();
    while guard.pinned().is_empty() && t0.elapsed() < Duration::from_secs(20) {
        for _ in 0..5 {
            g.run_pass("step", |r| plan.encode_train(r));
        }
        plan.read_metrics(g).unwrap();
    }
    let pinned = guard.pinned();
    assert_eq!(pinned.len(), cores, "one worker pinned per core");
    let m = masks();
    let mut cpus: Vec<String> = pinned
        .iter()
        .map(|t| m.iter().find(|(tid, _)| tid == t).unwrap().1.clone())
        .collect();
    cpus.sort();
    cpus.dedup();
    assert_eq!(cpus.len(), cores, "each on a core of its own: {cpus:?}");
    assert!(
        cpus.iter().all(|c| c.parse::<usize>().is_ok()),
        "single CPUs: {cpus:?}"
    );
    assert!(
        !pinned.contains(&me),
        "the thread that made the guard is not pinned"
    );
    drop(guard);
    let m = masks();
    for t in &pinned {
        if let Some((_, mask)) = m.iter().find(|(tid, _)| tid == t) {
            assert_eq!(mask, &whole, "thread {t} got the process's mask back");
        }
    }
}
