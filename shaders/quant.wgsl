// Quantizers. INQ's power-of-two set (Zhou et al. 2017, shared/METHODS.md §A1), per layer, for b
// bits: P = {±2^n1, ..., ±2^n2, 0}, n1 = floor(log2(4s/3)) with s = max|W|, n2 = n1 + 1 - 2^(b-2).
//
//  - pow2_exponents: one invocation reads s (from reduce_max_abs) and writes (n1, n2) as i32.
//    n1 is computed exactly from the float's bits: with s = f * 2^e, f in [0.5, 1),
//    floor(log2(4s/3)) = e - 1 + [f >= 0.75]. s = 0 or non-finite gives n1 = n2 = -127 (all 0).
//  - pow2_quantize: out[i] = Q(w[i]) where mask[i] == 0 (frozen), else w[i]. Q rounds to the
//    nearest element of P with the paper's boundaries: between 2^k and 2^(k+1) the boundary
//    1.5 * 2^k rounds up; |w| < 2^(n2-1) gives +0 (the set's zero carries no sign); exponents are
//    clamped to [n2, n1]; NaN stays NaN and ±inf becomes ±2^n1.

struct QuantParams {
    n: u32,
    bits: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: QuantParams;

// pow2_exponents
@group(0) @binding(1) var<storage, read_write> exps: array<i32>;
@group(0) @binding(2) var<storage, read> smax: array<f32>;

// Classification by bits: compilers may assume floats are never NaN, so `x != x` is unreliable.
fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

fn is_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) < 0x7f800000u;
}

@compute @workgroup_size(1)
fn pow2_exponents() {
    let s = smax[0];
    var n1 = -127;
    if (s > 0.0 && is_finite(s)) {
        let fe = frexp(s);
        n1 = fe.exp - 1 + select(0, 1, fe.fract >= 0.75);
    }
    var n2 = n1 + 1 - (1 << (p.bits - 2u));
    if (n1 == -127) { n2 = -127; }
    exps[0] = n1;
    exps[1] = n2;
}

// pow2_quantize
@group(0) @binding(1) var<storage, read_write> qout: array<f32>;
@group(0) @binding(2) var<storage, read> qw: array<f32>;
@group(0) @binding(3) var<storage, read> qmask: array<f32>;
@group(0) @binding(4) var<storage, read> qexps: array<i32>;

override WG: u32 = 256;

fn pow2_round(w: f32, n1: i32, n2: i32) -> f32 {
    if (is_nan(w)) { return w; }
    if (n1 == -127) { return 0.0; }
    let a = abs(w);
    if (a < ldexp(1.0, n2 - 1)) { return 0.0; }
    var k = n1;
    if (is_finite(a)) {
        let fe = frexp(a);
        k = fe.exp - 1 + select(0, 1, fe.fract >= 0.75);
    }
    k = clamp(k, n2, n1);
    return select(-1.0, 1.0, w > 0.0) * ldexp(1.0, k);
}

@compute @workgroup_size(WG)
fn pow2_quantize(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.n) { return; }
    let w = qw[i];
    if (qmask[i] == 0.0) {
        qout[i] = pow2_round(w, qexps[0], qexps[1]);
    } else {
        qout[i] = w;
    }
}
