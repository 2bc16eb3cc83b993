// Batch norm 2-D over NCHW (statistics per channel over N*H*W values), training and eval, with
// an optional fused ReLU, and its backward pass; storage-buffer kernels, then (at the end) their
// texture-fed variants for CPU-backed devices.
//
//  - bn_stats (train): one workgroup per channel, one pass: sums of d = x - x[first] and d^2
//    (shifted by the channel's first value, so the subtraction loses little) -> mean, biased
//    var -> stats[c] = (mean, invstd);
//    running_mean/var <- (1 - momentum) * running + momentum * (mean, unbiased var).
//  - bn_eval_stats: stats[c] = (running_mean, 1 / sqrt(running_var + eps)).
//  - bn_apply: y = (x - mean) * invstd * gamma + beta, then max(y, 0) when relu = 1 (computed as
//    x * scale + shift with scale = invstd * gamma, shift = beta - mean * scale).
//  - bn_bwd_reduce: one workgroup per channel: g = dy * (y > 0 when relu), xhat = (x - mean)
//    * invstd; dgamma = sum g * xhat, dbeta = sum g. y is recomputed from x exactly as bn_apply
//    computes it (the same fma), so neither backward kernel reads y: loads are what cost.
//  - bn_bwd_dx: dx = gamma * invstd * (g - dbeta / M - xhat * dgamma / M), M = N*H*W.
//  - bn_pool_tex: bn_apply_tex fused with the 2x2, stride-2 max pooling that follows it: the pooled
//    value and argmax, exactly as maxpool2_fwd computes them from bn_apply_tex's y, which is never
//    stored.
// Reductions are per-invocation strided sums then a fixed tree: deterministic. The strided walks
// over (n, hw) step their indices without a division per element (a vector division is scalar
// code on CPU-backed devices).

struct BnParams {
    n: u32,
    c: u32,
    hw: u32,
    relu: u32,
    eps: f32,
    momentum: f32,
    w: u32,      // bn_pool_tex: the input's width (H*W / w rows); unused elsewhere
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: BnParams;
// The params, copied into private registers at the start of every entry point (llvmpipe otherwise
// reloads the uniform buffer inside loops).
var<private> prm: BnParams;

// bn_stats / bn_eval_stats
@group(0) @binding(1) var<storage, read_write> stats: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> sx: array<f32>;
@group(0) @binding(3) var<storage, read_write> running: array<f32>;  // [mean(C), var(C)]

// Reduction workgroup size: 256 for the storage-buffer kernels; the texture-fed ones (CPU-backed
// devices, where a workgroup's tree costs more than its loads) are built with 64.
override WGR: u32 = 256u;
var<workgroup> red0: array<f32, WGR>;
var<workgroup> red1: array<f32, WGR>;

// The (n, r) position of element lid of a channel whose rows hold `len` elements (or texels), and
// the (n, r) step of WGR of them.
struct Walk {
    n: u32,
    r: u32,
    dn: u32,
    dr: u32,
}

fn walk_start(lid: u32, len: u32) -> Walk {
    return Walk(lid / len, lid % len, WGR / len, WGR % len);
}

fn walk_next(w: Walk, len: u32) -> Walk {
    var v = w;
    v.n += w.dn;
    v.r += w.dr;
    if (v.r >= len) {
        v.r -= len;
        v.n += 1u;
    }
    return v;
}

fn walk_idx(w: Walk, c: u32) -> u32 {
    return (w.n * prm.c + c) * prm.hw + w.r;
}

fn tree2(lid: u32) {
    workgroupBarrier();
    for (var s = WGR / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red0[lid] = red0[lid] + red0[lid + s];
            red1[lid] = red1[lid] + red1[lid + s];
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(WGR)
fn bn_stats(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    prm = p;
    let c = wg.x;
    let m = prm.n * prm.hw;
    let shift = sx[c * prm.hw];
    var s = 0.0;
    var q = 0.0;
    for (var w = walk_start(lid, prm.hw); w.n < prm.n; w = walk_next(w, prm.hw)) {
        let d = sx[walk_idx(w, c)] - shift;
        s += d;
        q = fma(d, d, q);
    }
    red0[lid] = s;
    red1[lid] = q;
    tree2(lid);
    if (lid == 0u) {
        let md = red0[0] / f32(m);
        let mean = shift + md;
        let ss = max(red1[0] - red0[0] * md, 0.0); // sum of (x - mean)^2
        let var_b = ss / f32(m);
        stats[c] = vec2<f32>(mean, 1.0 / sqrt(var_b + prm.eps));
        let var_u = ss / f32(max(m, 2u) - 1u);
        running[c] = (1.0 - prm.momentum) * running[c] + prm.momentum * mean;
        running[prm.c + c] = (1.0 - prm.momentum) * running[prm.c + c] + prm.momentum * var_u;
    }
}

@compute @workgroup_size(64)
fn bn_eval_stats(@builtin(global_invocation_id) gid: vec3<u32>) {
    prm = p;
    let c = gid.x;
    if (c >= prm.c) { return; }
    stats[c] = vec2<f32>(running[c], 1.0 / sqrt(running[prm.c + c] + prm.eps));
}

// bn_apply
@group(0) @binding(1) var<storage, read_write> ay: array<f32>;
@group(0) @binding(2) var<storage, read> ax: array<f32>;
@group(0) @binding(3) var<storage, read> astats: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read> gamma: array<f32>;
@group(0) @binding(5) var<storage, read> beta: array<f32>;

override WG: u32 = 256;

// One invocation per (n, c) row, so the channel's statistics and affine parameters are loaded
// once per row rather than once per element (loads are what cost on CPU-backed devices).
@compute @workgroup_size(WG)
fn bn_apply(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    prm = p;
    let row = gid.x + gid.y * nwg.x * WG;
    if (row >= prm.n * prm.c) { return; }
    let c = row % prm.c;
    let st = astats[c];
    let sc = st.y * gamma[c];
    let sh = beta[c] - st.x * sc;
    let base = row * prm.hw;
    for (var j = 0u; j < prm.hw; j++) {
        var y = fma(ax[base + j], sc, sh);
        if (prm.relu != 0u) { y = max(y, 0.0); }
        ay[base + j] = y;
    }
}

// bn_bwd_reduce
@group(0) @binding(1) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(2) var<storage, read_write> dbeta: array<f32>;
@group(0) @binding(3) var<storage, read> rx: array<f32>;
@group(0) @binding(4) var<storage, read> rdy: array<f32>;
@group(0) @binding(5) var<storage, read> rstats: array<vec2<f32>>;
@group(0) @binding(6) var<storage, read> rgamma: array<f32>;
@group(0) @binding(7) var<storage, read> rbeta: array<f32>;

// dy masked by the ReLU when the forward had one: y = fma(x, sc, sh) as in bn_apply.
fn g_of(dy: f32, x: f32, sc: f32, sh: f32) -> f32 {
    if (prm.relu != 0u && fma(x, sc, sh) <= 0.0) { return 0.0; }
    return dy;
}

@compute @workgroup_size(WGR)
fn bn_bwd_reduce(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    prm = p;
    let c = wg.x;
    let st = rstats[c];
    let sc = st.y * rgamma[c];
    let sh = rbeta[c] - st.x * sc;
    var sg = 0.0;
    var sgx = 0.0;
    for (var w = walk_start(lid, prm.hw); w.n < prm.n; w = walk_next(w, prm.hw)) {
        let i = walk_idx(w, c);
        let x = rx[i];
        let g = g_of(rdy[i], x, sc, sh);
        sg += g;
        sgx = fma(g, (x - st.x) * st.y, sgx);
    }
    red0[lid] = sgx;
    red1[lid] = sg;
    tree2(lid);
    if (lid == 0u) {
        dgamma[c] = red0[0];
        dbeta[c] = red1[0];
    }
}

// bn_bwd_dx
@group(0) @binding(1) var<storage, read_write> ddx: array<f32>;
@group(0) @binding(2) var<storage, read> dx_x: array<f32>;
@group(0) @binding(3) var<storage, read> dx_dy: array<f32>;
@group(0) @binding(4) var<storage, read> dx_stats: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read> dx_gamma: array<f32>;
@group(0) @binding(6) var<storage, read> dx_beta: array<f32>;
@group(0) @binding(7) var<storage, read> dx_dgamma: array<f32>;
@group(0) @binding(8) var<storage, read> dx_dbeta: array<f32>;

// One invocation per (n, c) row, as bn_apply.
@compute @workgroup_size(WG)
fn bn_bwd_dx(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    prm = p;
    let row = gid.x + gid.y * nwg.x * WG;
    if (row >= prm.n * prm.c) { return; }
    let c = row % prm.c;
    let st = dx_stats[c];
    let m = f32(prm.n * prm.hw);
    let k = dx_gamma[c] * st.y;
    let sc = st.y * dx_gamma[c];
    let sh = dx_beta[c] - st.x * sc;
    let mb = dx_dbeta[c] / m;
    let mg = dx_dgamma[c] / m;
    let base = row * prm.hw;
    for (var j = 0u; j < prm.hw; j++) {
        let i = base + j;
        let x = dx_x[i];
        let g = g_of(dx_dy[i], x, sc, sh);
        let xhat = (x - st.x) * st.y;
        ddx[i] = k * (g - mb - xhat * mg);
    }
}

// =============================================================================================
// The texture-fed variants for CPU-backed devices, for H*W a multiple of 4: the same formulas and
// ReLU-mask rule, with x and dy copied into rgba32float textures (texel t = floats 4t .. 4t+3 of
// the NCHW buffer, at texel_xy(t) as in conv_tex.wgsl), so a channel's row of one image is
// hw4 = hw/4 consecutive texels and every fetch brings 4 values: on llvmpipe a texel fetch is a
// vector gather (about 9 cycles for 4 floats), a storage-buffer load a scalar loop (about 20 per
// float).
//  - bn_stats_tex: one workgroup per channel, one shifted pass -> stats, running statistics;
//  - bn_apply_tex: one invocation per (n, c) row: y = x * scale + shift (then ReLU), vec4 stores;
//  - bn_bwd_reduce_tex: one workgroup per channel: dgamma, dbeta;
//  - bn_bwd_dx_tex: one invocation per (n, c) row: dx, vec4 stores;
//  - bn_pool_tex / bn_pool_rows_tex: apply, ReLU and 2x2 max pooling in one pass (below);
//  - bn_bwd_dx_rows_tex: dx straight into the row texture of the conv whose dy it is (below);
//  - bn_pool_bwd_reduce_tex / bn_pool_bwd_dx_tex: the backward pass of bn_pool_tex from the
//    pooled dy, the pooling's backward folded in (at the end).

fn texel_xy(t: u32) -> vec3<u32> {
    let row = t >> 11u;
    return vec3<u32>(t & 2047u, row & 4095u, row >> 12u);
}

fn hsum4(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}

// dy masked by the forward's ReLU: y = fma(x, sc, sh) exactly as bn_apply computes it
fn g4_of(dy: vec4<f32>, x: vec4<f32>, sc: f32, sh: f32) -> vec4<f32> {
    if (prm.relu == 0u) {
        return dy;
    }
    return select(vec4<f32>(0.0), dy, fma(x, vec4<f32>(sc), vec4<f32>(sh)) > vec4<f32>(0.0));
}

// ---------------------------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read_write> tstats: array<vec2<f32>>;
@group(0) @binding(2) var tsx: texture_storage_2d_array<rgba32float, read>;
@group(0) @binding(3) var<storage, read_write> trunning: array<f32>;

fn ld_sx(t: u32) -> vec4<f32> {
    let xy = texel_xy(t);
    return textureLoad(tsx, xy.xy, xy.z);
}

@compute @workgroup_size(WGR)
fn bn_stats_tex(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    prm = p;
    let c = wg.x;
    let hw4 = prm.hw / 4u;
    let m = prm.n * prm.hw;
    let shift = ld_sx(c * hw4).x;
    var s = vec4<f32>(0.0);
    var q = vec4<f32>(0.0);
    for (var w = walk_start(lid, hw4); w.n < prm.n; w = walk_next(w, hw4)) {
        let d = ld_sx((w.n * prm.c + c) * hw4 + w.r) - vec4<f32>(shift);
        s += d;
        q = fma(d, d, q);
    }
    red0[lid] = hsum4(s);
    red1[lid] = hsum4(q);
    tree2(lid);
    if (lid == 0u) {
        let md = red0[0] / f32(m);
        let mean = shift + md;
        let ss = max(red1[0] - red0[0] * md, 0.0);
        let var_b = ss / f32(m);
        tstats[c] = vec2<f32>(mean, 1.0 / sqrt(var_b + prm.eps));
        let var_u = ss / f32(max(m, 2u) - 1u);
        trunning[c] = (1.0 - prm.momentum) * trunning[c] + prm.momentum * mean;
        trunning[prm.c + c] = (1.0 - prm.momentum) * trunning[prm.c + c] + prm.momentum * var_u;
    }
}

// ---------------------------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read_write> tay: array<vec4<f32>>;
@group(0) @binding(2) var tax: texture_storage_2d_array<rgba32float, read>;
@group(0) @binding(3) var<storage, read> tastats: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read> tgamma: array<f32>;
@group(0) @binding(5) var<storage, read> tbeta: array<f32>;

@compute @workgroup_size(64)
fn bn_apply_tex(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    prm = p;
    let row = gid.x + gid.y * nwg.x * 64u;
    if (row >= prm.n * prm.c) { return; }
    let c = row % prm.c;
    let st = tastats[c];
    let sc = st.y * tgamma[c];
    let sh = tbeta[c] - st.x * sc;
    let hw4 = prm.hw / 4u;
    let base = row * hw4;
    for (var j = 0u; j < hw4; j++) {
        let xy = texel_xy(base + j);
        var y = fma(textureLoad(tax, xy.xy, xy.z), vec4<f32>(sc), vec4<f32>(sh));
        if (prm.relu != 0u) { y = max(y, vec4<f32>(0.0)); }
        tay[base + j] = y;
    }
}

// ---------------------------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read_write> tdgamma: array<f32>;
@group(0) @binding(2) var<storage, read_write> tdbeta: array<f32>;
@group(0) @binding(3) var trx: texture_storage_2d_array<rgba32float, read>;
@group(0) @binding(4) var trdy: texture_storage_2d_array<rgba32float, read>;
@group(0) @binding(5) var<storage, read> trstats: array<vec2<f32>>;
@group(0) @binding(6) var<storage, read> trgamma: array<f32>;
@group(0) @binding(7) var<storage, read> trbeta: array<f32>;

// The workgroup's sums of g * xhat and g (each lane's vec4 partials) into dgamma[c], dbeta[c].
fn store_dgamma_dbeta(lid: u32, c: u32, sgx: vec4<f32>, sg: vec4<f32>) {
    red0[lid] = hsum4(sgx);
    red1[lid] = hsum4(sg);
    tree2(lid);
    if (lid == 0u) {
        tdgamma[c] = red0[0];
        tdbeta[c] = red1[0];
    }
}

@compute @workgroup_size(WGR)
fn bn_bwd_reduce_tex(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    prm = p;
    let c = wg.x;
    let hw4 = prm.hw / 4u;
    let st = trstats[c];
    let sc = st.y * trgamma[c];
    let sh = trbeta[c] - st.x * sc;
    var sg = vec4<f32>(0.0);
    var sgx = vec4<f32>(0.0);
    for (var w = walk_start(lid, hw4); w.n < prm.n; w = walk_next(w, hw4)) {
        let xy = texel_xy((w.n * prm.c + c) * hw4 + w.r);
        let x = textureLoad(trx, xy.xy, xy.z);
        let g = g4_of(textureLoad(trdy, xy.xy, xy.z), x, sc, sh);
        sg += g;
        sgx = fma(g, (x - vec4<f32>(st.x)) * st.y, sgx);
    }
    store_dgamma_dbeta(lid, c, sgx, sg);
}

// ---------------------------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read_write> tddx: array<vec4<f32>>;
@group(0) @binding(2) var tdx_x: texture_storage_2d_array<rgba32float, read>;
@group(0) @binding(3) var tdx_dy: texture_storage_2d_array<rgba32float, read>;
@group(0) @binding(4) var<storage, read> tdx_stats: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read> tdx_gamma: array<f32>;
@group(0) @binding(6) var<storage, read> tdx_beta: array<f32>;
@group(0) @binding(7) var<storage, read> tdx_dgamma: array<f32>;
@group(0) @binding(8) var<storage, read> tdx_dbeta: array<f32>;

// Per-channel terms of dx: dx = k * (g - mb - xhat * mg), g = dy masked by the forward's ReLU.
struct DxCoefs {
    mean: f32,
    inv: f32,
    k: f32,
    sc: f32,
    sh: f32,
    mb: f32,
    mg: f32,
}

fn dx_coefs(c: u32) -> DxCoefs {
    let st = tdx_stats[c];
    let m = f32(prm.n * prm.hw);
    let sc = st.y * tdx_gamma[c];
    return DxCoefs(st.x, st.y, tdx_gamma[c] * st.y, sc, tdx_beta[c] - st.x * sc,
                   tdx_dbeta[c] / m, tdx_dgamma[c] / m);
}

fn dx4(d: DxCoefs, x: vec4<f32>, dy: vec4<f32>) -> vec4<f32> {
    return dx4_of_g(d, x, g4_of(dy, x, d.sc, d.sh));
}

// dx from g, dy already masked by the forward's ReLU
fn dx4_of_g(d: DxCoefs, x: vec4<f32>, g: vec4<f32>) -> vec4<f32> {
    let xhat = (x - vec4<f32>(d.mean)) * d.inv;
    return d.k * (g - vec4<f32>(d.mb) - xhat * d.mg);
}

@compute @workgroup_size(64)
fn bn_bwd_dx_tex(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    prm = p;
    let row = gid.x + gid.y * nwg.x * 64u;
    if (row >= prm.n * prm.c) { return; }
    let d = dx_coefs(row % prm.c);
    let hw4 = prm.hw / 4u;
    let base = row * hw4;
    for (var j = 0u; j < hw4; j++) {
        let xy = texel_xy(base + j);
        let x = textureLoad(tdx_x, xy.xy, xy.z);
        tddx[base + j] = dx4(d, x, textureLoad(tdx_dy, xy.xy, xy.z));
    }
}

// ---------------------------------------------------------------------------------------------
// bn_bwd_dx_rows_tex: bn_bwd_dx_tex writing dx into a row texture in the layout of conv_tex.wgsl's
// pack_act (rows of prm.w columns, ceil(prm.w / 4) texels each, zeros past prm.w) for the texture-fed
// conv whose dy it is, so that conv packs nothing. One invocation per (n, c) plane, as
// bn_bwd_dx_tex. prm.w is even and H*W a multiple of 4, so the 4 columns f .. f + 3 of a row texel
// are x's (and dy's) texel f / 4, or straddle texels f / 4 and f / 4 + 1 at offset 2; the second
// is fetched only when the texel holds more than 2 columns of the row, so never past the plane.
@group(0) @binding(1) var tdx_rows: texture_storage_2d_array<rgba32float, write>;

fn quad(t: texture_storage_2d_array<rgba32float, read>, f: u32, second: bool) -> vec4<f32> {
    let xy = texel_xy(f >> 2u);
    let a = textureLoad(t, xy.xy, xy.z);
    if ((f & 2u) == 0u) { return a; }
    var b = vec4<f32>(0.0);
    if (second) {
        let xy1 = texel_xy((f >> 2u) + 1u);
        b = textureLoad(t, xy1.xy, xy1.z);
    }
    return vec4<f32>(a.zw, b.xy);
}

@compute @workgroup_size(64)
fn bn_bwd_dx_rows_tex(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    prm = p;
    let row = gid.x + gid.y * nwg.x * 64u;
    if (row >= prm.n * prm.c) { return; }
    let d = dx_coefs(row % prm.c);
    let h = prm.hw / prm.w;
    let w4 = (prm.w + 3u) / 4u;
    for (var ih = 0u; ih < h; ih++) {
        for (var j = 0u; j < w4; j++) {
            let f = row * prm.hw + ih * prm.w + 4u * j;
            let second = 4u * j + 2u < prm.w;
            let x = quad(tdx_x, f, second);
            let col = vec4<u32>(4u * j) + vec4<u32>(0u, 1u, 2u, 3u);
            let v = select(vec4<f32>(0.0), dx4(d, x, quad(tdx_dy, f, second)), col < vec4<u32>(prm.w));
            let xy = texel_xy((row * h + ih) * w4 + j);
            textureStore(tdx_rows, xy.xy, xy.z, v);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// bn_pool_tex: out pooled y, argmax (0..3, row-major in the window, first maximum wins); in x
// (texture), stats, gamma, beta. One invocation per pooled row (n, c, oh) of prm.w / 2 windows, so
// the index arithmetic (a vector integer division is scalar code on CPU-backed devices) is paid
// once per row. prm.w is even and divides prm.hw (the host checks); an odd last input row is not
// pooled (floor). Each window row is one float pair inside one texel: 2 fetches per window.
@group(0) @binding(1) var<storage, read_write> tpy: array<f32>;
@group(0) @binding(2) var<storage, read_write> tparg: array<u32>;
// Whether the pooling kernels store the argmax (not where bn_pool_bwd_*_tex recompute it).
override ARG: bool = true;
@group(0) @binding(3) var tpx: texture_storage_2d_array<rgba32float, read>;
@group(0) @binding(4) var<storage, read> tpstats: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read> tpgamma: array<f32>;
@group(0) @binding(6) var<storage, read> tpbeta: array<f32>;

// bn(x) at the float pair f, f + 1 (f even), as bn_apply_tex computes it.
fn bn_pair(f: u32, sc: f32, sh: f32) -> vec2<f32> {
    let xy = texel_xy(f >> 2u);
    let t = textureLoad(tpx, xy.xy, xy.z);
    let y = fma(select(t.xy, t.zw, (f & 2u) != 0u), vec2<f32>(sc), vec2<f32>(sh));
    return select(y, max(y, vec2<f32>(0.0)), prm.relu != 0u);
}

// The max of bn(x) over the 2x2 window whose top-left float is f (rows of prm.w floats), and its
// argmax (0..3, row-major in the window, first maximum wins).
struct PoolWin {
    best: f32,
    arg: u32,
}

fn argmax4(a: vec2<f32>, b: vec2<f32>) -> PoolWin {
    var best = a.x;
    var arg = 0u;
    if (a.y > best) { best = a.y; arg = 1u; }
    if (b.x > best) { best = b.x; arg = 2u; }
    if (b.y > best) { best = b.y; arg = 3u; }
    return PoolWin(best, arg);
}

fn pool_window(f: u32, sc: f32, sh: f32) -> PoolWin {
    return argmax4(bn_pair(f, sc, sh), bn_pair(f + prm.w, sc, sh));
}

// bn(x) of a whole texel, as bn_pair computes each pair
fn bn_texel(t: u32, sc: f32, sh: f32) -> vec4<f32> {
    let xy = texel_xy(t);
    let y = fma(textureLoad(tpx, xy.xy, xy.z), vec4<f32>(sc), vec4<f32>(sh));
    return select(y, max(y, vec4<f32>(0.0)), prm.relu != 0u);
}

// bn(x) at the 4 floats f .. f + 3 (f even): one texel, or two halves
fn bn_quad(f: u32, sc: f32, sh: f32) -> vec4<f32> {
    let a = bn_texel(f >> 2u, sc, sh);
    if ((f & 2u) == 0u) { return a; }
    let b = bn_texel((f >> 2u) + 1u, sc, sh);
    return vec4<f32>(a.zw, b.xy);
}

// Pooled row r (over n, c, pooled rows): its width, the first float of its top window row, its
// first output index, and its channel's scale and shift.
struct PoolRow {
    ow: u32,
    top: u32,
    o0: u32,
    sc: f32,
    sh: f32,
}

fn pool_row(r: u32) -> PoolRow {
    let oh = prm.hw / prm.w / 2u;
    let ow = prm.w / 2u;
    let nc = r / oh;
    let c = nc % prm.c;
    let st = tpstats[c];
    let sc = st.y * tpgamma[c];
    return PoolRow(ow, nc * prm.hw + 2u * (r - nc * oh) * prm.w, r * ow, sc, tpbeta[c] - st.x * sc);
}

@compute @workgroup_size(64)
fn bn_pool_tex(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    prm = p;
    let r = gid.x + gid.y * nwg.x * 64u;
    if (r >= prm.n * prm.c * (prm.hw / prm.w / 2u)) { return; }
    let q = pool_row(r);
    for (var j = 0u; j < q.ow; j++) {
        let win = pool_window(q.top + 2u * j, q.sc, q.sh);
        tpy[q.o0 + j] = win.best;
        if (ARG) { tparg[q.o0 + j] = win.arg; }
    }
}

// ---------------------------------------------------------------------------------------------
// bn_pool_rows_tex: bn_pool_tex writing the pooled values into a row texture instead of a
// buffer, in the layout of conv_tex.wgsl's pack_act (texel r * ow4 + j holds columns 4j .. 4j + 3
// of pooled row r, zeros past ow), for the texture-fed conv that reads them; the argmax as
// bn_pool_tex. One texel store per 4 windows instead of 4 float stores, and no packing kernel.
@group(0) @binding(1) var tqy: texture_storage_2d_array<rgba32float, write>;

@compute @workgroup_size(64)
fn bn_pool_rows_tex(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    prm = p;
    let r = gid.x + gid.y * nwg.x * 64u;
    if (r >= prm.n * prm.c * (prm.hw / prm.w / 2u)) { return; }
    let q = pool_row(r);
    let ow = q.ow;
    let top = q.top;
    let o0 = q.o0;
    let sc = q.sc;
    let sh = q.sh;
    let ow4 = (ow + 3u) / 4u;
    // top % 4 == 0 (prm.w even, H*W a multiple of 4), so output texel j's 4 windows are floats
    // top + 8j .. + 7 of the top window row and the same prm.w floats on; columns past the row are
    // masked
    for (var j = 0u; j < ow4; j++) {
        let a0 = bn_quad(top + 8u * j, sc, sh);
        let a1 = bn_quad(top + 8u * j + 4u, sc, sh);
        let b0 = bn_quad(top + prm.w + 8u * j, sc, sh);
        let b1 = bn_quad(top + prm.w + 8u * j + 4u, sc, sh);
        let col = 4u * j;
        let q0 = argmax4(a0.xy, b0.xy);
        let q1 = argmax4(a0.zw, b0.zw);
        let q2 = argmax4(a1.xy, b1.xy);
        let q3 = argmax4(a1.zw, b1.zw);
        if (ARG) {
            tparg[o0 + col] = q0.arg;
            if (col + 1u < ow) { tparg[o0 + col + 1u] = q1.arg; }
            if (col + 2u < ow) { tparg[o0 + col + 2u] = q2.arg; }
            if (col + 3u < ow) { tparg[o0 + col + 3u] = q3.arg; }
        }
        let v = vec4<f32>(q0.best, q1.best, q2.best, q3.best);
        let keep = vec4<u32>(col) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(ow);
        let xy = texel_xy(r * ow4 + j);
        textureStore(tqy, xy.xy, xy.z, select(vec4<f32>(0.0), v, keep));
    }
}

// ---------------------------------------------------------------------------------------------
// bn_pool_bwd_reduce_tex / bn_pool_bwd_dx_tex: the backward pass of a batch norm (and ReLU) whose
// 2x2 max pooling bn_pool_tex / bn_pool_rows_tex computed, from the pooled dy: the pooling's own
// backward pass (maxpool2_bwd*, a full-size dy, its copy into a texture) and the forward's argmax
// stores are not needed. An element's dy is its window's pooled dy where it is the window's
// argmax and 0 elsewhere, with the argmax recomputed from x exactly as the forward computes it
// (the same fma, ReLU and comparisons, so the same argmax and ties); then the formulas of
// bn_bwd_reduce_tex and bn_bwd_dx_tex. For prm.w a multiple of 4 and H = HW / prm.w even (the host
// checks): texel j of a pooled row's two window rows holds windows 2j and 2j + 1, whose pooled
// dys are floats 2j, 2j + 1 of the pooled row (read from the pooled dy's texture, below).
// The pooled dy is a texture (texel t = floats 4t .. 4t + 3 of the N x C x OH x OW buffer, copied
// in): a texel fetch is a vector gather on llvmpipe, a storage-buffer load a per-lane loop.
@group(0) @binding(4) var trpdy: texture_storage_2d_array<rgba32float, read>;
@group(0) @binding(3) var tdx_pdy: texture_storage_2d_array<rgba32float, read>;

// Pooled dys o, o + 1 (o even, so both in texel o / 4) of the pooled dy texture t.
fn pdy_pair(t: texture_storage_2d_array<rgba32float, read>, o: u32) -> vec2<f32> {
    let xy = texel_xy(o >> 2u);
    let v = textureLoad(t, xy.xy, xy.z);
    return select(v.xy, v.zw, (o & 2u) != 0u);
}

// Pooled dy o of the pooled dy texture t.
fn pdy_one(t: texture_storage_2d_array<rgba32float, read>, o: u32) -> f32 {
    let xy = texel_xy(o >> 2u);
    let v = textureLoad(t, xy.xy, xy.z);
    let k = o & 3u;
    return select(select(v.x, v.y, k == 1u), select(v.z, v.w, k == 3u), k >= 2u);
}

// g (dy masked by the ReLU) of the top (x texel xa) and bottom (xb) rows of two windows with
// pooled dys d.
fn pooled_g(xa: vec4<f32>, xb: vec4<f32>, d: vec2<f32>, sc: f32, sh: f32) -> array<vec4<f32>, 2> {
    let za = fma(xa, vec4<f32>(sc), vec4<f32>(sh));
    let zb = fma(xb, vec4<f32>(sc), vec4<f32>(sh));
    var ya = za;
    var yb = zb;
    if (prm.relu != 0u) {
        ya = max(za, vec4<f32>(0.0));
        yb = max(zb, vec4<f32>(0.0));
    }
    let a0 = argmax4(ya.xy, yb.xy).arg;
    let a1 = argmax4(ya.zw, yb.zw).arg;
    let z = 0.0;
    var ga = vec4<f32>(select(z, d.x, a0 == 0u), select(z, d.x, a0 == 1u),
                       select(z, d.y, a1 == 0u), select(z, d.y, a1 == 1u));
    let gb = vec4<f32>(select(z, d.x, a0 == 2u), select(z, d.x, a0 == 3u),
                       select(z, d.y, a1 == 2u), select(z, d.y, a1 == 3u));
    // the ReLU's mask matters only for a window's top-left element: any other is the argmax
    // only when it is above a value >= 0, so its z > 0
    if (prm.relu != 0u) {
        ga = select(vec4<f32>(0.0), ga, za > vec4<f32>(0.0));
    }
    return array<vec4<f32>, 2>(ga, gb);
}

// (sum of g * xhat, sum of g) plus the top (xa, g[0]) and bottom (xb, g[1]) texels of a pair of
// windows.
fn add_pair_sums(sums: array<vec4<f32>, 2>, g: array<vec4<f32>, 2>, xa: vec4<f32>, xb: vec4<f32>,
                 st: vec2<f32>) -> array<vec4<f32>, 2> {
    var sgx = fma(g[0], (xa - vec4<f32>(st.x)) * st.y, sums[0]);
    sgx = fma(g[1], (xb - vec4<f32>(st.x)) * st.y, sgx);
    return array<vec4<f32>, 2>(sgx, sums[1] + (g[0] + g[1]));
}

// The pooled backward's per-channel dx coefficients (dx_coefs' DxCoefs) pass from the reduce
// kernel to the dx kernel in a texture: texel 2c = (mean, inv, k, sc), texel 2c + 1 = (sh, mb, mg,
// 0). Two texel fetches per dx invocation instead of dx_coefs' seven scalar storage-buffer loads,
// which llvmpipe runs lane by lane. The values are dx_coefs' bit for bit: the same products and
// quotients of the same floats (k = gamma * inv, the rest in dx_coefs' order).
@group(0) @binding(8) var tr_coef: texture_storage_2d_array<rgba32float, write>;
@group(0) @binding(4) var tdx_coef: texture_storage_2d_array<rgba32float, read>;

// store_dgamma_dbeta, then channel c's coefficients from the sums and the forward's terms.
fn store_pool_bwd_sums(lid: u32, c: u32, sums: array<vec4<f32>, 2>, st: vec2<f32>, gam: f32,
                       sc: f32, sh: f32) {
    store_dgamma_dbeta(lid, c, sums[0], sums[1]);
    if (lid == 0u) {
        let m = f32(prm.n * prm.hw);
        let a = texel_xy(2u * c);
        let b = texel_xy(2u * c + 1u);
        textureStore(tr_coef, a.xy, a.z, vec4<f32>(st.x, st.y, gam * st.y, sc));
        textureStore(tr_coef, b.xy, b.z, vec4<f32>(sh, red1[0] / m, red0[0] / m, 0.0));
    }
}

fn pool_dx_coefs(c: u32) -> DxCoefs {
    let a = texel_xy(2u * c);
    let b = texel_xy(2u * c + 1u);
    let u = textureLoad(tdx_coef, a.xy, a.z);
    let v = textureLoad(tdx_coef, b.xy, b.z);
    return DxCoefs(u.x, u.y, u.z, u.w, v.x, v.y, v.z);
}

@compute @workgroup_size(WGR)
fn bn_pool_bwd_reduce_tex(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    prm = p;
    let c = wg.x;
    let st = trstats[c];
    let gam = trgamma[c];
    let sc = st.y * gam;
    let sh = trbeta[c] - st.x * sc;
    let w4 = prm.w / 4u;
    let oh = prm.hw / prm.w / 2u;
    // (sum of g * xhat, sum of g)
    var sums = array<vec4<f32>, 2>(vec4<f32>(0.0), vec4<f32>(0.0));
    // the walk visits the pooled rows (n, r) of channel c
    for (var w = walk_start(lid, oh); w.n < prm.n; w = walk_next(w, oh)) {
        let nc = w.n * prm.c + c;
        let top = nc * (prm.hw / 4u) + 2u * w.r * w4;
        let d0 = (nc * oh + w.r) * w4;
        for (var j = 0u; j < w4; j++) {
            let ta = texel_xy(top + j);
            let tb = texel_xy(top + w4 + j);
            let xa = textureLoad(trx, ta.xy, ta.z);
            let xb = textureLoad(trx, tb.xy, tb.z);
            let g = pooled_g(xa, xb, pdy_pair(trpdy, 2u * (d0 + j)), sc, sh);
            sums = add_pair_sums(sums, g, xa, xb, st);
        }
    }
    store_pool_bwd_sums(lid, c, sums, st, gam, sc, sh);
}

// One invocation per pooled row (n, c, r): dx of its two window rows, vec4 stores into a
// buffer (bn_pool_bwd_dx_tex) or texel stores into the row texture of the conv whose dy it is
// (bn_pool_bwd_dx_rows_tex; with prm.w a multiple of 4 its texels are the buffer's).
struct PoolDx {
    ta: u32,    // x texel of the top window row's texel j, and of the bottom row's
    tb: u32,
    a: vec4<f32>,  // dx there
    b: vec4<f32>,
}

// Texel j of pooled row (n, c, r): top = x's first texel of the row's top window row.
fn pool_dx(d: DxCoefs, top: u32, pr: u32, j: u32) -> PoolDx {
    let w4 = prm.w / 4u;
    let ta = texel_xy(top + j);
    let tb = texel_xy(top + w4 + j);
    let xa = textureLoad(tdx_x, ta.xy, ta.z);
    let xb = textureLoad(tdx_x, tb.xy, tb.z);
    let g = pooled_g(xa, xb, pdy_pair(tdx_pdy, 2u * (pr * w4 + j)), d.sc, d.sh);
    return PoolDx(top + j, top + w4 + j, dx4_of_g(d, xa, g[0]), dx4_of_g(d, xb, g[1]));
}

// x's first texel of pooled row pr's top window row.
fn pool_row_top(pr: u32, oh: u32) -> u32 {
    let nc = pr / oh;
    return nc * (prm.hw / 4u) + 2u * (pr - nc * oh) * (prm.w / 4u);
}

@compute @workgroup_size(64)
fn bn_pool_bwd_dx_tex(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    prm = p;
    let pr = gid.x + gid.y * nwg.x * 64u;
    let oh = prm.hw / prm.w / 2u;
    if (pr >= prm.n * prm.c * oh) { return; }
    let d = pool_dx_coefs((pr / oh) % prm.c);
    let top = pool_row_top(pr, oh);
    for (var j = 0u; j < prm.w / 4u; j++) {
        let q = pool_dx(d, top, pr, j);
        tddx[q.ta] = q.a;
        tddx[q.tb] = q.b;
    }
}

@compute @workgroup_size(64)
fn bn_pool_bwd_dx_rows_tex(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    prm = p;
    let pr = gid.x + gid.y * nwg.x * 64u;
    let oh = prm.hw / prm.w / 2u;
    if (pr >= prm.n * prm.c * oh) { return; }
    let d = pool_dx_coefs((pr / oh) % prm.c);
    let top = pool_row_top(pr, oh);
    for (var j = 0u; j < prm.w / 4u; j++) {
        let q = pool_dx(d, top, pr, j);
        let ta = texel_xy(q.ta);
        let tb = texel_xy(q.tb);
        textureStore(tdx_rows, ta.xy, ta.z, q.a);
        textureStore(tdx_rows, tb.xy, tb.z, q.b);
    }
}

// ---------------------------------------------------------------------------------------------
// bn_pool_bwd_reduce2_tex / bn_pool_bwd_dx_rows2_tex: the same for any even prm.w (and an even H),
// with dx into the row texture of the conv whose dy it is (rows of ceil(prm.w / 4) texels, zeros
// past prm.w). Texel j of a window row holds columns 4j .. 4j + 3 (windows 2j and 2j + 1; the second
// only where 2j + 1 < OW), read from x as one texel or halves of two (quad); the pooled dys are
// two floats. A window that does not exist gets dy 0, so its columns add nothing to the sums, and
// they are stored as 0.
// The pooled dys of windows 2j and 2j + 1 of pooled row pr (0 for one that does not exist) from
// the pooled dy texture t: one texel where both lie in it, else two.
fn pooled_pair(t: texture_storage_2d_array<rgba32float, read>, pr: u32, j: u32) -> vec2<f32> {
    let ow = prm.w / 2u;
    let o = pr * ow + 2u * j;
    if (2u * j + 1u >= ow) {
        return vec2<f32>(pdy_one(t, o), 0.0);
    }
    if ((o & 3u) != 3u) {
        let xy = texel_xy(o >> 2u);
        let v = textureLoad(t, xy.xy, xy.z);
        let k = o & 3u;
        return select(select(v.xy, v.yz, k == 1u), v.zw, k == 2u);
    }
    return vec2<f32>(pdy_one(t, o), pdy_one(t, o + 1u));
}

@compute @workgroup_size(WGR)
fn bn_pool_bwd_reduce2_tex(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    prm = p;
    let c = wg.x;
    let st = trstats[c];
    let gam = trgamma[c];
    let sc = st.y * gam;
    let sh = trbeta[c] - st.x * sc;
    let w4 = (prm.w + 3u) / 4u;
    let oh = prm.hw / prm.w / 2u;
    // (sum of g * xhat, sum of g)
    var sums = array<vec4<f32>, 2>(vec4<f32>(0.0), vec4<f32>(0.0));
    for (var w = walk_start(lid, oh); w.n < prm.n; w = walk_next(w, oh)) {
        let nc = w.n * prm.c + c;
        let pr = nc * oh + w.r;
        let top = nc * prm.hw + 2u * w.r * prm.w;
        for (var j = 0u; j < w4; j++) {
            let second = 4u * j + 2u < prm.w;
            let xa = quad(trx, top + 4u * j, second);
            let xb = quad(trx, top + prm.w + 4u * j, second);
            let g = pooled_g(xa, xb, pooled_pair(trpdy, pr, j), sc, sh);
            sums = add_pair_sums(sums, g, xa, xb, st);
        }
    }
    store_pool_bwd_sums(lid, c, sums, st, gam, sc, sh);
}

@compute @workgroup_size(64)
fn bn_pool_bwd_dx_rows2_tex(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    prm = p;
    let pr = gid.x + gid.y * nwg.x * 64u;
    let oh = prm.hw / prm.w / 2u;
    if (pr >= prm.n * prm.c * oh) { return; }
    let nc = pr / oh;
    let r = pr - nc * oh;
    let d = pool_dx_coefs(nc % prm.c);
    let w4 = (prm.w + 3u) / 4u;
    let top = nc * prm.hw + 2u * r * prm.w;
    // texel rows of the two window rows in the row texture (prm.hw / prm.w rows per plane)
    let row_a = (nc * (prm.hw / prm.w) + 2u * r) * w4;
    for (var j = 0u; j < w4; j++) {
        let second = 4u * j + 2u < prm.w;
        let xa = quad(tdx_x, top + 4u * j, second);
        let xb = quad(tdx_x, top + prm.w + 4u * j, second);
        let g = pooled_g(xa, xb, pooled_pair(tdx_pdy, pr, j), d.sc, d.sh);
        let keep = vec4<u32>(4u * j) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(prm.w);
        let ta = texel_xy(row_a + j);
        let tb = texel_xy(row_a + w4 + j);
        textureStore(tdx_rows, ta.xy, ta.z, select(vec4<f32>(0.0), dx4_of_g(d, xa, g[0]), keep));
        textureStore(tdx_rows, tb.xy, tb.z, select(vec4<f32>(0.0), dx4_of_g(d, xb, g[1]), keep));
    }
}
