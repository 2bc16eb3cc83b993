//! Quantizers (shaders/quant.wgsl): INQ's power-of-two set per layer or per output channel — its
//! exponents (n1, n2)
//! from max|W| computed on the GPU, nearest-value rounding of the frozen weights — and INQ's
//! partition: an exact top-k radix select over the still-float weights, on the GPU.

use crate::error::{Error, Result};
use crate::gpu::device::Gpu;
use crate::gpu::kernels::{Binding, KernelSpec, ShaderId};
use crate::gpu::tensor::Tensor;
use crate::ops::{grid_for, Dispatch};

crate::gpu_params!(
    ShaderId::Quant,
    /// Mirrors `QuantParams`.
    pub struct QuantParams {
        pub n: u32,
        pub bits: u32,
        pub rows: u32,
        pub _pad1: u32,
    }
);

fn check_bits(bits: u32) -> Result<()> {
    if (2..=8).contains(&bits) {
        Ok(())
    } else {
        Err(Error::BadArg {
            flag: "--bits".into(),
            msg: format!("{bits} is not a supported INQ bit width (2 to 8)"),
        })
    }
}

/// exps (2 x i32 per row) <- (n1, n2) of the b-bit power-of-two set for s = smax[row] (= max|W|
/// of that row: one row for a per-layer set, one per output channel otherwise).
pub fn pow2_exponents(gpu: &Gpu, bits: u32, smax: &Tensor, exps: &Tensor) -> Result<Dispatch> {
    check_bits(bits)?;
    let rows = smax.len();
    if rows == 0 || exps.len() != 2 * rows {
        return Err(Error::Shape {
            op: "pow2_exponents",
            msg: format!(
                "{rows} maxima need {} exponents, got {}",
                2 * rows,
                exps.len()
            ),
        });
    }
    let spec = KernelSpec::new(
        ShaderId::Quant,
        "pow2_exponents",
        &[Binding::Uniform, Binding::ReadWrite, Binding::Read],
    );
    let p = QuantParams {
        n: rows as u32,
        bits,
        rows: rows as u32,
        ..Default::default()
    };
    let groups = [(rows as u32).div_ceil(64), 1, 1];
    Dispatch::new(gpu, &spec, &p, &[&exps.buf, &smax.buf], groups)
}

/// out = Q(w) where mask == 0 (frozen), w elsewhere, with (n1, n2) from `exps` (one pair per row
/// of w: `exps.len() / 2` rows of equal length).
pub fn pow2_quantize(
    gpu: &Gpu,
    bits: u32,
    w: &Tensor,
    mask: &Tensor,
    exps: &Tensor,
    out: &Tensor,
) -> Result<Dispatch> {
    check_bits(bits)?;
    if w.len() != mask.len() || w.len() != out.len() {
        return Err(Error::Shape {
            op: "pow2_quantize",
            msg: format!(
                "w {:?}, mask {:?}, out {:?} differ",
                w.shape, mask.shape, out.shape
            ),
        });
    }
    quantize_dispatch(
        gpu,
        "pow2_quantize",
        bits,
        (w.len(), exps.len() / 2),
        &[&out.buf, &w.buf, &mask.buf, &exps.buf],
    )
}

/// The launch shared by both quantize entry points: `bufs` after the uniform, the first one
/// written, one invocation per weight.
fn quantize_dispatch(
    gpu: &Gpu,
    entry: &'static str,
    bits: u32,
    (n, rows): (usize, usize),
    bufs: &[&wgpu::Buffer],
) -> Result<Dispatch> {
    if rows == 0 || !n.is_multiple_of(rows) {
        return Err(Error::Shape {
            op: "pow2_quantize",
            msg: format!("{n} weights do not split into {rows} rows of exponents"),
        });
    }
    const B4: &[Binding] = &[
        Binding::Uniform,
        Binding::ReadWrite,
        Binding::Read,
        Binding::Read,
    ];
    const B5: &[Binding] = &[
        Binding::Uniform,
        Binding::ReadWrite,
        Binding::Read,
        Binding::Read,
        Binding::Read,
    ];
    let layout = if bufs.len() == 3 { B4 } else { B5 };
    let spec = KernelSpec::new(ShaderId::Quant, entry, layout).with("WG", 256.0);
    let p = QuantParams {
        n: n as u32,
        bits,
        rows: rows as u32,
        ..Default::default()
    };
    Dispatch::new(gpu, &spec, &p, bufs, grid_for(gpu, n, 256))
}

/// [`pow2_quantize`] in place on the stored weights: w = Q(w) where mask == 0.
pub fn pow2_quantize_inplace(
    gpu: &Gpu,
    bits: u32,
    w: &Tensor,
    mask: &Tensor,
    exps: &Tensor,
) -> Result<Dispatch> {
    check_bits(bits)?;
    if w.len() != mask.len() {
        return Err(Error::Shape {
            op: "pow2_quantize_inplace",
            msg: format!("w {:?}, mask {:?} differ", w.shape, mask.shape),
        });
    }
    quantize_dispatch(
        gpu,
        "pow2_quantize_inplace",
        bits,
        (w.len(), exps.len() / 2),
        &[&w.buf, &mask.buf, &exps.buf],
    )
}

crate::gpu_params!(
    ShaderId::Quant,
    /// Mirrors `SelectParams`.
    pub struct SelectParams {
        pub n: u32,
        pub pass_: u32,
        pub mode: u32,
        pub seed: u32,
    }
);

/// Which float weights INQ freezes first.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Partition {
    /// Largest |w| first (the paper's "pruning-inspired" strategy); ties go lowest index first.
    Pruning,
    /// A pseudo-random choice keyed by (seed, index).
    Random { seed: u32 },
}

impl Partition {
    fn mode_seed(self) -> (u32, u32) {
        match self {
            Partition::Pruning => (0, 0),
            Partition::Random { seed } => (1, seed),
        }
    }
}

/// The scratch of one partition: `state` (4 x u32, written by [`select_state`] before each
/// partition) and a 256-bin histogram (zeroed at creation, left zeroed by every scan).
pub struct SelectScratch {
    pub state: Tensor,
    pub hist: Tensor,
}

impl SelectScratch {
    pub fn new(gpu: &Gpu) -> Result<SelectScratch> {
        Ok(SelectScratch {
            state: Tensor::from_u32(gpu, "select state", &[4], &[0; 4])?,
            hist: Tensor::from_u32(gpu, "select histogram", &[256], &[0; 256])?,
        })
    }
}

/// The state that makes the next partition freeze `k` more weights.
pub fn select_state(k: u32) -> [u32; 4] {
    [0, 0, k, u32::from(k > 0)]
}

/// Freezes (mask = 0, momentum = 0) exactly k of the weights with mask != 0, where k is what
/// [`select_state`] wrote into `scratch.state`: 8 histogram/scan passes, then the freeze. k must
/// not exceed the number of float weights.
pub fn partition(
    gpu: &Gpu,
    part: Partition,
    w: &Tensor,
    mask: &Tensor,
    momentum: &Tensor,
    scratch: &SelectScratch,
) -> Result<Vec<Dispatch>> {
    if w.len() != mask.len() || w.len() != momentum.len() {
        return Err(Error::Shape {
            op: "partition",
            msg: format!(
                "w {:?}, mask {:?}, momentum {:?} differ",
                w.shape, mask.shape, momentum.shape
            ),
        });
    }
    let (mode, seed) = part.mode_seed();
    let n = w.len() as u32;
    let hist = KernelSpec::new(
        ShaderId::Quant,
        "select_hist",
        &[
            Binding::Uniform,
            Binding::ReadWrite,
            Binding::Read,
            Binding::Read,
            Binding::Read,
        ],
    )
    .with("WG", 256.0);
    let scan = KernelSpec::new(
        ShaderId::Quant,
        "select_scan",
        &[Binding::Uniform, Binding::ReadWrite, Binding::ReadWrite],
    );
    let freeze = KernelSpec::new(
        ShaderId::Quant,
        "select_freeze",
        &[
            Binding::Uniform,
            Binding::ReadWrite,
            Binding::ReadWrite,
            Binding::Read,
            Binding::Read,
        ],
    )
    .with("WG", 256.0);
    let grid = grid_for(gpu, w.len(), 256);
    let mut v = Vec::with_capacity(17);
    for pass_ in 0..8 {
        let p = SelectParams {
            n,
            pass_,
            mode,
            seed,
        };
        v.push(Dispatch::new(
            gpu,
            &hist,
            &p,
            &[&scratch.hist.buf, &w.buf, &mask.buf, &scratch.state.buf],
            grid,
        )?);
        v.push(Dispatch::new(
            gpu,
            &scan,
            &p,
            &[&scratch.hist.buf, &scratch.state.buf],
            [1, 1, 1],
        )?);
    }
    let p = SelectParams {
        n,
        pass_: 8,
        mode,
        seed,
    };
    v.push(Dispatch::new(
        gpu,
        &freeze,
        &p,
        &[&mask.buf, &momentum.buf, &w.buf, &scratch.state.buf],
        grid,
    )?);
    Ok(v)
}
