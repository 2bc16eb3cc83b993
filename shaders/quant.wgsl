// Quantizers. INQ's power-of-two set (Zhou et al. 2017, shared/METHODS.md §A1), per layer (or per
// output channel: p.rows sets, each for its own n / rows consecutive weights), for b bits:
// P = {±2^n1, ..., ±2^n2, 0}, n1 = floor(log2(4s/3)) with s = max|W|, n2 = n1 + 1 - 2^(b-2).
//
//  - pow2_exponents: one invocation per row reads s (from reduce_max_abs) and writes (n1, n2) as
//    i32 at exps[2 row], exps[2 row + 1].
//    n1 is computed exactly from the float's bits: with s = f * 2^e, f in [0.5, 1),
//    floor(log2(4s/3)) = e - 1 + [f >= 0.75]. s = 0 or non-finite gives n1 = n2 = -127 (all 0).
//  - pow2_quantize: out[i] = Q(w[i]) where mask[i] == 0 (frozen), else w[i]. Q rounds to the
//    nearest element of P with the paper's boundaries: between 2^k and 2^(k+1) the boundary
//    1.5 * 2^k rounds up; |w| < 2^(n2-1) gives +0 (the set's zero carries no sign); exponents are
//    clamped to [n2, n1]; NaN stays NaN and ±inf becomes ±2^n1.

struct QuantParams {
    n: u32,      // weights
    bits: u32,
    rows: u32,   // rows sharing one set (output channels, or 1 for the whole layer); n % rows == 0
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

@compute @workgroup_size(64)
fn pow2_exponents(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    if (r >= p.rows) { return; }
    let s = smax[r];
    var n1 = -127;
    if (s > 0.0 && is_finite(s)) {
        let fe = frexp(s);
        n1 = fe.exp - 1 + select(0, 1, fe.fract >= 0.75);
    }
    var n2 = n1 + 1 - (1 << (p.bits - 2u));
    if (n1 == -127) { n2 = -127; }
    exps[2u * r] = n1;
    exps[2u * r + 1u] = n2;
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
        let r = i / (p.n / p.rows);
        qout[i] = pow2_round(w, qexps[2u * r], qexps[2u * r + 1u]);
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
        let r = i / (p.n / p.rows);
        iw[i] = pow2_round(iw[i], iexps[2u * r], iexps[2u * r + 1u]);
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

// ---------------------------------------------------------------------------------------------
// BinaryRelax / STE projections (Yin et al. 2018, shared/METHODS.md §A4), per row: a row is one
// output channel (per-channel scales) or the whole layer. proj(w) = alpha_r * q(w) with integer
// codes q; every statistic is one invocation per row, summing sequentially in f32, so that the CPU
// twin reproduces it bit for bit.
//
//  - binary (mode 0): alpha = mean|w|, q = +1 for w >= 0 (and +0, -0), -1 for w < 0.
//  - ternary TWN (mode 1): delta = 0.7 mean|w|; alpha = mean of the |w| > delta (0 if none);
//    q = sign(w) [|w| > delta].
//  - uniform K bits (mode 2): qmax = 2^(K-1) - 1; alpha0 = max|w| / qmax, then `iters` rounds of
//    q = clamp(round(w / alpha), -qmax, qmax), alpha = <w, q> / <q, q>.
//  - ternary exact (mode 3): over |w| sorted descending (relax_sort_*), the k maximising
//    (sum of the top k)^2 / k (the first maximum); alpha = that sum / k, and q = sign(w) for
//    |w| >= the k-th largest |w| with |w| > 0. This is the least-squares projection onto
//    alpha {-1, 0, 1}^n.
//  - power of two (mode 4): INQ's set from the row's max|w| at `bits`; stats hold (n1, n2).
// relax_apply then writes u = (lambda proj(w) + w) / (lambda + 1) into w_eff, or proj(w) when
// `hard` (phase II and STE).

struct RelaxParams {
    rows: u32,
    row_len: u32,
    mode: u32,
    qmax: u32,
    iters: u32,
    hard: u32,
    bits: u32,
    padded: u32,
    lambda: f32,
    _pad0: f32,
    _pad1: f32,
    _pad2: f32,
}

@group(0) @binding(0) var<uniform> rp: RelaxParams;

// relax_stats: one workgroup of RL lanes per row. Lane l sums the elements l, l + RL, ... in
// order, and the lanes' partials are combined by a fixed tree (tree_sum), so the CPU twin can
// repeat every f32 operation. (A single invocation per row would be simpler, but lavapipe stops
// any invocation after 65,535 loop iterations in total.) The exact ternary scan gives lane l the
// contiguous chunk [l C, (l + 1) C) of the sorted row (C = ceil(L / RL)); lane 0 turns the chunk
// sums into offsets in order, each lane scans its chunk from its offset, and lane 0 keeps the
// first best over the lanes in order.
@group(0) @binding(1) var<storage, read_write> rstats: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> rw: array<f32>;
@group(0) @binding(3) var<storage, read> rkeys: array<u32>;

const RL: u32 = 64u;
var<workgroup> part: array<f32, 64>;
var<workgroup> cnt: array<u32, 64>;
var<workgroup> best_f: array<f32, 64>;
var<workgroup> best_s: array<f32, 64>;
var<workgroup> best_k: array<u32, 64>;
var<workgroup> shared_alpha: f32;

fn tree_sum(l: u32, v: f32) -> f32 {
    part[l] = v;
    workgroupBarrier();
    for (var s = RL / 2u; s > 0u; s >>= 1u) {
        if (l < s) { part[l] = part[l] + part[l + s]; }
        workgroupBarrier();
    }
    let r = part[0];
    workgroupBarrier();
    return r;
}

fn tree_max(l: u32, v: f32) -> f32 {
    part[l] = v;
    workgroupBarrier();
    for (var s = RL / 2u; s > 0u; s >>= 1u) {
        if (l < s) { part[l] = max(part[l], part[l + s]); }
        workgroupBarrier();
    }
    let r = part[0];
    workgroupBarrier();
    return r;
}

fn tree_count(l: u32, v: u32) -> u32 {
    cnt[l] = v;
    workgroupBarrier();
    for (var s = RL / 2u; s > 0u; s >>= 1u) {
        if (l < s) { cnt[l] = cnt[l] + cnt[l + s]; }
        workgroupBarrier();
    }
    let r = cnt[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(64)
fn relax_stats(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) l: u32) {
    let r = wg.x;
    let L = rp.row_len;
    let base = r * L;
    var st = vec2<f32>(0.0, 0.0);
    let mode = rp.mode;
    if (mode == 0u || mode == 1u) {
        var s = 0.0;
        for (var j = l; j < L; j += RL) { s = s + abs(rw[base + j]); }
        let mean = tree_sum(l, s) / f32(L);
        st = vec2<f32>(mean, 0.0);
        if (mode == 1u) {
            let delta = 0.7 * mean;
            var t = 0.0;
            var c = 0u;
            for (var j = l; j < L; j += RL) {
                let a = abs(rw[base + j]);
                if (a > delta) { t = t + a; c = c + 1u; }
            }
            let tt = tree_sum(l, t);
            let cc = tree_count(l, c);
            var alpha = 0.0;
            if (cc > 0u) { alpha = tt / f32(cc); }
            st = vec2<f32>(alpha, delta);
        }
    } else if (mode == 2u) {
        let qm = f32(rp.qmax);
        var m = 0.0;
        for (var j = l; j < L; j += RL) { m = max(m, abs(rw[base + j])); }
        var alpha = tree_max(l, m) / qm;
        for (var it = 0u; it < rp.iters; it++) {
            if (alpha == 0.0) { break; }
            var num = 0.0;
            var den = 0.0;
            for (var j = l; j < L; j += RL) {
                let x = rw[base + j];
                let q = clamp(round(x / alpha), -qm, qm);
                num = num + x * q;
                den = den + q * q;
            }
            let tn = tree_sum(l, num);
            let td = tree_sum(l, den);
            if (td > 0.0) { alpha = tn / td; }
        }
        st = vec2<f32>(alpha, 0.0);
    } else if (mode == 3u) {
        let kb = r * rp.padded;
        let C = (L + RL - 1u) / RL;
        let lo = min(l * C, L);
        let hi = min(lo + C, L);
        var s = 0.0;
        for (var k = lo; k < hi; k++) { s = s + bitcast<f32>(rkeys[kb + k]); }
        part[l] = s;
        workgroupBarrier();
        if (l == 0u) {
            var off = 0.0;
            for (var i = 0u; i < RL; i++) {
                let c = part[i];
                part[i] = off;
                off = off + c;
            }
        }
        workgroupBarrier();
        s = part[l];
        var bf = -1.0;
        var bs = 0.0;
        var bk = 0u;
        for (var k = lo; k < hi; k++) {
            s = s + bitcast<f32>(rkeys[kb + k]);
            let f = (s * s) / f32(k + 1u);
            if (f > bf) { bf = f; bs = s; bk = k + 1u; }
        }
        best_f[l] = bf;
        best_s[l] = bs;
        best_k[l] = bk;
        workgroupBarrier();
        if (l == 0u) {
            var f = -1.0;
            var sb = 0.0;
            var kbest = 1u;
            for (var i = 0u; i < RL; i++) {
                if (best_k[i] > 0u && best_f[i] > f) { f = best_f[i]; sb = best_s[i]; kbest = best_k[i]; }
            }
            st = vec2<f32>(sb / f32(kbest), bitcast<f32>(rkeys[kb + kbest - 1u]));
        }
    } else {
        var m = 0.0;
        for (var j = l; j < L; j += RL) { m = max(m, abs(rw[base + j])); }
        m = tree_max(l, m);
        var n1 = -127;
        if (m > 0.0 && is_finite(m)) {
            let fe = frexp(m);
            n1 = fe.exp - 1 + select(0, 1, fe.fract >= 0.75);
        }
        var n2 = n1 + 1 - (1 << (rp.bits - 2u));
        if (n1 == -127) { n2 = -127; }
        st = vec2<f32>(bitcast<f32>(n1), bitcast<f32>(n2));
    }
    if (l == 0u) { rstats[r] = st; }
}

// The projection of w in row r with that row's stats.
fn relax_proj(x: f32, st: vec2<f32>) -> f32 {
    let a = abs(x);
    switch rp.mode {
        case 0u: { return select(st.x, -st.x, x < 0.0); }
        case 1u: {
            if (a > st.y) { return select(st.x, -st.x, x < 0.0); }
            return 0.0;
        }
        case 2u: {
            if (st.x == 0.0) { return 0.0; }
            let qm = f32(rp.qmax);
            let q = clamp(round(x / st.x), -qm, qm);
            if (q == 0.0) { return 0.0; } // +0: the set's zero carries no sign
            return st.x * q;
        }
        case 3u: {
            if (a >= st.y && a > 0.0) { return select(st.x, -st.x, x < 0.0); }
            return 0.0;
        }
        default: {
            return pow2_round(x, bitcast<i32>(st.x), bitcast<i32>(st.y));
        }
    }
}

// relax_apply
@group(0) @binding(1) var<storage, read_write> reff: array<f32>;
@group(0) @binding(2) var<storage, read> aw: array<f32>;
@group(0) @binding(3) var<storage, read> astats: array<vec2<f32>>;

@compute @workgroup_size(WG)
fn relax_apply(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= rp.rows * rp.row_len) { return; }
    let x = aw[i];
    let p = relax_proj(x, astats[i / rp.row_len]);
    if (rp.hard != 0u) {
        reff[i] = p;
    } else {
        reff[i] = (rp.lambda * p + x) / (rp.lambda + 1.0);
    }
}

// relax_sort_init: keys[r * padded + j] = bits of |w[r * row_len + j]| (0 beyond row_len).
// relax_sort_step: one compare-exchange stage (k, j) of a bitonic sort of every padded row into
// descending order.
@group(0) @binding(1) var<storage, read_write> skeys: array<u32>;
@group(0) @binding(2) var<storage, read> sws: array<f32>;

@compute @workgroup_size(WG)
fn relax_sort_init(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= rp.rows * rp.padded) { return; }
    let r = i / rp.padded;
    let j = i % rp.padded;
    var key = 0u;
    if (j < rp.row_len) { key = bitcast<u32>(sws[r * rp.row_len + j]) & 0x7fffffffu; }
    skeys[i] = key;
}

struct SortStep {
    total: u32,
    padded: u32,
    k: u32,
    j: u32,
}

@group(0) @binding(0) var<uniform> ss: SortStep;
@group(0) @binding(1) var<storage, read_write> bkeys: array<u32>;

@compute @workgroup_size(WG)
fn relax_sort_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    // One invocation per compare-exchange pair: pair t of a row is (lo, lo + j).
    let t = gid.x + gid.y * nwg.x * WG;
    if (t >= ss.total / 2u) { return; }
    let half = ss.padded / 2u;
    let row = t / half;
    let tt = t % half;
    let lo = (tt / ss.j) * 2u * ss.j + tt % ss.j;
    let a_i = row * ss.padded + lo;
    let b_i = a_i + ss.j;
    let a = bkeys[a_i];
    let b = bkeys[b_i];
    // Blocks with (lo & k) == 0 sort descending, the others ascending; the last stage
    // (k = padded) is all descending.
    let desc = (lo & ss.k) == 0u;
    if ((desc && a < b) || (!desc && a > b)) {
        bkeys[a_i] = b;
        bkeys[b_i] = a;
    }
}
