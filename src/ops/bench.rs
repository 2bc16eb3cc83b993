//! Roofline microkernels (shaders/bench.wgsl): FMA peak and copy bandwidth.

use crate::error::Result;
use crate::gpu::device::Gpu;
use crate::gpu::kernels::{Binding, KernelSpec, ShaderId};
use crate::ops::{grid_for, Dispatch};

crate::gpu_params!(
    ShaderId::Bench,
    /// Mirrors `BenchParams`.
    pub struct BenchParams {
        pub n: u32,
        pub iters: u32,
        pub seed: f32,
        pub _pad: u32,
    }
);

/// Invocations per workgroup of both microkernels.
pub const WG: u32 = 64;

/// FLOPs done by [`fma_peak`] with `invocations` invocations of `iters` rounds.
pub fn fma_flops(invocations: usize, iters: u32) -> f64 {
    invocations as f64 * f64::from(iters) * 8.0 * 4.0 * 2.0
}

/// Prepares the FMA microkernel: `invocations` invocations, each writing one vec4 to `dst`.
pub fn fma_peak(
    gpu: &Gpu,
    invocations: usize,
    iters: u32,
    seed: f32,
    dst: &wgpu::Buffer,
) -> Result<Dispatch> {
    let spec = KernelSpec::new(
        ShaderId::Bench,
        "fma_peak",
        &[Binding::Uniform, Binding::ReadWrite],
    )
    .with("WG", f64::from(WG));
    let params = BenchParams {
        n: invocations as u32,
        iters,
        seed,
        _pad: 0,
    };
    Dispatch::new(gpu, &spec, &params, &[dst], grid_for(gpu, invocations, WG))
}

/// Prepares `dst[i] = src[i]` over `n4` vec4s.
pub fn copy_vec4(gpu: &Gpu, n4: usize, src: &wgpu::Buffer, dst: &wgpu::Buffer) -> Result<Dispatch> {
    let spec = KernelSpec::new(
        ShaderId::Bench,
        "copy_vec4",
        &[Binding::Uniform, Binding::ReadWrite, Binding::Read],
    )
    .with("WG", f64::from(WG));
    let params = BenchParams {
        n: n4 as u32,
        ..Default::default()
    };
    Dispatch::new(gpu, &spec, &params, &[dst, src], grid_for(gpu, n4, WG))
}
