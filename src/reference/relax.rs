//! CPU twins of the BinaryRelax/STE projections (shaders/quant.wgsl `relax_*`). Statistics are
//! f32 sums in the kernel's order (64 lanes, then a fixed tree), so scales match to the last bit
//! or nearly (the tests allow 1e-6 relative); the exact ternary projection sorts on the CPU; and
//! [`ternary_brute_force`] checks it against every support on small tensors.

use crate::ops::relax::{Proj, UNIFORM_ITERS};
use crate::reference::quant::{pow2_exponents, pow2_round};

/// Per-row (alpha, threshold), or (n1, n2) as i32 bits for pow2.
pub fn stats(proj: Proj, w: &[f32], rows: usize, row_len: usize) -> Vec<(f32, f32)> {
    (0..rows)
        .map(|r| row_stats(proj, &w[r * row_len..(r + 1) * row_len]))
        .collect()
}

/// Lanes per row in relax_stats.
const RL: usize = 64;

/// The kernel's sum: lane l adds f(l), f(l + RL), ... in order; then a fixed tree over lanes.
fn wg_sum(n: usize, f: impl Fn(usize) -> f32) -> f32 {
    let mut part: Vec<f32> = (0..RL)
        .map(|l| (l..n).step_by(RL).fold(0.0f32, |s, j| s + f(j)))
        .collect();
    let mut s = RL / 2;
    while s > 0 {
        for l in 0..s {
            part[l] += part[l + s];
        }
        s /= 2;
    }
    part[0]
}

fn row_stats(proj: Proj, row: &[f32]) -> (f32, f32) {
    let n = row.len();
    let mean_abs = || wg_sum(n, |j| row[j].abs()) / n as f32;
    let max_abs = || row.iter().fold(0.0f32, |a, x| a.max(x.abs()));
    match proj {
        Proj::Binary => (mean_abs(), 0.0),
        Proj::TernaryTwn => {
            let delta = 0.7 * mean_abs();
            let kept = |j: usize| row[j].abs() > delta;
            let t = wg_sum(n, |j| if kept(j) { row[j].abs() } else { 0.0 });
            let c = (0..n).filter(|&j| kept(j)).count();
            let alpha = if c == 0 { 0.0 } else { t / c as f32 };
            (alpha, delta)
        }
        Proj::Uniform { .. } => {
            let qm = proj.qmax() as f32;
            let mut alpha = max_abs() / qm;
            for _ in 0..UNIFORM_ITERS {
                if alpha == 0.0 {
                    break;
                }
                let q = |j: usize| (row[j] / alpha).round_ties_even().clamp(-qm, qm);
                let num = wg_sum(n, |j| row[j] * q(j));
                let den = wg_sum(n, |j| q(j) * q(j));
                if den > 0.0 {
                    alpha = num / den;
                }
            }
            (alpha, 0.0)
        }
        Proj::Ternary => {
            let mut a: Vec<f32> = row.iter().map(|x| x.abs()).collect();
            a.sort_by_key(|x| std::cmp::Reverse(x.to_bits()));
            // Lane l scans the chunk [l c, (l + 1) c) from the sum of the chunks before it.
            let c = n.div_ceil(RL);
            let chunk = |l: usize| (l * c).min(n)..((l * c).min(n) + c).min(n);
            let mut off = 0.0f32;
            let (mut bf, mut bs, mut bk) = (-1.0f32, 0.0f32, 1usize);
            for l in 0..RL {
                let mut s = off;
                let (mut lf, mut ls, mut lk) = (-1.0f32, 0.0f32, 0usize);
                for k in chunk(l) {
                    s += a[k];
                    let f = (s * s) / (k + 1) as f32;
                    if f > lf {
                        (lf, ls, lk) = (f, s, k + 1);
                    }
                }
                if lk > 0 && lf > bf {
                    (bf, bs, bk) = (lf, ls, lk);
                }
                off += chunk(l).fold(0.0f32, |s, k| s + a[k]);
            }
            (bs / bk as f32, a[bk - 1])
        }
        Proj::Pow2 { bits } => {
            let (n1, n2) = pow2_exponents(max_abs(), bits);
            (f32::from_bits(n1 as u32), f32::from_bits(n2 as u32))
        }
    }
}

/// The integer code of `x` under its row's stats (pow2: the value itself, as a float).
pub fn project(proj: Proj, x: f32, st: (f32, f32)) -> f32 {
    let sign = |v: f32| if x < 0.0 { -v } else { v };
    match proj {
        Proj::Binary => sign(st.0),
        Proj::TernaryTwn => {
            if x.abs() > st.1 {
                sign(st.0)
            } else {
                0.0
            }
        }
        Proj::Uniform { .. } => {
            if st.0 == 0.0 {
                return 0.0;
            }
            let qm = proj.qmax() as f32;
            let q = (x / st.0).round_ties_even().clamp(-qm, qm);
            if q == 0.0 {
                0.0
            } else {
                st.0 * q
            }
        }
        Proj::Ternary => {
            if x.abs() >= st.1 && x.abs() > 0.0 {
                sign(st.0)
            } else {
                0.0
            }
        }
        Proj::Pow2 { .. } => pow2_round(x, st.0.to_bits() as i32, st.1.to_bits() as i32),
    }
}

/// relax_apply: u = (λ·proj(w) + w)/(λ+1), or proj(w) when `hard`.
pub fn apply(
    proj: Proj,
    w: &[f32],
    row_len: usize,
    stats: &[(f32, f32)],
    lambda: f32,
    hard: bool,
) -> Vec<f32> {
    w.iter()
        .enumerate()
        .map(|(i, &x)| {
            let p = project(proj, x, stats[i / row_len]);
            if hard {
                p
            } else {
                (lambda * p + x) / (lambda + 1.0)
            }
        })
        .collect()
}

/// The least-squares ternary projection by brute force over every support (n <= ~16), in f64:
/// returns the smallest ||w - alpha q||^2 with alpha = mean of |w| over the support.
pub fn ternary_brute_force(w: &[f32]) -> f64 {
    let n = w.len();
    let total: f64 = w.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    let mut best = total; // the empty support (alpha = 0)
    for mask in 1u32..(1 << n) {
        let (mut s, mut c) = (0.0f64, 0.0f64);
        for (i, &x) in w.iter().enumerate() {
            if mask >> i & 1 == 1 {
                s += f64::from(x.abs());
                c += 1.0;
            }
        }
        best = best.min(total - s * s / c);
    }
    best
}
