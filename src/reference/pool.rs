//! CPU twins of shaders/pool.wgsl.

use crate::ops::pool::PoolShape;

/// (y, argmax) of 2x2/stride-2 max pooling; the first maximum in row-major order wins.
pub fn max_fwd(s: &PoolShape, x: &[f32]) -> (Vec<f32>, Vec<u32>) {
    let (oh, ow) = s.max_out();
    let mut y = Vec::with_capacity(s.n * s.c * oh * ow);
    let mut arg = Vec::with_capacity(y.capacity());
    for nc in 0..s.n * s.c {
        for i in 0..oh {
            for j in 0..ow {
                let base = (nc * s.h + 2 * i) * s.w + 2 * j;
                let cand = [x[base], x[base + 1], x[base + s.w], x[base + s.w + 1]];
                let mut best = 0;
                for k in 1..4 {
                    if cand[k] > cand[best] {
                        best = k;
                    }
                }
                y.push(cand[best]);
                arg.push(best as u32);
            }
        }
    }
    (y, arg)
}

/// dx of max pooling.
pub fn max_bwd(s: &PoolShape, dy: &[f32], arg: &[u32]) -> Vec<f32> {
    let (oh, ow) = s.max_out();
    let mut dx = vec![0.0; s.n * s.c * s.h * s.w];
    for nc in 0..s.n * s.c {
        for i in 0..oh {
            for j in 0..ow {
                let o = (nc * oh + i) * ow + j;
                let a = arg[o] as usize;
                dx[(nc * s.h + 2 * i + a / 2) * s.w + 2 * j + a % 2] = dy[o];
            }
        }
    }
    dx
}

/// Global average pooling.
pub fn gap_fwd(s: &PoolShape, x: &[f32]) -> Vec<f32> {
    let hw = s.h * s.w;
    (0..s.n * s.c)
        .map(|i| {
            (x[i * hw..(i + 1) * hw]
                .iter()
                .map(|&v| f64::from(v))
                .sum::<f64>()
                / hw as f64) as f32
        })
        .collect()
}

/// dx of global average pooling.
pub fn gap_bwd(s: &PoolShape, dy: &[f32]) -> Vec<f32> {
    let hw = s.h * s.w;
    (0..s.n * s.c * hw)
        .map(|i| dy[i / hw] / hw as f32)
        .collect()
}
