// conv2d forward, backward-data and backward-weight with channel register tiles shared through
// subgroup broadcasts: the fast path on CPU-backed devices (and fine on GPUs), selected when the
// adapter has subgroups of at least 8 invocations. Same tensor layouts and ConvParams as conv.wgsl.
//
// On lavapipe every storage-buffer load is a per-invocation scalar loop (about 20 cycles per
// element), so the number of loads per FMA decides the speed. Here each invocation accumulates CB
// (8 or 16) channels at once, and lane j of each 8-lane group loads the weight (or gradient) of
// channel j only; subgroupBroadcast hands the 8 values to every lane. Per reduction step that is
// 1 + CB/8 loads for CB FMAs, against 2 loads per FMA in conv.wgsl.
//
// Broadcasts need uniform control flow: out-of-range positions are clamped and masked by select,
// never skipped, and no invocation returns early.
//
//  - conv2d_fwd_sg:        invocations over output positions (n, oh, ow); wg.y = block of CB output channels
//  - conv2d_bwd_data_sg:   invocations over input positions (n, ih, iw); wg.y = block of CB input channels
//  - conv2d_bwd_weight_sg: invocations over taps (ci, kh, kw); wg.y = block of CB output channels;
//                          wg.z = slice of the N*OH*OW positions, written to partial[slice] (summed after)
//  - conv2d_bwd_weight_win: stride 1, K = 3 or 5: a sliding window along each output row (below)

struct ConvParams {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, oh: u32, ow: u32, k: u32,
    stride: u32, pad: u32, accumulate: u32, slices: u32,
}

@group(0) @binding(0) var<uniform> p: ConvParams;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> in0: array<f32>;
@group(0) @binding(3) var<storage, read> in1: array<f32>;

override CB: u32 = 8;   // channels per invocation: 8 or 16
override WGS: u32 = 64; // invocations per workgroup of the fwd and bwd-data kernels

fn b8(v: f32) -> array<f32, 8> {
    return array<f32, 8>(
        subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u), subgroupBroadcast(v, 3u),
        subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u), subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u),
    );
}

fn put(i: u32, v: f32) {
    if (p.accumulate != 0u) {
        out[i] = out[i] + v;
    } else {
        out[i] = v;
    }
}

// x = in0, w = in1, y = out
@compute @workgroup_size(WGS)
fn conv2d_fwd_sg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) sl: u32) {
    let total = p.n * p.oh * p.ow;
    let pos_raw = wg.x * WGS + li;
    let pos = min(pos_raw, total - 1u);
    let ow = pos % p.ow;
    let oh = (pos / p.ow) % p.oh;
    let n = pos / (p.ow * p.oh);
    let co0 = wg.y * CB;
    let lane = sl % 8u;
    let kk = p.k * p.k;
    // the weight rows this lane fetches: channels co0 + lane and co0 + 8 + lane
    let wa = min(co0 + lane, p.cout - 1u) * p.cin * kk;
    let wb = min(co0 + 8u + lane, p.cout - 1u) * p.cin * kk;
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    for (var ci = 0u; ci < p.cin; ci++) {
        for (var kh = 0u; kh < p.k; kh++) {
            let ih = i32(oh * p.stride + kh) - i32(p.pad);
            for (var kw = 0u; kw < p.k; kw++) {
                let iw = i32(ow * p.stride + kw) - i32(p.pad);
                let ok = ih >= 0 && ih < i32(p.h) && iw >= 0 && iw < i32(p.w);
                let xi = ((n * p.cin + ci) * p.h + u32(clamp(ih, 0, i32(p.h) - 1))) * p.w + u32(clamp(iw, 0, i32(p.w) - 1));
                let xv = select(0.0, in0[xi], ok);
                let t = (ci * p.k + kh) * p.k + kw;
                let w0 = b8(in1[wa + t]);
                a0 = fma(vec4<f32>(w0[0], w0[1], w0[2], w0[3]), vec4<f32>(xv), a0);
                a1 = fma(vec4<f32>(w0[4], w0[5], w0[6], w0[7]), vec4<f32>(xv), a1);
                if (CB == 16u) {
                    let w1 = b8(in1[wb + t]);
                    a2 = fma(vec4<f32>(w1[0], w1[1], w1[2], w1[3]), vec4<f32>(xv), a2);
                    a3 = fma(vec4<f32>(w1[4], w1[5], w1[6], w1[7]), vec4<f32>(xv), a3);
                }
            }
        }
    }
    if (pos_raw < total) {
        let acc = array<vec4<f32>, 4>(a0, a1, a2, a3);
        let ohw = p.oh * p.ow;
        let base = n * p.cout * ohw + oh * p.ow + ow;
        for (var j = 0u; j < CB; j++) {
            let co = co0 + j;
            if (co < p.cout) {
                put(base + co * ohw, acc[j / 4u][j % 4u]);
            }
        }
    }
}

// dy = in0, w = in1, dx = out
@compute @workgroup_size(WGS)
fn conv2d_bwd_data_sg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32,
                      @builtin(subgroup_invocation_id) sl: u32) {
    // Stride 2: positions are ordered (n, ih, iw parity, iw / 2), so the 8 lanes of a subgroup
    // mostly share the parity of ih and iw and with it the taps that reach an output; a tap no
    // lane needs is skipped (subgroupAny), which leaves about a quarter of the taps.
    let s2 = p.stride == 2u;
    let wq = select(p.w, (p.w + 1u) / 2u, s2);
    let per_row = select(p.w, 2u * wq, s2);
    let total = p.n * p.h * per_row;
    let pos_raw = wg.x * WGS + li;
    let pos = min(pos_raw, total - 1u);
    let r = pos % per_row;
    let iw_raw = select(r, 2u * (r % wq) + r / wq, s2);
    let iw = min(iw_raw, p.w - 1u);
    let ih = (pos / per_row) % p.h;
    let n = pos / (per_row * p.h);
    let ci0 = wg.y * CB;
    let lane = sl % 8u;
    let kk = p.k * p.k;
    let cia = min(ci0 + lane, p.cin - 1u);
    let cib = min(ci0 + 8u + lane, p.cin - 1u);
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    for (var co = 0u; co < p.cout; co++) {
        for (var kh = 0u; kh < p.k; kh++) {
            let th = i32(ih + p.pad) - i32(kh);
            let oh = th / i32(p.stride);
            let okh = th >= 0 && th % i32(p.stride) == 0 && oh < i32(p.oh);
            if (!subgroupAny(okh)) {
                continue;
            }
            for (var kw = 0u; kw < p.k; kw++) {
                let tw = i32(iw + p.pad) - i32(kw);
                let ow = tw / i32(p.stride);
                let ok = okh && tw >= 0 && tw % i32(p.stride) == 0 && ow < i32(p.ow);
                if (!subgroupAny(ok)) {
                    continue;
                }
                let di = ((n * p.cout + co) * p.oh + u32(clamp(oh, 0, i32(p.oh) - 1))) * p.ow + u32(clamp(ow, 0, i32(p.ow) - 1));
                let g = select(0.0, in0[di], ok);
                let t = kh * p.k + kw;
                let w0 = b8(in1[(co * p.cin + cia) * kk + t]);
                a0 = fma(vec4<f32>(w0[0], w0[1], w0[2], w0[3]), vec4<f32>(g), a0);
                a1 = fma(vec4<f32>(w0[4], w0[5], w0[6], w0[7]), vec4<f32>(g), a1);
                if (CB == 16u) {
                    let w1 = b8(in1[(co * p.cin + cib) * kk + t]);
                    a2 = fma(vec4<f32>(w1[0], w1[1], w1[2], w1[3]), vec4<f32>(g), a2);
                    a3 = fma(vec4<f32>(w1[4], w1[5], w1[6], w1[7]), vec4<f32>(g), a3);
                }
            }
        }
    }
    if (pos_raw < total && iw_raw < p.w) {
        let acc = array<vec4<f32>, 4>(a0, a1, a2, a3);
        let hw = p.h * p.w;
        let base = n * p.cin * hw + ih * p.w + iw;
        for (var j = 0u; j < CB; j++) {
            let ci = ci0 + j;
            if (ci < p.cin) {
                put(base + ci * hw, acc[j / 4u][j % 4u]);
            }
        }
    }
}

// dy = in0, x = in1, out = partial sums [slice][cout][cin*k*k] (or dw itself when slices = 1)
@compute @workgroup_size(64)
fn conv2d_bwd_weight_sg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32,
                        @builtin(subgroup_invocation_id) sl: u32) {
    let kk = p.k * p.k;
    let taps = p.cin * kk;
    let t_raw = wg.x * 64u + li;
    let t = min(t_raw, taps - 1u);
    let kw = t % p.k;
    let kh = (t / p.k) % p.k;
    let ci = t / kk;
    let co0 = wg.y * CB;
    let lane = sl % 8u;
    let coa = min(co0 + lane, p.cout - 1u);
    let cob = min(co0 + 8u + lane, p.cout - 1u);
    let total = p.n * p.oh * p.ow;
    let chunk = (total + p.slices - 1u) / p.slices;
    let first = wg.z * chunk;
    let last = min(first + chunk, total);
    let ohw = p.oh * p.ow;
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    for (var q = first; q < last; q++) {
        let ow = q % p.ow;
        let oh = (q / p.ow) % p.oh;
        let n = q / ohw;
        let ih = i32(oh * p.stride + kh) - i32(p.pad);
        let iw = i32(ow * p.stride + kw) - i32(p.pad);
        let ok = ih >= 0 && ih < i32(p.h) && iw >= 0 && iw < i32(p.w);
        let xi = ((n * p.cin + ci) * p.h + u32(clamp(ih, 0, i32(p.h) - 1))) * p.w + u32(clamp(iw, 0, i32(p.w) - 1));
        let xv = select(0.0, in1[xi], ok);
        let d0 = b8(in0[(n * p.cout + coa) * ohw + oh * p.ow + ow]);
        a0 = fma(vec4<f32>(d0[0], d0[1], d0[2], d0[3]), vec4<f32>(xv), a0);
        a1 = fma(vec4<f32>(d0[4], d0[5], d0[6], d0[7]), vec4<f32>(xv), a1);
        if (CB == 16u) {
            let d1 = b8(in0[(n * p.cout + cob) * ohw + oh * p.ow + ow]);
            a2 = fma(vec4<f32>(d1[0], d1[1], d1[2], d1[3]), vec4<f32>(xv), a2);
            a3 = fma(vec4<f32>(d1[4], d1[5], d1[6], d1[7]), vec4<f32>(xv), a3);
        }
    }
    if (t_raw < taps) {
        let acc = array<vec4<f32>, 4>(a0, a1, a2, a3);
        let base = wg.z * p.cout * taps + t;
        for (var j = 0u; j < CB; j++) {
            let co = co0 + j;
            if (co < p.cout) {
                if (p.slices == 1u) {
                    put(base + co * taps, acc[j / 4u][j % 4u]);
                } else {
                    out[base + co * taps] = acc[j / 4u][j % 4u];
                }
            }
        }
    }
}

// conv2d_bwd_weight_win (stride 1, K = 3 or 5): one invocation per (ci, kh) row of taps and a
// block of 8 output channels; it sweeps each (n, oh) row of its slice along ow with a sliding
// window of the K input values under the kernel row, so every step loads one new x value and one
// dy value (broadcast across the 8 channels) for 8 * K FMAs. Workgroups are one 8-lane subgroup.
// Output as conv2d_bwd_weight_sg: partial[slice][cout][cin][k][k], or dw when slices = 1.
override K: u32 = 5;

fn xw(xb: u32, iw: i32, rowok: bool) -> f32 {
    let ok = rowok && iw >= 0 && iw < i32(p.w);
    return select(0.0, in1[xb + u32(clamp(iw, 0, i32(p.w) - 1))], ok);
}

@compute @workgroup_size(8)
fn conv2d_bwd_weight_win(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32,
                         @builtin(subgroup_invocation_id) sl: u32) {
    let rows = p.cin * K;
    let r_raw = wg.x * 8u + li;
    let r = min(r_raw, rows - 1u);
    let ci = r / K;
    let kh = r % K;
    let co0 = wg.y * 8u;
    let coa = min(co0 + sl % 8u, p.cout - 1u);
    let nrows = p.n * p.oh;
    let chunk = (nrows + p.slices - 1u) / p.slices;
    let first = wg.z * chunk;
    let last = min(first + chunk, nrows);
    let ohw = p.oh * p.ow;
    let pad = i32(p.pad);
    var s0 = vec4<f32>(0.0); var s1 = vec4<f32>(0.0);
    var t0 = vec4<f32>(0.0); var t1 = vec4<f32>(0.0);
    var u0 = vec4<f32>(0.0); var u1 = vec4<f32>(0.0);
    var v0 = vec4<f32>(0.0); var v1 = vec4<f32>(0.0);
    var z0 = vec4<f32>(0.0); var z1 = vec4<f32>(0.0);
    for (var q = first; q < last; q++) {
        let n = q / p.oh;
        let oh = q % p.oh;
        let ih = i32(oh + kh) - pad;
        let rowok = ih >= 0 && ih < i32(p.h);
        let xb = ((n * p.cin + ci) * p.h + u32(clamp(ih, 0, i32(p.h) - 1))) * p.w;
        let db = (n * p.cout + coa) * ohw + oh * p.ow;
        var w0 = xw(xb, -pad, rowok);
        var w1 = xw(xb, 1 - pad, rowok);
        var w2 = 0.0;
        var w3 = 0.0;
        if (K == 5u) {
            w2 = xw(xb, 2 - pad, rowok);
            w3 = xw(xb, 3 - pad, rowok);
        }
        for (var ow = 0u; ow < p.ow; ow++) {
            let nw = xw(xb, i32(ow + K - 1u) - pad, rowok);
            let d = b8(in0[db + ow]);
            let da = vec4<f32>(d[0], d[1], d[2], d[3]);
            let dd = vec4<f32>(d[4], d[5], d[6], d[7]);
            s0 = fma(da, vec4<f32>(w0), s0); s1 = fma(dd, vec4<f32>(w0), s1);
            t0 = fma(da, vec4<f32>(w1), t0); t1 = fma(dd, vec4<f32>(w1), t1);
            if (K == 5u) {
                u0 = fma(da, vec4<f32>(w2), u0); u1 = fma(dd, vec4<f32>(w2), u1);
                v0 = fma(da, vec4<f32>(w3), v0); v1 = fma(dd, vec4<f32>(w3), v1);
                z0 = fma(da, vec4<f32>(nw), z0); z1 = fma(dd, vec4<f32>(nw), z1);
                w0 = w1; w1 = w2; w2 = w3; w3 = nw;
            } else {
                u0 = fma(da, vec4<f32>(nw), u0); u1 = fma(dd, vec4<f32>(nw), u1);
                w0 = w1; w1 = nw;
            }
        }
    }
    if (r_raw < rows) {
        let acc = array<vec4<f32>, 10>(s0, s1, t0, t1, u0, u1, v0, v1, z0, z1);
        let kk = K * K;
        let base = wg.z * p.cout * p.cin * kk + (ci * K + kh) * K;
        for (var j = 0u; j < 8u; j++) {
            let co = co0 + j;
            if (co < p.cout) {
                for (var kw = 0u; kw < K; kw++) {
                    let v = acc[2u * kw + j / 4u][j % 4u];
                    let o = base + co * p.cin * kk + kw;
                    if (p.slices == 1u) {
                        put(o, v);
                    } else {
                        out[o] = v;
                    }
                }
            }
        }
    }
}
