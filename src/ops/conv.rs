//! conv2d forward, backward-data and backward-weight as implicit GEMMs, in two variants side by
//! side: `Direct` (shaders/conv.wgsl: one output per invocation, portable) and `Subgroup`
//! (shaders/conv_sg.wgsl: 8 or 16 channels per invocation, weights or gradients shared through
//! subgroup broadcasts; about 8 times fewer loads per FMA). [`ConvVariant::default_for`] picks
//! `Subgroup` where the adapter has subgroups of at least 8 invocations.

use crate::error::{Error, Result};
use crate::gpu::device::Gpu;
use crate::gpu::kernels::{Binding, KernelSpec, ShaderId};
use crate::gpu::tensor::{DType, Tensor};
use crate::ops::reduce::{reduce, ReduceOp, ReduceShape};
use crate::ops::{grid_for, Dispatch, Op};

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
        pub slices: u32,
    }
);

/// Which conv kernels to use.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ConvVariant {
    Direct,
    Subgroup,
}

impl ConvVariant {
    /// `Subgroup` where subgroups of at least 8 invocations exist, else `Direct`.
    pub fn default_for(gpu: &Gpu) -> ConvVariant {
        if gpu.features.contains(wgpu::Features::SUBGROUP) && gpu.info.subgroup_min_size >= 8 {
            ConvVariant::Subgroup
        } else {
            ConvVariant::Direct
        }
    }
}

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
            slices: 1,
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

/// Validates the shape and that every (name, buffer, floats needed) fits.
fn check(gpu: &Gpu, s: &ConvShape, bufs: [(&str, &wgpu::Buffer, usize); 3]) -> Result<()> {
    s.validate()?;
    for (what, buf, len) in bufs {
        gpu.check_binding(what, (len * 4) as u64)?;
        if buf.size() < (len * 4) as u64 {
            return Err(Error::Shape {
                op: "conv2d",
                msg: format!("{what} buffer holds {} floats, needs {len}", buf.size() / 4),
            });
        }
    }
    Ok(())
}

/// Invocations per workgroup of the subgroup fwd and bwd-data kernels. 8, 32 and 64 measured the
/// same on lavapipe (LeNet step 212-219 img/s).
fn sg_wgs() -> u32 {
    64
}

fn sg_spec(entry: &'static str, channels: usize) -> (KernelSpec, u32) {
    let cb = if channels > 8 { 16 } else { 8 };
    let spec = KernelSpec::new(ShaderId::ConvSg, entry, B).with("CB", f64::from(cb));
    (spec.with("WGS", f64::from(sg_wgs())), cb)
}

/// One output element per invocation (Direct) or `cb` channels per invocation (Subgroup):
/// `out_channels` x `positions` outputs, buffers bound as [out, in, w].
fn launch(
    gpu: &Gpu,
    v: ConvVariant,
    p: &ConvParams,
    (entry_direct, entry_sg): (&'static str, &'static str),
    (out_channels, positions): (usize, usize),
    bufs: [&wgpu::Buffer; 3],
) -> Result<Op> {
    if v == ConvVariant::Subgroup {
        let (spec, cb) = sg_spec(entry_sg, out_channels);
        let groups = [
            (positions as u32).div_ceil(sg_wgs()),
            (out_channels as u32).div_ceil(cb),
            1,
        ];
        return Ok(Dispatch::new(gpu, &spec, p, &bufs, groups)?.into());
    }
    let spec = KernelSpec::new(ShaderId::Conv, entry_direct, B).with("WG", f64::from(WG));
    Ok(Dispatch::new(
        gpu,
        &spec,
        p,
        &bufs,
        grid_for(gpu, out_channels * positions, WG),
    )?
    .into())
}

/// y = conv(x, w).
pub fn fwd(
    gpu: &Gpu,
    v: ConvVariant,
    s: &ConvShape,
    x: &wgpu::Buffer,
    w: &wgpu::Buffer,
    y: &wgpu::Buffer,
) -> Result<Op> {
    check(
        gpu,
        s,
        [
            ("x", x, s.x_len()),
            ("w", w, s.w_len()),
            ("y", y, s.y_len()),
        ],
    )?;
    let entries = ("conv2d_fwd", "conv2d_fwd_sg");
    launch(
        gpu,
        v,
        &s.params(false),
        entries,
        (s.cout, s.y_len() / s.cout),
        [y, x, w],
    )
}

/// dx (+)= conv_transpose(dy, w).
pub fn bwd_data(
    gpu: &Gpu,
    v: ConvVariant,
    s: &ConvShape,
    dy: &wgpu::Buffer,
    w: &wgpu::Buffer,
    dx: &wgpu::Buffer,
    accumulate: bool,
) -> Result<Op> {
    check(
        gpu,
        s,
        [
            ("dy", dy, s.y_len()),
            ("w", w, s.w_len()),
            ("dx", dx, s.x_len()),
        ],
    )?;
    let entries = ("conv2d_bwd_data", "conv2d_bwd_data_sg");
    launch(
        gpu,
        v,
        &s.params(accumulate),
        entries,
        (s.cin, s.n * s.h * s.w),
        [dx, dy, w],
    )
}

/// Runs a sliced backward-weight kernel: straight into `dw` with one slice, else into partial sums
/// that reduce_outer_sum adds up.
#[allow(clippy::too_many_arguments)]
fn sliced(
    gpu: &Gpu,
    s: &ConvShape,
    spec: &KernelSpec,
    p: ConvParams,
    groups: [u32; 3],
    dy: &wgpu::Buffer,
    x: &wgpu::Buffer,
    dw: &wgpu::Buffer,
) -> Result<Op> {
    let slices = p.slices as usize;
    if slices == 1 {
        return Ok(Dispatch::new(gpu, spec, &p, &[dw, dy, x], groups)?.into());
    }
    let partial = Tensor::empty(
        gpu,
        "conv dw partial sums",
        &[slices * s.w_len()],
        DType::F32,
    )?;
    let d = Dispatch::new(gpu, spec, &p, &[&partial.buf, dy, x], groups)?;
    let out = Tensor {
        buf: dw.clone(),
        shape: vec![s.w_len()],
        dtype: DType::F32,
    };
    let r = reduce(
        gpu,
        ReduceOp::OuterSum,
        ReduceShape::per_channel(slices, s.w_len(), 1),
        &partial,
        &out,
    )?;
    Ok(Op {
        steps: vec![d, r],
        textures: vec![],
    })
}

/// dw (+)= correlation of dy with x. The subgroup variant splits the N*OH*OW sum into slices
/// (so small layers still fill the device) and sums the partials with reduce_outer_sum.
pub fn bwd_weight(
    gpu: &Gpu,
    v: ConvVariant,
    s: &ConvShape,
    dy: &wgpu::Buffer,
    x: &wgpu::Buffer,
    dw: &wgpu::Buffer,
    accumulate: bool,
) -> Result<Op> {
    check(
        gpu,
        s,
        [
            ("dy", dy, s.y_len()),
            ("x", x, s.x_len()),
            ("dw", dw, s.w_len()),
        ],
    )?;
    let mut p = s.params(accumulate);
    if v == ConvVariant::Subgroup && s.stride == 1 && (s.k == 3 || s.k == 5) {
        // Sliding-window kernel: one 8-lane workgroup per 8 (ci, kh) rows and 8 output channels.
        let spec =
            KernelSpec::new(ShaderId::ConvSg, "conv2d_bwd_weight_win", B).with("K", s.k as f64);
        let (oh, _) = s.out_hw();
        let gx = ((s.cin * s.k) as u32).div_ceil(8);
        let gy = (s.cout as u32).div_ceil(8);
        let rows = (s.n * oh) as u32;
        let slices = if accumulate {
            1
        } else {
            48u32.div_ceil(gx * gy).clamp(1, rows)
        };
        p.slices = slices;
        return sliced(gpu, s, &spec, p, [gx, gy, slices], dy, x, dw);
    }
    if v == ConvVariant::Subgroup {
        let (spec, cb) = sg_spec("conv2d_bwd_weight_sg", s.cout);
        let taps = (s.cin * s.k * s.k) as u32;
        let gx = taps.div_ceil(64);
        let gy = (s.cout as u32).div_ceil(cb);
        let positions = (s.y_len() / s.cout) as u32;
        let slices = if accumulate {
            1
        } else {
            (64 / (gx * gy)).clamp(1, 64).min((positions / 64).max(1))
        };
        p.slices = slices;
        if slices == 1 {
            return Ok(Dispatch::new(gpu, &spec, &p, &[dw, dy, x], [gx, gy, 1])?.into());
        }
        let partial = Tensor::empty(
            gpu,
            "conv dw partial sums",
            &[slices as usize * s.w_len()],
            DType::F32,
        )?;
        let d = Dispatch::new(gpu, &spec, &p, &[&partial.buf, dy, x], [gx, gy, slices])?;
        let out = Tensor {
            buf: dw.clone(),
            shape: vec![s.w_len()],
            dtype: DType::F32,
        };
        let r = reduce(
            gpu,
            ReduceOp::OuterSum,
            ReduceShape::per_channel(slices as usize, s.w_len(), 1),
            &partial,
            &out,
        )?;
        return Ok(Op {
            steps: vec![d, r],
            textures: vec![],
        });
    }
    let spec = KernelSpec::new(ShaderId::Conv, "conv2d_bwd_weight", B).with("WG", f64::from(WG));
    Ok(Dispatch::new(gpu, &spec, &p, &[dw, dy, x], grid_for(gpu, s.w_len(), WG))?.into())
}
