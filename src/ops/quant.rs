//! Quantizers (shaders/quant.wgsl): INQ's power-of-two set per layer — its exponents (n1, n2)
//! from max|W| computed on the GPU, and nearest-value rounding of the frozen weights.

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
        pub _pad0: u32,
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

/// exps (2 x i32) <- (n1, n2) of the b-bit power-of-two set for s = smax[0] (= max|W|).
pub fn pow2_exponents(gpu: &Gpu, bits: u32, smax: &Tensor, exps: &Tensor) -> Result<Dispatch> {
    check_bits(bits)?;
    let spec = KernelSpec::new(
        ShaderId::Quant,
        "pow2_exponents",
        &[Binding::Uniform, Binding::ReadWrite, Binding::Read],
    );
    let p = QuantParams {
        n: 1,
        bits,
        ..Default::default()
    };
    Dispatch::new(gpu, &spec, &p, &[&exps.buf, &smax.buf], [1, 1, 1])
}

/// out = Q(w) where mask == 0 (frozen), w elsewhere, with (n1, n2) from `exps`.
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
    let spec = KernelSpec::new(
        ShaderId::Quant,
        "pow2_quantize",
        &[
            Binding::Uniform,
            Binding::ReadWrite,
            Binding::Read,
            Binding::Read,
            Binding::Read,
        ],
    )
    .with("WG", 256.0);
    let p = QuantParams {
        n: w.len() as u32,
        bits,
        ..Default::default()
    };
    Dispatch::new(
        gpu,
        &spec,
        &p,
        &[&out.buf, &w.buf, &mask.buf, &exps.buf],
        grid_for(gpu, w.len(), 256),
    )
}
