//! BinaryRelax (Yin et al. 2018, shared/METHODS.md §A4) and its straight-through baseline as a
//! schedule the executor runs. Each quantized weight gets its own `w_eff`; at the start of every
//! training step one recorded projection writes u = (λ·proj(w) + w)/(λ+1) into it (phase I) or
//! proj(w) (phase II, and STE from the first step). Forward and backward read `w_eff`, and the
//! optimizer updates the float `w` with the gradient taken at `w_eff` (straight-through). λ
//! changes through a uniform write, never a readback.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::gpu::device::Gpu;
use crate::gpu::tensor::Tensor;
use crate::gpu::Rec;
use crate::graph::plan::Net;
use crate::ops::relax::{Proj, RelaxOp};

/// What `--method binary-relax` and `--method ste` take.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelaxConfig {
    /// binary, ternary, ternary-twn, uniform:K or pow2:K.
    pub quant: String,
    pub lambda0: f32,
    /// λ ← ρ·λ per epoch (the official code) or per step.
    pub rho: f32,
    /// `epoch` or `step`.
    pub growth: String,
    /// Phase II (hard projection) from this epoch (0-based count of finished epochs); BinaryRelax
    /// only.
    pub hard_from_epoch: usize,
    /// One scale per output channel instead of per layer.
    pub per_channel: bool,
    /// Keep the first and the last weight layer in float.
    pub float_first_last: bool,
}

impl Default for RelaxConfig {
    fn default() -> Self {
        RelaxConfig {
            quant: "binary".into(),
            lambda0: 1.0,
            rho: 1.04,
            growth: "epoch".into(),
            hard_from_epoch: 2,
            per_channel: false,
            float_first_last: false,
        }
    }
}

impl RelaxConfig {
    /// Checks every field; errors name the flag.
    pub fn validate(&self) -> Result<Proj> {
        let proj = Proj::parse(&self.quant)?;
        if !(self.lambda0 >= 0.0 && self.lambda0.is_finite()) {
            return Err(Error::BadArg {
                flag: "--lambda0".into(),
                msg: format!("{} is not a finite λ >= 0", self.lambda0),
            });
        }
        if !(self.rho >= 1.0 && self.rho.is_finite()) {
            return Err(Error::BadArg {
                flag: "--rho".into(),
                msg: format!("{} is not a growth factor >= 1", self.rho),
            });
        }
        if self.growth != "epoch" && self.growth != "step" {
            return Err(Error::BadArg {
                flag: "--lambda-growth".into(),
                msg: format!("'{}' is not epoch or step", self.growth),
            });
        }
        Ok(proj)
    }
}

/// Per-layer facts for summary.json.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RelaxLayerReport {
    pub name: String,
    pub rows: usize,
    /// The scale of each row (per layer: one value); pow2 rows hold (n1, n2) instead.
    pub alpha: Vec<f32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub n1_n2: Vec<(i32, i32)>,
    /// Distinct values of `w_eff` in the layer.
    pub distinct_values: usize,
    /// The most distinct values in any one row.
    pub max_distinct_per_row: usize,
}

/// The schedule bound to a [`Net`] whose quantized weights are `Derived`.
pub struct Relax {
    pub cfg: RelaxConfig,
    pub proj: Proj,
    /// Hard from the first step (STE).
    pub ste: bool,
    layers: Vec<(usize, RelaxOp)>,
}

impl Relax {
    /// Chooses the quantized layers (every conv and linear weight, or all but the first and last),
    /// gives each its own `w_eff` and prepares its projection. Call before building plans.
    pub fn new(gpu: &Gpu, net: &mut Net, cfg: &RelaxConfig, ste: bool) -> Result<Relax> {
        let proj = cfg.validate()?;
        let weights = super::quantized_params(net, cfg.float_first_last);
        let mut layers = Vec::new();
        for pi in weights {
            net.derive(gpu, pi)?;
            let p = &net.params[pi];
            let rows = if cfg.per_channel { p.shape[0] } else { 1 };
            let eff = p.eff.as_ref().expect("derive gave it a w_eff");
            let op = RelaxOp::new(gpu, proj, rows, p.len() / rows, &p.w, eff)?;
            layers.push((pi, op));
        }
        let mut r = Relax {
            cfg: cfg.clone(),
            proj,
            ste,
            layers,
        };
        r.set_lambda(gpu, cfg.lambda0, ste);
        Ok(r)
    }

    /// λ after `epochs_done` finished epochs and `step` global steps, and whether phase II holds.
    pub fn lambda_at(&self, epochs_done: usize, step: usize) -> (f32, bool) {
        if self.ste || epochs_done >= self.cfg.hard_from_epoch {
            return (f32::INFINITY, true);
        }
        let e = if self.cfg.growth == "epoch" {
            // Official code: λ ← ρ·λ at the start of every epoch, so epoch 1 already uses λ0·ρ.
            epochs_done as i32 + 1
        } else {
            step.min(i32::MAX as usize) as i32
        };
        let l = self.cfg.lambda0 * self.cfg.rho.powi(e);
        (if l.is_finite() { l } else { f32::MAX }, false)
    }

    /// Sets λ (or the hard projection) for the next steps.
    pub fn set_lambda(&mut self, gpu: &Gpu, lambda: f32, hard: bool) {
        for (_, op) in &mut self.layers {
            op.set_lambda(gpu, lambda, hard);
        }
    }

    /// Records every projection (at the start of a step, or before an eval).
    pub fn encode(&self, pass: &mut Rec<'_>) {
        for (_, op) in &self.layers {
            op.encode(pass);
        }
    }

    /// Refreshes every `w_eff` from the current `w` (before an eval or a checkpoint).
    pub fn refresh(&self, gpu: &Gpu) {
        gpu.run_pass("relax refresh", |pass| self.encode(pass));
    }

    /// Names of the quantized parameters.
    pub fn layer_names<'a>(&self, net: &'a Net) -> Vec<&'a str> {
        self.layers
            .iter()
            .map(|(i, _)| net.params[*i].name.as_str())
            .collect()
    }

    /// The per-row statistics to save beside the weights (`relax.{name}.stats`, rows x 2).
    pub fn extra_tensors<'a>(&'a self, net: &Net) -> Vec<(String, Vec<usize>, &'a Tensor)> {
        self.layers
            .iter()
            .map(|(i, op)| {
                (
                    format!("relax.{}.stats", net.params[*i].name),
                    vec![op.rows, 2],
                    &op.stats,
                )
            })
            .collect()
    }

    /// Reads back scales and `w_eff` of every quantized layer (only when reporting).
    pub fn report(&self, gpu: &Gpu, net: &Net) -> Result<Vec<RelaxLayerReport>> {
        let mut out = Vec::new();
        for (i, op) in &self.layers {
            let p = &net.params[*i];
            let eff = p.eff.as_ref().expect("derived").to_f32(gpu)?;
            let st = op.stats.to_f32(gpu)?;
            let pow2 = matches!(self.proj, Proj::Pow2 { .. });
            let distinct = |v: &[f32]| {
                v.iter()
                    .map(|x| x.to_bits())
                    .collect::<std::collections::BTreeSet<u32>>()
                    .len()
            };
            out.push(RelaxLayerReport {
                name: p.name.clone(),
                rows: op.rows,
                alpha: if pow2 {
                    vec![]
                } else {
                    st.chunks(2).map(|c| c[0]).collect()
                },
                n1_n2: if pow2 {
                    st.chunks(2)
                        .map(|c| (c[0].to_bits() as i32, c[1].to_bits() as i32))
                        .collect()
                } else {
                    vec![]
                },
                distinct_values: distinct(&eff),
                max_distinct_per_row: eff.chunks(op.row_len).map(distinct).max().unwrap_or(0),
            });
        }
        Ok(out)
    }
}
