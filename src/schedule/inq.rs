//! INQ (Zhou et al. 2017, shared/METHODS.md §A1) as a schedule the executor runs: per quantized
//! layer, a persistent mask, the exact GPU partition of the still-float weights, and the
//! quantization of every frozen weight onto that layer's power-of-two set (or, with `per_channel`,
//! its output channel's), with n1 recomputed from
//! max|W| at every phase. A phase step is recorded into one pass and submitted once; weights never
//! come back to the host. Retraining between phases is ordinary training with the mask (frozen
//! weights and their momentum are left untouched by the optimizer).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::gpu::device::Gpu;
use crate::gpu::tensor::{DType, Tensor};
use crate::graph::plan::Net;
use crate::ops::quant::{self, Partition, SelectScratch};
use crate::ops::reduce::{reduce, ReduceOp, ReduceShape};
use crate::ops::Dispatch;

/// What `--method inq` takes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InqConfig {
    /// 2 (ternary) to 8.
    pub bits: u32,
    /// Accumulated portions, ascending, ending at 1.
    pub portions: Vec<f64>,
    /// Training epochs after each partition but the last.
    pub epochs_per_phase: usize,
    /// `pruning` (largest |w| first) or `random`.
    pub partition: String,
    /// Keep the first and the last weight layer in float.
    pub float_first_last: bool,
    /// One set per output channel (n1 from each row's max|W|) instead of one per layer.
    pub per_channel: bool,
}

impl Default for InqConfig {
    fn default() -> Self {
        InqConfig {
            bits: 5,
            portions: vec![0.5, 0.75, 0.875, 1.0],
            epochs_per_phase: 2,
            partition: "pruning".into(),
            float_first_last: false,
            per_channel: false,
        }
    }
}

impl InqConfig {
    /// Checks every field; errors name the flag.
    pub fn validate(&self) -> Result<()> {
        if !(2..=8).contains(&self.bits) {
            return Err(Error::BadArg {
                flag: "--bits".into(),
                msg: format!("{} is not a supported INQ bit width (2 to 8)", self.bits),
            });
        }
        let p = &self.portions;
        let ok = !p.is_empty()
            && p.iter().all(|&x| x > 0.0 && x <= 1.0)
            && p.windows(2).all(|w| w[0] < w[1])
            && p.last() == Some(&1.0);
        if !ok {
            return Err(Error::BadArg {
                flag: "--portions".into(),
                msg: format!(
                    "{p:?}: expected accumulated portions in (0, 1], strictly increasing, ending at 1 (e.g. 0.5,0.75,0.875,1)"
                ),
            });
        }
        if self.epochs_per_phase == 0 && p.len() > 1 {
            return Err(Error::BadArg {
                flag: "--epochs-per-phase".into(),
                msg: "must be at least 1".into(),
            });
        }
        self.partition_kind(0)?;
        Ok(())
    }

    /// The partition strategy (`seed` keys the random one).
    pub fn partition_kind(&self, seed: u64) -> Result<Partition> {
        match self.partition.as_str() {
            "pruning" => Ok(Partition::Pruning),
            "random" => Ok(Partition::Random {
                seed: (seed ^ (seed >> 32)) as u32,
            }),
            other => Err(Error::BadArg {
                flag: "--partition".into(),
                msg: format!("'{other}' is not pruning or random"),
            }),
        }
    }

    /// Training epochs of the whole schedule (the last partition is not followed by training).
    pub fn total_epochs(&self) -> usize {
        self.epochs_per_phase * (self.portions.len() - 1)
    }
}

/// The frozen count of a layer of `n` weights at accumulated portion `p`.
pub fn target_count(n: usize, p: f64) -> usize {
    if p >= 1.0 {
        n
    } else {
        ((n as f64) * p).round() as usize
    }
}

/// One quantized weight tensor.
struct Layer {
    param: usize,
    n: usize,
    /// Rows with their own set (1, or the output channels).
    rows: usize,
    frozen: usize,
    scratch: SelectScratch,
    exps: Tensor,
    /// partition (17 dispatches), max|W|, (n1, n2), quantize in place.
    steps: Vec<Dispatch>,
}

/// Per-layer facts after a phase (also in summary.json and the checkpoint's metadata).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LayerReport {
    pub name: String,
    /// The largest n1 and the smallest n2 over the layer's rows (its set, for a per-layer set).
    pub n1: i32,
    pub n2: i32,
    /// Per output channel (`per_channel`): every row's n1 and n2.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub n1_rows: Vec<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub n2_rows: Vec<i32>,
    pub quantized_share: f64,
    pub frozen: usize,
    pub weights: usize,
    pub distinct_values: usize,
    /// Frozen weights that are not in the layer's set (always 0; a self-check).
    pub frozen_not_in_set: usize,
}

/// The INQ schedule bound to a [`Net`].
pub struct Inq {
    pub cfg: InqConfig,
    layers: Vec<Layer>,
}

impl Inq {
    /// Chooses the quantized layers (every conv and linear weight, or all but the first and last
    /// with `float_first_last`) and prepares their phase steps. Reads the masks once, so that a
    /// net loaded from a checkpoint mid-schedule continues from its frozen counts.
    pub fn new(gpu: &Gpu, net: &Net, cfg: &InqConfig, seed: u64) -> Result<Inq> {
        cfg.validate()?;
        let part = cfg.partition_kind(seed)?;
        let weights = super::quantized_params(net, cfg.float_first_last);
        let mut layers = Vec::new();
        for pi in weights {
            let p = &net.params[pi];
            let n = p.len();
            let rows = match cfg.per_channel {
                true => p.shape.first().copied().unwrap_or(1).max(1),
                false => 1,
            };
            let scratch = SelectScratch::new(gpu)?;
            let smax = Tensor::empty(gpu, "inq max|w|", &[rows], DType::F32)?;
            let exps = Tensor::from_u32(gpu, "inq exponents", &[2 * rows], &vec![0; 2 * rows])?;
            let mut steps = quant::partition(gpu, part, &p.w, &p.mask, &p.momentum, &scratch)?;
            let rs = ReduceShape {
                outer: 1,
                rows,
                inner: n / rows,
            };
            steps.push(reduce(gpu, ReduceOp::MaxAbs, rs, &p.w, &smax)?);
            steps.push(quant::pow2_exponents(gpu, cfg.bits, &smax, &exps)?);
            steps.push(quant::pow2_quantize_inplace(
                gpu, cfg.bits, &p.w, &p.mask, &exps,
            )?);
            let frozen = p.mask.to_f32(gpu)?.iter().filter(|&&m| m == 0.0).count();
            layers.push(Layer {
                param: pi,
                n,
                rows,
                frozen,
                scratch,
                exps,
                steps,
            });
        }
        Ok(Inq {
            cfg: cfg.clone(),
            layers,
        })
    }

    /// Names of the quantized parameters.
    pub fn layer_names<'a>(&self, net: &'a Net) -> Vec<&'a str> {
        self.layers
            .iter()
            .map(|l| net.params[l.param].name.as_str())
            .collect()
    }

    /// Partition `phase` (0-based): freezes each layer up to its target count at
    /// `portions[phase]`, recomputes (n1, n2) from max|W| and quantizes every frozen weight, in
    /// one pass and one submit.
    pub fn apply_phase(&mut self, gpu: &Gpu, phase: usize) -> Result<()> {
        let portion = *self.cfg.portions.get(phase).ok_or_else(|| Error::BadArg {
            flag: "--portions".into(),
            msg: format!("there is no phase {}", phase + 1),
        })?;
        for l in &mut self.layers {
            let target = target_count(l.n, portion);
            let k = target.saturating_sub(l.frozen);
            l.scratch
                .state
                .write_u32(gpu, &quant::select_state(k as u32))?;
            l.frozen = l.frozen.max(target);
        }
        gpu.run_pass("inq phase", |pass| {
            for l in &self.layers {
                for d in &l.steps {
                    d.encode(pass);
                }
            }
        });
        Ok(())
    }

    /// Reads back each quantized layer's exponents, mask and weights (only when reporting).
    pub fn report(&self, gpu: &Gpu, net: &Net) -> Result<Vec<LayerReport>> {
        let mut out = Vec::new();
        for l in &self.layers {
            let p = &net.params[l.param];
            let e = l.exps.to_u32(gpu)?;
            let n1_rows: Vec<i32> = e.iter().step_by(2).map(|&v| v as i32).collect();
            let n2_rows: Vec<i32> = e.iter().skip(1).step_by(2).map(|&v| v as i32).collect();
            let w = p.w.to_f32(gpu)?;
            let mask = p.mask.to_f32(gpu)?;
            let frozen = mask.iter().filter(|&&m| m == 0.0).count();
            let distinct: std::collections::BTreeSet<u32> = w.iter().map(|x| x.to_bits()).collect();
            let row_len = l.n / l.rows;
            let not_in_set = w
                .iter()
                .zip(&mask)
                .enumerate()
                .filter(|&(i, (&x, &m))| {
                    let r = i / row_len;
                    m == 0.0 && !in_pow2_set(x, n1_rows[r], n2_rows[r])
                })
                .count();
            let per_row = l.rows > 1;
            out.push(LayerReport {
                name: p.name.clone(),
                n1: n1_rows.iter().copied().max().unwrap_or(-127),
                n2: n2_rows.iter().copied().min().unwrap_or(-127),
                n1_rows: if per_row { n1_rows } else { vec![] },
                n2_rows: if per_row { n2_rows } else { vec![] },
                quantized_share: frozen as f64 / l.n as f64,
                frozen,
                weights: l.n,
                distinct_values: distinct.len(),
                frozen_not_in_set: not_in_set,
            });
        }
        Ok(out)
    }
}

/// Whether `x` is +0 or ±2^k with n2 <= k <= n1.
pub fn in_pow2_set(x: f32, n1: i32, n2: i32) -> bool {
    pow2_code(x, n1, n2).is_some()
}

/// INQ's integer code of `x` in the set {0, ±2^n2 .. ±2^n1}: 0 for +0, and sign · (k − n2 + 1)
/// for ±2^k; None when `x` is not in the set. The inverse is [`pow2_decode`].
pub fn pow2_code(x: f32, n1: i32, n2: i32) -> Option<i8> {
    if x.to_bits() == 0 {
        return Some(0);
    }
    let bits = x.to_bits();
    let mant = bits & 0x007f_ffff;
    let exp = ((bits >> 23) & 0xff) as i32;
    if mant != 0 || exp == 0 || exp == 255 {
        return None; // not a normal power of two
    }
    let k = exp - 127;
    if k < n2 || k > n1 {
        return None;
    }
    let c = (k - n2 + 1) as i8;
    Some(if x < 0.0 { -c } else { c })
}

/// The value of INQ code `c` for exponents (n1, n2): 0, or sign(c) · 2^(n2 + |c| − 1).
pub fn pow2_decode(c: i8, n2: i32) -> f32 {
    if c == 0 {
        return 0.0;
    }
    let k = n2 + i32::from(c.unsigned_abs()) - 1;
    let v = 2f32.powi(k);
    if c < 0 {
        -v
    } else {
        v
    }
}
