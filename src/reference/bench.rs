//! CPU twins of the roofline microkernels in shaders/bench.wgsl.

/// The vec4 that invocation `i` of `fma_peak` writes (all four lanes are equal).
pub fn fma_peak(i: u32, iters: u32, seed: f32) -> f32 {
    let x = (i & 7) as f32 * 1e-3 + seed;
    let m = 0.999f32;
    let mut a = [x, x + 0.1];
    for _ in 0..iters * 4 {
        for v in a.iter_mut() {
            *v = v.mul_add(m, x);
        }
    }
    a[0] + a[1]
}

/// `copy_vec4` copies its source unchanged.
pub fn copy_vec4(src: &[f32]) -> Vec<f32> {
    src.to_vec()
}
