//! Reductions (shaders/reduce.wgsl): sum, max|x| and mean|x| over a tensor viewed as
//! [outer, rows, inner], one output per row: per-row of a matrix, per-channel of NCHW, or whole.

use crate::error::{Error, Result};
use crate::gpu::device::Gpu;
use crate::gpu::kernels::{grid_1d, Binding, KernelSpec, ShaderId};
use crate::gpu::tensor::Tensor;
use crate::ops::Dispatch;

crate::gpu_params!(
    ShaderId::Reduce,
    /// Mirrors `ReduceParams`.
    pub struct ReduceParams {
        pub outer: u32,
        pub rows: u32,
        pub inner: u32,
        pub _pad: u32,
    }
);

/// What to reduce.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    MaxAbs,
    MeanAbs,
    /// Sum over `outer` of a view with inner = 1, one invocation per row, no barriers.
    OuterSum,
}

impl ReduceOp {
    pub const ALL: [ReduceOp; 4] = [
        ReduceOp::Sum,
        ReduceOp::MaxAbs,
        ReduceOp::MeanAbs,
        ReduceOp::OuterSum,
    ];

    pub fn entry(self) -> &'static str {
        match self {
            ReduceOp::Sum => "reduce_sum",
            ReduceOp::MaxAbs => "reduce_max_abs",
            ReduceOp::MeanAbs => "reduce_mean_abs",
            ReduceOp::OuterSum => "reduce_outer_sum",
        }
    }
}

/// The [outer, rows, inner] view of a reduction.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ReduceShape {
    pub outer: usize,
    pub rows: usize,
    pub inner: usize,
}

impl ReduceShape {
    /// One value for the whole tensor.
    pub fn whole(len: usize) -> Self {
        ReduceShape {
            outer: 1,
            rows: 1,
            inner: len,
        }
    }
    /// One value per row of an R x C matrix.
    pub fn per_row(r: usize, c: usize) -> Self {
        ReduceShape {
            outer: 1,
            rows: r,
            inner: c,
        }
    }
    /// One value per channel of an N x C x HW tensor.
    pub fn per_channel(n: usize, c: usize, hw: usize) -> Self {
        ReduceShape {
            outer: n,
            rows: c,
            inner: hw,
        }
    }
    pub fn len(&self) -> usize {
        self.outer * self.rows * self.inner
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

const B: &[Binding] = &[Binding::Uniform, Binding::ReadWrite, Binding::Read];

/// Prepares `op` of `x` (viewed as `shape`) into `out` (`shape.rows` values).
pub fn reduce(
    gpu: &Gpu,
    op: ReduceOp,
    shape: ReduceShape,
    x: &Tensor,
    out: &Tensor,
) -> Result<Dispatch> {
    if shape.len() != x.len() || out.len() != shape.rows || shape.rows == 0 {
        return Err(Error::Shape {
            op: "reduce",
            msg: format!(
                "view {shape:?} over input {:?} into output {:?}",
                x.shape, out.shape
            ),
        });
    }
    if op == ReduceOp::OuterSum && shape.inner != 1 {
        return Err(Error::Shape {
            op: "reduce",
            msg: format!("reduce_outer_sum needs inner = 1, got {shape:?}"),
        });
    }
    let spec = KernelSpec::new(ShaderId::Reduce, op.entry(), B);
    let params = ReduceParams {
        outer: shape.outer as u32,
        rows: shape.rows as u32,
        inner: shape.inner as u32,
        _pad: 0,
    };
    // one workgroup per row for the tree kernels; reduce_outer_sum runs one invocation per row
    // in workgroups of 64
    let groups = match op {
        ReduceOp::OuterSum => crate::ops::grid_for(gpu, shape.rows, 64),
        _ => grid_1d(
            shape.rows as u32,
            gpu.limits.max_compute_workgroups_per_dimension,
        ),
    };
    Dispatch::new(gpu, &spec, &params, &[&out.buf, &x.buf], groups)
}
