//! conv2d forward, backward-data and backward-weight as implicit GEMMs, in two variants side by
//! side: `Direct` (shaders/conv.wgsl: one output per invocation, portable) and `Subgroup`
//! (shaders/conv_sg.wgsl: 8 or 16 channels per invocation, weights or gradients shared through
//! subgroup broadcasts; about 8 times fewer loads per FMA). On CPU-backed adapters with subgroups of
//! exactly 8 a third variant, `Tex` (shaders/conv_tex.wgsl), runs stride-1 forward and
//! backward-data convs from packed rgba32float textures (vector gathers instead of scalar loads);
//! other shapes fall back to `Subgroup`. [`ConvVariant::default_for`] picks per device.

use crate::error::{Error, Result};
use crate::gpu::device::Gpu;
use crate::gpu::kernels::{Binding, KernelSpec, Res, ShaderId};
use crate::gpu::tensor::{DType, Tensor};
use crate::ops::gemm::array_view;
use crate::ops::reduce::{reduce, ReduceOp, ReduceShape};
use crate::ops::{grid_for, Dispatch, Op, Step, TexCopy};

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

crate::gpu_params!(
    ShaderId::ConvTex,
    /// Mirrors `ConvTexParams`: the equivalent forward conv (for backward-data: dy as the input,
    /// the layer's input channels as the outputs, flipped weights).
    pub struct ConvTexParams {
        pub n: u32,
        pub cin: u32,
        pub h: u32,
        pub w: u32,
        pub cout: u32,
        pub oh: u32,
        pub ow: u32,
        pub w4: u32,
        pub ow4: u32,
        pub pad: u32,
        pub accumulate: u32,
        pub flip: u32,
        pub wrow: u32,
        pub stride: u32,
        pub slices: u32,
        pub c4: u32,
    }
);

/// Which conv kernels to use.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ConvVariant {
    Direct,
    Subgroup,
    /// Texture-fed stride-1 forward and backward-data with `co` (8 or 16) output channels per
    /// invocation; backward-weight and other shapes run the `Subgroup` kernels.
    Tex {
        co: u32,
    },
}

impl ConvVariant {
    /// `Tex` on CPU-backed adapters with subgroups of exactly 8, `Subgroup` where subgroups of at
    /// least 8 invocations exist, else `Direct`.
    pub fn default_for(gpu: &Gpu) -> ConvVariant {
        if gpu.info.device_type == wgpu::DeviceType::Cpu && Self::tex_supported(gpu) {
            ConvVariant::Tex { co: 8 }
        } else if gpu.features.contains(wgpu::Features::SUBGROUP) && gpu.info.subgroup_min_size >= 8
        {
            ConvVariant::Subgroup
        } else {
            ConvVariant::Direct
        }
    }

    /// True when the `Tex` kernels can run: subgroups of exactly 8 and textures of 2048 x 4096.
    pub fn tex_supported(gpu: &Gpu) -> bool {
        crate::ops::gemm::GemmVariant::tex_supported(gpu)
            && gpu.limits.max_texture_dimension_2d >= TEX_ROWS
    }

    /// Every variant this device can run.
    pub fn candidates(gpu: &Gpu) -> Vec<ConvVariant> {
        let mut v = Vec::new();
        if Self::tex_supported(gpu) {
            v.extend([ConvVariant::Tex { co: 8 }, ConvVariant::Tex { co: 16 }]);
        }
        if gpu.features.contains(wgpu::Features::SUBGROUP) && gpu.info.subgroup_min_size >= 8 {
            v.push(ConvVariant::Subgroup);
        }
        v.push(ConvVariant::Direct);
        v
    }

    /// A short name: `direct`, `subgroup`, `tex8` or `tex16`.
    pub fn name(&self) -> String {
        match self {
            ConvVariant::Direct => "direct".into(),
            ConvVariant::Subgroup => "subgroup".into(),
            ConvVariant::Tex { co } => format!("tex{co}"),
        }
    }

    /// The inverse of [`ConvVariant::name`].
    pub fn parse(name: &str) -> Option<ConvVariant> {
        match name {
            "direct" => Some(ConvVariant::Direct),
            "subgroup" => Some(ConvVariant::Subgroup),
            "tex8" => Some(ConvVariant::Tex { co: 8 }),
            "tex16" => Some(ConvVariant::Tex { co: 16 }),
            _ => None,
        }
    }

    /// The variant that actually runs `s` forward and backward-data: `Tex` only where its kernel
    /// covers the shape (stride 1, kernel at most 5, textures within the device limits).
    fn effective(self, gpu: &Gpu, s: &ConvShape, bwd_data: bool) -> ConvVariant {
        match self {
            ConvVariant::Tex { .. } if !tex_covers(gpu, s, bwd_data) => ConvVariant::Subgroup,
            v => v,
        }
    }
}

/// Texels per row, and rows per layer, of the packed activation textures (shaders/conv_tex.wgsl
/// addresses texel t at (t % 2048, (t / 2048) % 4096, t / (2048 * 4096))).
const TEX_W: u32 = 2048;
const TEX_ROWS: u32 = 4096;

/// Whether the texture behind `view` (a 2-D array view of all its layers, as [`act_texture`]
/// makes them) holds texels `0 .. texels` at their `texel_xy` places (x = t % 2048, row
/// (t / 2048) % 4096, layer t / 2^23): a host check on textures that a caller passes in.
pub fn view_holds(view: &wgpu::TextureView, texels: usize) -> bool {
    let s = view.texture().size();
    let rows = texels.div_ceil(TEX_W as usize);
    let (h, layers) = (s.height as usize, s.depth_or_array_layers as usize);
    texels == 0
        || (s.width == TEX_W
            && layers >= 1
            && (rows <= h || (h == TEX_ROWS as usize && rows.div_ceil(h) <= layers)))
}

fn act_texels(n: usize, c: usize, h: usize, w: usize) -> usize {
    n * c * h * w.div_ceil(4)
}

fn tex_covers(gpu: &Gpu, s: &ConvShape, bwd_data: bool) -> bool {
    let (oh, ow) = s.out_hw();
    let l = &gpu.limits;
    let layers = |texels: usize| texels.div_ceil(TEX_W as usize).div_ceil(TEX_ROWS as usize);
    let items = |n: usize, h: usize, w: usize| n * h * w.div_ceil(4);
    // the input window of 4 outputs must fit 3 texels: with stride 2, M + K <= 6
    let m = (4 - s.pad % 4) % 4;
    // (backward-data at stride 2 has its own kernel, whose window always fits)
    (s.stride == 1 || (s.stride == 2 && (bwd_data || m + s.k <= 6)))
        && (1..=5).contains(&s.k)
        && s.pad < s.k
        && layers(act_texels(s.n, s.cin, s.h, s.w)) as u64 <= u64::from(l.max_texture_array_layers)
        && layers(act_texels(s.n, s.cout, oh, ow)) as u64 <= u64::from(l.max_texture_array_layers)
        && (s.cin.max(s.cout) * s.k * s.k.div_ceil(4)) as u64
            <= u64::from(l.max_texture_dimension_2d)
        && (s.cin.max(s.cout).div_ceil(16) * 16) as u64 <= u64::from(l.max_texture_dimension_2d)
        && (items(s.n, oh, ow).max(items(s.n, s.h, s.w)) as u64).div_ceil(64)
            <= u64::from(l.max_compute_workgroups_per_dimension)
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
fn check(gpu: &Gpu, s: &ConvShape, bufs: &[(&str, &wgpu::Buffer, usize)]) -> Result<()> {
    s.validate()?;
    for &(what, buf, len) in bufs {
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
    if matches!(v, ConvVariant::Subgroup | ConvVariant::Tex { .. }) {
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
    Ok(fwd_keep_input(gpu, v, s, x, w, y)?.0)
}

/// [`fwd`], and the texture its texture-fed kernel reads x from (rows of ceil(w/4) texels), for
/// [`bwd`] to reuse; `None` where the forward pass reads the buffer.
pub fn fwd_keep_input(
    gpu: &Gpu,
    v: ConvVariant,
    s: &ConvShape,
    x: &wgpu::Buffer,
    w: &wgpu::Buffer,
    y: &wgpu::Buffer,
) -> Result<(Op, Option<wgpu::TextureView>)> {
    fwd_keep_input_to(gpu, v, s, x, w, ConvY::Buf(y))
}

/// Where a forward conv writes y: the NCHW buffer, or (where [`y_rows_ok`]) a texture of the
/// buffer's texels in order ([`planes_texture`] of the output shape, whose rows are then whole
/// texels), for a texture-fed consumer that would otherwise copy the buffer in.
#[derive(Copy, Clone)]
pub enum ConvY<'a> {
    Buf(&'a wgpu::Buffer),
    Rows(&'a wgpu::TextureView),
}

/// Whether the forward conv of `s` can write y into a texture ([`ConvY::Rows`]): it runs the
/// texture-fed kernel and its output rows are whole texels (conv_tex4_rows).
pub fn y_rows_ok(gpu: &Gpu, v: ConvVariant, s: &ConvShape) -> bool {
    let (oh, ow) = s.out_hw();
    matches!(v.effective(gpu, s, false), ConvVariant::Tex { .. })
        && ow.is_multiple_of(4)
        && act_texture_fits(gpu, act_texels(s.n, s.cout, oh, ow))
}

/// [`fwd_keep_input`] writing y where `y` says (see [`ConvY`]).
pub fn fwd_keep_input_to(
    gpu: &Gpu,
    v: ConvVariant,
    s: &ConvShape,
    x: &wgpu::Buffer,
    w: &wgpu::Buffer,
    y: ConvY<'_>,
) -> Result<(Op, Option<wgpu::TextureView>)> {
    check(gpu, s, &[("x", x, s.x_len()), ("w", w, s.w_len())])?;
    check_y(gpu, v, s, y)?;
    if let ConvVariant::Tex { co } = v.effective(gpu, s, false) {
        let op = conv_tex(gpu, co, &TexConv::fwd(s), TexSrc::Buf(x), w, None, y, false)?;
        // conv_tex's first texture is the input it packed or copied
        let xv = array_view(&op.textures[0]);
        return Ok((op, Some(xv)));
    }
    let ConvY::Buf(y) = y else {
        return Err(Error::Shape {
            op: "conv fwd",
            msg: format!("{s:?}: y into a texture needs the texture-fed kernel"),
        });
    };
    let entries = ("conv2d_fwd", "conv2d_fwd_sg");
    let op = launch(
        gpu,
        v,
        &s.params(false),
        entries,
        (s.cout, s.y_len() / s.cout),
        [y, x, w],
    )?;
    Ok((op, None))
}

/// An error unless `y` can hold the output of the forward conv of `s`.
fn check_y(gpu: &Gpu, v: ConvVariant, s: &ConvShape, y: ConvY<'_>) -> Result<()> {
    match y {
        ConvY::Buf(y) => check(gpu, s, &[("y", y, s.y_len())]),
        ConvY::Rows(view) => {
            let (oh, ow) = s.out_hw();
            if !y_rows_ok(gpu, v, s) {
                return Err(Error::Shape {
                    op: "conv fwd",
                    msg: format!(
                        "{s:?}: y into a texture needs the texture-fed kernel and an output \
                         width that is a multiple of 4"
                    ),
                });
            }
            let texels = act_texels(s.n, s.cout, oh, ow);
            if !view_holds(view, texels) {
                return Err(Error::Shape {
                    op: "conv fwd",
                    msg: format!("the y texture does not hold {texels} texels"),
                });
            }
            Ok(())
        }
    }
}

/// Whether a producer may hand this conv its input x and its dy as row textures (the layout
/// pack_act writes: rows of ceil(w/4) texels, zeros past the row), so that the conv packs neither:
/// its forward ([`fwd_rows`]) reads x from the texture, backward-weight reads the same texture by
/// rows, and both backward passes read dy from the texture ([`bwd`] with `dy_rows`). Holds where
/// every one of those runs on the texture-fed kernels.
pub fn rows_io_ok(gpu: &Gpu, v: ConvVariant, s: &ConvShape) -> bool {
    let (oh, ow) = s.out_hw();
    matches!(v, ConvVariant::Tex { .. })
        && matches!(v.effective(gpu, s, false), ConvVariant::Tex { .. })
        && matches!(v.effective(gpu, s, true), ConvVariant::Tex { .. })
        && tex_dw_covers(gpu, s)
        && dw_rows(s)
        && act_texture_fits(gpu, act_texels(s.n, s.cin, s.h, s.w))
        && act_texture_fits(gpu, act_texels(s.n, s.cout, oh, ow))
}

/// A row texture for `n` x `c` planes of `h` rows of `w` columns (see [`rows_io_ok`]), for a
/// producer to write and a conv to read.
pub fn planes_texture(
    gpu: &Gpu,
    label: &str,
    n: usize,
    c: usize,
    h: usize,
    w: usize,
) -> (wgpu::Texture, wgpu::TextureView) {
    act_texture(gpu, label, act_texels(n, c, h, w))
}

/// The forward conv from x already in a row texture ([`planes_texture`], written by the producer of
/// x), for [`rows_io_ok`] shapes; `x_rows` then also serves [`bwd`].
pub fn fwd_rows(
    gpu: &Gpu,
    v: ConvVariant,
    s: &ConvShape,
    x_rows: &wgpu::TextureView,
    w: &wgpu::Buffer,
    y: &wgpu::Buffer,
) -> Result<Op> {
    fwd_rows_to(gpu, v, s, x_rows, w, ConvY::Buf(y))
}

/// [`fwd_rows`] writing y where `y` says (see [`ConvY`]).
pub fn fwd_rows_to(
    gpu: &Gpu,
    v: ConvVariant,
    s: &ConvShape,
    x_rows: &wgpu::TextureView,
    w: &wgpu::Buffer,
    y: ConvY<'_>,
) -> Result<Op> {
    check(gpu, s, &[("w", w, s.w_len())])?;
    check_y(gpu, v, s, y)?;
    let ConvVariant::Tex { co } = v.effective(gpu, s, false) else {
        return Err(Error::Shape {
            op: "conv fwd_rows",
            msg: format!("{s:?}: x in a row texture needs the texture-fed kernels"),
        });
    };
    if !rows_io_ok(gpu, v, s) {
        return Err(Error::Shape {
            op: "conv fwd_rows",
            msg: format!("{s:?}: not a shape whose input and dy the texture kernels take by rows"),
        });
    }
    conv_tex(
        gpu,
        co,
        &TexConv::fwd(s),
        TexSrc::Rows(x_rows),
        w,
        None,
        y,
        false,
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
        &[
            ("dy", dy, s.y_len()),
            ("w", w, s.w_len()),
            ("dx", dx, s.x_len()),
        ],
    )?;
    if let ConvVariant::Tex { co } = v.effective(gpu, s, true) {
        return bwd_data_tex(gpu, co, s, dy, None, w, None, dx, accumulate);
    }
    let entries = ("conv2d_bwd_data", "conv2d_bwd_data_sg");
    // the subgroup kernel orders stride-2 positions by column parity, padding odd widths by one
    let positions = if v != ConvVariant::Direct && s.stride == 2 {
        s.n * s.h * 2 * s.w.div_ceil(2)
    } else {
        s.n * s.h * s.w
    };
    launch(
        gpu,
        v,
        &s.params(accumulate),
        entries,
        (s.cin, positions),
        [dx, dy, w],
    )
}

/// Whether backward-weight runs `conv_dw_rows_tex` (lane = one (ci, kh) row of taps).
fn dw_rows(s: &ConvShape) -> bool {
    s.stride == 1 && (1..=5).contains(&s.k) && s.pad < s.k
}

fn tex_dw_covers(gpu: &Gpu, s: &ConvShape) -> bool {
    let (oh, ow) = s.out_hw();
    let l = &gpu.limits;
    let layers = |texels: usize| texels.div_ceil(TEX_W as usize).div_ceil(TEX_ROWS as usize);
    let max_layers = u64::from(l.max_texture_array_layers);
    let max_groups = u64::from(l.max_compute_workgroups_per_dimension);
    // conv_dw_rows_tex at stride 1 (2-3x conv_dw_tex on ResNet-20's shapes: 20-23 against 8-10
    // GFLOP/s at batch 128, and LeNet's 1 and 6 input channels would leave conv_dw_tex's channel
    // groups mostly padding); conv_dw_tex at stride 2 from 8 input channels
    (s.cin >= 8 || dw_rows(s))
        && layers(act_texels(s.n, s.cout, oh, ow)) as u64 <= max_layers
        && layers(s.n * s.h * s.w * s.cin.div_ceil(4)) as u64 <= max_layers
        && ((s.cin.div_ceil(4) * s.k * s.k) as u64).div_ceil(64) <= max_groups
        && (s.cout as u64).div_ceil(8) <= max_groups
}

/// A packing kernel (`entry`: pack_act or pack_act_c4) from `src` into a new texture of `texels`
/// texels in the conv layout, over the workgroup grid `groups`.
fn pack_kernel(
    gpu: &Gpu,
    entry: &'static str,
    label: &str,
    p: &ConvTexParams,
    texels: usize,
    src: &wgpu::Buffer,
    groups: [u32; 3],
) -> Result<(Step, wgpu::Texture, wgpu::TextureView)> {
    const PACK: &[Binding] = &[Binding::Uniform, Binding::TexWrite, Binding::Read];
    let (t, v) = act_texture(gpu, label, texels);
    let spec = KernelSpec::new(ShaderId::ConvTex, entry, PACK);
    let d = Dispatch::with_resources(gpu, &spec, p, &[Res::View(&v), Res::from(src)], groups)?;
    Ok((d.into(), t, v))
}

/// An NCHW activation of rows of `cols` columns in a row texture (`texels` texels): where rows are
/// a multiple of 4 columns the texels are the buffer's vec4s in order and a transfer command fills
/// it (about 1 ms for 8 MiB on lavapipe, against 11 for a kernel that loads and stores every
/// texel); otherwise pack_act (pack_act2 at even widths) pads each row.
fn pack_rows(
    gpu: &Gpu,
    label: &str,
    p: &ConvTexParams,
    cols: usize,
    texels: usize,
    src: &wgpu::Buffer,
) -> Result<(Step, wgpu::Texture, wgpu::TextureView)> {
    if cols.is_multiple_of(4) {
        return Ok(act_texture_copy(gpu, label, src, texels));
    }
    let w4 = cols.div_ceil(4);
    let rows = texels / w4;
    if src.size() < (rows * cols * 4) as u64 || w4 > 65535 {
        return Err(Error::Shape {
            op: "conv pack_act",
            msg: format!(
                "{label}: {rows} rows of {cols} columns from a buffer of {} bytes (at most \
                 65535 texels per row)",
                src.size()
            ),
        });
    }
    // invocation = (row, texel): rows over x (and y past the grid's width), texels over z
    let [gx, gy, _] = grid_for(gpu, rows, 64);
    // even rows: two vec2 loads per texel
    let entry = if cols.is_multiple_of(2) {
        "pack_act2"
    } else {
        "pack_act"
    };
    pack_kernel(gpu, entry, label, p, texels, src, [gx, gy, w4 as u32])
}

/// A row-major [rows][cols] matrix in a row texture (rows padded with zeros to ceil(cols/4)
/// texels): copied where cols % 4 == 0, packed by pack_act otherwise. The texture-fed linear
/// layers (ops/linear.rs) read their operands this way.
pub(crate) fn rows_texture(
    gpu: &Gpu,
    label: &str,
    rows: usize,
    cols: usize,
    src: &wgpu::Buffer,
) -> Result<(Step, wgpu::Texture, wgpu::TextureView)> {
    let w4 = cols.div_ceil(4);
    let p = ConvTexParams {
        n: rows as u32,
        cin: 1,
        h: 1,
        w: cols as u32,
        w4: w4 as u32,
        ..Default::default()
    };
    pack_rows(gpu, label, &p, cols, rows * w4, src)
}

/// Whether a texture of `texels` texels in the conv layout fits the device.
pub(crate) fn act_texture_fits(gpu: &Gpu, texels: usize) -> bool {
    let layers = texels.div_ceil(TEX_W as usize).div_ceil(TEX_ROWS as usize);
    gpu.limits.max_texture_dimension_2d >= TEX_ROWS
        && layers as u64 <= u64::from(gpu.limits.max_texture_array_layers)
}

/// A texture holding `texels` texels of `src` (4 consecutive floats each) in the conv layout,
/// filled by a copy step.
pub(crate) fn act_texture_copy(
    gpu: &Gpu,
    label: &str,
    src: &wgpu::Buffer,
    texels: usize,
) -> (Step, wgpu::Texture, wgpu::TextureView) {
    let (t, v) = act_texture(gpu, label, texels);
    let copy = TexCopy {
        label: "transfer::copy_buffer_to_texture",
        src: src.clone(),
        dst: t.clone(),
        regions: copy_regions(texels),
    };
    (Step::Copy(copy), t, v)
}

/// The copy regions that lay `texels` consecutive texels of a buffer out as shaders/conv_tex.wgsl
/// addresses them: per layer, the full rows of TEX_W texels, then the partial last row.
fn copy_regions(texels: usize) -> Vec<(u64, u32, wgpu::Origin3d, wgpu::Extent3d)> {
    let per_layer = (TEX_W * TEX_ROWS) as usize;
    let row_bytes = TEX_W * 16;
    let mut v = Vec::new();
    for layer in 0..texels.div_ceil(per_layer) {
        let first = layer * per_layer;
        let n = (texels - first).min(per_layer);
        let (rows, rem) = (n / TEX_W as usize, n % TEX_W as usize);
        let z = layer as u32;
        if rows > 0 {
            v.push((
                (first * 16) as u64,
                row_bytes,
                wgpu::Origin3d { x: 0, y: 0, z },
                wgpu::Extent3d {
                    width: TEX_W,
                    height: rows as u32,
                    depth_or_array_layers: 1,
                },
            ));
        }
        if rem > 0 {
            v.push((
                ((first + rows * TEX_W as usize) * 16) as u64,
                row_bytes,
                wgpu::Origin3d {
                    x: 0,
                    y: rows as u32,
                    z,
                },
                wgpu::Extent3d {
                    width: rem as u32,
                    height: 1,
                    depth_or_array_layers: 1,
                },
            ));
        }
    }
    v
}

/// Packs dy (rows (n, cout, oh) of ow columns) as the texture-fed backward kernels read it.
fn pack_dy(
    gpu: &Gpu,
    s: &ConvShape,
    dy: &wgpu::Buffer,
) -> Result<(Step, wgpu::Texture, wgpu::TextureView)> {
    let (oh, ow) = s.out_hw();
    // dy as pack_act sees it: n * cout rows of oh x ow
    let p = ConvTexParams {
        n: s.n as u32,
        cin: s.cout as u32,
        h: oh as u32,
        w: ow as u32,
        w4: ow.div_ceil(4) as u32,
        ..Default::default()
    };
    pack_rows(
        gpu,
        "conv dy texture",
        &p,
        ow,
        act_texels(s.n, s.cout, oh, ow),
        dy,
    )
}

/// The whole backward pass of a conv: dw = correlation of dy with x (overwritten), and with `dx`
/// (buffer, accumulate) also dx (+)= conv_transpose(dy, w). Where both run from textures, dy is
/// packed once for the two. `x_rows` is the forward pass's input texture ([`fwd_keep_input`]),
/// which backward-weight reads where it takes x by rows.
#[allow(clippy::too_many_arguments)]
pub fn bwd(
    gpu: &Gpu,
    v: ConvVariant,
    s: &ConvShape,
    dy: &wgpu::Buffer,
    x: &wgpu::Buffer,
    x_rows: Option<&wgpu::TextureView>,
    w: &wgpu::Buffer,
    dw: &wgpu::Buffer,
    dx: Option<(&wgpu::Buffer, bool)>,
    dy_rows: Option<&wgpu::TextureView>,
) -> Result<Op> {
    bwd_with(gpu, v, s, dy, x, x_rows, w, None, dw, dx, dy_rows)
}

/// The packed weights of `op`, the forward op that [`fwd_keep_input`] or [`fwd_rows`] built for
/// `v` and `s`, where it runs the texture-fed kernels (conv_tex keeps them as its last texture),
/// for [`bwd_with`].
pub fn tex_fwd_weights<'a>(
    gpu: &Gpu,
    v: ConvVariant,
    s: &ConvShape,
    op: &'a Op,
) -> Option<&'a wgpu::Texture> {
    match v.effective(gpu, s, false) {
        ConvVariant::Tex { .. } => op.textures.last(),
        _ => None,
    }
}

/// [`bwd`], where the stride-1 backward-data may read the forward pass's packed weights
/// (`fwd_weights`, [`tex_fwd_weights`]) instead of packing a flipped copy: one dispatch fewer.
#[allow(clippy::too_many_arguments)]
pub fn bwd_with(
    gpu: &Gpu,
    v: ConvVariant,
    s: &ConvShape,
    dy: &wgpu::Buffer,
    x: &wgpu::Buffer,
    x_rows: Option<&wgpu::TextureView>,
    w: &wgpu::Buffer,
    fwd_weights: Option<&wgpu::Texture>,
    dw: &wgpu::Buffer,
    dx: Option<(&wgpu::Buffer, bool)>,
    dy_rows: Option<&wgpu::TextureView>,
) -> Result<Op> {
    if dy_rows.is_some() && !rows_io_ok(gpu, v, s) {
        return Err(Error::Shape {
            op: "conv bwd",
            msg: format!("{s:?}: dy in a row texture needs a shape of conv::rows_io_ok"),
        });
    }
    let tex = matches!(v, ConvVariant::Tex { .. }) && tex_dw_covers(gpu, s);
    let shared =
        tex && dx.is_some() && matches!(v.effective(gpu, s, true), ConvVariant::Tex { .. });
    let Some((dxb, acc)) = dx.filter(|_| shared) else {
        if let Some(dyv) = dy_rows {
            // rows_io_ok: backward-weight runs from textures (and there is no dx)
            return bwd_weight_tex(gpu, s, dy, Some(dyv), x, x_rows, dw, false);
        }
        let mut op = bwd_weight_from(gpu, v, s, dy, x, x_rows, dw, false)?;
        if let Some((dxb, acc)) = dx {
            let d = bwd_data(gpu, v, s, dy, w, dxb, acc)?;
            op.append(d);
        }
        return Ok(op);
    };
    check(
        gpu,
        s,
        &[
            ("dy", dy, s.y_len()),
            ("x", x, s.x_len()),
            ("dw", dw, s.w_len()),
        ],
    )?;
    check(
        gpu,
        s,
        &[
            ("dy", dy, s.y_len()),
            ("w", w, s.w_len()),
            ("dx", dxb, s.x_len()),
        ],
    )?;
    let co = match v {
        ConvVariant::Tex { co } => co,
        _ => 8,
    };
    let mut op = Op {
        steps: vec![],
        textures: vec![],
    };
    let own;
    let dyv = match dy_rows {
        Some(v) => v,
        None => {
            let (pack, dyt, dyv) = pack_dy(gpu, s, dy)?;
            op.steps.push(pack);
            op.textures.push(dyt);
            own = dyv;
            &own
        }
    };
    op.append(bwd_weight_tex(gpu, s, dy, Some(dyv), x, x_rows, dw, false)?);
    op.append(bwd_data_tex(
        gpu,
        co,
        s,
        dy,
        Some(dyv),
        w,
        fwd_weights,
        dxb,
        acc,
    )?);
    Ok(op)
}

/// Backward-weight from textures (any stride): dy packed by rows, x packed by 4-channel groups,
/// `conv_dw_tex` over slices of the output positions, and reduce_outer_sum over the slices.
#[allow(clippy::too_many_arguments)]
fn bwd_weight_tex(
    gpu: &Gpu,
    s: &ConvShape,
    dy: &wgpu::Buffer,
    packed_dy: Option<&wgpu::TextureView>,
    x: &wgpu::Buffer,
    x_rows: Option<&wgpu::TextureView>,
    dw: &wgpu::Buffer,
    accumulate: bool,
) -> Result<Op> {
    let (oh, ow) = s.out_hw();
    let ow4 = ow.div_ceil(4);
    let c4 = s.cin.div_ceil(4);
    let rows = dw_rows(s);
    // conv_dw_rows_tex: one 8-lane workgroup per 8 (ci, kh) rows; conv_dw_tex: 64 lanes of
    // (4-channel group, kh, kw)
    let gx = match rows {
        true => ((s.cin * s.k) as u32).div_ceil(8),
        false => ((c4 * s.k * s.k) as u32).div_ceil(64),
    };
    let gy = (s.cout as u32).div_ceil(8);
    let items = (s.n * oh * ow4) as u32;
    // enough workgroups to fill the device (dw_groups), and at most 32768 items per invocation
    // (llvmpipe ends an invocation after 65,535 loop iterations)
    let slices = if accumulate {
        1
    } else {
        dw_groups(gpu)
            .div_ceil(gx * gy)
            .max(items.div_ceil(32768))
            .clamp(1, items)
    };
    let p = ConvTexParams {
        n: s.n as u32,
        cin: s.cin as u32,
        h: s.h as u32,
        w: s.w as u32,
        cout: s.cout as u32,
        oh: oh as u32,
        ow: ow as u32,
        w4: s.w.div_ceil(4) as u32,
        ow4: ow4 as u32,
        pad: s.pad as u32,
        accumulate: accumulate as u32,
        stride: s.stride as u32,
        slices,
        c4: c4 as u32,
        ..Default::default()
    };
    let mut steps: Vec<Step> = Vec::new();
    let mut textures = Vec::new();
    let own;
    let dyv = match packed_dy {
        Some(v) => v,
        None => {
            let (d, t, v) = pack_dy(gpu, s, dy)?;
            steps.push(d);
            textures.push(t);
            own = v;
            &own
        }
    };
    let (pack_x, xt, xv) = if let (true, Some(v)) = (rows, x_rows) {
        // the forward pass's input texture (same row layout)
        (None, None, v.clone())
    } else if rows {
        let texels = act_texels(s.n, s.cin, s.h, s.w);
        let (d, t, v) = pack_rows(gpu, "conv x row texture", &p, s.w, texels, x)?;
        (Some(d), Some(t), v)
    } else if s.w.is_multiple_of(4) {
        // copy x's rows into a texture, then transpose 4 x 4 blocks into channel groups
        let (copy, rt, rv) = act_texture_copy(gpu, "conv x row texture", x, s.x_len() / 4);
        steps.push(copy);
        textures.push(rt);
        let texels = s.n * s.h * s.w * c4;
        let (t, v) = act_texture(gpu, "conv x channel texture", texels);
        let spec = KernelSpec::new(
            ShaderId::ConvTex,
            "pack_c4_from_rows",
            &[Binding::Uniform, Binding::TexWrite, Binding::TexRead],
        );
        let d = Dispatch::with_resources(
            gpu,
            &spec,
            &p,
            &[Res::View(&v), Res::View(&rv)],
            grid_for(gpu, texels / 4, 64),
        )?;
        (Some(Step::from(d)), Some(t), v)
    } else {
        let texels = s.n * s.h * s.w * c4;
        let label = "conv x channel texture";
        let groups = grid_for(gpu, texels, 64);
        let (d, t, v) = pack_kernel(gpu, "pack_act_c4", label, &p, texels, x, groups)?;
        (Some(d), Some(t), v)
    };
    let spec = KernelSpec::new(
        ShaderId::ConvTex,
        if rows {
            "conv_dw_rows_tex"
        } else {
            "conv_dw_tex"
        },
        &[
            Binding::Uniform,
            Binding::ReadWrite,
            Binding::TexRead,
            Binding::TexRead,
        ],
    )
    .with("K", s.k as f64)
    .with("CV", s.cout.min(8) as f64);
    let spec = match rows {
        true => spec.with("PAD", s.pad as f64),
        false => spec,
    };
    steps.extend(pack_x);
    textures.extend(xt);
    if slices == 1 {
        steps.push(
            Dispatch::with_resources(
                gpu,
                &spec,
                &p,
                &[Res::from(dw), Res::View(dyv), Res::View(&xv)],
                [gx, gy, 1],
            )?
            .into(),
        );
        return Ok(Op { steps, textures });
    }
    let (partial, r) = partials(gpu, s, slices as usize, dw)?;
    steps.push(
        Dispatch::with_resources(
            gpu,
            &spec,
            &p,
            &[Res::from(&partial.buf), Res::View(dyv), Res::View(&xv)],
            [gx, gy, slices],
        )?
        .into(),
    );
    steps.push(r.into());
    Ok(Op { steps, textures })
}

/// Backward-data of `s` from textures (dy packed here unless `packed`): at stride 1 the forward
/// kernel on dy with flipped, transposed weights and padding k - 1 - pad; at stride 2
/// conv_bwd_data2_tex with the layer's padding (8 channels per invocation).
#[allow(clippy::too_many_arguments)]
fn bwd_data_tex(
    gpu: &Gpu,
    co: u32,
    s: &ConvShape,
    dy: &wgpu::Buffer,
    packed: Option<&wgpu::TextureView>,
    w: &wgpu::Buffer,
    fwd_weights: Option<&wgpu::Texture>,
    dx: &wgpu::Buffer,
    accumulate: bool,
) -> Result<Op> {
    let (oh, ow) = s.out_hw();
    let t = TexConv {
        n: s.n,
        cin: s.cout,
        h: oh,
        w: ow,
        cout: s.cin,
        oh: s.h,
        ow: s.w,
        k: s.k,
        pad: if s.stride == 1 {
            s.k - 1 - s.pad
        } else {
            s.pad
        },
        stride: s.stride,
        flip: true,
    };
    let co = if s.stride == 1 { co } else { 8 };
    let src = match packed {
        Some(v) => TexSrc::Rows(v),
        None => TexSrc::Buf(dy),
    };
    conv_tex(gpu, co, &t, src, w, fwd_weights, ConvY::Buf(dx), accumulate)
}

/// The forward conv that `conv_tex` runs: input (n, cin, h, w), output (n, cout, oh, ow), stride 1
/// or 2.
struct TexConv {
    n: usize,
    cin: usize,
    h: usize,
    w: usize,
    cout: usize,
    oh: usize,
    ow: usize,
    k: usize,
    pad: usize,
    stride: usize,
    /// Weights are the layer's [cin][cout][k][k] read flipped (backward-data); with stride 2 the
    /// op runs `conv_bwd_data2_tex` (dy as the input, dx as the output, the layer's pad).
    flip: bool,
}

impl TexConv {
    /// The forward conv of `s`.
    fn fwd(s: &ConvShape) -> TexConv {
        let (oh, ow) = s.out_hw();
        TexConv {
            n: s.n,
            cin: s.cin,
            h: s.h,
            w: s.w,
            cout: s.cout,
            oh,
            ow,
            k: s.k,
            pad: s.pad,
            stride: s.stride,
            flip: false,
        }
    }
}

fn storage_texture(gpu: &Gpu, label: &str, w: usize, h: usize, layers: usize) -> wgpu::Texture {
    gpu.device.create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
        size: wgpu::Extent3d {
            width: w as u32,
            height: h as u32,
            depth_or_array_layers: layers as u32,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba32Float,
        // COPY_SRC: tests read the textures back
        usage: wgpu::TextureUsages::STORAGE_BINDING
            | wgpu::TextureUsages::COPY_DST
            | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    })
}

/// A texture of `texels` texels in the layout shaders/conv_tex.wgsl addresses (TEX_W wide,
/// TEX_ROWS rows per layer), and its array view.
pub(crate) fn act_texture(
    gpu: &Gpu,
    label: &str,
    texels: usize,
) -> (wgpu::Texture, wgpu::TextureView) {
    let rows = texels.div_ceil(TEX_W as usize);
    let t = storage_texture(
        gpu,
        label,
        TEX_W as usize,
        rows.min(TEX_ROWS as usize),
        rows.div_ceil(TEX_ROWS as usize),
    );
    let v = array_view(&t);
    (t, v)
}

/// Where conv_tex takes its input: a buffer it packs (or copies) into a row texture, or a row
/// texture that already holds it.
#[derive(Copy, Clone)]
enum TexSrc<'a> {
    Buf(&'a wgpu::Buffer),
    Rows(&'a wgpu::TextureView),
}

/// pack_act (x into a texture, unless `x` is one already), pack_wt (weights into a texture) and
/// conv_tex, as one op that owns the textures it made. The caller has checked the shape with
/// [`tex_covers`].
#[allow(clippy::too_many_arguments)]
fn conv_tex(
    gpu: &Gpu,
    co: u32,
    t: &TexConv,
    x: TexSrc<'_>,
    w: &wgpu::Buffer,
    fwd_weights: Option<&wgpu::Texture>,
    y: ConvY<'_>,
    accumulate: bool,
) -> Result<Op> {
    if co != 8 && co != 16 {
        return Err(Error::BadArg {
            flag: "conv variant".into(),
            msg: format!("tex{co}: the texture conv holds 8 or 16 channels per invocation"),
        });
    }
    let texels = act_texels(t.n, t.cin, t.h, t.w);
    let kt = t.k.div_ceil(4);
    let wrow = t.cin * t.k * kt;
    let wrows = t.cout.div_ceil(co as usize) * co as usize;
    // a stride-1 backward-data may read the forward pass's packed weights (FLIPW): rows are the
    // forward's output channels (our input channels), t.cout * K * kt texels wide
    let fwd_weights = fwd_weights.filter(|_| t.flip && t.stride == 1);
    if let Some(ft) = fwd_weights {
        if (ft.width() as usize) < t.cout * t.k * kt || (ft.height() as usize) < t.cin {
            return Err(Error::Shape {
                op: "conv_tex",
                msg: format!(
                    "the forward's weight texture is {} x {}, backward-data needs {} x {}",
                    ft.width(),
                    ft.height(),
                    t.cout * t.k * kt,
                    t.cin
                ),
            });
        }
    }
    let wt = match fwd_weights {
        Some(ft) => ft.clone(),
        None => storage_texture(gpu, "conv weight texture", wrow, wrows, 1),
    };
    let wv = array_view(&wt);
    let p = ConvTexParams {
        n: t.n as u32,
        cin: t.cin as u32,
        h: t.h as u32,
        w: t.w as u32,
        cout: t.cout as u32,
        oh: t.oh as u32,
        ow: t.ow as u32,
        w4: t.w.div_ceil(4) as u32,
        ow4: t.ow.div_ceil(4) as u32,
        pad: t.pad as u32,
        accumulate: accumulate as u32,
        flip: t.flip as u32,
        wrow: wrow as u32,
        ..Default::default()
    };
    let mut steps: Vec<Step> = Vec::new();
    let mut textures = Vec::new();
    let own;
    let xv = match x {
        TexSrc::Rows(v) => v,
        TexSrc::Buf(x) => {
            let (d, xt, v) = pack_rows(gpu, "conv input texture", &p, t.w, texels, x)?;
            steps.push(d);
            textures.push(xt);
            own = v;
            &own
        }
    };
    const PACK: &[Binding] = &[Binding::Uniform, Binding::TexWrite, Binding::Read];
    let pack_wt = KernelSpec::new(ShaderId::ConvTex, "pack_wt", PACK).with("K", t.k as f64);
    let rows_out = matches!(y, ConvY::Rows(_));
    if rows_out && (t.flip || accumulate || !t.ow.is_multiple_of(4)) {
        return Err(Error::Shape {
            op: "conv_tex",
            msg: "y into a texture: only a forward conv, not accumulating, with whole texels per \
                  output row"
                .into(),
        });
    }
    let conv_entry = if t.flip && t.stride == 2 {
        "conv_bwd_data2_tex"
    } else if rows_out {
        "conv_tex4_rows"
    } else if t.ow.is_multiple_of(4) {
        "conv_tex4"
    } else if t.ow.is_multiple_of(2) {
        "conv_tex2"
    } else {
        "conv_tex"
    };
    let conv = KernelSpec::new(
        ShaderId::ConvTex,
        conv_entry,
        if rows_out {
            &[
                Binding::Uniform,
                Binding::TexWrite,
                Binding::TexRead,
                Binding::TexRead,
            ]
        } else {
            &[
                Binding::Uniform,
                Binding::ReadWrite,
                Binding::TexRead,
                Binding::TexRead,
            ]
        },
    )
    .with("K", t.k as f64)
    .with("PAD", t.pad as f64)
    .with("S", t.stride as f64)
    .with("CO", f64::from(co))
    .with("CV", t.cout.min(co as usize) as f64)
    .with("FLIPW", f64::from(u8::from(fwd_weights.is_some())));
    let items = (t.n * t.oh * t.ow.div_ceil(4)) as u32;
    if fwd_weights.is_none() {
        steps.push(
            Dispatch::with_resources(
                gpu,
                &pack_wt,
                &p,
                &[Res::View(&wv), Res::from(w)],
                [(wrow as u32).div_ceil(8), (wrows as u32).div_ceil(8), 1],
            )?
            .into(),
        );
    }
    steps.push(
        Dispatch::with_resources(
            gpu,
            &conv,
            &p,
            &[
                match y {
                    ConvY::Buf(y) => Res::from(y),
                    ConvY::Rows(v) => Res::View(v),
                },
                Res::View(xv),
                Res::View(&wv),
            ],
            [items.div_ceil(64), (t.cout as u32).div_ceil(co), 1],
        )?
        .into(),
    );
    textures.push(wt);
    Ok(Op { steps, textures })
}

/// The partial-sum buffer of a backward-weight split into `slices`, and the reduce_outer_sum that
/// adds the slices into `dw`.
fn partials(
    gpu: &Gpu,
    s: &ConvShape,
    slices: usize,
    dw: &wgpu::Buffer,
) -> Result<(Tensor, Dispatch)> {
    let partial = Tensor::empty(
        gpu,
        "conv dw partial sums",
        &[slices * s.w_len()],
        DType::F32,
    )?;
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
    Ok((partial, r))
}

/// The workgroups a texture backward-weight kernel aims for: slicing its sum over the output
/// positions adds partial sums and a reduce_outer_sum, so it slices only to fill the device. A
/// CPU-backed device runs a workgroup per thread at a time, and its threads (llvmpipe's default)
/// are the host's: 4 workgroups per thread balance them; otherwise 64.
fn dw_groups(gpu: &Gpu) -> u32 {
    match gpu.info.device_type {
        wgpu::DeviceType::Cpu => {
            let threads = std::thread::available_parallelism().map_or(4, |n| n.get());
            (4 * threads as u32).clamp(4, 64)
        }
        _ => 64,
    }
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
    let (partial, r) = partials(gpu, s, slices, dw)?;
    let d = Dispatch::new(gpu, spec, &p, &[&partial.buf, dy, x], groups)?;
    Ok(Op {
        steps: vec![d.into(), r.into()],
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
    bwd_weight_from(gpu, v, s, dy, x, None, dw, accumulate)
}

/// [`bwd_weight`], reading x from the forward pass's texture `x_rows` where the texture kernel
/// takes x by rows.
#[allow(clippy::too_many_arguments)]
fn bwd_weight_from(
    gpu: &Gpu,
    v: ConvVariant,
    s: &ConvShape,
    dy: &wgpu::Buffer,
    x: &wgpu::Buffer,
    x_rows: Option<&wgpu::TextureView>,
    dw: &wgpu::Buffer,
    accumulate: bool,
) -> Result<Op> {
    check(
        gpu,
        s,
        &[
            ("dy", dy, s.y_len()),
            ("x", x, s.x_len()),
            ("dw", dw, s.w_len()),
        ],
    )?;
    if matches!(v, ConvVariant::Tex { .. }) && tex_dw_covers(gpu, s) {
        return bwd_weight_tex(gpu, s, dy, None, x, x_rows, dw, accumulate);
    }
    let v = match v {
        ConvVariant::Tex { .. } => ConvVariant::Subgroup,
        v => v,
    };
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
        let (partial, r) = partials(gpu, s, slices as usize, dw)?;
        let d = Dispatch::new(gpu, &spec, &p, &[&partial.buf, dy, x], [gx, gy, slices])?;
        return Ok(Op {
            steps: vec![d.into(), r.into()],
            textures: vec![],
        });
    }
    let spec = KernelSpec::new(ShaderId::Conv, "conv2d_bwd_weight", B).with("WG", f64::from(WG));
    Ok(Dispatch::new(gpu, &spec, &p, &[dw, dy, x], grid_for(gpu, s.w_len(), WG))?.into())
}
