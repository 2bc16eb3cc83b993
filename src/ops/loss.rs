//! Softmax cross-entropy with its gradient, and GPU-side metric accumulation
//! (shaders/loss.wgsl), in one dispatch where the batch fits a workgroup.

use crate::error::Result;
use crate::gpu::device::Gpu;
use crate::gpu::kernels::{Binding, KernelSpec, ShaderId};
use crate::ops::Dispatch;

crate::gpu_params!(
    ShaderId::Loss,
    /// Mirrors `LossParams`.
    pub struct LossParams {
        pub n: u32,
        pub classes: u32,
        pub _pad0: u32,
        pub _pad1: u32,
    }
);

/// dz and per-sample (loss, correct) from logits z [n, classes] and u32 labels.
pub fn softmax_ce(
    gpu: &Gpu,
    n: usize,
    classes: usize,
    z: &wgpu::Buffer,
    labels: &wgpu::Buffer,
    dz: &wgpu::Buffer,
    per_sample: &wgpu::Buffer,
) -> Result<Dispatch> {
    let spec = KernelSpec::new(
        ShaderId::Loss,
        "softmax_ce",
        &[
            Binding::Uniform,
            Binding::ReadWrite,
            Binding::ReadWrite,
            Binding::Read,
            Binding::Read,
        ],
    );
    let p = LossParams {
        n: n as u32,
        classes: classes as u32,
        ..Default::default()
    };
    Dispatch::new(
        gpu,
        &spec,
        &p,
        &[dz, per_sample, z, labels],
        [(n as u32).div_ceil(64), 1, 1],
    )
}

/// Samples [`softmax_ce`] and [`accumulate`] handle in one dispatch (one workgroup).
pub const FUSED_MAX: usize = 256;

/// [`softmax_ce`] then [`accumulate`] in one dispatch, with the same bits, for n <= [`FUSED_MAX`].
#[allow(clippy::too_many_arguments)]
pub fn softmax_ce_metrics(
    gpu: &Gpu,
    n: usize,
    classes: usize,
    z: &wgpu::Buffer,
    labels: &wgpu::Buffer,
    dz: &wgpu::Buffer,
    per_sample: &wgpu::Buffer,
    metrics: &wgpu::Buffer,
) -> Result<Dispatch> {
    if n > FUSED_MAX {
        return Err(crate::error::Error::Shape {
            op: "softmax_ce_metrics",
            msg: format!("{n} samples; one workgroup holds at most {FUSED_MAX}"),
        });
    }
    let spec = KernelSpec::new(
        ShaderId::Loss,
        "softmax_ce_metrics",
        &[
            Binding::Uniform,
            Binding::ReadWrite,
            Binding::ReadWrite,
            Binding::Read,
            Binding::Read,
            Binding::ReadWrite,
        ],
    );
    let p = LossParams {
        n: n as u32,
        classes: classes as u32,
        ..Default::default()
    };
    Dispatch::new(
        gpu,
        &spec,
        &p,
        &[dz, per_sample, z, labels, metrics],
        [1, 1, 1],
    )
}

/// metrics[0..3] += (sum of losses, number correct, n).
pub fn accumulate(
    gpu: &Gpu,
    n: usize,
    per_sample: &wgpu::Buffer,
    metrics: &wgpu::Buffer,
) -> Result<Dispatch> {
    let spec = KernelSpec::new(
        ShaderId::Loss,
        "metrics_accumulate",
        &[Binding::Uniform, Binding::ReadWrite, Binding::Read],
    );
    let p = LossParams {
        n: n as u32,
        ..Default::default()
    };
    Dispatch::new(gpu, &spec, &p, &[metrics, per_sample], [1, 1, 1])
}
