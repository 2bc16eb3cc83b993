//! CPU twins of shaders/conv.wgsl, accumulated in f64.

use crate::ops::conv::ConvShape;

fn at(s: &ConvShape, oh: usize, kh: usize) -> Option<usize> {
    let v = (oh * s.stride + kh) as isize - s.pad as isize;
    (v >= 0).then_some(v as usize)
}

/// y = conv(x, w).
pub fn conv2d_fwd(s: &ConvShape, x: &[f32], w: &[f32]) -> Vec<f32> {
    let (oh_n, ow_n) = s.out_hw();
    let mut y = vec![0.0; s.n * s.cout * oh_n * ow_n];
    for n in 0..s.n {
        for co in 0..s.cout {
            for oh in 0..oh_n {
                for ow in 0..ow_n {
                    let mut acc = 0.0f64;
                    for ci in 0..s.cin {
                        for kh in 0..s.k {
                            for kw in 0..s.k {
                                let (Some(ih), Some(iw)) = (at(s, oh, kh), at(s, ow, kw)) else {
                                    continue;
                                };
                                if ih >= s.h || iw >= s.w {
                                    continue;
                                }
                                acc += f64::from(x[((n * s.cin + ci) * s.h + ih) * s.w + iw])
                                    * f64::from(w[((co * s.cin + ci) * s.k + kh) * s.k + kw]);
                            }
                        }
                    }
                    y[((n * s.cout + co) * oh_n + oh) * ow_n + ow] = acc as f32;
                }
            }
        }
    }
    y
}

/// dx and dw of `sum(y * dy)` (computed by scattering, a different order from the kernels).
pub fn conv2d_bwd(s: &ConvShape, x: &[f32], w: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (oh_n, ow_n) = s.out_hw();
    let mut dx = vec![0.0f64; x.len()];
    let mut dw = vec![0.0f64; w.len()];
    for n in 0..s.n {
        for co in 0..s.cout {
            for oh in 0..oh_n {
                for ow in 0..ow_n {
                    let g = f64::from(dy[((n * s.cout + co) * oh_n + oh) * ow_n + ow]);
                    for ci in 0..s.cin {
                        for kh in 0..s.k {
                            for kw in 0..s.k {
                                let (Some(ih), Some(iw)) = (at(s, oh, kh), at(s, ow, kw)) else {
                                    continue;
                                };
                                if ih >= s.h || iw >= s.w {
                                    continue;
                                }
                                let xi = ((n * s.cin + ci) * s.h + ih) * s.w + iw;
                                let wi = ((co * s.cin + ci) * s.k + kh) * s.k + kw;
                                dx[xi] += g * f64::from(w[wi]);
                                dw[wi] += g * f64::from(x[xi]);
                            }
                        }
                    }
                }
            }
        }
    }
    (
        dx.into_iter().map(|v| v as f32).collect(),
        dw.into_iter().map(|v| v as f32).collect(),
    )
}
