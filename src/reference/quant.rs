//! CPU twins of shaders/quant.wgsl, written independently of the kernels: n1 from
//! floor(log2(4s/3)) in f64, and rounding by an explicit nearest search over the set, as the
//! official INQ code does.

/// (n1, n2) of the b-bit power-of-two set for s = max|W|; (-127, -127) when s is 0 or not finite.
pub fn pow2_exponents(s: f32, bits: u32) -> (i32, i32) {
    if !(s > 0.0 && s.is_finite()) {
        return (-127, -127);
    }
    let n1 = (4.0 * f64::from(s) / 3.0).log2().floor() as i32;
    (n1, n1 + 1 - (1 << (bits - 2)))
}

/// The non-negative elements of the set, ascending: 0, 2^n2, ..., 2^n1.
pub fn pow2_levels(n1: i32, n2: i32) -> Vec<f64> {
    let mut v = vec![0.0];
    v.extend((n2..=n1).map(|k| 2f64.powi(k)));
    v
}

/// The nearest element of {±2^n1 .. ±2^n2, 0}; a tie between neighbours goes to the larger
/// magnitude ((α+β)/2 ≤ |w| gives β); zero is +0; NaN stays NaN; ±inf gives ±2^n1.
pub fn pow2_round(w: f32, n1: i32, n2: i32) -> f32 {
    if w.is_nan() {
        return w;
    }
    if n1 == -127 {
        return 0.0;
    }
    let a = f64::from(w.abs());
    let levels = pow2_levels(n1, n2);
    let mut q = 0.0;
    for j in 1..levels.len() {
        if a >= 0.5 * (levels[j - 1] + levels[j]) {
            q = levels[j];
        }
    }
    if q == 0.0 {
        return 0.0; // +0: the set's zero carries no sign
    }
    (if w > 0.0 { q } else { -q }) as f32
}

/// pow2_quantize: Q(w) where mask == 0, w elsewhere.
pub fn pow2_quantize(w: &[f32], mask: &[f32], n1: i32, n2: i32) -> Vec<f32> {
    w.iter()
        .zip(mask)
        .map(|(&x, &m)| if m == 0.0 { pow2_round(x, n1, n2) } else { x })
        .collect()
}

/// pow2_quantize with one set per row (`exps[r]` for row r of `w.len() / exps.len()` weights).
pub fn pow2_quantize_rows(w: &[f32], mask: &[f32], exps: &[(i32, i32)]) -> Vec<f32> {
    let row = w.len() / exps.len();
    w.chunks(row)
        .zip(mask.chunks(row))
        .zip(exps)
        .flat_map(|((w, m), &(n1, n2))| pow2_quantize(w, m, n1, n2))
        .collect()
}

/// A CPU model of the GPU's 32-bit hash (lowbias32).
fn hash_u32(x: u32) -> u32 {
    let mut h = x;
    h ^= h >> 16;
    h = h.wrapping_mul(0x7feb_352d);
    h ^= h >> 15;
    h = h.wrapping_mul(0x846c_a68b);
    h ^= h >> 16;
    h
}

/// partition: freezes (mask = 0, momentum = 0) exactly `k` of the float weights (mask != 0),
/// ranked by a full sort: by |w| descending (pruning; NaN above inf) or by hash(seed, i)
/// (random), ties to the lower index. `random_seed` is None for pruning.
pub fn partition(w: &[f32], mask: &mut [f32], mom: &mut [f32], k: usize, random_seed: Option<u32>) {
    let mut float: Vec<usize> = (0..w.len()).filter(|&i| mask[i] != 0.0).collect();
    let key = |i: usize| -> u32 {
        match random_seed {
            None => w[i].to_bits() & 0x7fff_ffff,
            Some(s) => hash_u32(i as u32 ^ hash_u32(s)),
        }
    };
    float.sort_by(|&a, &b| key(b).cmp(&key(a)).then(a.cmp(&b)));
    for &i in float.iter().take(k) {
        mask[i] = 0.0;
        mom[i] = 0.0;
    }
}

/// pow2_quantize_inplace.
pub fn pow2_quantize_inplace(w: &mut [f32], mask: &[f32], n1: i32, n2: i32) {
    for (x, &m) in w.iter_mut().zip(mask) {
        if m == 0.0 {
            *x = pow2_round(*x, n1, n2);
        }
    }
}
