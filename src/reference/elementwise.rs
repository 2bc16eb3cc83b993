//! CPU twins of shaders/elementwise.wgsl.

use crate::ops::elementwise::EwOp;

/// Applies `op` to `out` with inputs `x` and `y` (unused ones may be empty).
pub fn elementwise(op: EwOp, alpha: f32, out: &mut [f32], x: &[f32], y: &[f32]) {
    for i in 0..out.len() {
        out[i] = match op {
            EwOp::Fill => alpha,
            EwOp::Scale => alpha * out[i],
            EwOp::Axpy => alpha.mul_add(x[i], out[i]),
            EwOp::ReluFwd => x[i].max(0.0),
            EwOp::BiasAdd => out[i] + x[i % x.len()],
            EwOp::Add => x[i] + y[i],
            EwOp::AddRelu => (x[i] + y[i]).max(0.0),
            EwOp::ReluBwd => {
                if x[i] > 0.0 {
                    y[i]
                } else {
                    0.0
                }
            }
        };
    }
}
