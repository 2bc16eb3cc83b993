//! The autotuner: picks the GEMM variant and the conv variant per shape bucket by timing every
//! candidate the device can run (each GEMM candidate first passes the CPU-twin check), and caches
//! the choice on disk, per adapter and driver, in the user's cache directory
//! (`$XDG_CACHE_HOME/incq` or `~/.cache/incq`). Training uses it unless `--no-tune` (then every
//! layer gets the device's default variant).
//!
//! Buckets round each dimension up to a power of two, so one measurement serves nearby shapes.
//! Conv candidates are timed at the layer's own batch up to 64 (forward and the whole backward
//! pass, as training runs them), and the batch is part of the bucket: relative costs move with it
//! (at batch 8 the texture kernels' packing and padding overheads made them lose shapes they win
//! 5x at batch 128). Candidates are timed in alternating rounds, each keeping its fastest, and the
//! device's default stays unless another beats it by 5 %: three samples at batch 32 once picked 16
//! channels per invocation for LeNet-BN's conv2 on lavapipe, which runs its forward and backward
//! 46 % slower at batch 64 (and 11 % slower at batch 32) than the default 8.
//! `direct` is only a candidate where no subgroup variant exists.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::gpu::device::Gpu;
use crate::gpu::profile::time_pass;
use crate::gpu::tensor::Tensor;
use crate::ops::conv::{self, ConvShape, ConvVariant};
use crate::ops::gemm::{gemm, GemmDesc, GemmVariant};

/// Tuning choices, loaded from and saved to the cache file.
pub struct Tuner {
    enabled: bool,
    path: Option<PathBuf>,
    map: Mutex<BTreeMap<String, String>>,
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Conv layers are timed at their batch, at most this.
const TUNE_BATCH: usize = 64;
/// Alternating timing rounds per conv candidate.
const TUNE_ROUNDS: usize = 3;
/// How much faster than the default a conv candidate must be to replace it.
const TUNE_MARGIN: f64 = 1.05;

fn bucket(x: usize) -> usize {
    x.max(1).next_power_of_two()
}

impl Tuner {
    /// The cache file for this adapter and driver, and this build's kernels (a hash of every
    /// WGSL source, so timings of older kernels are never reused), if a cache directory exists.
    pub fn cache_path(gpu: &Gpu) -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        let i = &gpu.info;
        let kernels: String = crate::gpu::kernels::ShaderId::ALL
            .iter()
            .map(|s| s.source())
            .collect();
        let id = format!(
            "{}|{:?}|{}|{}|{:016x}",
            i.name,
            i.backend,
            i.driver,
            i.driver_info,
            fnv(&kernels)
        );
        Some(
            base.join("incq")
                .join(format!("tune-{:016x}.json", fnv(&id))),
        )
    }

    /// A tuner that measures (`enabled`) or always returns the device defaults.
    pub fn new(gpu: &Gpu, enabled: bool) -> Tuner {
        let path = if enabled { Self::cache_path(gpu) } else { None };
        let map = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Tuner {
            enabled,
            path,
            map: Mutex::new(map),
        }
    }

    /// The cached choices (key -> variant name).
    pub fn entries(&self) -> BTreeMap<String, String> {
        self.map.lock().unwrap().clone()
    }

    fn save(&self) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let json = serde_json::to_vec_pretty(&*self.map.lock().unwrap()).unwrap_or_default();
        crate::io::checkpoint::write_atomic(path, &json)
    }

    /// The GEMM variant for `d`.
    pub fn gemm(&self, gpu: &Gpu, d: &GemmDesc) -> Result<GemmVariant> {
        let cands = GemmVariant::candidates(gpu);
        if !self.enabled {
            return Ok(GemmVariant::default_for(gpu));
        }
        let key = format!(
            "gemm {}x{}x{} ta{} tb{}",
            bucket(d.m),
            bucket(d.n),
            bucket(d.k),
            d.trans_a as u8,
            d.trans_b as u8
        );
        if let Some(v) = self
            .map
            .lock()
            .unwrap()
            .get(&key)
            .and_then(|n| cands.iter().find(|c| c.name() == *n))
        {
            return Ok(*v);
        }
        let shape = GemmDesc {
            batch: 1,
            alpha: 1.0,
            beta: 0.0,
            ..*d
        };
        let ones = |n: usize| Tensor::from_f32(gpu, "tune", &[n], &vec![0.5; n]);
        let (a, b, c) = (
            ones(shape.m * shape.k)?,
            ones(shape.k * shape.n)?,
            ones(shape.m * shape.n)?,
        );
        let mut best: Option<(f64, GemmVariant)> = None;
        for v in cands {
            if crate::bench::check_gemm_variant(gpu, v).is_err() {
                continue;
            }
            let op = gemm(gpu, v, &shape, &a.buf, &b.buf, &c.buf)?;
            let t = time_pass(gpu, "tune gemm", 1, 3, false, &|p| op.encode(p))?.median();
            if best.is_none_or(|(bt, _)| t < bt) {
                best = Some((t, v));
            }
        }
        let v = best
            .map(|b| b.1)
            .unwrap_or_else(|| GemmVariant::default_for(gpu));
        self.map.lock().unwrap().insert(key, v.name());
        self.save()?;
        Ok(v)
    }

    /// The conv variant for `s`.
    pub fn conv(&self, gpu: &Gpu, s: &ConvShape) -> Result<ConvVariant> {
        let default = ConvVariant::default_for(gpu);
        if !self.enabled || default == ConvVariant::Direct {
            return Ok(default);
        }
        let (oh, ow) = s.out_hw();
        let t = ConvShape {
            n: s.n.min(TUNE_BATCH),
            ..*s
        };
        let key = format!(
            "conv n{} {}x{}x{} ->{} {}x{} k{} s{} p{}",
            bucket(t.n),
            s.cin,
            bucket(s.h),
            bucket(s.w),
            s.cout,
            bucket(oh),
            bucket(ow),
            s.k,
            s.stride,
            s.pad
        );
        if let Some(v) = self
            .map
            .lock()
            .unwrap()
            .get(&key)
            .and_then(|n| ConvVariant::parse(n))
        {
            return Ok(v);
        }
        let ones = |n: usize| Tensor::from_f32(gpu, "tune", &[n], &vec![0.5; n]);
        let (x, w, y, dx, dw) = (
            ones(t.x_len())?,
            ones(t.w_len())?,
            ones(t.y_len())?,
            ones(t.x_len())?,
            ones(t.w_len())?,
        );
        let mut cands = ConvVariant::candidates(gpu);
        if cands.contains(&ConvVariant::Subgroup) {
            cands.retain(|&v| v != ConvVariant::Direct);
        }
        let mut ops = Vec::new();
        for &v in &cands {
            let (f, x_rows) = conv::fwd_keep_input(gpu, v, &t, &x.buf, &w.buf, &y.buf)?;
            let b = conv::bwd(
                gpu,
                v,
                &t,
                &y.buf,
                &x.buf,
                x_rows.as_ref(),
                &w.buf,
                &dw.buf,
                Some((&dx.buf, false)),
                None,
            )?;
            ops.push([f, b]);
        }
        // Rounds alternate the candidates, and each keeps its fastest time: on a shared CPU a
        // burst of noise slows some of a candidate's samples, rarely all of its rounds.
        let mut times = vec![f64::INFINITY; cands.len()];
        for round in 0..TUNE_ROUNDS {
            for (fastest, op) in times.iter_mut().zip(&ops) {
                let tm = time_pass(gpu, "tune conv", usize::from(round == 0), 2, false, &|p| {
                    op.iter().for_each(|o| o.encode(p))
                })?
                .min();
                *fastest = fastest.min(tm);
            }
        }
        // the default stays unless another candidate beats it by TUNE_MARGIN
        let at = |v: ConvVariant| cands.iter().position(|&c| c == v);
        let mut best = at(default).map(|i| (times[i] / TUNE_MARGIN, default));
        for (&v, &tm) in cands.iter().zip(&times) {
            if best.is_none_or(|(bt, _)| tm < bt) {
                best = Some((tm, v));
            }
        }
        let v = best.map(|b| b.1).unwrap_or(default);
        self.map.lock().unwrap().insert(key, v.name());
        self.save()?;
        Ok(v)
    }
}
