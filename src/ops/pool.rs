//! Pooling (shaders/pool.wgsl): 2x2/stride-2 max pooling with argmax, and global average pooling.

use crate::error::{Error, Result};
use crate::gpu::device::Gpu;
use crate::gpu::kernels::{Binding, KernelSpec, ShaderId};
use crate::ops::{grid_for, Dispatch};

crate::gpu_params!(
    ShaderId::Pool,
    /// Mirrors `PoolParams`.
    pub struct PoolParams {
        pub n: u32,
        pub c: u32,
        pub h: u32,
        pub w: u32,
        pub oh: u32,
        pub ow: u32,
        pub _pad0: u32,
        pub _pad1: u32,
    }
);

/// N x C x H x W input of a pooling layer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PoolShape {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl PoolShape {
    /// Output H and W of 2x2/stride-2 max pooling.
    pub fn max_out(&self) -> (usize, usize) {
        (self.h / 2, self.w / 2)
    }
    fn params(&self) -> PoolParams {
        let (oh, ow) = self.max_out();
        PoolParams {
            n: self.n as u32,
            c: self.c as u32,
            h: self.h as u32,
            w: self.w as u32,
            oh: oh as u32,
            ow: ow as u32,
            ..Default::default()
        }
    }
}

const WG: u32 = 256;

/// What the max-pooling kernels rely on (a short buffer would be read clamped, a wrong result): a
/// window fits, the full-size buffers hold N*C*H*W floats and the pooled ones N*C*OH*OW values.
fn check_max(
    s: &PoolShape,
    full: &[(&str, &wgpu::Buffer)],
    pooled: &[(&str, &wgpu::Buffer)],
) -> Result<()> {
    if s.h < 2 || s.w < 2 {
        return Err(Error::Shape {
            op: "maxpool2",
            msg: format!("input {s:?} is smaller than the 2x2 window"),
        });
    }
    let (oh, ow) = s.max_out();
    let lens = [(full, s.n * s.c * s.h * s.w), (pooled, s.n * s.c * oh * ow)];
    for (bufs, len) in lens {
        for (what, b) in bufs {
            if b.size() < (len * 4) as u64 {
                return Err(Error::Shape {
                    op: "maxpool2",
                    msg: format!("{what} holds {} values, {s:?} needs {len}", b.size() / 4),
                });
            }
        }
    }
    Ok(())
}

/// y, arg = maxpool2(x).
pub fn max_fwd(
    gpu: &Gpu,
    s: &PoolShape,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    arg: &wgpu::Buffer,
) -> Result<Dispatch> {
    check_max(s, &[("x", x)], &[("y", y), ("argmax", arg)])?;
    let (oh, _) = s.max_out();
    let spec = KernelSpec::new(
        ShaderId::Pool,
        if s.w.is_multiple_of(2) {
            "maxpool2_fwd2"
        } else {
            "maxpool2_fwd"
        },
        &[
            Binding::Uniform,
            Binding::ReadWrite,
            Binding::ReadWrite,
            Binding::Read,
        ],
    )
    .with("WG", f64::from(WG));
    Dispatch::new(
        gpu,
        &spec,
        &s.params(),
        &[y, arg, x],
        grid_for(gpu, s.n * s.c * oh, WG),
    )
}

/// dx = scatter of dy to the argmax positions.
pub fn max_bwd(
    gpu: &Gpu,
    s: &PoolShape,
    dy: &wgpu::Buffer,
    arg: &wgpu::Buffer,
    dx: &wgpu::Buffer,
) -> Result<Dispatch> {
    check_max(s, &[("dx", dx)], &[("dy", dy), ("argmax", arg)])?;
    let spec = KernelSpec::new(
        ShaderId::Pool,
        if s.w.is_multiple_of(4) {
            "maxpool2_bwd4"
        } else if s.w.is_multiple_of(2) {
            "maxpool2_bwd2"
        } else {
            "maxpool2_bwd"
        },
        &[
            Binding::Uniform,
            Binding::ReadWrite,
            Binding::Read,
            Binding::Read,
        ],
    )
    .with("WG", f64::from(WG));
    Dispatch::new(
        gpu,
        &spec,
        &s.params(),
        &[dx, dy, arg],
        grid_for(gpu, s.n * s.c * s.max_out().0, WG),
    )
}

/// y[n, c] = mean of x[n, c].
pub fn gap_fwd(gpu: &Gpu, s: &PoolShape, x: &wgpu::Buffer, y: &wgpu::Buffer) -> Result<Dispatch> {
    let spec = KernelSpec::new(
        ShaderId::Pool,
        "gap_fwd",
        &[Binding::Uniform, Binding::ReadWrite, Binding::Read],
    )
    .with("WG", f64::from(WG));
    Dispatch::new(
        gpu,
        &spec,
        &s.params(),
        &[y, x],
        grid_for(gpu, s.n * s.c, WG),
    )
}

/// dx = dy broadcast over H x W, divided by H*W.
pub fn gap_bwd(gpu: &Gpu, s: &PoolShape, dy: &wgpu::Buffer, dx: &wgpu::Buffer) -> Result<Dispatch> {
    let spec = KernelSpec::new(
        ShaderId::Pool,
        "gap_bwd",
        &[Binding::Uniform, Binding::ReadWrite, Binding::Read],
    )
    .with("WG", f64::from(WG));
    Dispatch::new(
        gpu,
        &spec,
        &s.params(),
        &[dx, dy],
        grid_for(gpu, s.n * s.c, WG),
    )
}
