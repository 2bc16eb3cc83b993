//! Softmax cross-entropy with its gradient, and GPU-side metric accumulation
//! (shaders/loss.wgsl), in one dispatch where the batch fits a workgroup, optionally also writing
//! dz's rows into the texture the last linear layer's backward reads.

use crate::error::{Error, Result};
use crate::gpu::device::Gpu;
use crate::gpu::kernels::{Binding, KernelSpec, ShaderId};
use crate::ops::{Dispatch, Res};

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
/// With `dz_rows` it also stores dz's rows into that row texture (n x ceil(classes / 4) texels,
/// zeros past the classes), which the last linear layer's backward reads: no kernel then packs dz.
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
    dz_rows: Option<&wgpu::TextureView>,
) -> Result<Dispatch> {
    if n > FUSED_MAX {
        return Err(Error::Shape {
            op: "softmax_ce_metrics",
            msg: format!("{n} samples; one workgroup holds at most {FUSED_MAX}"),
        });
    }
    if let Some(v) = dz_rows {
        if !crate::ops::conv::view_holds(v, n * classes.div_ceil(4)) {
            return Err(Error::Shape {
                op: "softmax_ce_metrics",
                msg: format!("the dz rows texture does not hold {n} rows of {classes} classes"),
            });
        }
    }
    use Binding::{Read, ReadWrite, TexWrite, Uniform};
    let (entry, bindings): (_, &[Binding]) = match dz_rows {
        None => (
            "softmax_ce_metrics",
            &[Uniform, ReadWrite, ReadWrite, Read, Read, ReadWrite],
        ),
        Some(_) => (
            "softmax_ce_metrics_rows",
            &[
                Uniform, ReadWrite, ReadWrite, Read, Read, ReadWrite, TexWrite,
            ],
        ),
    };
    let spec = KernelSpec::new(ShaderId::Loss, entry, bindings);
    let p = LossParams {
        n: n as u32,
        classes: classes as u32,
        ..Default::default()
    };
    let mut res = vec![
        Res::from(dz),
        Res::from(per_sample),
        Res::from(z),
        Res::from(labels),
        Res::from(metrics),
    ];
    if let Some(v) = dz_rows {
        res.push(Res::View(v));
    }
    Dispatch::with_resources(gpu, &spec, &p, &res, [1, 1, 1])
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
