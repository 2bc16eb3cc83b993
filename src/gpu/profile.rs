//! GPU timing: timestamp queries when the adapter has them, otherwise wall time closed by a
//! device sync. Benchmarks call [`time_pass`]; the result says which clock it used.

use std::time::Instant;

use crate::error::{Error, Result};
use crate::gpu::device::{Gpu, Rec};

/// Which clock produced a measurement.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Clock {
    /// Timestamp queries written at the start and end of the compute pass.
    Timestamps,
    /// Host wall time from submit to the end of a blocking device sync.
    Wall,
}

impl Clock {
    pub fn name(self) -> &'static str {
        match self {
            Clock::Timestamps => "timestamps",
            Clock::Wall => "wall",
        }
    }
}

/// Repeated timings of one pass, in seconds.
#[derive(Clone, Debug)]
pub struct Timing {
    pub samples: Vec<f64>,
    pub clock: Clock,
}

impl Timing {
    pub fn median(&self) -> f64 {
        let mut s = self.samples.clone();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        if n == 0 {
            return f64::NAN;
        }
        if n % 2 == 1 {
            s[n / 2]
        } else {
            0.5 * (s[n / 2 - 1] + s[n / 2])
        }
    }
    pub fn min(&self) -> f64 {
        self.samples.iter().copied().fold(f64::INFINITY, f64::min)
    }
    pub fn max(&self) -> f64 {
        self.samples
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max)
    }
}

/// Whether timestamp queries are trusted on this device. On CPU-backed adapters (lavapipe) they
/// are not: there, a conv dispatch measured 0.27 ms by timestamps and 206 ms by the wall clock,
/// so incq times CPU devices with the wall clock closed by a device sync.
pub fn timestamps_trusted(gpu: &Gpu) -> bool {
    gpu.has_timestamps() && gpu.info.device_type != wgpu::DeviceType::Cpu
}

/// Times `record` (which records dispatches into one compute pass): `warmup` untimed runs, then
/// `repeats` timed runs, each submitted on its own. Uses timestamps where they are trusted
/// ([`timestamps_trusted`]) unless `force_wall`.
pub fn time_pass(
    gpu: &Gpu,
    label: &str,
    warmup: usize,
    repeats: usize,
    force_wall: bool,
    record: &dyn Fn(&mut Rec<'_>),
) -> Result<Timing> {
    for _ in 0..warmup {
        gpu.run_pass(label, |p| record(p));
    }
    gpu.sync()?;
    if timestamps_trusted(gpu) && !force_wall {
        let qs = gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("incq timer"),
            ty: wgpu::QueryType::Timestamp,
            count: 2,
        });
        let resolve = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("incq timer resolve"),
            size: 16,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let period = f64::from(gpu.queue.get_timestamp_period());
        let mut samples = Vec::with_capacity(repeats);
        for _ in 0..repeats {
            let mut enc = gpu
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
            {
                let mut rec = Rec::with_timestamps(&mut enc, label, &qs);
                record(&mut rec);
                rec.end_timestamps();
            }
            enc.resolve_query_set(&qs, 0..2, &resolve, 0);
            gpu.queue.submit([enc.finish()]);
            let raw = gpu.read_bytes(&resolve, 0, 16)?;
            let t: Vec<u64> = bytemuck::pod_collect_to_vec(&raw);
            if t[1] < t[0] {
                return Err(Error::Gpu {
                    op: format!("timing {label}"),
                    msg: "timestamps went backwards".into(),
                });
            }
            samples.push((t[1] - t[0]) as f64 * period * 1e-9);
        }
        Ok(Timing {
            samples,
            clock: Clock::Timestamps,
        })
    } else {
        let mut samples = Vec::with_capacity(repeats);
        for _ in 0..repeats {
            let t0 = Instant::now();
            gpu.run_pass(label, |p| record(p));
            gpu.sync()?;
            samples.push(t0.elapsed().as_secs_f64());
        }
        Ok(Timing {
            samples,
            clock: Clock::Wall,
        })
    }
}
