//! BinaryRelax and STE projections (shaders/quant.wgsl `relax_*`): per-row statistics (the scale
//! alpha, and a threshold or exponents), the exact ternary projection's GPU bitonic sort, and the
//! kernel that writes the relaxed weights u = (λ·proj(w) + w)/(λ+1), or proj(w), into w_eff.

use crate::error::{Error, Result};
use crate::gpu::device::Gpu;
use crate::gpu::kernels::{Binding, KernelSpec, ShaderId};
use crate::gpu::tensor::{DType, Tensor};
use crate::gpu::Rec;
use crate::ops::{grid_for, Dispatch};

crate::gpu_params!(
    ShaderId::Quant,
    /// Mirrors `RelaxParams`.
    pub struct RelaxParams {
        pub rows: u32,
        pub row_len: u32,
        pub mode: u32,
        pub qmax: u32,
        pub iters: u32,
        pub hard: u32,
        pub bits: u32,
        pub padded: u32,
        pub lambda: f32,
        pub _pad0: f32,
        pub _pad1: f32,
        pub _pad2: f32,
    }
);

crate::gpu_params!(
    ShaderId::Quant,
    /// Mirrors `SortStep`.
    pub struct SortStep {
        pub total: u32,
        pub padded: u32,
        pub k: u32,
        pub j: u32,
    }
);

/// Alternations of the uniform projection's (alpha, q) fit.
pub const UNIFORM_ITERS: u32 = 4;

/// A projection onto a quantized set.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Proj {
    /// alpha·sign(w), alpha = mean|w|.
    Binary,
    /// The exact least-squares ternary projection (top-k with the best k).
    Ternary,
    /// TWN's threshold 0.7·mean|w|, alpha the mean of the kept |w|.
    TernaryTwn,
    /// Symmetric uniform on 2^(K-1) - 1 levels each side.
    Uniform { bits: u32 },
    /// INQ's power-of-two set from the row's max|w|.
    Pow2 { bits: u32 },
}

impl Proj {
    /// `binary`, `ternary`, `ternary-twn`, `uniform:K` (K 2..=8) or `pow2:K` (K 2..=8).
    pub fn parse(s: &str) -> Result<Proj> {
        let bad = |msg: String| Error::BadArg {
            flag: "--quant".into(),
            msg,
        };
        let bits = |k: &str| -> Result<u32> {
            match k.parse::<u32>() {
                Ok(b) if (2..=8).contains(&b) => Ok(b),
                _ => Err(bad(format!(
                    "'{s}': the bit width must be an integer from 2 to 8"
                ))),
            }
        };
        match s.split_once(':') {
            None if s == "binary" => Ok(Proj::Binary),
            None if s == "ternary" => Ok(Proj::Ternary),
            None if s == "ternary-twn" => Ok(Proj::TernaryTwn),
            Some(("uniform", k)) => Ok(Proj::Uniform { bits: bits(k)? }),
            Some(("pow2", k)) => Ok(Proj::Pow2 { bits: bits(k)? }),
            _ => Err(bad(format!(
                "'{s}' is not binary, ternary, ternary-twn, uniform:K or pow2:K"
            ))),
        }
    }

    pub fn mode(self) -> u32 {
        match self {
            Proj::Binary => 0,
            Proj::TernaryTwn => 1,
            Proj::Uniform { .. } => 2,
            Proj::Ternary => 3,
            Proj::Pow2 { .. } => 4,
        }
    }

    /// The uniform projection's largest code.
    pub fn qmax(self) -> u32 {
        match self {
            Proj::Uniform { bits } => (1 << (bits - 1)) - 1,
            _ => 1,
        }
    }

    /// The most distinct values a projected row can hold.
    pub fn max_levels(self) -> usize {
        match self {
            Proj::Binary => 2,
            Proj::Ternary | Proj::TernaryTwn => 3,
            Proj::Uniform { bits } => (1 << bits) - 1,
            Proj::Pow2 { bits } => (1 << (bits - 1)) + 1,
        }
    }

    fn bits(self) -> u32 {
        match self {
            Proj::Uniform { bits } | Proj::Pow2 { bits } => bits,
            _ => 2,
        }
    }
}

/// A prepared projection of one weight tensor viewed as `rows` x `row_len`.
pub struct RelaxOp {
    pub proj: Proj,
    pub rows: usize,
    pub row_len: usize,
    /// Per row (alpha, threshold) or (n1, n2) as i32 bits for pow2.
    pub stats: Tensor,
    /// Sorted |w| keys (exact ternary only).
    pub keys: Option<Tensor>,
    /// Sort (exact ternary), stats, apply.
    pub steps: Vec<Dispatch>,
    params: RelaxParams,
}

impl RelaxOp {
    /// Prepares proj(w) -> eff for `w` viewed as rows x row_len, starting at `lambda` (relaxed) or
    /// hard.
    pub fn new(
        gpu: &Gpu,
        proj: Proj,
        rows: usize,
        row_len: usize,
        w: &Tensor,
        eff: &Tensor,
    ) -> Result<RelaxOp> {
        let n = rows * row_len;
        if n == 0 || w.len() != n || eff.len() != n {
            return Err(Error::Shape {
                op: "relax",
                msg: format!(
                    "{rows} x {row_len} view of w {:?} into w_eff {:?}",
                    w.shape, eff.shape
                ),
            });
        }
        if rows > gpu.limits.max_compute_workgroups_per_dimension as usize {
            return Err(Error::Shape {
                op: "relax",
                msg: format!(
                    "{rows} rows exceed the device's {} workgroups per dimension (one per row)",
                    gpu.limits.max_compute_workgroups_per_dimension
                ),
            });
        }
        let padded = row_len.next_power_of_two();
        let params = RelaxParams {
            rows: rows as u32,
            row_len: row_len as u32,
            mode: proj.mode(),
            qmax: proj.qmax(),
            iters: UNIFORM_ITERS,
            hard: 0,
            bits: proj.bits(),
            padded: padded as u32,
            lambda: 1.0,
            ..Default::default()
        };
        let stats = Tensor::empty(gpu, "relax stats", &[2 * rows], DType::F32)?;
        let mut steps = Vec::new();
        let keys = if proj == Proj::Ternary {
            let total = rows * padded;
            let keys = Tensor::empty(gpu, "relax sort keys", &[total], DType::U32)?;
            let init = KernelSpec::new(
                ShaderId::Quant,
                "relax_sort_init",
                &[Binding::Uniform, Binding::ReadWrite, Binding::Read],
            )
            .with("WG", 256.0);
            steps.push(Dispatch::new(
                gpu,
                &init,
                &params,
                &[&keys.buf, &w.buf],
                grid_for(gpu, total, 256),
            )?);
            let step = KernelSpec::new(
                ShaderId::Quant,
                "relax_sort_step",
                &[Binding::Uniform, Binding::ReadWrite],
            )
            .with("WG", 256.0);
            let mut k = 2;
            while k <= padded {
                let mut j = k / 2;
                while j > 0 {
                    let p = SortStep {
                        total: total as u32,
                        padded: padded as u32,
                        k: k as u32,
                        j: j as u32,
                    };
                    steps.push(Dispatch::new(
                        gpu,
                        &step,
                        &p,
                        &[&keys.buf],
                        grid_for(gpu, (total / 2).max(1), 256),
                    )?);
                    j /= 2;
                }
                k *= 2;
            }
            Some(keys)
        } else {
            None
        };
        let st = KernelSpec::new(
            ShaderId::Quant,
            "relax_stats",
            &[
                Binding::Uniform,
                Binding::ReadWrite,
                Binding::Read,
                Binding::Read,
            ],
        );
        // Modes without a sort still bind something at binding 3 (never read).
        let key_buf = keys.as_ref().map(|k| &k.buf).unwrap_or(&w.buf);
        steps.push(Dispatch::new(
            gpu,
            &st,
            &params,
            &[&stats.buf, &w.buf, key_buf],
            [rows as u32, 1, 1],
        )?);
        let apply = KernelSpec::new(
            ShaderId::Quant,
            "relax_apply",
            &[
                Binding::Uniform,
                Binding::ReadWrite,
                Binding::Read,
                Binding::Read,
            ],
        )
        .with("WG", 256.0);
        steps.push(Dispatch::new(
            gpu,
            &apply,
            &params,
            &[&eff.buf, &w.buf, &stats.buf],
            grid_for(gpu, n, 256),
        )?);
        Ok(RelaxOp {
            proj,
            rows,
            row_len,
            stats,
            keys,
            steps,
            params,
        })
    }

    /// Sets λ for the next steps (`hard`: eff = proj(w) exactly). A queue write, no readback.
    pub fn set_lambda(&mut self, gpu: &Gpu, lambda: f32, hard: bool) {
        self.params.lambda = lambda;
        self.params.hard = u32::from(hard);
        if let Some(apply) = self.steps.last() {
            apply.set_params(gpu, &self.params);
        }
    }

    /// Records the projection (sort, stats, apply) into a pass.
    pub fn encode(&self, pass: &mut Rec<'_>) {
        for d in &self.steps {
            d.encode(pass);
        }
    }
}
