// Pooling over NCHW: 2x2 max pooling with stride 2 (floor), which records the argmax (0..3,
// row-major in the window, first maximum wins) for its backward pass, and global average pooling.

struct PoolParams {
    n: u32, c: u32, h: u32, w: u32,
    oh: u32, ow: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: PoolParams;

override WG: u32 = 256;

fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// maxpool2_fwd: out y, arg; in x
@group(0) @binding(1) var<storage, read_write> fy: array<f32>;
@group(0) @binding(2) var<storage, read_write> farg: array<u32>;
@group(0) @binding(3) var<storage, read> fx: array<f32>;

@compute @workgroup_size(WG)
fn maxpool2_fwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p.n * p.c * p.oh * p.ow) { return; }
    let ow = i % p.ow;
    let oh = (i / p.ow) % p.oh;
    let nc = i / (p.ow * p.oh);
    let base = (nc * p.h + 2u * oh) * p.w + 2u * ow;
    var best = fx[base];
    var arg = 0u;
    let v1 = fx[base + 1u];
    if (v1 > best) { best = v1; arg = 1u; }
    let v2 = fx[base + p.w];
    if (v2 > best) { best = v2; arg = 2u; }
    let v3 = fx[base + p.w + 1u];
    if (v3 > best) { best = v3; arg = 3u; }
    fy[i] = best;
    farg[i] = arg;
}

// maxpool2_bwd: out dx; in dy, arg. One invocation per output: it writes the whole 2x2 window
// (dy at the argmax, 0 elsewhere), so each dy and arg is loaded once. An odd last row or column
// that no window covers gets 0 from the invocation of the window to its left or above.
@group(0) @binding(1) var<storage, read_write> bdx: array<f32>;
@group(0) @binding(2) var<storage, read> bdy: array<f32>;
@group(0) @binding(3) var<storage, read> barg: array<u32>;

@compute @workgroup_size(WG)
fn maxpool2_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = flat(gid, nwg);
    if (o >= p.n * p.c * p.oh * p.ow) { return; }
    let ow = o % p.ow;
    let oh = (o / p.ow) % p.oh;
    let nc = o / (p.ow * p.oh);
    let g = bdy[o];
    let a = barg[o];
    let base = (nc * p.h + 2u * oh) * p.w + 2u * ow;
    bdx[base] = select(0.0, g, a == 0u);
    bdx[base + 1u] = select(0.0, g, a == 1u);
    bdx[base + p.w] = select(0.0, g, a == 2u);
    bdx[base + p.w + 1u] = select(0.0, g, a == 3u);
    // Uncovered odd edges: the last window of a row clears the column to its right, the last
    // row of windows clears the row below.
    if (ow + 1u == p.ow && p.w % 2u == 1u) {
        bdx[base + 2u] = 0.0;
        bdx[base + p.w + 2u] = 0.0;
    }
    if (oh + 1u == p.oh && p.h % 2u == 1u) {
        bdx[base + 2u * p.w] = 0.0;
        bdx[base + 2u * p.w + 1u] = 0.0;
        if (ow + 1u == p.ow && p.w % 2u == 1u) {
            bdx[base + 2u * p.w + 2u] = 0.0;
        }
    }
}

// gap_fwd: y[n, c] = mean over H*W of x[n, c]
@group(0) @binding(1) var<storage, read_write> gy: array<f32>;
@group(0) @binding(2) var<storage, read> gx: array<f32>;

@compute @workgroup_size(WG)
fn gap_fwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p.n * p.c) { return; }
    let hw = p.h * p.w;
    var s = 0.0;
    for (var j = 0u; j < hw; j++) { s += gx[i * hw + j]; }
    gy[i] = s / f32(hw);
}

// gap_bwd: dx[n, c, :, :] = dy[n, c] / (H*W)
@group(0) @binding(1) var<storage, read_write> gdx: array<f32>;
@group(0) @binding(2) var<storage, read> gdy: array<f32>;

@compute @workgroup_size(WG)
fn gap_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    let hw = p.h * p.w;
    if (i >= p.n * p.c * hw) { return; }
    gdx[i] = gdy[i / hw] / f32(hw);
}
