//! CPU twins of shaders/reduce.wgsl, accumulated in f64.

use crate::ops::reduce::{ReduceOp, ReduceShape};

/// One value per row of the [outer, rows, inner] view.
pub fn reduce(op: ReduceOp, s: ReduceShape, x: &[f32]) -> Vec<f32> {
    (0..s.rows)
        .map(|r| {
            let mut acc = 0.0f64;
            for o in 0..s.outer {
                for i in 0..s.inner {
                    let v = f64::from(x[(o * s.rows + r) * s.inner + i]);
                    acc = match op {
                        ReduceOp::Sum | ReduceOp::OuterSum => acc + v,
                        ReduceOp::MaxAbs => acc.max(v.abs()),
                        ReduceOp::MeanAbs => acc + v.abs(),
                    };
                }
            }
            if op == ReduceOp::MeanAbs {
                acc /= (s.outer * s.inner).max(1) as f64;
            }
            acc as f32
        })
        .collect()
}
