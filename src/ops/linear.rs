//! Texture-fed linear layers (shaders/linear_tex.wgsl): the forward GEMM with its bias and ReLU,
//! backward-data with the previous layer's ReLU mask, and backward-weight with the bias gradient,
//! all reading operands
//! from row textures that copies fill (ops/conv.rs's layout), so a linear layer packs nothing
//! where its widths are multiples of 4 and shares the textures of x and W between its forward and
//! backward passes.
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
    if rows == 0 || cols == 0 || src.size() < (rows * cols * 4) as u64 {
        return Err(Error::Shape {
            op: "linear",
            msg: format!(
                "{label}: a {rows} x {cols} matrix needs {} floats, the buffer holds {}",
                rows * cols,
                src.size() / 4
            ),
        });
    }
    if !act_texture_fits(gpu, rows * cols.div_ceil(4)) {
        return Err(Error::Shape {
            op: "linear",
            msg: format!("{label}: a {rows} x {cols} matrix exceeds the device's texture limits"),
        });
    }
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

/// One `linear_tex` dispatch: C ([m][n] in `c`) = the `form` product of `a` and `b`, then `epi`;
/// with `colsum` (form `Tn` only) also colsum[m] = Σ_k A[k][m] (the bias gradient).
pub fn gemm(
    gpu: &Gpu,
    form: Form,
    a: &RowsTex,
    b: &RowsTex,
    c: &wgpu::Buffer,
    epi: Epilogue<'_>,
    colsum: Option<&wgpu::Buffer>,
) -> Result<Dispatch> {
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
    // bound where the kernel takes no aux or no colsum (it never touches them)
    let unused = |label| {
        gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        })
    };
    let (dummy, dummy_sum) = (
        unused("linear_tex unused aux"),
        unused("linear_tex unused colsum"),
    );
    if let Some(cs) = colsum {
        need.push(("colsum", cs, m));
    }
    let (aux, bias, relu, mask) = match epi {
        Epilogue::None => (&dummy, 0.0, 0.0, 0.0),
        Epilogue::Bias { bias, relu } => {
            need.push(("bias", bias, n));
            (bias, 1.0, f64::from(u8::from(relu)), 0.0)
        }
        Epilogue::Mask(src) => {
            need.push(("mask source", src, m * n));
            (src, 0.0, 0.0, 1.0)
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
    // 64 invocations per workgroup, or 8 where that leaves fewer than LINEAR_MIN_GROUPS
    // workgroups (llvmpipe splits a dispatch's workgroups evenly among its threads up front)
    let cols = n.div_ceil(4).div_ceil(8);
    let wg = if cols * m.div_ceil(64) < LINEAR_MIN_GROUPS {
        8
    } else {
        64
    };
    let groups = [cols as u32, m.div_ceil(wg) as u32, 1];
    if groups[..2]
        .iter()
        .any(|&g| g > gpu.limits.max_compute_workgroups_per_dimension)
    {
        return Err(Error::Shape {
            op: "linear",
            msg: format!("{} exceeds the device's workgroup grid", shape()),
        });
    }
    let p = LinParams {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        k4: k.div_ceil(4) as u32,
        a_rows: a.rows as u32,
        a_rs4: a.rs4() as u32,
        b_rows: b.rows as u32,
        b_rs4: b.rs4() as u32,
    };
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
        ],
    )
    .with("FORM", form.id())
    .with("BIAS", bias)
    .with("RELU", relu)
    .with("MASK", mask)
    .with("SUM", f64::from(u8::from(colsum.is_some())))
    .with("WG", wg as f64);
    Dispatch::with_resources(
        gpu,
        &spec,
        &p,
        &[
            Res::from(c),
            Res::View(&a.view),
            Res::View(&b.view),
            Res::from(aux),
            Res::from(colsum.unwrap_or(&dummy_sum)),
        ],
        groups,
    )
}
