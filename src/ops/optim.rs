//! Optimizer kernels (shaders/optim.wgsl): SGD with momentum, weight decay and optional
//! Nesterov, and Adam; both multiply the update by a per-element mask.

use crate::error::{Error, Result};
use crate::gpu::device::Gpu;
use crate::gpu::kernels::{Binding, KernelSpec, ShaderId};
use crate::ops::{grid_for, Dispatch};

crate::gpu_params!(
    ShaderId::Optim,
    /// Mirrors `SgdParams`.
    pub struct SgdParams {
        pub n: u32,
        pub nesterov: u32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub lr: f32,
        pub momentum: f32,
        pub weight_decay: f32,
        pub _pad2: f32,
    }
);

crate::gpu_params!(
    ShaderId::Optim,
    /// Mirrors `AdamParams`.
    pub struct AdamParams {
        pub n: u32,
        pub t: u32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub lr: f32,
        pub beta1: f32,
        pub beta2: f32,
        pub eps: f32,
        pub weight_decay: f32,
        pub _pad2: f32,
        pub _pad3: f32,
        pub _pad4: f32,
    }
);

const WG: u32 = 256;

/// One SGD step on `w` with momentum buffer `mom`.
pub fn sgd(
    gpu: &Gpu,
    p: &SgdParams,
    w: &wgpu::Buffer,
    mom: &wgpu::Buffer,
    grad: &wgpu::Buffer,
    mask: &wgpu::Buffer,
) -> Result<Dispatch> {
    let spec = KernelSpec::new(
        ShaderId::Optim,
        "sgd",
        &[
            Binding::Uniform,
            Binding::ReadWrite,
            Binding::ReadWrite,
            Binding::Read,
            Binding::Read,
        ],
    )
    .with("WG", f64::from(WG));
    let n4 = (p.n as usize).div_ceil(4);
    for (what, b) in [("w", w), ("momentum", mom), ("grad", grad), ("mask", mask)] {
        if b.size() < (n4 * 16) as u64 {
            return Err(Error::Shape {
                op: "sgd",
                msg: format!(
                    "{what} holds {} bytes; {} elements need {} (vec4-padded)",
                    b.size(),
                    p.n,
                    n4 * 16
                ),
            });
        }
    }
    Dispatch::new(gpu, &spec, p, &[w, mom, grad, mask], grid_for(gpu, n4, WG))
}

/// The buffers of one Adam step.
pub struct AdamBufs<'a> {
    pub w: &'a wgpu::Buffer,
    pub m: &'a wgpu::Buffer,
    pub v: &'a wgpu::Buffer,
    pub grad: &'a wgpu::Buffer,
    pub mask: &'a wgpu::Buffer,
}

/// One Adam step (`p.t` is the 1-based step count).
pub fn adam(gpu: &Gpu, p: &AdamParams, b: &AdamBufs<'_>) -> Result<Dispatch> {
    let spec = KernelSpec::new(
        ShaderId::Optim,
        "adam",
        &[
            Binding::Uniform,
            Binding::ReadWrite,
            Binding::ReadWrite,
            Binding::ReadWrite,
            Binding::Read,
            Binding::Read,
        ],
    )
    .with("WG", f64::from(WG));
    Dispatch::new(
        gpu,
        &spec,
        p,
        &[b.w, b.m, b.v, b.grad, b.mask],
        grid_for(gpu, p.n as usize, WG),
    )
}
