//! GEMM (shaders/gemm.wgsl): C = alpha * op(A) * op(B) + beta * C, batched, for any M, N, K,
//! with the transposes a CNN needs (A·B, Aᵀ·B, A·Bᵀ) expressed as strides.
//!
//! Three variants sit side by side behind [`GemmVariant`]:
//! - `Tex` (shaders/gemm_tex.wgsl): register tiles fed from packed rgba32float storage textures
//!   and subgroup broadcasts, no barriers: the right shape for CPU-backed devices (lavapipe), where
//!   storage-buffer loads are scalar loops and texture fetches are vector gathers;
//! - `Reg`: portable register tiles read straight from storage buffers, no barriers;
//! - `Tiled`: workgroup-memory tiles: the right shape for real GPUs.
//!
//! [`GemmVariant::default_for`] picks by device; benchmarks and the autotuner can pass any
//! variant explicitly, and each is checked against the CPU twin before it is timed.

use crate::error::{Error, Result};
use crate::gpu::device::Gpu;
use crate::gpu::kernels::{Binding, KernelSpec, Res, ShaderId};
use crate::ops::{Dispatch, Op};

crate::gpu_params!(
    ShaderId::Gemm,
    /// Mirrors `GemmParams`. Offsets and strides are in elements.
    pub struct GemmParams {
        pub m: u32,
        pub n: u32,
        pub k: u32,
        pub batch: u32,
        pub a_off: u32,
        pub a_rs: u32,
        pub a_cs: u32,
        pub a_bs: u32,
        pub b_off: u32,
        pub b_rs: u32,
        pub b_cs: u32,
        pub b_bs: u32,
        pub c_off: u32,
        pub c_rs: u32,
        pub c_bs: u32,
        pub _pad0: u32,
        pub alpha: f32,
        pub beta: f32,
        pub _pad1: u32,
        pub _pad2: u32,
    }
);

crate::gpu_params!(
    ShaderId::GemmTex,
    /// Mirrors `PackParams`: a strided source matrix packed into an rgba32float texture.
    pub struct PackParams {
        pub rows: u32,
        pub cols: u32,
        pub off: u32,
        pub rs: u32,
        pub cs: u32,
        pub bs: u32,
        pub _pad0: u32,
        pub _pad1: u32,
    }
);

/// A GEMM kernel variant and its tunables (override constants).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum GemmVariant {
    /// Texture-fed register tiles (8 x 4 per invocation, subgroups of 8).
    Tex,
    /// Register tiles from storage buffers: `wg` invocations along N, each 8 rows x 2 columns.
    Reg { wg: u32, tm: u32, tn: u32 },
    /// Workgroup-memory tiles: `wx` x `wy` invocations, each 4x4 outputs; `bk` deep.
    Tiled { wx: u32, wy: u32, bk: u32 },
}

impl GemmVariant {
    /// True when `Tex` can run on this device: subgroups of exactly 8 invocations.
    pub fn tex_supported(gpu: &Gpu) -> bool {
        gpu.features.contains(wgpu::Features::SUBGROUP)
            && gpu.info.subgroup_min_size == 8
            && gpu.info.subgroup_max_size == 8
    }

    /// The default for a device: `Tex` on CPU-backed adapters that support it, `Tiled` elsewhere.
    pub fn default_for(gpu: &Gpu) -> GemmVariant {
        if gpu.info.device_type == wgpu::DeviceType::Cpu {
            if Self::tex_supported(gpu) {
                GemmVariant::Tex
            } else {
                GemmVariant::Reg {
                    wg: 64,
                    tm: 8,
                    tn: 2,
                }
            }
        } else {
            GemmVariant::Tiled {
                wx: 16,
                wy: 16,
                bk: 16,
            }
        }
    }

    /// Every variant this device can run, for benchmarks and the autotuner.
    pub fn candidates(gpu: &Gpu) -> Vec<GemmVariant> {
        let mut v = Vec::new();
        if Self::tex_supported(gpu) {
            v.push(GemmVariant::Tex);
        }
        v.extend([
            GemmVariant::Reg {
                wg: 64,
                tm: 8,
                tn: 2,
            },
            GemmVariant::Reg {
                wg: 32,
                tm: 8,
                tn: 2,
            },
            GemmVariant::Tiled {
                wx: 16,
                wy: 16,
                bk: 16,
            },
            GemmVariant::Tiled {
                wx: 8,
                wy: 8,
                bk: 32,
            },
        ]);
        v
    }

    /// A short name, e.g. `reg64x8x2`.
    pub fn name(&self) -> String {
        match *self {
            GemmVariant::Tex => "tex8x4".to_string(),
            GemmVariant::Reg { wg, tm, tn } => format!("reg{wg}x{tm}x{tn}"),
            GemmVariant::Tiled { wx, wy, bk } => format!("tiled{wx}x{wy}x{bk}"),
        }
    }

    fn validate(&self) -> Result<()> {
        let ok = match *self {
            GemmVariant::Tex => true,
            GemmVariant::Reg { wg, tm, tn } => (1..=256).contains(&wg) && (tm, tn) == (8, 2),
            GemmVariant::Tiled { wx, wy, bk } => {
                wx * wy <= 256
                    && wx > 0
                    && wy > 0
                    && bk > 0
                    && 4 * wy * bk <= 2048
                    && 4 * wx * bk <= 2048
            }
        };
        if ok {
            Ok(())
        } else {
            Err(Error::BadArg {
                flag: "gemm variant".into(),
                msg: format!("{self:?} is outside the shader's tile limits"),
            })
        }
    }

    fn spec(&self) -> KernelSpec {
        const B: &[Binding] = &[
            Binding::Uniform,
            Binding::ReadWrite,
            Binding::Read,
            Binding::Read,
        ];
        match *self {
            GemmVariant::Tex => KernelSpec::new(
                ShaderId::GemmTex,
                "gemm_tex",
                &[
                    Binding::Uniform,
                    Binding::ReadWrite,
                    Binding::TexRead,
                    Binding::TexRead,
                ],
            ),
            GemmVariant::Reg { wg, .. } => {
                KernelSpec::new(ShaderId::Gemm, "gemm_reg8x2", B).with("WG", f64::from(wg))
            }
            GemmVariant::Tiled { wx, wy, bk } => KernelSpec::new(ShaderId::Gemm, "gemm_tiled", B)
                .with("WX", f64::from(wx))
                .with("WY", f64::from(wy))
                .with("BK", f64::from(bk)),
        }
    }

    fn groups(&self, m: u32, n: u32, batch: u32) -> [u32; 3] {
        match *self {
            GemmVariant::Tex => [n.div_ceil(4).div_ceil(8), m.div_ceil(64), batch],
            GemmVariant::Reg { wg, tm, tn } => [n.div_ceil(wg * tn), m.div_ceil(tm), batch],
            GemmVariant::Tiled { wx, wy, .. } => [n.div_ceil(4 * wx), m.div_ceil(4 * wy), batch],
        }
    }
}

/// The shape of one GEMM. A is stored [M, K] (or [K, M] when `trans_a`), B is stored [K, N] (or
/// [N, K] when `trans_b`), C is [M, N]; batches follow each other densely.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct GemmDesc {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub batch: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    pub alpha: f32,
    pub beta: f32,
}

impl GemmDesc {
    /// C = A·B with no batch, alpha 1 and beta 0.
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        GemmDesc {
            m,
            n,
            k,
            batch: 1,
            trans_a: false,
            trans_b: false,
            alpha: 1.0,
            beta: 0.0,
        }
    }

    /// The params struct with the strides that encode the transposes.
    pub fn params(&self) -> GemmParams {
        let (m, n, k) = (self.m as u32, self.n as u32, self.k as u32);
        let (a_rs, a_cs) = if self.trans_a { (1, m) } else { (k, 1) };
        let (b_rs, b_cs) = if self.trans_b { (1, k) } else { (n, 1) };
        GemmParams {
            m,
            n,
            k,
            batch: self.batch as u32,
            a_rs,
            a_cs,
            a_bs: m * k,
            b_rs,
            b_cs,
            b_bs: k * n,
            c_rs: n,
            c_bs: m * n,
            alpha: self.alpha,
            beta: self.beta,
            ..Default::default()
        }
    }

    /// FLOPs of one call (2 per multiply-add).
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64 * self.batch as f64
    }
}

/// Prepares `c = alpha * op(a) * op(b) + beta * c` with `variant`.
pub fn gemm(
    gpu: &Gpu,
    variant: GemmVariant,
    desc: &GemmDesc,
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    c: &wgpu::Buffer,
) -> Result<Op> {
    variant.validate()?;
    let GemmDesc { m, n, k, batch, .. } = *desc;
    if m == 0 || n == 0 || k == 0 || batch == 0 {
        return Err(Error::Shape {
            op: "gemm",
            msg: format!("empty GEMM {m}x{n}x{k} batch {batch}"),
        });
    }
    for (name, buf, need) in [
        ("A", a, m * k * batch),
        ("B", b, k * n * batch),
        ("C", c, m * n * batch),
    ] {
        if buf.size() < (need * 4) as u64 {
            return Err(Error::Shape {
                op: "gemm",
                msg: format!(
                    "{name} holds {} floats, {m}x{n}x{k} batch {batch} needs {need}",
                    buf.size() / 4
                ),
            });
        }
    }
    if batch as u32 > gpu.limits.max_compute_workgroups_per_dimension {
        return Err(Error::Shape {
            op: "gemm",
            msg: format!("batch {batch} exceeds the device's workgroup grid"),
        });
    }
    let groups = variant.groups(m as u32, n as u32, batch as u32);
    if variant == GemmVariant::Tex {
        return gemm_tex(gpu, desc, a, b, c, groups);
    }
    Ok(Dispatch::new(gpu, &variant.spec(), &desc.params(), &[c, a, b], groups)?.into())
}

fn pack_texture(
    gpu: &Gpu,
    label: &str,
    texels_wide: usize,
    rows: usize,
    layers: usize,
) -> Result<wgpu::Texture> {
    let l = &gpu.limits;
    if texels_wide as u64 > u64::from(l.max_texture_dimension_2d)
        || rows as u64 > u64::from(l.max_texture_dimension_2d)
        || layers as u64 > u64::from(l.max_texture_array_layers)
    {
        return Err(Error::TooLarge {
            what: format!(
                "gemm {label} texture of {texels_wide} x {rows} texels x {layers} layers"
            ),
            bytes: (texels_wide * rows * layers * 16) as u64,
            limit: u64::from(l.max_texture_dimension_2d),
            kind: "texture dimension (use another --variant)",
        });
    }
    Ok(gpu.device.create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
        size: wgpu::Extent3d {
            width: texels_wide as u32,
            height: rows as u32,
            depth_or_array_layers: layers as u32,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba32Float,
        usage: wgpu::TextureUsages::STORAGE_BINDING | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    }))
}

/// The 2-D array view the texture-fed kernels bind.
pub(crate) fn array_view(t: &wgpu::Texture) -> wgpu::TextureView {
    t.create_view(&wgpu::TextureViewDescriptor {
        dimension: Some(wgpu::TextureViewDimension::D2Array),
        ..Default::default()
    })
}

/// Packs the strided matrix described by `pp` into a new [`pack_texture`] of `texels_wide` x `rows`
/// texels and `layers` layers (tests use this to check `pack_rgba` on its own).
pub fn pack(
    gpu: &Gpu,
    pp: &PackParams,
    src: &wgpu::Buffer,
    texels_wide: usize,
    rows: usize,
    layers: usize,
) -> Result<(Op, wgpu::Texture)> {
    let t = pack_texture(gpu, "pack texture", texels_wide, rows, layers)?;
    let v = array_view(&t);
    let spec = KernelSpec::new(
        ShaderId::GemmTex,
        "pack_rgba",
        &[Binding::Uniform, Binding::TexWrite, Binding::Read],
    );
    let groups = [
        (texels_wide as u32).div_ceil(8),
        (rows as u32).div_ceil(8),
        layers as u32,
    ];
    let d = Dispatch::with_resources(gpu, &spec, pp, &[Res::View(&v), Res::from(src)], groups)?;
    Ok((d.into(), t))
}

/// The `Tex` variant: pack op(A) and op(B) into zero-padded textures, then run `gemm_tex`.
fn gemm_tex(
    gpu: &Gpu,
    desc: &GemmDesc,
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    c: &wgpu::Buffer,
    groups: [u32; 3],
) -> Result<Op> {
    let p = desc.params();
    let (m, n, k, batch) = (desc.m, desc.n, desc.k, desc.batch);
    let k4 = k.div_ceil(4);
    let mp = m.div_ceil(64) * 64;
    let n4p = n.div_ceil(4).div_ceil(8) * 8;
    let ta = pack_texture(gpu, "gemm A texture", k4, mp, batch)?;
    let tb = pack_texture(gpu, "gemm B texture", n4p, 4 * k4, batch)?;
    let (va, vb) = (array_view(&ta), array_view(&tb));
    let pack = KernelSpec::new(
        ShaderId::GemmTex,
        "pack_rgba",
        &[Binding::Uniform, Binding::TexWrite, Binding::Read],
    );
    let pa = PackParams {
        rows: p.m,
        cols: p.k,
        off: p.a_off,
        rs: p.a_rs,
        cs: p.a_cs,
        bs: p.a_bs,
        ..Default::default()
    };
    let pb = PackParams {
        rows: p.k,
        cols: p.n,
        off: p.b_off,
        rs: p.b_rs,
        cs: p.b_cs,
        bs: p.b_bs,
        ..Default::default()
    };
    let b32 = batch as u32;
    let grid = |w: usize, h: usize| [(w as u32).div_ceil(8), (h as u32).div_ceil(8), b32];
    let steps = vec![
        Dispatch::with_resources(
            gpu,
            &pack,
            &pa,
            &[Res::View(&va), Res::from(a)],
            grid(k4, mp),
        )?,
        Dispatch::with_resources(
            gpu,
            &pack,
            &pb,
            &[Res::View(&vb), Res::from(b)],
            grid(n4p, 4 * k4),
        )?,
        Dispatch::with_resources(
            gpu,
            &GemmVariant::Tex.spec(),
            &p,
            &[Res::from(c), Res::View(&va), Res::View(&vb)],
            groups,
        )?,
    ];
    Ok(Op {
        steps: steps.into_iter().map(crate::ops::Step::from).collect(),
        textures: vec![ta, tb],
    })
}
