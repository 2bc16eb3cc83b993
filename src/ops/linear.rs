//! Texture-fed linear layers (shaders/linear_tex.wgsl): the forward GEMM with its bias and ReLU,
//! backward-data with the previous layer's ReLU mask, and backward-weight with the bias gradient
//! (both in one dispatch where the layer's inputs are a multiple of 4, [`gemm_bwd`]), all reading
//! operands from row textures that copies fill (ops/conv.rs's layout), so a linear layer packs
//! nothing where its widths are multiples of 4 and shares the textures of x and W between its
//! forward and backward passes.
//!
//! The plan uses these where the GEMM variant is `Tex` (CPU-backed adapters with 8-wide
//! subgroups); elsewhere it runs [`crate::ops::gemm`] and separate elementwise passes.

use crate::error::{Error, Result};
use crate::gpu::device::Gpu;
use crate::gpu::kernels::{Binding, KernelSpec, Res, ShaderId};
use crate::ops::conv::{act_texture_fits, rows_texture};
use crate::ops::gemm::GemmVariant;
use crate::ops::{Dispatch, Step};

crate::gpu_params!(
    ShaderId::LinearTex,
    /// Mirrors `LinParams`.
    pub struct LinParams {
        pub m: u32,
        pub n: u32,
        pub k: u32,
        pub k4: u32,
        pub a_rows: u32,
        pub a_rs4: u32,
        pub b_rows: u32,
        pub b_rs4: u32,
    }
);

/// Below this many 64-invocation workgroups, `linear_tex` runs 8-invocation ones.
pub const LINEAR_MIN_GROUPS: usize = 8;

/// Which products `linear_tex` computes (A and B as stored).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Form {
    /// C[m][n] = Σ A[m][k] B[n][k] (forward: x Wᵀ).
    Nt,
    /// C[m][n] = Σ A[m][k] B[k][n] (backward-data: dz W).
    Nn,
    /// C[m][n] = Σ A[k][m] B[k][n] (backward-weight: dzᵀ x).
    Tn,
}

impl Form {
    fn id(self) -> f64 {
        match self {
            Form::Nt => 0.0,
            Form::Nn => 1.0,
            Form::Tn => 2.0,
        }
    }
}

/// What the GEMM does to each output before it stores it.
#[derive(Copy, Clone)]
pub enum Epilogue<'a> {
    None,
    /// Adds bias[col], then ReLU when `relu`.
    Bias {
        bias: &'a wgpu::Buffer,
        relu: bool,
    },
    /// Zeroes outputs whose element of `src` (same shape as C) is not positive.
    Mask(&'a wgpu::Buffer),
}

/// A [rows][cols] matrix in a row texture (rows padded to ceil(cols/4) texels).
#[derive(Clone)]
pub struct RowsTex {
    pub rows: usize,
    pub cols: usize,
    pub texture: wgpu::Texture,
    pub view: wgpu::TextureView,
}

impl RowsTex {
    fn rs4(&self) -> usize {
        self.cols.div_ceil(4)
    }
}

/// Whether the texture-fed linear kernels can run a layer of `batch` x `fin` -> `fout` here.
pub fn covers(gpu: &Gpu, batch: usize, fin: usize, fout: usize) -> bool {
    let max_groups = u64::from(gpu.limits.max_compute_workgroups_per_dimension);
    GemmVariant::tex_supported(gpu)
        && [
            batch * fin.div_ceil(4),
            fout * fin.div_ceil(4),
            batch * fout.div_ceil(4),
        ]
        .iter()
        .all(|&t| act_texture_fits(gpu, t))
        // linear_bwd_tex4 binds 3 textures it reads and 2 it may store into
        && gpu.limits.max_storage_textures_per_shader_stage >= 5
        && (batch.max(fout) as u64).div_ceil(64) <= max_groups
        && (fout.max(fin) as u64).div_ceil(32) <= max_groups
}

/// The matrix `src` ([rows][cols], row-major) in a new row texture, and the step that fills it.
pub fn rows_tex(
    gpu: &Gpu,
    label: &str,
    rows: usize,
    cols: usize,
    src: &wgpu::Buffer,
) -> Result<(Step, RowsTex)> {
    if src.size() < (rows * cols * 4) as u64 {
        return Err(Error::Shape {
            op: "linear",
            msg: format!(
                "{label}: a {rows} x {cols} matrix needs {} floats, the buffer holds {}",
                rows * cols,
                src.size() / 4
            ),
        });
    }
    check_rows_tex(gpu, label, rows, cols)?;
    let (step, texture, view) = rows_texture(gpu, label, rows, cols, src)?;
    Ok((
        step,
        RowsTex {
            rows,
            cols,
            texture,
            view,
        },
    ))
}

/// A row texture for a [rows][cols] matrix that a kernel writes itself (as
/// `loss::softmax_ce_metrics` writes dz's rows), so nothing fills it.
pub fn rows_tex_unfilled(gpu: &Gpu, label: &str, rows: usize, cols: usize) -> Result<RowsTex> {
    check_rows_tex(gpu, label, rows, cols)?;
    let (texture, view) = crate::ops::conv::act_texture(gpu, label, rows * cols.div_ceil(4));
    Ok(RowsTex {
        rows,
        cols,
        texture,
        view,
    })
}

fn check_rows_tex(gpu: &Gpu, label: &str, rows: usize, cols: usize) -> Result<()> {
    if rows == 0 || cols == 0 {
        return Err(Error::Shape {
            op: "linear",
            msg: format!("{label}: a {rows} x {cols} matrix is empty"),
        });
    }
    if !act_texture_fits(gpu, rows * cols.div_ceil(4)) {
        return Err(Error::Shape {
            op: "linear",
            msg: format!("{label}: a {rows} x {cols} matrix exceeds the device's texture limits"),
        });
    }
    Ok(())
}

/// A validated `linear_tex` product: its params and the resources its epilogue binds.
struct Checked<'a> {
    p: LinParams,
    cols: usize,
    aux: Option<&'a wgpu::Buffer>,
    bias: f64,
    relu: f64,
    mask: f64,
}

/// Checks that `form` of `a` and `b` chains, that `c` (and `colsum`, the epilogue's buffer) hold
/// what the product writes and reads, and that the grid fits the device.
fn check<'a>(
    gpu: &Gpu,
    form: Form,
    a: &RowsTex,
    b: &RowsTex,
    c: &wgpu::Buffer,
    epi: Epilogue<'a>,
    colsum: Option<&wgpu::Buffer>,
) -> Result<Checked<'a>> {
    let (m, n, k, ok) = match form {
        Form::Nt => (a.rows, b.rows, a.cols, a.cols == b.cols),
        Form::Nn => (a.rows, b.cols, a.cols, a.cols == b.rows),
        Form::Tn => (a.cols, b.cols, a.rows, a.rows == b.rows),
    };
    let shape = || {
        format!(
            "{form:?}: A {} x {}, B {} x {}",
            a.rows, a.cols, b.rows, b.cols
        )
    };
    if !ok {
        return Err(Error::Shape {
            op: "linear",
            msg: format!("{} do not chain", shape()),
        });
    }
    if !GemmVariant::tex_supported(gpu) {
        return Err(Error::Gpu {
            op: "linear_tex".into(),
            msg: "the texture-fed linear kernels need subgroups of exactly 8 invocations".into(),
        });
    }
    if colsum.is_some() && form != Form::Tn {
        return Err(Error::Shape {
            op: "linear",
            msg: format!("{}: only the Tn form sums columns", shape()),
        });
    }
    let mut need = vec![("C", c, m * n)];
    if let Some(cs) = colsum {
        need.push(("colsum", cs, m));
    }
    let (aux, bias, relu, mask) = match epi {
        Epilogue::None => (None, 0.0, 0.0, 0.0),
        Epilogue::Bias { bias, relu } => {
            need.push(("bias", bias, n));
            (Some(bias), 1.0, f64::from(u8::from(relu)), 0.0)
        }
        Epilogue::Mask(src) => {
            need.push(("mask source", src, m * n));
            (Some(src), 0.0, 0.0, 1.0)
        }
    };
    for (what, buf, floats) in need {
        if buf.size() < (floats * 4) as u64 {
            return Err(Error::Shape {
                op: "linear",
                msg: format!(
                    "{}: {what} holds {} floats, needs {floats}",
                    shape(),
                    buf.size() / 4
                ),
            });
        }
    }
    let cols = n.div_ceil(4).div_ceil(8);
    let max = gpu.limits.max_compute_workgroups_per_dimension as usize;
    if cols > max || m.div_ceil(8) > max {
        return Err(Error::Shape {
            op: "linear",
            msg: format!("{} exceeds the device's workgroup grid", shape()),
        });
    }
    Ok(Checked {
        p: LinParams {
            m: m as u32,
            n: n as u32,
            k: k as u32,
            k4: k.div_ceil(4) as u32,
            a_rows: a.rows as u32,
            a_rs4: a.rs4() as u32,
            b_rows: b.rows as u32,
            b_rs4: b.rs4() as u32,
        },
        cols,
        aux,
        bias,
        relu,
        mask,
    })
}

/// A 16-byte storage buffer bound where a kernel never touches the binding.
fn unused(gpu: &Gpu, label: &str) -> wgpu::Buffer {
    gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: 16,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    })
}

/// 64 invocations per workgroup, or 8 where `groups64` 64-invocation workgroups would be fewer
/// than LINEAR_MIN_GROUPS (llvmpipe splits a dispatch's workgroups evenly among its threads up
/// front).
fn workgroup(groups64: usize) -> usize {
    if groups64 < LINEAR_MIN_GROUPS {
        8
    } else {
        64
    }
}

/// Checks that `out` (the row texture a product of `m` x `n` also stores into) has that shape
/// with rows of whole vec4s, so that the product's vec4 i is its texel i.
fn check_rows_out(what: &str, out: &RowsTex, m: usize, n: usize) -> Result<()> {
    if out.rows != m || out.cols != n || !n.is_multiple_of(4) {
        return Err(Error::Shape {
            op: "linear",
            msg: format!(
                "{what}: a row texture of {} x {} for a {m} x {n} product (rows of a multiple \
                 of 4 floats)",
                out.rows, out.cols
            ),
        });
    }
    if !crate::ops::conv::view_holds(&out.view, m * n / 4) {
        return Err(Error::Shape {
            op: "linear",
            msg: format!("{what}: the texture does not hold {} texels", m * n / 4),
        });
    }
    Ok(())
}

/// A 1-texel row texture bound where a kernel's row-texture output is switched off.
fn unused_tex(gpu: &Gpu, label: &str) -> wgpu::TextureView {
    crate::ops::conv::act_texture(gpu, label, 1).1
}

/// One `linear_tex` dispatch: C ([m][n] in `c`) = the `form` product of `a` and `b`, then `epi`;
/// with `colsum` (form `Tn` only) also colsum[m] = Σ_k A[k][m] (the bias gradient). With
/// `c_rows` (m x n, n a multiple of 4) C also goes to that row texture, which the next linear
/// layer then reads as its x without a copy.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    gpu: &Gpu,
    form: Form,
    a: &RowsTex,
    b: &RowsTex,
    c: &wgpu::Buffer,
    epi: Epilogue<'_>,
    colsum: Option<&wgpu::Buffer>,
    c_rows: Option<&RowsTex>,
) -> Result<Dispatch> {
    let ck = check(gpu, form, a, b, c, epi, colsum)?;
    let (m, n) = (ck.p.m as usize, ck.p.n as usize);
    if let Some(r) = c_rows {
        check_rows_out("C rows", r, m, n)?;
    }
    let dummy_rows = unused_tex(gpu, "linear_tex unused rows");
    let (dummy, dummy_sum) = (
        unused(gpu, "linear_tex unused aux"),
        unused(gpu, "linear_tex unused colsum"),
    );
    let wg = workgroup(ck.cols * m.div_ceil(64));
    let groups = [ck.cols as u32, m.div_ceil(wg) as u32, 1];
    let spec = KernelSpec::new(
        ShaderId::LinearTex,
        if n.is_multiple_of(4) {
            "linear_tex4"
        } else {
            "linear_tex"
        },
        &[
            Binding::Uniform,
            Binding::ReadWrite,
            Binding::TexRead,
            Binding::TexRead,
            Binding::Read,
            Binding::ReadWrite,
            Binding::TexWrite,
        ],
    )
    .with("FORM", form.id())
    .with("BIAS", ck.bias)
    .with("RELU", ck.relu)
    .with("MASK", ck.mask)
    .with("SUM", f64::from(u8::from(colsum.is_some())))
    .with("ROWS", f64::from(u8::from(c_rows.is_some())))
    .with("WG", wg as f64);
    Dispatch::with_resources(
        gpu,
        &spec,
        &ck.p,
        &[
            Res::from(c),
            Res::View(&a.view),
            Res::View(&b.view),
            Res::from(ck.aux.unwrap_or(&dummy)),
            Res::from(colsum.unwrap_or(&dummy_sum)),
            Res::View(c_rows.map_or(&dummy_rows, |r| &r.view)),
        ],
        groups,
    )
}

crate::gpu_params!(
    ShaderId::LinearTex,
    /// Mirrors `BwdParams`.
    pub struct BwdParams {
        pub a: LinParams,
        pub b: LinParams,
        pub split: u32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub _pad2: u32,
    }
);

/// Whether [`gemm_bwd`] runs a layer of `fin` inputs: its outputs are rows of `fin` floats, stored
/// as vec4s.
pub fn bwd_fused_ok(fin: usize) -> bool {
    fin.is_multiple_of(4)
}

/// Row textures that [`gemm_bwd`] also stores its products into, so that no copy fills them:
/// `dw` ([fout][fin], the optimizer's gradient texture) and `dx` ([batch][fin], the dz rows of the
/// linear layer before, or the pooled dy of the batch norm before).
#[derive(Copy, Clone, Default)]
pub struct BwdRows<'a> {
    pub dw: Option<&'a RowsTex>,
    pub dx: Option<&'a RowsTex>,
}

/// A linear layer's backward pass in one dispatch (`linear_bwd_tex4`): dW (`dw`, [fout][fin]) =
/// dzᵀ x with the bias gradient in `db`, and dx (`dx`, [batch][fin]) = dz W, zeroed where `mask`
/// (the layer input, after the previous layer's ReLU) is not positive; each also into its texture
/// of `outs`. The same products, in the same order, as the two [`gemm`] dispatches of forms `Tn`
/// and `Nn`. See [`bwd_fused_ok`].
#[allow(clippy::too_many_arguments)]
pub fn gemm_bwd(
    gpu: &Gpu,
    dz: &RowsTex,
    x: &RowsTex,
    w: &RowsTex,
    dw: &wgpu::Buffer,
    db: &wgpu::Buffer,
    dx: &wgpu::Buffer,
    mask: Option<&wgpu::Buffer>,
    outs: BwdRows<'_>,
) -> Result<Dispatch> {
    let ta = check(gpu, Form::Tn, dz, x, dw, Epilogue::None, Some(db))?;
    let epi = mask.map_or(Epilogue::None, Epilogue::Mask);
    let nb = check(gpu, Form::Nn, dz, w, dx, epi, None)?;
    if !bwd_fused_ok(ta.p.n as usize) || ta.p.n != nb.p.n {
        return Err(Error::Shape {
            op: "linear",
            msg: format!(
                "fused backward: dW and dx rows of {} and {} floats, needs equal multiples of 4",
                ta.p.n, nb.p.n
            ),
        });
    }
    let (ma, mb) = (ta.p.m as usize, nb.p.m as usize);
    let cols = ta.cols;
    let wg = workgroup(cols * (ma.div_ceil(64) + mb.div_ceil(64)));
    let split = ma.div_ceil(wg);
    let rows = split + mb.div_ceil(wg);
    if rows > gpu.limits.max_compute_workgroups_per_dimension as usize {
        return Err(Error::Shape {
            op: "linear",
            msg: format!("fused backward of {ma} + {mb} rows exceeds the device's workgroup grid"),
        });
    }
    if let Some(r) = outs.dw {
        check_rows_out("dW rows", r, ta.p.m as usize, ta.p.n as usize)?;
    }
    if let Some(r) = outs.dx {
        check_rows_out("dx rows", r, nb.p.m as usize, nb.p.n as usize)?;
    }
    let dummy = unused(gpu, "linear_bwd_tex4 unused mask");
    let (dummy_dw, dummy_dx) = (
        unused_tex(gpu, "linear_bwd_tex4 unused dW rows"),
        unused_tex(gpu, "linear_bwd_tex4 unused dx rows"),
    );
    let spec = KernelSpec::new(
        ShaderId::LinearTex,
        "linear_bwd_tex4",
        &[
            Binding::Uniform,
            Binding::ReadWrite,
            Binding::TexRead,
            Binding::TexRead,
            Binding::Read,
            Binding::ReadWrite,
            Binding::ReadWrite,
            Binding::TexRead,
            Binding::TexWrite,
            Binding::TexWrite,
        ],
    )
    .with("MASK", nb.mask)
    .with("SUM", 1.0)
    .with("DW_ROWS", f64::from(u8::from(outs.dw.is_some())))
    .with("DX_ROWS", f64::from(u8::from(outs.dx.is_some())))
    .with("WG", wg as f64);
    let p = BwdParams {
        a: ta.p,
        b: nb.p,
        split: split as u32,
        ..Default::default()
    };
    Dispatch::with_resources(
        gpu,
        &spec,
        &p,
        &[
            Res::from(dw),
            Res::View(&dz.view),
            Res::View(&x.view),
            Res::from(mask.unwrap_or(&dummy)),
            Res::from(db),
            Res::from(dx),
            Res::View(&w.view),
            Res::View(outs.dw.map_or(&dummy_dw, |r| &r.view)),
            Res::View(outs.dx.map_or(&dummy_dx, |r| &r.view)),
        ],
        [cols as u32, rows as u32, 1],
    )
}
