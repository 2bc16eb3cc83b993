//! CPU twins of `gemm_reg`, `gemm_tiled` and `gemm_tex` (C = alpha * op(A) * op(B) + beta * C, in
//! f64), of `pack_rgba`, and of `linear_tex` (its three forms and epilogues).

use crate::ops::gemm::{GemmDesc, PackParams};
use crate::ops::linear::Form;

/// Computes the GEMM described by `d` on row-major host data; `c` holds the old C on entry.
pub fn gemm(d: &GemmDesc, a: &[f32], b: &[f32], c: &mut [f32]) {
    let (m, n, k) = (d.m, d.n, d.k);
    for z in 0..d.batch {
        let a = &a[z * m * k..(z + 1) * m * k];
        let b = &b[z * k * n..(z + 1) * k * n];
        let c = &mut c[z * m * n..(z + 1) * m * n];
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0f64;
                for l in 0..k {
                    let av = if d.trans_a {
                        a[l * m + i]
                    } else {
                        a[i * k + l]
                    };
                    let bv = if d.trans_b {
                        b[j * k + l]
                    } else {
                        b[l * n + j]
                    };
                    acc += f64::from(av) * f64::from(bv);
                }
                let old = f64::from(c[i * n + j]);
                let beta_term = if d.beta == 0.0 {
                    0.0
                } else {
                    f64::from(d.beta) * old
                };
                c[i * n + j] = (f64::from(d.alpha) * acc + beta_term) as f32;
            }
        }
    }
}

/// CPU twin of `pack_rgba`: texel (x, y) of layer z is source row y, columns 4x..4x+3 of the
/// strided matrix in `pp`, zero outside it. Returns [layer][row][texel][4] flattened.
pub fn pack_rgba(
    pp: &PackParams,
    src: &[f32],
    texels_wide: usize,
    rows: usize,
    layers: usize,
) -> Vec<f32> {
    let mut out = vec![0.0f32; layers * rows * texels_wide * 4];
    for z in 0..layers {
        for y in 0..rows.min(pp.rows as usize) {
            for col in 0..(texels_wide * 4).min(pp.cols as usize) {
                let i = pp.off as usize
                    + z * pp.bs as usize
                    + y * pp.rs as usize
                    + col * pp.cs as usize;
                out[((z * rows + y) * texels_wide) * 4 + col] = src[i];
            }
        }
    }
    out
}

/// CPU twin of `linear_tex`: C [m][n] = the `form` product of A and B (stored as
/// shaders/linear_tex.wgsl describes), plus `bias[col]` and ReLU, or zeroed where `mask` (same
/// shape as C) is not positive.
pub fn linear_tex(
    form: Form,
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    b: &[f32],
    bias: Option<(&[f32], bool)>,
    mask: Option<&[f32]>,
) -> Vec<f32> {
    let d = GemmDesc {
        trans_a: form == Form::Tn,
        trans_b: form == Form::Nt,
        ..GemmDesc::new(m, n, k)
    };
    let mut c = vec![0.0f32; m * n];
    gemm(&d, a, b, &mut c);
    for (i, v) in c.iter_mut().enumerate() {
        if let Some((bias, relu)) = bias {
            *v += bias[i % n];
            if relu {
                *v = v.max(0.0);
            }
        }
        if let Some(mask) = mask {
            if mask[i].partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                *v = 0.0;
            }
        }
    }
    c
}
