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

// pow2_quantize_inplace: w[i] = Q(w[i]) where mask[i] == 0, untouched elsewhere (INQ's phase step,
// on the stored weights).
@group(0) @binding(1) var<storage, read_write> iw: array<f32>;
@group(0) @binding(2) var<storage, read> imask: array<f32>;
@group(0) @binding(3) var<storage, read> iexps: array<i32>;

@compute @workgroup_size(WG)
fn pow2_quantize_inplace(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.n) { return; }
    if (imask[i] == 0.0) {
        iw[i] = pow2_round(iw[i], iexps[0], iexps[1]);
    }
}

// INQ partition: freeze exactly k more weights among those still float (mask != 0), chosen by a
// radix select on the GPU, never a host sort. Every float weight gets a unique 64-bit key
// (hi, lo): hi = the bits of |w| (pruning: largest first; IEEE order equals magnitude order for
// non-negative floats, NaN above inf) or a hash of (seed, i) (random), and lo = ~i, so equal
// magnitudes go lowest index first and the frozen count is exact whatever the ties. Eight passes of
// (select_hist, select_scan) find the key of the k-th largest, 8 bits at a time; select_freeze then
// sets mask = 0 (and momentum = 0) for every float weight whose key is >= it: exactly k of them.
// state = [prefix_hi, prefix_lo, k remaining, active]; the host writes [0, 0, k, k > 0].

struct SelectParams {
    n: u32,
    pass_: u32,
    mode: u32,
    seed: u32,
}

@group(0) @binding(0) var<uniform> sp: SelectParams;
@group(0) @binding(1) var<storage, read_write> hist: array<atomic<u32>, 256>;
@group(0) @binding(2) var<storage, read> sw: array<f32>;
@group(0) @binding(3) var<storage, read> smask: array<f32>;
@group(0) @binding(4) var<storage, read> sstate: array<u32>;

fn hash_u32(x: u32) -> u32 {
    // lowbias32 (Chris Wellons).
    var h = x;
    h ^= h >> 16u;
    h *= 0x7feb352du;
    h ^= h >> 15u;
    h *= 0x846ca68bu;
    h ^= h >> 16u;
    return h;
}

fn select_key_hi(w: f32, i: u32, mode: u32, seed: u32) -> u32 {
    if (mode == 0u) {
        return bitcast<u32>(w) & 0x7fffffffu;
    }
    return hash_u32(i ^ hash_u32(seed));
}

// The 8-bit digit of the key at `pass_` (0 = the top byte of hi) and whether the digits above it
// equal the prefix found so far.
fn digit_of(hi: u32, lo: u32, pass_: u32, phi: u32, plo: u32) -> vec2<u32> {
    var matches = true;
    var d = 0u;
    if (pass_ < 4u) {
        let sh = 24u - 8u * pass_;
        if (pass_ > 0u) { matches = (hi >> (sh + 8u)) == (phi >> (sh + 8u)); }
        d = (hi >> sh) & 0xffu;
    } else {
        let sh = 24u - 8u * (pass_ - 4u);
        matches = hi == phi;
        if (pass_ > 4u) { matches = matches && ((lo >> (sh + 8u)) == (plo >> (sh + 8u))); }
        d = (lo >> sh) & 0xffu;
    }
    return vec2<u32>(select(0u, 1u, matches), d);
}

@compute @workgroup_size(WG)
fn select_hist(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= sp.n || sstate[3] == 0u) { return; }
    if (smask[i] == 0.0) { return; }
    let hi = select_key_hi(sw[i], i, sp.mode, sp.seed);
    let md = digit_of(hi, ~i, sp.pass_, sstate[0], sstate[1]);
    if (md.x == 1u) {
        atomicAdd(&hist[md.y], 1u);
    }
}

// select_scan: one invocation picks the digit holding the k-th largest key, from the top bin down,
// then clears the histogram for the next pass.
@group(0) @binding(1) var<storage, read_write> shist: array<atomic<u32>, 256>;
@group(0) @binding(2) var<storage, read_write> state: array<u32>;

@compute @workgroup_size(1)
fn select_scan() {
    if (state[3] == 0u) { return; }
    var k = state[2];
    var d = 255;
    loop {
        let c = atomicLoad(&shist[d]);
        if (k <= c || d == 0) { break; }
        k -= c;
        d -= 1;
    }
    let pass_ = sp.pass_;
    if (pass_ < 4u) {
        state[0] = state[0] | (u32(d) << (24u - 8u * pass_));
    } else {
        state[1] = state[1] | (u32(d) << (24u - 8u * (pass_ - 4u)));
    }
    state[2] = k;
    for (var j = 0; j < 256; j++) {
        atomicStore(&shist[j], 0u);
    }
}

// select_freeze: mask = 0 and momentum = 0 for every float weight whose key is >= the threshold.
@group(0) @binding(1) var<storage, read_write> fmask: array<f32>;
@group(0) @binding(2) var<storage, read_write> fmom: array<f32>;
@group(0) @binding(3) var<storage, read> fw: array<f32>;
@group(0) @binding(4) var<storage, read> fstate: array<u32>;

@compute @workgroup_size(WG)
fn select_freeze(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= sp.n || fstate[3] == 0u) { return; }
    if (fmask[i] == 0.0) { return; }
    let hi = select_key_hi(fw[i], i, sp.mode, sp.seed);
    let lo = ~i;
    let thi = fstate[0];
    let tlo = fstate[1];
    if (hi > thi || (hi == thi && lo >= tlo)) {
        fmask[i] = 0.0;
        fmom[i] = 0.0;
    }
}
