// Pooling over NCHW: 2x2 max pooling with stride 2 (floor), which records the argmax (0..3,
// row-major in the window, first maximum wins) for its backward pass, and global average pooling.

struct PoolParams {
    n: u32, c: u32, h: u32, w: u32,
    oh: u32, ow: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: PoolParams;
// The params, copied into private registers at the start of every entry point (llvmpipe otherwise
// reloads the uniform buffer inside loops).
var<private> prm: PoolParams;

override WG: u32 = 256;

fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// The first element of output row r's top input row, in units of `per_row` per input row (prm.w
// floats, or prm.w / 2 vec2s).
fn window_top(r: u32, per_row: u32) -> u32 {
    let oh = r % prm.oh;
    let nc = r / prm.oh;
    return (nc * prm.h + 2u * oh) * per_row;
}

// maxpool2_fwd: out y, arg; in x
@group(0) @binding(1) var<storage, read_write> fy: array<f32>;
@group(0) @binding(2) var<storage, read_write> farg: array<u32>;
@group(0) @binding(3) var<storage, read> fx: array<f32>;

// One invocation per output row (n, c, oh), looping over ow: index arithmetic (vector integer
// division is scalar code on CPU-backed devices) is paid once per row, not per element.
@compute @workgroup_size(WG)
fn maxpool2_fwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    prm = p;
    let r = flat(gid, nwg);
    if (r >= prm.n * prm.c * prm.oh) { return; }
    let row0 = window_top(r, prm.w);
    let o0 = r * prm.ow;
    for (var ow = 0u; ow < prm.ow; ow++) {
        let base = row0 + 2u * ow;
        var best = fx[base];
        var arg = 0u;
        let v1 = fx[base + 1u];
        if (v1 > best) { best = v1; arg = 1u; }
        let v2 = fx[base + prm.w];
        if (v2 > best) { best = v2; arg = 2u; }
        let v3 = fx[base + prm.w + 1u];
        if (v3 > best) { best = v3; arg = 3u; }
        fy[o0 + ow] = best;
        farg[o0 + ow] = arg;
    }
}

// maxpool2_bwd: out dx; in dy, arg. One invocation per output row, as the forward: each window
// is written whole (dy at the argmax, 0 elsewhere), so each dy and arg is loaded once. An odd
// last row or column that no window covers gets 0 from the row of windows above it or the last
// window to its left.
@group(0) @binding(1) var<storage, read_write> bdx: array<f32>;
@group(0) @binding(2) var<storage, read> bdy: array<f32>;
@group(0) @binding(3) var<storage, read> barg: array<u32>;

@compute @workgroup_size(WG)
fn maxpool2_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    prm = p;
    let r = flat(gid, nwg);
    if (r >= prm.n * prm.c * prm.oh) { return; }
    let row0 = window_top(r, prm.w);
    let o0 = r * prm.ow;
    let last_row = r % prm.oh + 1u == prm.oh && prm.h % 2u == 1u;
    for (var ow = 0u; ow < prm.ow; ow++) {
        let g = bdy[o0 + ow];
        let a = barg[o0 + ow];
        let base = row0 + 2u * ow;
        bdx[base] = select(0.0, g, a == 0u);
        bdx[base + 1u] = select(0.0, g, a == 1u);
        bdx[base + prm.w] = select(0.0, g, a == 2u);
        bdx[base + prm.w + 1u] = select(0.0, g, a == 3u);
        if (last_row) {
            bdx[base + 2u * prm.w] = 0.0;
            bdx[base + 2u * prm.w + 1u] = 0.0;
        }
    }
    if (prm.w % 2u == 1u) {
        let base = row0 + 2u * prm.ow;
        bdx[base] = 0.0;
        bdx[base + prm.w] = 0.0;
        if (last_row) {
            bdx[base + 2u * prm.w] = 0.0;
        }
    }
}

// maxpool2_fwd2 / maxpool2_bwd2: the same for an even width, with x (and dx) read (written) as
// vec2s: a window's two rows are one vec2 load (or store) each, where llvmpipe pays per load about
// the same for a vec2 as for a float. Same comparisons, so the same argmax and ties.
@group(0) @binding(1) var<storage, read_write> fy2: array<f32>;
@group(0) @binding(2) var<storage, read_write> farg2: array<u32>;
@group(0) @binding(3) var<storage, read> fx2: array<vec2<f32>>;

@compute @workgroup_size(WG)
fn maxpool2_fwd2(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    prm = p;
    let r = flat(gid, nwg);
    if (r >= prm.n * prm.c * prm.oh) { return; }
    let w2 = prm.w / 2u;
    let top = window_top(r, w2);
    let o0 = r * prm.ow;
    for (var ow = 0u; ow < prm.ow; ow++) {
        let a = fx2[top + ow];
        let b = fx2[top + w2 + ow];
        var best = a.x;
        var arg = 0u;
        if (a.y > best) { best = a.y; arg = 1u; }
        if (b.x > best) { best = b.x; arg = 2u; }
        if (b.y > best) { best = b.y; arg = 3u; }
        fy2[o0 + ow] = best;
        farg2[o0 + ow] = arg;
    }
}

@group(0) @binding(1) var<storage, read_write> bdx2: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> bdy2: array<f32>;
@group(0) @binding(3) var<storage, read> barg2: array<u32>;

@compute @workgroup_size(WG)
fn maxpool2_bwd2(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    prm = p;
    let r = flat(gid, nwg);
    if (r >= prm.n * prm.c * prm.oh) { return; }
    let w2 = prm.w / 2u;
    let top = window_top(r, w2);
    let o0 = r * prm.ow;
    let last_row = r % prm.oh + 1u == prm.oh && prm.h % 2u == 1u;
    for (var ow = 0u; ow < prm.ow; ow++) {
        let g = bdy2[o0 + ow];
        let a = barg2[o0 + ow];
        bdx2[top + ow] = vec2<f32>(select(0.0, g, a == 0u), select(0.0, g, a == 1u));
        bdx2[top + w2 + ow] = vec2<f32>(select(0.0, g, a == 2u), select(0.0, g, a == 3u));
        if (last_row) {
            bdx2[top + 2u * w2 + ow] = vec2<f32>(0.0);
        }
    }
}

// maxpool2_bwd4: maxpool2_bwd2 for widths that are a multiple of 4 (then ow is even and every
// row starts on a vec4): per pair of windows one vec2 load of dy, one of the argmax and two vec4
// stores, half the loads of maxpool2_bwd2 (a storage load costs llvmpipe a per-lane loop).
@group(0) @binding(1) var<storage, read_write> bdx4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bdy4: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read> barg4: array<vec2<u32>>;

@compute @workgroup_size(WG)
fn maxpool2_bwd4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    prm = p;
    let r = flat(gid, nwg);
    if (r >= prm.n * prm.c * prm.oh) { return; }
    let w4 = prm.w / 4u;
    let top = window_top(r, w4);
    let o2 = r * w4;
    let last_row = r % prm.oh + 1u == prm.oh && prm.h % 2u == 1u;
    for (var k = 0u; k < w4; k++) {
        let g = bdy4[o2 + k];
        let a = barg4[o2 + k];
        bdx4[top + k] = vec4<f32>(
            select(0.0, g.x, a.x == 0u), select(0.0, g.x, a.x == 1u),
            select(0.0, g.y, a.y == 0u), select(0.0, g.y, a.y == 1u));
        bdx4[top + w4 + k] = vec4<f32>(
            select(0.0, g.x, a.x == 2u), select(0.0, g.x, a.x == 3u),
            select(0.0, g.y, a.y == 2u), select(0.0, g.y, a.y == 3u));
        if (last_row) {
            bdx4[top + 2u * w4 + k] = vec4<f32>(0.0);
        }
    }
}

// gap_fwd: y[n, c] = mean over H*W of x[n, c]
@group(0) @binding(1) var<storage, read_write> gy: array<f32>;
@group(0) @binding(2) var<storage, read> gx: array<f32>;

@compute @workgroup_size(WG)
fn gap_fwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    prm = p;
    let i = flat(gid, nwg);
    if (i >= prm.n * prm.c) { return; }
    let hw = prm.h * prm.w;
    var s = 0.0;
    for (var j = 0u; j < hw; j++) { s += gx[i * hw + j]; }
    gy[i] = s / f32(hw);
}

// gap_bwd: dx[n, c, :, :] = dy[n, c] / (H*W)
@group(0) @binding(1) var<storage, read_write> gdx: array<f32>;
@group(0) @binding(2) var<storage, read> gdy: array<f32>;

// One invocation per (n, c).
@compute @workgroup_size(WG)
fn gap_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    prm = p;
    let i = flat(gid, nwg);
    if (i >= prm.n * prm.c) { return; }
    let hw = prm.h * prm.w;
    let g = gdy[i] / f32(hw);
    for (var j = 0u; j < hw; j++) {
        gdx[i * hw + j] = g;
    }
}
