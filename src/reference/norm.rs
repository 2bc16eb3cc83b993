//! CPU twins of shaders/norm.wgsl, in f64.

use crate::ops::norm::BnShape;

const EPS: f64 = 1e-5;
const MOMENTUM: f64 = 0.1;

fn at(s: &BnShape, c: usize, e: usize) -> usize {
    let n = e / s.hw;
    (n * s.c + c) * s.hw + e % s.hw
}

/// (stats as [mean, invstd] per channel, new running [means.., vars..]).
pub fn stats(s: &BnShape, x: &[f32], running: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let m = s.n * s.hw;
    let mut st = vec![0.0; 2 * s.c];
    let mut run = running.to_vec();
    for c in 0..s.c {
        let mean = (0..m).map(|e| f64::from(x[at(s, c, e)])).sum::<f64>() / m as f64;
        let ss = (0..m)
            .map(|e| (f64::from(x[at(s, c, e)]) - mean).powi(2))
            .sum::<f64>();
        let var_b = ss / m as f64;
        st[2 * c] = mean as f32;
        st[2 * c + 1] = (1.0 / (var_b + EPS).sqrt()) as f32;
        let var_u = ss / (m.max(2) - 1) as f64;
        run[c] = ((1.0 - MOMENTUM) * f64::from(running[c]) + MOMENTUM * mean) as f32;
        run[s.c + c] = ((1.0 - MOMENTUM) * f64::from(running[s.c + c]) + MOMENTUM * var_u) as f32;
    }
    (st, run)
}

/// Eval stats from the running stats.
pub fn eval_stats(s: &BnShape, running: &[f32]) -> Vec<f32> {
    (0..s.c)
        .flat_map(|c| {
            [
                running[c],
                (1.0 / (f64::from(running[s.c + c]) + EPS).sqrt()) as f32,
            ]
        })
        .collect()
}

/// y = bn(x) with the given stats, ReLU when `s.relu`.
pub fn apply(s: &BnShape, x: &[f32], st: &[f32], gamma: &[f32], beta: &[f32]) -> Vec<f32> {
    (0..s.len())
        .map(|i| {
            let c = (i / s.hw) % s.c;
            let y = (f64::from(x[i]) - f64::from(st[2 * c]))
                * f64::from(st[2 * c + 1])
                * f64::from(gamma[c])
                + f64::from(beta[c]);
            (if s.relu { y.max(0.0) } else { y }) as f32
        })
        .collect()
}

/// (dx, dgamma, dbeta) of the training-mode forward with batch stats `st`; `y` is the forward
/// output (for the fused ReLU's mask).
pub fn backward(
    s: &BnShape,
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    st: &[f32],
    gamma: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let m = (s.n * s.hw) as f64;
    let g = |i: usize| {
        if s.relu && y[i] <= 0.0 {
            0.0
        } else {
            f64::from(dy[i])
        }
    };
    let xhat =
        |i: usize, c: usize| (f64::from(x[i]) - f64::from(st[2 * c])) * f64::from(st[2 * c + 1]);
    let mut dgamma = vec![0.0f64; s.c];
    let mut dbeta = vec![0.0f64; s.c];
    for i in 0..s.len() {
        let c = (i / s.hw) % s.c;
        dgamma[c] += g(i) * xhat(i, c);
        dbeta[c] += g(i);
    }
    let dx = (0..s.len())
        .map(|i| {
            let c = (i / s.hw) % s.c;
            (f64::from(gamma[c])
                * f64::from(st[2 * c + 1])
                * (g(i) - dbeta[c] / m - xhat(i, c) * dgamma[c] / m)) as f32
        })
        .collect();
    (
        dx,
        dgamma.into_iter().map(|v| v as f32).collect(),
        dbeta.into_iter().map(|v| v as f32).collect(),
    )
}
