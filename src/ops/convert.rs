//! f32 -> f16 storage conversion (shaders/convert.wgsl), available where the adapter has
//! SHADER_F16.

use crate::error::{Error, Result};
use crate::gpu::device::Gpu;
use crate::gpu::kernels::{Binding, KernelSpec, ShaderId};
use crate::gpu::tensor::{DType, Tensor};
use crate::ops::{grid_for, Dispatch};

crate::gpu_params!(
    ShaderId::Convert,
    /// Mirrors `ConvertParams`.
    pub struct ConvertParams {
        pub n: u32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub _pad2: u32,
    }
);

/// Prepares `dst16 = f16(src32)`.
pub fn f32_to_f16(gpu: &Gpu, src: &Tensor, dst: &Tensor) -> Result<Dispatch> {
    if src.dtype != DType::F32 || dst.dtype != DType::F16 || src.len() != dst.len() {
        return Err(Error::Shape {
            op: "f32_to_f16",
            msg: format!(
                "{:?} {:?} -> {:?} {:?}",
                src.dtype, src.shape, dst.dtype, dst.shape
            ),
        });
    }
    let spec = KernelSpec::new(
        ShaderId::Convert,
        "f32_to_f16",
        &[Binding::Uniform, Binding::ReadWrite, Binding::Read],
    );
    let params = ConvertParams {
        n: src.len() as u32,
        ..Default::default()
    };
    Dispatch::new(
        gpu,
        &spec,
        &params,
        &[&dst.buf, &src.buf],
        grid_for(gpu, src.len(), 256),
    )
}
