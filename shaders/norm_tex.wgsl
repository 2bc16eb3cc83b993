// Batch norm 2-D reading its inputs from rgba32float textures: the CPU-backed-device variant of
// shaders/norm.wgsl (same BnParams, same formulas, same ReLU-mask rule), for H*W a multiple of 4.
// x and dy reach the textures by copy_buffer_to_texture (texel t = floats 4t .. 4t+3 of the NCHW
// buffer, at texel_xy(t) as in conv_tex.wgsl), so a channel's row of one image is hw4 = hw/4
// consecutive texels and every fetch brings 4 values: on llvmpipe a texel fetch is a vector
// gather (about 9 cycles for 4 floats), a storage-buffer load a scalar loop (about 20 per float).
//
//  - bn_stats_tex: one workgroup per channel, one shifted pass -> stats, running statistics;
//  - bn_apply_tex: one invocation per (n, c) row: y = x * scale + shift (then ReLU), vec4 stores;
//  - bn_bwd_reduce_tex: one workgroup per channel: dgamma, dbeta;
//  - bn_bwd_dx_tex: one invocation per (n, c) row: dx, vec4 stores.

struct BnParams {
    n: u32,
    c: u32,
    hw: u32,
    relu: u32,
    eps: f32,
    momentum: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: BnParams;

const WGR: u32 = 256u;
var<workgroup> red0: array<f32, WGR>;
var<workgroup> red1: array<f32, WGR>;

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

fn texel_xy(t: u32) -> vec3<u32> {
    let row = t >> 11u;
    return vec3<u32>(t & 2047u, row & 4095u, row >> 12u);
}

fn hsum(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}

// texel walk over (n, r4) of one channel: lane lid starts at texel lid of the channel, steps WGR
struct Walk {
    n: u32,
    r: u32,
    dn: u32,
    dr: u32,
}

fn walk_start(lid: u32, hw4: u32) -> Walk {
    return Walk(lid / hw4, lid % hw4, WGR / hw4, WGR % hw4);
}

fn walk_next(w: Walk, hw4: u32) -> Walk {
    var v = w;
    v.n += w.dn;
    v.r += w.dr;
    if (v.r >= hw4) {
        v.r -= hw4;
        v.n += 1u;
    }
    return v;
}

// dy masked by the forward's ReLU: y = fma(x, sc, sh) exactly as bn_apply computes it
fn g_of(dy: vec4<f32>, x: vec4<f32>, sc: f32, sh: f32) -> vec4<f32> {
    if (p.relu == 0u) {
        return dy;
    }
    return select(vec4<f32>(0.0), dy, fma(x, vec4<f32>(sc), vec4<f32>(sh)) > vec4<f32>(0.0));
}

// ---------------------------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read_write> stats: array<vec2<f32>>;
@group(0) @binding(2) var sx: texture_storage_2d_array<rgba32float, read>;
@group(0) @binding(3) var<storage, read_write> running: array<f32>;

fn ld_sx(t: u32) -> vec4<f32> {
    let xy = texel_xy(t);
    return textureLoad(sx, xy.xy, xy.z);
}

@compute @workgroup_size(256)
fn bn_stats_tex(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let c = wg.x;
    let hw4 = p.hw / 4u;
    let m = p.n * p.hw;
    let shift = ld_sx(c * hw4).x;
    var s = vec4<f32>(0.0);
    var q = vec4<f32>(0.0);
    for (var w = walk_start(lid, hw4); w.n < p.n; w = walk_next(w, hw4)) {
        let d = ld_sx((w.n * p.c + c) * hw4 + w.r) - vec4<f32>(shift);
        s += d;
        q = fma(d, d, q);
    }
    red0[lid] = hsum(s);
    red1[lid] = hsum(q);
    tree2(lid);
    if (lid == 0u) {
        let md = red0[0] / f32(m);
        let mean = shift + md;
        let ss = max(red1[0] - red0[0] * md, 0.0);
        let var_b = ss / f32(m);
        stats[c] = vec2<f32>(mean, 1.0 / sqrt(var_b + p.eps));
        let var_u = ss / f32(max(m, 2u) - 1u);
        running[c] = (1.0 - p.momentum) * running[c] + p.momentum * mean;
        running[p.c + c] = (1.0 - p.momentum) * running[p.c + c] + p.momentum * var_u;
    }
}

// ---------------------------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read_write> ay: array<vec4<f32>>;
@group(0) @binding(2) var ax: texture_storage_2d_array<rgba32float, read>;
@group(0) @binding(3) var<storage, read> astats: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read> gamma: array<f32>;
@group(0) @binding(5) var<storage, read> beta: array<f32>;

@compute @workgroup_size(64)
fn bn_apply_tex(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = gid.x + gid.y * nwg.x * 64u;
    if (row >= p.n * p.c) { return; }
    let c = row % p.c;
    let st = astats[c];
    let sc = st.y * gamma[c];
    let sh = beta[c] - st.x * sc;
    let hw4 = p.hw / 4u;
    let base = row * hw4;
    for (var j = 0u; j < hw4; j++) {
        let xy = texel_xy(base + j);
        var y = fma(textureLoad(ax, xy.xy, xy.z), vec4<f32>(sc), vec4<f32>(sh));
        if (p.relu != 0u) { y = max(y, vec4<f32>(0.0)); }
        ay[base + j] = y;
    }
}

// ---------------------------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(2) var<storage, read_write> dbeta: array<f32>;
@group(0) @binding(3) var rx: texture_storage_2d_array<rgba32float, read>;
@group(0) @binding(4) var rdy: texture_storage_2d_array<rgba32float, read>;
@group(0) @binding(5) var<storage, read> rstats: array<vec2<f32>>;
@group(0) @binding(6) var<storage, read> rgamma: array<f32>;
@group(0) @binding(7) var<storage, read> rbeta: array<f32>;

@compute @workgroup_size(256)
fn bn_bwd_reduce_tex(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let c = wg.x;
    let hw4 = p.hw / 4u;
    let st = rstats[c];
    let sc = st.y * rgamma[c];
    let sh = rbeta[c] - st.x * sc;
    var sg = vec4<f32>(0.0);
    var sgx = vec4<f32>(0.0);
    for (var w = walk_start(lid, hw4); w.n < p.n; w = walk_next(w, hw4)) {
        let xy = texel_xy((w.n * p.c + c) * hw4 + w.r);
        let x = textureLoad(rx, xy.xy, xy.z);
        let g = g_of(textureLoad(rdy, xy.xy, xy.z), x, sc, sh);
        sg += g;
        sgx = fma(g, (x - vec4<f32>(st.x)) * st.y, sgx);
    }
    red0[lid] = hsum(sgx);
    red1[lid] = hsum(sg);
    tree2(lid);
    if (lid == 0u) {
        dgamma[c] = red0[0];
        dbeta[c] = red1[0];
    }
}

// ---------------------------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read_write> ddx: array<vec4<f32>>;
@group(0) @binding(2) var dx_x: texture_storage_2d_array<rgba32float, read>;
@group(0) @binding(3) var dx_dy: texture_storage_2d_array<rgba32float, read>;
@group(0) @binding(4) var<storage, read> dx_stats: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read> dx_gamma: array<f32>;
@group(0) @binding(6) var<storage, read> dx_beta: array<f32>;
@group(0) @binding(7) var<storage, read> dx_dgamma: array<f32>;
@group(0) @binding(8) var<storage, read> dx_dbeta: array<f32>;

@compute @workgroup_size(64)
fn bn_bwd_dx_tex(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = gid.x + gid.y * nwg.x * 64u;
    if (row >= p.n * p.c) { return; }
    let c = row % p.c;
    let st = dx_stats[c];
    let m = f32(p.n * p.hw);
    let k = dx_gamma[c] * st.y;
    let sc = st.y * dx_gamma[c];
    let sh = dx_beta[c] - st.x * sc;
    let mb = dx_dbeta[c] / m;
    let mg = dx_dgamma[c] / m;
    let hw4 = p.hw / 4u;
    let base = row * hw4;
    for (var j = 0u; j < hw4; j++) {
        let xy = texel_xy(base + j);
        let x = textureLoad(dx_x, xy.xy, xy.z);
        let g = g_of(textureLoad(dx_dy, xy.xy, xy.z), x, sc, sh);
        let xhat = (x - vec4<f32>(st.x)) * st.y;
        ddx[base + j] = k * (g - vec4<f32>(mb) - xhat * mg);
    }
}
