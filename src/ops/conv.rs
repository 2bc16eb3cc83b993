//! conv2d forward, backward-data and backward-weight (shaders/conv.wgsl) as implicit GEMMs.

use crate::error::{Error, Result};
use crate::gpu::device::Gpu;
use crate::gpu::kernels::{Binding, KernelSpec, ShaderId};
use crate::ops::{grid_for, Dispatch};

crate::gpu_params!(
    ShaderId::Conv,
    /// Mirrors `ConvParams`.
    pub struct ConvParams {
        pub n: u32,
        pub cin: u32,
        pub h: u32,
        pub w: u32,
        pub cout: u32,
        pub oh: u32,
        pub ow: u32,
        pub k: u32,
        pub stride: u32,
        pub pad: u32,
        pub accumulate: u32,
        pub _pad: u32,
    }
);

/// The shape of a conv layer applied to a batch.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ConvShape {
    pub n: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl ConvShape {
    /// Output height and width.
    pub fn out_hw(&self) -> (usize, usize) {
        (
            (self.h + 2 * self.pad - self.k) / self.stride + 1,
            (self.w + 2 * self.pad - self.k) / self.stride + 1,
        )
    }
    pub fn x_len(&self) -> usize {
        self.n * self.cin * self.h * self.w
    }
    pub fn w_len(&self) -> usize {
        self.cout * self.cin * self.k * self.k
    }
    pub fn y_len(&self) -> usize {
        let (oh, ow) = self.out_hw();
        self.n * self.cout * oh * ow
    }
    /// FLOPs of the forward pass.
    pub fn flops(&self) -> f64 {
        2.0 * self.y_len() as f64 * (self.cin * self.k * self.k) as f64
    }
    fn validate(&self) -> Result<()> {
        if self.n == 0 || self.cin == 0 || self.cout == 0 || self.k == 0 || self.stride == 0 {
            return Err(Error::Shape {
                op: "conv2d",
                msg: format!("degenerate shape {self:?}"),
            });
        }
        if self.h + 2 * self.pad < self.k || self.w + 2 * self.pad < self.k {
            return Err(Error::Shape {
                op: "conv2d",
                msg: format!("kernel {} larger than padded input in {self:?}", self.k),
            });
        }
        Ok(())
    }
    fn params(&self, accumulate: bool) -> ConvParams {
        let (oh, ow) = self.out_hw();
        ConvParams {
            n: self.n as u32,
            cin: self.cin as u32,
            h: self.h as u32,
            w: self.w as u32,
            cout: self.cout as u32,
            oh: oh as u32,
            ow: ow as u32,
            k: self.k as u32,
            stride: self.stride as u32,
            pad: self.pad as u32,
            accumulate: accumulate as u32,
            _pad: 0,
        }
    }
}

const WG: u32 = 64;
const B: &[Binding] = &[
    Binding::Uniform,
    Binding::ReadWrite,
    Binding::Read,
    Binding::Read,
];

fn check(gpu: &Gpu, what: &str, buf: &wgpu::Buffer, len: usize) -> Result<()> {
    gpu.check_binding(what, (len * 4) as u64)?;
    if buf.size() < (len * 4) as u64 {
        return Err(Error::Shape {
            op: "conv2d",
            msg: format!("{what} buffer holds {} floats, needs {len}", buf.size() / 4),
        });
    }
    Ok(())
}

/// y = conv(x, w).
pub fn fwd(
    gpu: &Gpu,
    s: &ConvShape,
    x: &wgpu::Buffer,
    w: &wgpu::Buffer,
    y: &wgpu::Buffer,
) -> Result<Dispatch> {
    s.validate()?;
    check(gpu, "x", x, s.x_len())?;
    check(gpu, "w", w, s.w_len())?;
    check(gpu, "y", y, s.y_len())?;
    let spec = KernelSpec::new(ShaderId::Conv, "conv2d_fwd", B).with("WG", f64::from(WG));
    Dispatch::new(
        gpu,
        &spec,
        &s.params(false),
        &[y, x, w],
        grid_for(gpu, s.y_len(), WG),
    )
}

/// dx (+)= conv_transpose(dy, w).
pub fn bwd_data(
    gpu: &Gpu,
    s: &ConvShape,
    dy: &wgpu::Buffer,
    w: &wgpu::Buffer,
    dx: &wgpu::Buffer,
    accumulate: bool,
) -> Result<Dispatch> {
    s.validate()?;
    check(gpu, "dy", dy, s.y_len())?;
    check(gpu, "w", w, s.w_len())?;
    check(gpu, "dx", dx, s.x_len())?;
    let spec = KernelSpec::new(ShaderId::Conv, "conv2d_bwd_data", B).with("WG", f64::from(WG));
    Dispatch::new(
        gpu,
        &spec,
        &s.params(accumulate),
        &[dx, dy, w],
        grid_for(gpu, s.x_len(), WG),
    )
}

/// dw (+)= correlation of dy with x.
pub fn bwd_weight(
    gpu: &Gpu,
    s: &ConvShape,
    dy: &wgpu::Buffer,
    x: &wgpu::Buffer,
    dw: &wgpu::Buffer,
    accumulate: bool,
) -> Result<Dispatch> {
    s.validate()?;
    check(gpu, "dy", dy, s.y_len())?;
    check(gpu, "x", x, s.x_len())?;
    check(gpu, "dw", dw, s.w_len())?;
    let spec = KernelSpec::new(ShaderId::Conv, "conv2d_bwd_weight", B).with("WG", f64::from(WG));
    Dispatch::new(
        gpu,
        &spec,
        &s.params(accumulate),
        &[dw, dy, x],
        grid_for(gpu, s.w_len(), WG),
    )
}
