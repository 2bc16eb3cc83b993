//! Optimizer kernels (shaders/optim.wgsl): SGD with momentum, weight decay and optional
//! Nesterov (one tensor per dispatch, reading from buffers or, on CPU-backed adapters, from
//! textures that copies fill ([`sgd_tex`]); or up to [`MULTI_SLOTS`] tensors in one), and Adam;
//! both multiply the update by a per-element mask.

use crate::error::{Error, Result};
use crate::gpu::device::Gpu;
use crate::gpu::kernels::Res;
use crate::gpu::kernels::{Binding, KernelSpec, ShaderId};
use crate::ops::{grid_for, Dispatch, Op};

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

crate::gpu_params!(
    ShaderId::Optim,
    /// Mirrors `SgdMultiParams`: `ends[k]` is the cumulative vec4 count of slots 0..=k, `decay[k]`
    /// slot k's weight decay.
    pub struct SgdMultiParams {
        pub nesterov: u32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub _pad2: u32,
        pub lr: f32,
        pub momentum: f32,
        pub _pad3: f32,
        pub _pad4: f32,
        pub ends: [u32; 8],
        pub decay: [f32; 8],
    }
);

/// Tensors one `sgd_multi` dispatch updates (`MULTI_SLOTS` in shaders/optim.wgsl).
pub const MULTI_SLOTS: usize = 6;

const WG: u32 = 256;

/// One tensor of a multi-tensor SGD step: its element count, weight decay and buffers.
pub struct SgdSlot<'a> {
    pub n: usize,
    pub weight_decay: f32,
    pub w: &'a wgpu::Buffer,
    pub mom: &'a wgpu::Buffer,
    pub grad: &'a wgpu::Buffer,
    pub mask: &'a wgpu::Buffer,
}

/// The params of an `sgd_multi` dispatch over `slots` (the learning rate, momentum and Nesterov
/// flag are shared; [`Dispatch::set_params`] rewrites them as the schedule moves).
pub fn sgd_multi_params(
    lr: f32,
    momentum: f32,
    nesterov: bool,
    slots: &[(usize, f32)],
) -> SgdMultiParams {
    let mut p = SgdMultiParams {
        nesterov: nesterov as u32,
        lr,
        momentum,
        ..Default::default()
    };
    let mut end = 0u32;
    for k in 0..MULTI_SLOTS {
        if let Some(&(n, wd)) = slots.get(k) {
            end += n.div_ceil(4) as u32;
            p.decay[k] = wd;
        }
        p.ends[k] = end;
    }
    p
}

/// One SGD step on up to [`MULTI_SLOTS`] tensors in a single dispatch, with the same arithmetic
/// (and so the same bits) as [`sgd`] on each.
pub fn sgd_multi(
    gpu: &Gpu,
    lr: f32,
    momentum: f32,
    nesterov: bool,
    slots: &[SgdSlot<'_>],
) -> Result<Dispatch> {
    if slots.is_empty() || slots.len() > MULTI_SLOTS {
        return Err(Error::Shape {
            op: "sgd_multi",
            msg: format!(
                "{} tensors; one dispatch takes 1 to {MULTI_SLOTS}",
                slots.len()
            ),
        });
    }
    for s in slots {
        check_sizes("sgd_multi", s.n, &[s.w, s.mom, s.grad, s.mask])?;
    }
    const SLOT: [Binding; 4] = [
        Binding::ReadWrite,
        Binding::ReadWrite,
        Binding::Read,
        Binding::Read,
    ];
    const BINDINGS: [Binding; 1 + 4 * MULTI_SLOTS] = {
        let mut b = [Binding::Uniform; 1 + 4 * MULTI_SLOTS];
        let mut i = 1;
        while i < b.len() {
            b[i] = SLOT[(i - 1) % 4];
            i += 1;
        }
        b
    };
    let spec = KernelSpec::new(ShaderId::Optim, "sgd_multi", &BINDINGS).with("WG", f64::from(WG));
    // unused slots: tiny buffers of their own (never read: their range of the grid is empty)
    let dummies: Vec<wgpu::Buffer> = (0..4 * (MULTI_SLOTS - slots.len()))
        .map(|_| {
            gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("sgd_multi unused slot"),
                size: 16,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        })
        .collect();
    let mut bufs: Vec<&wgpu::Buffer> = Vec::new();
    for s in slots {
        bufs.extend([s.w, s.mom, s.grad, s.mask]);
    }
    bufs.extend(dummies.iter());
    let shape: Vec<(usize, f32)> = slots.iter().map(|s| (s.n, s.weight_decay)).collect();
    let p = sgd_multi_params(lr, momentum, nesterov, &shape);
    let total = p.ends[MULTI_SLOTS - 1] as usize;
    Dispatch::new(gpu, &spec, &p, &bufs, grid_for(gpu, total.max(1), WG))
}

fn check_sizes(op: &'static str, n: usize, bufs: &[&wgpu::Buffer; 4]) -> Result<()> {
    let n4 = n.div_ceil(4);
    for (what, b) in ["w", "momentum", "grad", "mask"].iter().zip(bufs) {
        if b.size() < (n4 * 16) as u64 {
            return Err(Error::Shape {
                op,
                msg: format!(
                    "{what} holds {} bytes; {n} elements need {} (vec4-padded)",
                    b.size(),
                    n4 * 16
                ),
            });
        }
    }
    Ok(())
}

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
    check_sizes("sgd", p.n as usize, &[w, mom, grad, mask])?;
    let n4 = (p.n as usize).div_ceil(4);
    Dispatch::new(gpu, &spec, p, &[w, mom, grad, mask], grid_for(gpu, n4, WG))
}

/// Textures that already hold `w` or the gradient when [`sgd_tex`] runs (texel i = elements 4i ..
/// 4i + 3: a linear layer's forward texture of `w`, and the texture its backward stored the
/// gradient into), so that no copy fills them.
#[derive(Copy, Clone, Default)]
pub struct SgdTextures<'a> {
    pub w: Option<&'a wgpu::TextureView>,
    pub grad: Option<&'a wgpu::TextureView>,
}

/// One SGD step on `w` with momentum buffer `mom`, as [`sgd`] computes it (the same bits), reading
/// all four tensors from textures: those of `given`, and for the others textures that copies fill
/// first. On CPU-backed adapters a texel fetch is several times cheaper than a storage-buffer
/// load, and a buffer-to-texture copy runs at memcpy speed. The op owns the textures it made.
#[allow(clippy::too_many_arguments)]
pub fn sgd_tex(
    gpu: &Gpu,
    p: &SgdParams,
    w: &wgpu::Buffer,
    mom: &wgpu::Buffer,
    grad: &wgpu::Buffer,
    mask: &wgpu::Buffer,
    given: SgdTextures<'_>,
) -> Result<Op> {
    check_sizes("sgd", p.n as usize, &[w, mom, grad, mask])?;
    let n4 = (p.n as usize).div_ceil(4);
    if !crate::ops::conv::act_texture_fits(gpu, n4) {
        return Err(Error::Shape {
            op: "sgd",
            msg: format!("{} elements exceed the device's texture limits", p.n),
        });
    }
    for (what, v) in [("w", given.w), ("gradient", given.grad)] {
        if v.is_some_and(|v| !crate::ops::conv::view_holds(v, n4)) {
            return Err(Error::Shape {
                op: "sgd",
                msg: format!("the given {what} texture does not hold {n4} texels"),
            });
        }
    }
    let spec = KernelSpec::new(
        ShaderId::Optim,
        "sgd_tex",
        &[
            Binding::Uniform,
            Binding::ReadWrite,
            Binding::ReadWrite,
            Binding::TexRead,
            Binding::TexRead,
            Binding::TexRead,
            Binding::TexRead,
        ],
    )
    .with("WG", f64::from(WG));
    let mut steps = Vec::new();
    let mut textures = Vec::new();
    let mut views = Vec::new();
    for (label, b, have) in [
        ("sgd w texture", w, given.w),
        ("sgd momentum texture", mom, None),
        ("sgd grad texture", grad, given.grad),
        ("sgd mask texture", mask, None),
    ] {
        match have {
            Some(v) => views.push(v.clone()),
            None => {
                let (copy, t, v) = crate::ops::conv::act_texture_copy(gpu, label, b, n4);
                steps.push(copy);
                textures.push(t);
                views.push(v);
            }
        }
    }
    let d = Dispatch::with_resources(
        gpu,
        &spec,
        p,
        &[
            Res::from(w),
            Res::from(mom),
            Res::View(&views[0]),
            Res::View(&views[1]),
            Res::View(&views[2]),
            Res::View(&views[3]),
        ],
        grid_for(gpu, n4, WG),
    )?;
    steps.push(d.into());
    Ok(Op { steps, textures })
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
