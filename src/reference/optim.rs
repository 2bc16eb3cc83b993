//! CPU twins of shaders/optim.wgsl, in f32 with the same operation order (fused multiply-adds).

use crate::ops::optim::{AdamParams, SgdParams};

/// One SGD step in place; elements with mask 0 keep their weight and momentum.
pub fn sgd(p: &SgdParams, w: &mut [f32], mom: &mut [f32], grad: &[f32], mask: &[f32]) {
    for i in 0..w.len() {
        if mask[i] == 0.0 {
            continue;
        }
        let d = p.weight_decay.mul_add(w[i], grad[i]);
        let v = p.momentum.mul_add(mom[i], d);
        mom[i] = v;
        let u = if p.nesterov != 0 {
            p.momentum.mul_add(v, d)
        } else {
            v
        };
        w[i] -= p.lr * u * mask[i];
    }
}

/// One Adam step in place; elements with mask 0 keep their weight and moments.
pub fn adam(
    p: &AdamParams,
    w: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    grad: &[f32],
    mask: &[f32],
) {
    for i in 0..w.len() {
        if mask[i] == 0.0 {
            continue;
        }
        let d = p.weight_decay.mul_add(w[i], grad[i]);
        m[i] = p.beta1 * m[i] + (1.0 - p.beta1) * d;
        v[i] = p.beta2 * v[i] + (1.0 - p.beta2) * d * d;
        let t = p.t as f32;
        let mhat = m[i] / (1.0 - p.beta1.powf(t));
        let vhat = v[i] / (1.0 - p.beta2.powf(t));
        w[i] -= p.lr * mhat / (vhat.sqrt() + p.eps) * mask[i];
    }
}
