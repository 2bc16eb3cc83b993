//! Batch norm 2-D (shaders/norm.wgsl): batch statistics with running-stat updates, eval
//! statistics, apply (optionally fused with ReLU), and the two backward kernels. On CPU-backed
//! adapters, where H*W is a multiple of 4, [`forward_tex`] and [`backward_tex`] run the same
//! computations from textures (the `_tex` entry points of shaders/norm.wgsl) filled by copies: x is copied once and
//! serves the forward and the backward pass. There, a following max pooling is fused into the
//! apply pass, and the pooled output ([`BnOut::MaxPool2Rows`]) or dx ([`backward_tex_rows`]) can
//! go straight into the row texture of the conv that reads it, so that conv packs nothing.

use crate::error::{Error, Result};
use crate::gpu::device::Gpu;
use crate::gpu::kernels::Res;
use crate::gpu::kernels::{grid_1d, Binding, KernelSpec, ShaderId};
use crate::ops::{grid_for, Dispatch, Op};

crate::gpu_params!(
    ShaderId::Norm,
    /// Mirrors `BnParams`.
    pub struct BnParams {
        pub n: u32,
        pub c: u32,
        pub hw: u32,
        pub relu: u32,
        pub eps: f32,
        pub momentum: f32,
        /// bn_pool_tex: the input's width.
        pub w: u32,
        pub _pad1: u32,
    }
);

/// A batch-norm layer applied to an N x C x HW tensor.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct BnShape {
    pub n: usize,
    pub c: usize,
    pub hw: usize,
    pub relu: bool,
}

impl BnShape {
    pub fn len(&self) -> usize {
        self.n * self.c * self.hw
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn params(&self) -> BnParams {
        BnParams {
            n: self.n as u32,
            c: self.c as u32,
            hw: self.hw as u32,
            relu: self.relu as u32,
            eps: 1e-5,
            momentum: 0.1,
            ..Default::default()
        }
    }
    fn check(&self) -> Result<()> {
        if self.is_empty() {
            return Err(Error::Shape {
                op: "batch_norm",
                msg: format!("empty shape {self:?}"),
            });
        }
        Ok(())
    }
}

const WG: u32 = 64;

/// The reduction workgroup of the texture-fed kernels (`WGR`): on CPU-backed devices a
/// workgroup's fixed tree over 256 lanes costs more than it saves.
const TEX_WGR: f64 = 64.0;

/// Batch statistics: `stats` (2C) <- (mean, invstd) of `x` when `train`, and `running` (2C:
/// means then variances) updated; otherwise `stats` <- the running statistics (`x` is bound but
/// not read).
pub fn stats(
    gpu: &Gpu,
    s: &BnShape,
    train: bool,
    x: &wgpu::Buffer,
    stats: &wgpu::Buffer,
    running: &wgpu::Buffer,
) -> Result<Dispatch> {
    s.check()?;
    let b = &[
        Binding::Uniform,
        Binding::ReadWrite,
        Binding::Read,
        Binding::ReadWrite,
    ];
    let (spec, groups) = if train {
        let g = grid_1d(s.c as u32, gpu.limits.max_compute_workgroups_per_dimension);
        (KernelSpec::new(ShaderId::Norm, "bn_stats", b), g)
    } else {
        (
            KernelSpec::new(ShaderId::Norm, "bn_eval_stats", b),
            [(s.c as u32).div_ceil(64), 1, 1],
        )
    };
    Dispatch::new(gpu, &spec, &s.params(), &[stats, x, running], groups)
}

/// y = bn(x) (with ReLU when `s.relu`).
pub fn apply(
    gpu: &Gpu,
    s: &BnShape,
    x: &wgpu::Buffer,
    stats: &wgpu::Buffer,
    gamma: &wgpu::Buffer,
    beta: &wgpu::Buffer,
    y: &wgpu::Buffer,
) -> Result<Dispatch> {
    s.check()?;
    let spec = KernelSpec::new(
        ShaderId::Norm,
        "bn_apply",
        &[
            Binding::Uniform,
            Binding::ReadWrite,
            Binding::Read,
            Binding::Read,
            Binding::Read,
            Binding::Read,
        ],
    )
    .with("WG", f64::from(WG));
    Dispatch::new(
        gpu,
        &spec,
        &s.params(),
        &[y, x, stats, gamma, beta],
        grid_for(gpu, s.n * s.c, WG),
    )
}

/// The buffers of one batch-norm backward pass.
pub struct BnBwd<'a> {
    pub x: &'a wgpu::Buffer,
    /// The forward's beta: with `gamma` and `stats` it gives back the ReLU mask from x.
    pub beta: &'a wgpu::Buffer,
    pub dy: &'a wgpu::Buffer,
    pub stats: &'a wgpu::Buffer,
    pub gamma: &'a wgpu::Buffer,
    pub dgamma: &'a wgpu::Buffer,
    pub dbeta: &'a wgpu::Buffer,
    pub dx: &'a wgpu::Buffer,
}

/// dgamma, dbeta (overwritten), then dx.
pub fn backward(gpu: &Gpu, s: &BnShape, b: &BnBwd<'_>) -> Result<[Dispatch; 2]> {
    s.check()?;
    let red = KernelSpec::new(
        ShaderId::Norm,
        "bn_bwd_reduce",
        &[
            Binding::Uniform,
            Binding::ReadWrite,
            Binding::ReadWrite,
            Binding::Read,
            Binding::Read,
            Binding::Read,
            Binding::Read,
            Binding::Read,
        ],
    );
    let groups = grid_1d(s.c as u32, gpu.limits.max_compute_workgroups_per_dimension);
    let d1 = Dispatch::new(
        gpu,
        &red,
        &s.params(),
        &[b.dgamma, b.dbeta, b.x, b.dy, b.stats, b.gamma, b.beta],
        groups,
    )?;
    let dx = KernelSpec::new(
        ShaderId::Norm,
        "bn_bwd_dx",
        &[
            Binding::Uniform,
            Binding::ReadWrite,
            Binding::Read,
            Binding::Read,
            Binding::Read,
            Binding::Read,
            Binding::Read,
            Binding::Read,
            Binding::Read,
        ],
    )
    .with("WG", f64::from(WG));
    let d2 = Dispatch::new(
        gpu,
        &dx,
        &s.params(),
        &[b.dx, b.x, b.dy, b.stats, b.gamma, b.beta, b.dgamma, b.dbeta],
        grid_for(gpu, s.n * s.c, WG),
    )?;
    Ok([d1, d2])
}

/// True when the texture-fed kernels run `s` on this device: a CPU-backed adapter (where texture
/// fetches beat storage loads) and H*W a multiple of 4.
pub fn tex_ok(gpu: &Gpu, s: &BnShape) -> bool {
    gpu.info.device_type == wgpu::DeviceType::Cpu
        && s.hw.is_multiple_of(4)
        && !s.is_empty()
        && crate::ops::conv::act_texture_fits(gpu, s.len() / 4)
}

/// What the texture-fed kernels rely on (a short buffer would be read clamped, a wrong result):
/// one workgroup per channel fits a grid row, and the per-channel buffers hold C (gamma, beta,
/// dgamma, dbeta) or 2C (stats, running) floats.
fn check_channels(
    gpu: &Gpu,
    s: &BnShape,
    per_channel: &[(&str, &wgpu::Buffer, usize)],
) -> Result<()> {
    if s.c > gpu.limits.max_compute_workgroups_per_dimension as usize {
        return Err(Error::Shape {
            op: "batch_norm",
            msg: format!(
                "{} channels: the texture-fed kernels run one workgroup per channel, at most {}",
                s.c, gpu.limits.max_compute_workgroups_per_dimension
            ),
        });
    }
    for (what, b, per) in per_channel {
        check_len(what, b, per * s.c)?;
    }
    Ok(())
}

/// The per-channel buffers and the x texture of a texture-fed backward pass.
fn check_bwd_inputs(
    gpu: &Gpu,
    s: &BnShape,
    b: &BnBwd<'_>,
    x_view: &wgpu::TextureView,
) -> Result<()> {
    check_channels(
        gpu,
        s,
        &[
            ("stats", b.stats, 2),
            ("gamma", b.gamma, 1),
            ("beta", b.beta, 1),
            ("dgamma", b.dgamma, 1),
            ("dbeta", b.dbeta, 1),
        ],
    )?;
    check_view("x", x_view, s.len() / 4)
}

/// An error unless `view` holds `texels` texels (`conv::view_holds`).
fn check_view(what: &str, view: &wgpu::TextureView, texels: usize) -> Result<()> {
    if !crate::ops::conv::view_holds(view, texels) {
        return Err(Error::Shape {
            op: "batch_norm",
            msg: format!("the {what} texture does not hold {texels} texels"),
        });
    }
    Ok(())
}

fn check_len(what: &str, b: &wgpu::Buffer, floats: usize) -> Result<()> {
    if b.size() < (floats * 4) as u64 {
        return Err(Error::Shape {
            op: "batch_norm",
            msg: format!("{what} holds {} floats, needs {floats}", b.size() / 4),
        });
    }
    Ok(())
}

/// Where [`forward_tex`] writes.
#[derive(Copy, Clone)]
pub enum BnOut<'a> {
    /// y = bn(x) (N x C x HW), by bn_apply_tex.
    Y(&'a wgpu::Buffer),
    /// The 2x2, stride-2 (floor) max pooling of y over rows of `w` floats, by bn_pool_tex: the
    /// pooled values and (unless `arg` is `None`: an inference pass, or a backward pass by
    /// [`backward_tex_pooled`], which recomputes it) their argmax, as `pool::max_fwd` would write
    /// them from y; y itself is never stored. See [`pool_ok`].
    MaxPool2 {
        w: usize,
        y: &'a wgpu::Buffer,
        arg: Option<&'a wgpu::Buffer>,
    },
    /// As `MaxPool2`, with the pooled values written into a row texture of the pooled shape
    /// (`conv::planes_texture`) for the texture-fed conv that reads them, by bn_pool_rows_tex.
    MaxPool2Rows {
        w: usize,
        y: &'a wgpu::TextureView,
        arg: Option<&'a wgpu::Buffer>,
    },
}

/// Whether bn_pool_tex runs `s` with rows of `w`: the texture path, and an even `w` that divides
/// H*W into at least two rows.
pub fn pool_ok(gpu: &Gpu, s: &BnShape, w: usize) -> bool {
    tex_ok(gpu, s) && w > 0 && w.is_multiple_of(2) && s.hw.is_multiple_of(w) && s.hw / w >= 2
}

/// The forward pass from a texture: copy x, statistics (batch or running), then apply (or apply
/// and pool, see [`BnOut`]). Returns the op and the view of x's texture, which [`backward_tex`]
/// reads.
#[allow(clippy::too_many_arguments)]
pub fn forward_tex(
    gpu: &Gpu,
    s: &BnShape,
    train: bool,
    x: &wgpu::Buffer,
    st: &wgpu::Buffer,
    running: &wgpu::Buffer,
    gamma: &wgpu::Buffer,
    beta: &wgpu::Buffer,
    out: BnOut<'_>,
) -> Result<(Op, wgpu::TextureView)> {
    forward_tex_with(gpu, s, train, x, None, st, running, gamma, beta, out)
}

/// [`forward_tex`], taking x from `x_tex` where given: a texture of x's texels in order (the
/// layout of the copy, `conv::planes_texture` of rows of a multiple of 4 columns) that the
/// producer of x wrote (`conv::ConvY::Rows`), so nothing copies it. `x` is then not read.
#[allow(clippy::too_many_arguments)]
pub fn forward_tex_with(
    gpu: &Gpu,
    s: &BnShape,
    train: bool,
    x: &wgpu::Buffer,
    x_tex: Option<&wgpu::TextureView>,
    st: &wgpu::Buffer,
    running: &wgpu::Buffer,
    gamma: &wgpu::Buffer,
    beta: &wgpu::Buffer,
    out: BnOut<'_>,
) -> Result<(Op, wgpu::TextureView)> {
    s.check()?;
    match x_tex {
        Some(v) => check_view("x", v, s.len() / 4)?,
        None => check_len("x", x, s.len())?,
    }
    check_channels(
        gpu,
        s,
        &[
            ("stats", st, 2),
            ("running", running, 2),
            ("gamma", gamma, 1),
            ("beta", beta, 1),
        ],
    )?;
    let (copy, tex, view) = match x_tex {
        Some(v) => (None, None, v.clone()),
        None => {
            let (c, t, v) = crate::ops::conv::act_texture_copy(gpu, "bn x texture", x, s.len() / 4);
            (Some(c), Some(t), v)
        }
    };
    let stats_d = if train {
        let spec = KernelSpec::new(
            ShaderId::Norm,
            "bn_stats_tex",
            &[
                Binding::Uniform,
                Binding::ReadWrite,
                Binding::TexRead,
                Binding::ReadWrite,
            ],
        )
        .with("WGR", TEX_WGR);
        let g = grid_1d(s.c as u32, gpu.limits.max_compute_workgroups_per_dimension);
        Dispatch::with_resources(
            gpu,
            &spec,
            &s.params(),
            &[Res::from(st), Res::View(&view), Res::from(running)],
            g,
        )?
    } else {
        stats(gpu, s, false, x, st, running)?
    };
    let pool = |w, arg| PoolApply {
        w,
        arg,
        st,
        gamma,
        beta,
        x: &view,
    };
    let apply_d = match out {
        BnOut::Y(y) => {
            check_len("y", y, s.len())?;
            let spec = KernelSpec::new(
                ShaderId::Norm,
                "bn_apply_tex",
                &[
                    Binding::Uniform,
                    Binding::ReadWrite,
                    Binding::TexRead,
                    Binding::Read,
                    Binding::Read,
                    Binding::Read,
                ],
            );
            Dispatch::with_resources(
                gpu,
                &spec,
                &s.params(),
                &[
                    Res::from(y),
                    Res::View(&view),
                    Res::from(st),
                    Res::from(gamma),
                    Res::from(beta),
                ],
                grid_for(gpu, s.n * s.c, 64),
            )?
        }
        BnOut::MaxPool2 { w, y, arg } => {
            check_len("pooled y", y, pooled_len(gpu, s, w)?)?;
            pool(w, arg).dispatch(gpu, s, "bn_pool_tex", Res::from(y))?
        }
        BnOut::MaxPool2Rows { w, y, arg } => {
            // N * C * (H / 2) rows of ceil((w / 2) / 4) texels
            let rows = pooled_len(gpu, s, w)? / (w / 2);
            check_view("pooled rows", y, rows * (w / 2).div_ceil(4))?;
            pool(w, arg).dispatch(gpu, s, "bn_pool_rows_tex", Res::View(y))?
        }
    };
    Ok((
        Op {
            steps: copy
                .into_iter()
                .chain([stats_d.into(), apply_d.into()])
                .collect(),
            textures: tex.into_iter().collect(),
        },
        view,
    ))
}

/// The number of pooled values of `s` over rows of `w`, where [`pool_ok`] holds.
fn pooled_len(gpu: &Gpu, s: &BnShape, w: usize) -> Result<usize> {
    if !pool_ok(gpu, s, w) {
        return Err(Error::Shape {
            op: "bn_pool_tex",
            msg: format!("{s:?} with rows of {w}: needs an even width that divides H*W, H >= 2"),
        });
    }
    Ok(s.n * s.c * (s.hw / w / 2) * (w / 2))
}

/// The resources of bn_pool_tex / bn_pool_rows_tex other than the pooled output.
struct PoolApply<'a> {
    w: usize,
    arg: Option<&'a wgpu::Buffer>,
    st: &'a wgpu::Buffer,
    gamma: &'a wgpu::Buffer,
    beta: &'a wgpu::Buffer,
    x: &'a wgpu::TextureView,
}

impl PoolApply<'_> {
    /// The pooling apply kernel `entry` writing its pooled values to `y` (a buffer for
    /// bn_pool_tex, a row texture for bn_pool_rows_tex).
    fn dispatch(
        &self,
        gpu: &Gpu,
        s: &BnShape,
        entry: &'static str,
        y: Res<'_>,
    ) -> Result<Dispatch> {
        let w = self.w;
        let pooled = pooled_len(gpu, s, w)?;
        // without an argmax (ARG = false) the binding gets a placeholder the kernel never touches
        let placeholder;
        let arg = match self.arg {
            Some(arg) if arg.size() < (pooled * 4) as u64 => {
                return Err(Error::Shape {
                    op: "bn_pool_tex",
                    msg: format!("argmax holds {} values, needs {pooled}", arg.size() / 4),
                });
            }
            Some(arg) => arg,
            None => {
                placeholder = gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("bn_pool_tex no argmax"),
                    size: 16,
                    usage: wgpu::BufferUsages::STORAGE,
                    mapped_at_creation: false,
                });
                &placeholder
            }
        };
        use Binding::{Read, ReadWrite, TexRead, TexWrite, Uniform};
        let bindings: &'static [Binding] = match y {
            Res::View(_) => &[Uniform, TexWrite, ReadWrite, TexRead, Read, Read, Read],
            Res::Buf(_) => &[Uniform, ReadWrite, ReadWrite, TexRead, Read, Read, Read],
        };
        let spec = KernelSpec::new(ShaderId::Norm, entry, bindings)
            .with("ARG", f64::from(u8::from(self.arg.is_some())));
        let params = BnParams {
            w: w as u32,
            ..s.params()
        };
        Dispatch::with_resources(
            gpu,
            &spec,
            &params,
            &[
                y,
                Res::from(arg),
                Res::View(self.x),
                Res::from(self.st),
                Res::from(self.gamma),
                Res::from(self.beta),
            ],
            grid_for(gpu, s.n * s.c * (s.hw / w / 2), 64),
        )
    }
}

/// Whether [`backward_tex_pooled`] runs `s` pooled over rows of `w`: [`pool_bwd_rows_ok`] and `w`
/// a multiple of 4.
pub fn pool_bwd_ok(gpu: &Gpu, s: &BnShape, w: usize) -> bool {
    pool_bwd_rows_ok(gpu, s, w) && w.is_multiple_of(4)
}

/// Whether [`backward_tex_pooled_rows`] runs `s` pooled over rows of `w`: [`pool_ok`] (so an even
/// `w`) and an even number of rows (every element is in a window).
pub fn pool_bwd_rows_ok(gpu: &Gpu, s: &BnShape, w: usize) -> bool {
    pool_ok(gpu, s, w) && (s.hw / w).is_multiple_of(2)
}

/// The backward pass of the batch norm (and ReLU) and the 2x2 max pooling that [`forward_tex`]
/// fused ([`BnOut::MaxPool2`] or [`BnOut::MaxPool2Rows`] with rows of `w`), from the pooled dy
/// (`b.dy`, N x C x H/2 x w/2, which a copy puts in a texture: the kernels fetch texels instead of
/// loading from a buffer): dgamma, dbeta and dx (N x C x HW) by bn_pool_bwd_reduce_tex and
/// bn_pool_bwd_dx_tex, which recompute the argmax from x (`x_view`, the forward's texture), so
/// neither the pooling's backward pass nor a full-size dy is needed. See [`pool_bwd_ok`].
pub fn backward_tex_pooled(
    gpu: &Gpu,
    s: &BnShape,
    b: &BnBwd<'_>,
    x_view: &wgpu::TextureView,
    w: usize,
) -> Result<Op> {
    backward_tex_pooled_with(gpu, s, b, x_view, w, PooledIo::default())
}

/// [`backward_tex_pooled`] writing dx (`b.dx` is not written) into the row texture of the conv
/// whose dy it is (`conv::planes_texture` of the N x C x (HW / w) x w shape), so the conv copies
/// nothing: by bn_pool_bwd_dx_rows_tex, or for a `w` that is not a multiple of 4 by
/// bn_pool_bwd_reduce2_tex and bn_pool_bwd_dx_rows2_tex. See [`pool_bwd_rows_ok`].
pub fn backward_tex_pooled_rows(
    gpu: &Gpu,
    s: &BnShape,
    b: &BnBwd<'_>,
    x_view: &wgpu::TextureView,
    w: usize,
    dx_rows: &wgpu::TextureView,
) -> Result<Op> {
    let io = PooledIo {
        dx_rows: Some(dx_rows),
        dy: None,
    };
    backward_tex_pooled_with(gpu, s, b, x_view, w, io)
}

/// Where [`backward_tex_pooled_with`] takes the pooled dy and puts dx.
#[derive(Copy, Clone, Default)]
pub struct PooledIo<'a> {
    /// dx into this row texture (as [`backward_tex_pooled_rows`]) instead of `b.dx`.
    pub dx_rows: Option<&'a wgpu::TextureView>,
    /// The pooled dy, already in a texture of its values in order (texel t = values 4t .. 4t+3,
    /// as a linear layer's backward stores its dx rows): `b.dy` is not read and nothing copies.
    pub dy: Option<&'a wgpu::TextureView>,
}

/// [`backward_tex_pooled`] or [`backward_tex_pooled_rows`] (with `io.dx_rows`), taking the pooled
/// dy from `io.dy` where given.
pub fn backward_tex_pooled_with(
    gpu: &Gpu,
    s: &BnShape,
    b: &BnBwd<'_>,
    x_view: &wgpu::TextureView,
    w: usize,
    io: PooledIo<'_>,
) -> Result<Op> {
    let dx_rows = io.dx_rows;
    s.check()?;
    let ok = match dx_rows {
        Some(_) => pool_bwd_rows_ok(gpu, s, w),
        None => pool_bwd_ok(gpu, s, w),
    };
    if !ok {
        return Err(Error::Shape {
            op: "bn_pool_bwd_tex",
            msg: format!(
                "{s:?} with rows of {w}: needs the texture path, an even width (a multiple of 4 \
                 for dx into a buffer) and an even number of rows"
            ),
        });
    }
    // the pooled dy is copied into a texture of whole texels (tensor buffers are padded to them)
    let pooled_texels = (s.len() / 4).div_ceil(4);
    match io.dy {
        Some(v) => check_view("pooled dy", v, pooled_texels)?,
        None => check_len("pooled dy", b.dy, 4 * pooled_texels)?,
    }
    let w4 = w.is_multiple_of(4);
    match dx_rows {
        Some(v) => check_view("dx rows", v, s.n * s.c * (s.hw / w) * w.div_ceil(4))?,
        None => check_len("dx", b.dx, s.len())?,
    }
    check_bwd_inputs(gpu, s, b, x_view)?;
    use Binding::{Read, ReadWrite, TexRead, TexWrite, Uniform};
    let params = BnParams {
        w: w as u32,
        ..s.params()
    };
    let (copy, pdy_tex, pdy) = match io.dy {
        Some(v) => (None, None, v.clone()),
        None => {
            let (c, t, v) = crate::ops::conv::act_texture_copy(
                gpu,
                "bn pooled dy texture",
                b.dy,
                pooled_texels,
            );
            (Some(c), Some(t), v)
        }
    };
    // the reduce kernel hands dx's per-channel coefficients over in 2 texels per channel
    let (coef_tex, coef) = crate::ops::conv::act_texture(gpu, "bn dx coefficients", 2 * s.c);
    let red = KernelSpec::new(
        ShaderId::Norm,
        if w4 {
            "bn_pool_bwd_reduce_tex"
        } else {
            "bn_pool_bwd_reduce2_tex"
        },
        &[
            Uniform, ReadWrite, ReadWrite, TexRead, TexRead, Read, Read, Read, TexWrite,
        ],
    )
    .with("WGR", TEX_WGR);
    let d1 = Dispatch::with_resources(
        gpu,
        &red,
        &params,
        &[
            Res::from(b.dgamma),
            Res::from(b.dbeta),
            Res::View(x_view),
            Res::View(&pdy),
            Res::from(b.stats),
            Res::from(b.gamma),
            Res::from(b.beta),
            Res::View(&coef),
        ],
        grid_1d(s.c as u32, gpu.limits.max_compute_workgroups_per_dimension),
    )?;
    let (dx, out) = match dx_rows {
        None => (
            KernelSpec::new(
                ShaderId::Norm,
                "bn_pool_bwd_dx_tex",
                &[Uniform, ReadWrite, TexRead, TexRead, TexRead],
            ),
            Res::from(b.dx),
        ),
        Some(v) => (
            KernelSpec::new(
                ShaderId::Norm,
                if w4 {
                    "bn_pool_bwd_dx_rows_tex"
                } else {
                    "bn_pool_bwd_dx_rows2_tex"
                },
                &[Uniform, TexWrite, TexRead, TexRead, TexRead],
            ),
            Res::View(v),
        ),
    };
    let d2 = Dispatch::with_resources(
        gpu,
        &dx,
        &params,
        &[out, Res::View(x_view), Res::View(&pdy), Res::View(&coef)],
        grid_for(gpu, s.n * s.c * (s.hw / w / 2), 64),
    )?;
    Ok(Op {
        steps: copy.into_iter().chain([d1.into(), d2.into()]).collect(),
        textures: pdy_tex.into_iter().chain([coef_tex]).collect(),
    })
}

/// The backward pass from textures: copy dy, then dgamma/dbeta and dx, reading x from the
/// forward's texture (`x_view`).
pub fn backward_tex(
    gpu: &Gpu,
    s: &BnShape,
    b: &BnBwd<'_>,
    x_view: &wgpu::TextureView,
) -> Result<Op> {
    check_len("dx", b.dx, s.len())?;
    backward_tex_to(gpu, s, b, x_view, None)
}

/// Whether [`backward_tex_rows`] runs `s` with rows of `w`: the texture path and an even `w` that
/// divides H*W.
pub fn dx_rows_ok(gpu: &Gpu, s: &BnShape, w: usize) -> bool {
    tex_ok(gpu, s) && w > 0 && w.is_multiple_of(2) && s.hw.is_multiple_of(w)
}

/// [`backward_tex`] writing dx (`b.dx` is not written) into a row texture of rows of `w`
/// columns (`conv::planes_texture` of the N x C x (HW / w) x w shape), in the layout the
/// texture-fed conv whose dy it is reads, by bn_bwd_dx_rows_tex. See [`dx_rows_ok`].
pub fn backward_tex_rows(
    gpu: &Gpu,
    s: &BnShape,
    b: &BnBwd<'_>,
    x_view: &wgpu::TextureView,
    w: usize,
    dx_rows: &wgpu::TextureView,
) -> Result<Op> {
    if !dx_rows_ok(gpu, s, w) {
        return Err(Error::Shape {
            op: "bn_bwd_dx_rows_tex",
            msg: format!("{s:?} with rows of {w}: needs an even width that divides H*W"),
        });
    }
    backward_tex_to(gpu, s, b, x_view, Some((w, dx_rows)))
}

fn backward_tex_to(
    gpu: &Gpu,
    s: &BnShape,
    b: &BnBwd<'_>,
    x_view: &wgpu::TextureView,
    dx_rows: Option<(usize, &wgpu::TextureView)>,
) -> Result<Op> {
    s.check()?;
    check_len("dy", b.dy, s.len())?;
    check_bwd_inputs(gpu, s, b, x_view)?;
    if let Some((w, v)) = dx_rows {
        // N * C * (HW / w) rows of ceil(w / 4) texels
        check_view("dx rows", v, s.n * s.c * (s.hw / w) * w.div_ceil(4))?;
    }
    let (copy, tex, dyv) =
        crate::ops::conv::act_texture_copy(gpu, "bn dy texture", b.dy, s.len() / 4);
    let red = KernelSpec::new(
        ShaderId::Norm,
        "bn_bwd_reduce_tex",
        &[
            Binding::Uniform,
            Binding::ReadWrite,
            Binding::ReadWrite,
            Binding::TexRead,
            Binding::TexRead,
            Binding::Read,
            Binding::Read,
            Binding::Read,
        ],
    )
    .with("WGR", TEX_WGR);
    let g = grid_1d(s.c as u32, gpu.limits.max_compute_workgroups_per_dimension);
    let d1 = Dispatch::with_resources(
        gpu,
        &red,
        &s.params(),
        &[
            Res::from(b.dgamma),
            Res::from(b.dbeta),
            Res::View(x_view),
            Res::View(&dyv),
            Res::from(b.stats),
            Res::from(b.gamma),
            Res::from(b.beta),
        ],
        g,
    )?;
    use Binding::{Read, ReadWrite, TexRead, TexWrite, Uniform};
    let (dx, out, params) = match dx_rows {
        None => (
            KernelSpec::new(
                ShaderId::Norm,
                "bn_bwd_dx_tex",
                &[
                    Uniform, ReadWrite, TexRead, TexRead, Read, Read, Read, Read, Read,
                ],
            ),
            Res::from(b.dx),
            s.params(),
        ),
        Some((w, v)) => (
            KernelSpec::new(
                ShaderId::Norm,
                "bn_bwd_dx_rows_tex",
                &[
                    Uniform, TexWrite, TexRead, TexRead, Read, Read, Read, Read, Read,
                ],
            ),
            Res::View(v),
            BnParams {
                w: w as u32,
                ..s.params()
            },
        ),
    };
    let d2 = Dispatch::with_resources(
        gpu,
        &dx,
        &params,
        &[
            out,
            Res::View(x_view),
            Res::View(&dyv),
            Res::from(b.stats),
            Res::from(b.gamma),
            Res::from(b.beta),
            Res::from(b.dgamma),
            Res::from(b.dbeta),
        ],
        grid_for(gpu, s.n * s.c, 64),
    )?;
    Ok(Op {
        steps: vec![copy, d1.into(), d2.into()],
        textures: vec![tex],
    })
}
