// conv2d, NCHW activations and OIHW weights, no bias; any Cin, Cout, H, W; square kernel k with
// stride s and zero padding pad. Output size OH = (H + 2 pad - k) / s + 1 (likewise OW).
//
//  - conv2d_fwd:        y[n, co, oh, ow]  = sum_{ci, kh, kw} x[n, ci, oh*s - pad + kh, ow*s - pad + kw] w[co, ci, kh, kw]
//  - conv2d_bwd_data:   dx[n, ci, ih, iw] = sum over (co, kh, kw) with oh = (ih + pad - kh) / s exact
//  - conv2d_bwd_weight: dw[co, ci, kh, kw] = sum_{n, oh, ow} dy[n, co, oh, ow] x[n, ci, ih, iw]
//
// Implicit GEMM: no im2col is materialised; each invocation walks its reduction directly. One
// invocation per output element, on a 2-D grid of workgroups (flat index gid.x + gid.y * nx * WG).
// `accumulate` = 1 adds into the output instead of overwriting it (for gradient accumulation).

struct ConvParams {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, oh: u32, ow: u32, k: u32,
    stride: u32, pad: u32, accumulate: u32, slices: u32,
}

@group(0) @binding(0) var<uniform> p: ConvParams;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> in0: array<f32>;
@group(0) @binding(3) var<storage, read> in1: array<f32>;

override WG: u32 = 64;

fn put(i: u32, v: f32) {
    if (p.accumulate != 0u) {
        out[i] = out[i] + v;
    } else {
        out[i] = v;
    }
}

// in0 = x, in1 = w, out = y
@compute @workgroup_size(WG)
fn conv2d_fwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    let total = p.n * p.cout * p.oh * p.ow;
    if (i >= total) { return; }
    let ow = i % p.ow;
    let oh = (i / p.ow) % p.oh;
    let co = (i / (p.ow * p.oh)) % p.cout;
    let n = i / (p.ow * p.oh * p.cout);
    var acc = 0.0;
    for (var ci = 0u; ci < p.cin; ci++) {
        let xb = (n * p.cin + ci) * p.h;
        let wb = (co * p.cin + ci) * p.k;
        for (var kh = 0u; kh < p.k; kh++) {
            let ih = i32(oh * p.stride + kh) - i32(p.pad);
            if (ih < 0 || ih >= i32(p.h)) { continue; }
            for (var kw = 0u; kw < p.k; kw++) {
                let iw = i32(ow * p.stride + kw) - i32(p.pad);
                if (iw < 0 || iw >= i32(p.w)) { continue; }
                acc = fma(in0[(xb + u32(ih)) * p.w + u32(iw)], in1[(wb + kh) * p.k + kw], acc);
            }
        }
    }
    put(i, acc);
}

// in0 = dy, in1 = w, out = dx
@compute @workgroup_size(WG)
fn conv2d_bwd_data(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    let total = p.n * p.cin * p.h * p.w;
    if (i >= total) { return; }
    let iw = i % p.w;
    let ih = (i / p.w) % p.h;
    let ci = (i / (p.w * p.h)) % p.cin;
    let n = i / (p.w * p.h * p.cin);
    var acc = 0.0;
    for (var kh = 0u; kh < p.k; kh++) {
        let th = i32(ih + p.pad) - i32(kh);
        if (th < 0 || th % i32(p.stride) != 0) { continue; }
        let oh = u32(th) / p.stride;
        if (oh >= p.oh) { continue; }
        for (var kw = 0u; kw < p.k; kw++) {
            let tw = i32(iw + p.pad) - i32(kw);
            if (tw < 0 || tw % i32(p.stride) != 0) { continue; }
            let ow = u32(tw) / p.stride;
            if (ow >= p.ow) { continue; }
            for (var co = 0u; co < p.cout; co++) {
                let dy = in0[((n * p.cout + co) * p.oh + oh) * p.ow + ow];
                acc = fma(dy, in1[((co * p.cin + ci) * p.k + kh) * p.k + kw], acc);
            }
        }
    }
    put(i, acc);
}

// in0 = dy, in1 = x, out = dw
@compute @workgroup_size(WG)
fn conv2d_bwd_weight(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    let total = p.cout * p.cin * p.k * p.k;
    if (i >= total) { return; }
    let kw = i % p.k;
    let kh = (i / p.k) % p.k;
    let ci = (i / (p.k * p.k)) % p.cin;
    let co = i / (p.k * p.k * p.cin);
    var acc = 0.0;
    for (var n = 0u; n < p.n; n++) {
        for (var oh = 0u; oh < p.oh; oh++) {
            let ih = i32(oh * p.stride + kh) - i32(p.pad);
            if (ih < 0 || ih >= i32(p.h)) { continue; }
            let xb = ((n * p.cin + ci) * p.h + u32(ih)) * p.w;
            let db = ((n * p.cout + co) * p.oh + oh) * p.ow;
            for (var ow = 0u; ow < p.ow; ow++) {
                let iw = i32(ow * p.stride + kw) - i32(p.pad);
                if (iw < 0 || iw >= i32(p.w)) { continue; }
                acc = fma(in0[db + ow], in1[xb + u32(iw)], acc);
            }
        }
    }
    put(i, acc);
}
