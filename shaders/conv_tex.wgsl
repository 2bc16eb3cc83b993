// Texture-fed stride-1 conv2d for CPU-backed devices (lavapipe/llvmpipe): the forward pass, and the
// backward-data pass as a forward conv of dy with flipped, transposed weights. Three entry points:
//
//  - pack_act:  an NCHW activation buffer -> an rgba32float texture whose texel t holds 4
//               consecutive columns of one (n, c, h) row (rows padded with zeros to a multiple of
//               4 columns); texel t sits at x = t % 2048, row t / 2048 (4096 rows per layer).
//               Rows of a multiple of 4 columns need no kernel: the host copies the buffer in
//               (copy_buffer_to_texture), which lays out the same texels;
//  - pack_wt:   OIHW weights -> a texture with one row per output channel and, per (ci, kh), KT =
//               ceil(K/4) texels holding the K taps along kw (zero padded). With `flip` set it packs
//               w'[o][i][kh][kw] = w[i][o][K-1-kh][K-1-kw], the weights of backward-data (a
//               stride-1 backward-data whose forward ran here reads the forward's texture instead,
//               FLIPW: row i, kernel row K-1-kh of input channel o, taps reversed);
//  - conv_tex:  stride 1 or 2; each invocation owns 4 consecutive output columns of one output row and CO (8 or
//               16) output channels (conv_tex4 and conv_tex2: the same, with vec4 or vec2 stores
//               where the output width is a multiple of 4 or even; conv_tex4_rows: vec4 stores
//               into a texture); per (ci, kh) it fetches the NT input texels that cover its
//               window once and reuses them for all K taps, and lane j of each 8-lane subgroup
//               fetches the weights of channel co0 + j, which subgroupBroadcast hands to every lane.
//               Per (ci, kh) that is NT + CO/8 texel fetches for 4*K*CO FMAs. Kernel rows
//               that fall in the padding for all 8 lanes of a subgroup are not visited (the
//               range comes from subgroupMin/Max of the lanes' output rows);
//  - conv_bwd_data2_tex: backward-data of a stride-2 conv: each invocation owns 4 consecutive
//               columns of one dx row and 8 of its channels; per (dy channel, kh) it fetches the 3
//               dy texels around column 2j and, per tap kw, feeds the two of its 4 columns whose
//               parity matches. Rows are ordered even first, then odd, so the lanes of a subgroup
//               usually share the row parity and skip (subgroupAny) the kernel rows none needs;
//  - pack_act_c4: an NCHW buffer -> a texture whose texel t = ((n*h + ih)*w + iw)*c4 + c holds
//               channels 4c .. 4c+3 at one pixel (zero past cin);
//  - conv_dw_rows_tex: backward-weight at stride 1: lane = (ci, kh), x read by rows; per 4
//               output columns 1 + NT fetches for 32 * K FMAs (below);
//  - conv_dw_tex: backward-weight at stride 2: lane = (4-channel group, kh, kw) of the input, 8
//               output channels per subgroup. Per 4 output columns a lane fetches one dy texel
//               (4 positions of channel co0 + lane, from pack_act) and 4 x texels (its 4 input
//               channels at the 4 positions), and the dy values reach every lane by broadcast:
//               5 fetches for 128 FMAs. Slices of the positions write partial sums.
//
// Why textures: llvmpipe turns a storage-buffer load into a per-invocation scalar loop (about 20
// cycles per element), while an rgba32float storage-texture fetch is a vector gather (about 9
// cycles per texel of 4 floats). Broadcasts need uniform control flow, so positions past the end
// are clamped and masked at the store, never skipped. Needs subgroups of exactly 8 invocations.
//
// This file is built without wgpu's injected bounds checks (they cost a quarter of conv_tex's
// time on lavapipe), so every access must be in bounds by construction. The host (ops/conv.rs)
// guarantees: buffers hold the shape's element counts; subgroups are exactly 8 wide; the input
// texture holds every texel t < n*cin*h*w4 at texel_xy(t); the weight texture is wrow texels wide
// and ceil(cout/CO)*CO rows high. Then:
//  - pack_act: r < n*cin*h and j < w4, and only columns 4j + e < w are read, so the source index
//    is < n*cin*h*w; texel r*w4 + j < n*cin*h*w4 exists;
//  - pack_act2 (w even): as pack_act; column 4j < w so 4j + 1 < w, and the second pair is read
//    only when 4j + 2 < w, so 4j + 3 < w; r*w + 4j is even, so the vec2 index is exact;
//  - pack_wt: returns unless (g.x, g.y) is inside the texture; reads only when co < cout and
//    ci < cin, so the OIHW index is < cout*cin*K*K (flipped or not);
//  - conv_bwd_data2_tex: as conv_tex, with dy in the input's place (fetch_x falls back to texel 0)
//    and dx rows ih < p.oh from the even/odd row order;
//  - pack_act_c4: t < n*h*w*c4, so the pixel and channel group exist; channels >= cin are not read;
//  - pack_c4_from_rows (w % 4 == 0): i < n*h*(w/4)*c4; the row texel index clamps the channel to
//    cin - 1 (< n*cin*h*w/4), and the output texel ((n*h + h)*w + 4j + e)*c4 + c < n*h*w*c4;
//  - conv_dw_tex: the lane is clamped to the last (c, kh, kw) and co0 + lane to cout - 1; x texels
//    fall back to texel 0 outside the input; dy texel rows are < n*cout*oh, columns < ow4; the
//    items of a slice are < n*oh*ow4; stores are guarded by lane < c4*K*K, co < cout, ci < cin;
//  - conv_dw_rows_tex: r is clamped to cin*K - 1 and co0 + lane to cout - 1; it < items, so n < p.n;
//    x texels fall back to texel 0 unless the row (ci < cin, ih clamped) and the texel column are
//    inside the input; dy texels as conv_dw_tex; stores are guarded by r_raw < cin*K,
//    co < cout and kw < K, and the host sizes dw (or the partial sums) for p.slices slices;
//  - conv_tex/conv_tex4: item is clamped to total - 1, so n < p.n; fetch_x falls back to texel 0
//    unless the row and texel column are inside the input; weight texels are x < wrow and rows
//    co0 + lane (+ 8 when CO = 16) < ceil(cout/CO)*CO; stores are guarded by item_raw < total,
//    co < cout and (conv_tex) column < ow; accumulator indices are < CO <= 16; with FLIPW the
//    host checks that the forward's texture is at least cout * K * KT texels wide and cin rows
//    high, the lane's channel is clamped to cout - 1 and the row is ci < cin;
//  - conv_tex4_rows: as conv_tex4; the texel index is < n*cout*oh*ow4, which the host checks the
//    texture holds;
//  - conv_tex2 (ow even): the float offset of (n, co, oh, 4j) is even, so its vec2 index is exact;
//    the second vec2 (columns 4j + 2, 4j + 3) is stored only when 4j + 2 < ow, and then 4j + 3 < ow.

struct ConvTexParams {
    n: u32, cin: u32, h: u32, w: u32,      // input of the (equivalent forward) conv
    cout: u32, oh: u32, ow: u32, w4: u32,  // output; w4 = texels per input row
    ow4: u32, pad: u32, accumulate: u32, flip: u32,
    wrow: u32, stride: u32, slices: u32, c4: u32, // wrow = texels per packed weight row; c4 = ceil(cin/4)
}

@group(0) @binding(0) var<uniform> p: ConvTexParams;
// The params, copied into private registers at the start of every entry point (llvmpipe otherwise
// reloads the uniform buffer inside the loops: about a tenth of the convolutions' time).
var<private> q: ConvTexParams;

override K: u32 = 3u;       // kernel size
override PAD: u32 = 1u;     // zero padding (stride 1)
override CO: u32 = 8u;      // output channels per invocation: 8 or 16
// Channels of an invocation's group that exist: the conv kernels set it to cout where cout < CO
// (one group; backward-weight: where cout < 8), and step_c/step_d/dw_rows_step skip the
// broadcasts and FMAs of the others (at 6 channels, a quarter of them).
override CV: u32 = 16u;
// 1: conv_tex runs a stride-1 backward-data from the forward pass's packed weights (`wt` is the
// forward's texture, rows = the forward's output channels), so no flipped copy is packed.
override FLIPW: u32 = 0u;

// Tap K - 1 - kw (kw a constant at every call; 0 for kw >= K) of a packed kernel row f0 | f1: the
// flipped kernel's tap kw.
fn tapr(f0: vec4<f32>, f1: vec4<f32>, kw: u32) -> f32 {
    if (kw >= K) {
        return 0.0;
    }
    switch K - 1u - kw {
        case 0u: { return f0.x; }
        case 1u: { return f0.y; }
        case 2u: { return f0.z; }
        case 3u: { return f0.w; }
        default: { return f1.x; }
    }
}

// texel addressing shared by pack_act and conv_tex
fn texel_xy(t: u32) -> vec3<u32> {
    let row = t >> 11u;
    return vec3<u32>(t & 2047u, row & 4095u, row >> 12u);
}

// ---------------------------------------------------------------------------------------------
@group(0) @binding(1) var act_out: texture_storage_2d_array<rgba32float, write>;
@group(0) @binding(2) var<storage, read> act_src: array<f32>;

// invocation = texel j = wg.z of row r (q.n*q.cin*q.h rows of q.w columns, q.w4 texels), so no
// integer division (llvmpipe divides lane by lane)
@compute @workgroup_size(64)
fn pack_act(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    q = p;
    let r = g.x + g.y * nwg.x * 64u;
    if (r >= q.n * q.cin * q.h) {
        return;
    }
    let j = g.z;
    let o = r * q.w + 4u * j;
    var v = vec4<f32>(0.0);
    for (var e = 0u; e < 4u; e++) {
        if (4u * j + e < q.w) {
            v[e] = act_src[o + e];
        }
    }
    let col = vec4<u32>(4u * j) + vec4<u32>(0u, 1u, 2u, 3u);
    v = select(vec4<f32>(0.0), v, col < vec4<u32>(q.w));
    let xy = texel_xy(r * q.w4 + j);
    textureStore(act_out, xy.xy, xy.z, v);
}

// pack_act2: pack_act for an even q.w, with two vec2 loads per texel instead of four scalar
// loads (llvmpipe loads a vec2 from a storage buffer for about the price of a float).
@group(0) @binding(1) var act2_out: texture_storage_2d_array<rgba32float, write>;
@group(0) @binding(2) var<storage, read> act2_src: array<vec2<f32>>;

@compute @workgroup_size(64)
fn pack_act2(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    q = p;
    let r = g.x + g.y * nwg.x * 64u;
    if (r >= q.n * q.cin * q.h) {
        return;
    }
    let j = g.z;
    let o = (r * q.w + 4u * j) / 2u;
    let a = act2_src[o];
    var b = vec2<f32>(0.0);
    if (4u * j + 2u < q.w) {
        b = act2_src[o + 1u];
    }
    let xy = texel_xy(r * q.w4 + j);
    textureStore(act2_out, xy.xy, xy.z, vec4<f32>(a, b));
}

// ---------------------------------------------------------------------------------------------
@group(0) @binding(1) var wt_out: texture_storage_2d_array<rgba32float, write>;
@group(0) @binding(2) var<storage, read> wt_src: array<f32>;

// invocation (x = texel in row, y = output channel row); rows past q.cout are written as zeros.
// q.cout/q.cin are the equivalent forward conv's (for flip: cout = original cin, cin = original cout).
@compute @workgroup_size(8, 8)
fn pack_wt(@builtin(global_invocation_id) g: vec3<u32>) {
    q = p;
    let kt = (K + 3u) / 4u;
    if (g.x >= q.wrow || g.y >= textureDimensions(wt_out).y) {
        return;
    }
    let tq = g.x % kt;
    let ckh = g.x / kt;
    let kh = ckh % K;
    let ci = ckh / K;
    let co = g.y;
    var v = vec4<f32>(0.0);
    if (co < q.cout && ci < q.cin) {
        for (var j = 0u; j < 4u; j++) {
            let kw = 4u * tq + j;
            if (kw < K) {
                var idx: u32;
                if (q.flip != 0u) {
                    idx = ((ci * q.cout + co) * K + (K - 1u - kh)) * K + (K - 1u - kw);
                } else {
                    idx = ((co * q.cin + ci) * K + kh) * K + kw;
                }
                v[j] = wt_src[idx];
            }
        }
    }
    textureStore(wt_out, vec2<u32>(g.x, g.y), 0, v);
}

// ---------------------------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var xt: texture_storage_2d_array<rgba32float, read>;
@group(0) @binding(3) var wt: texture_storage_2d_array<rgba32float, read>;

override S: u32 = 1u;       // stride: 1, or 2 (forward only) when M + K <= 6
override PADT: u32 = (PAD + 3u) / 4u;            // whole texels of padding before column 0
override M: u32 = 4u * ((PAD + 3u) / 4u) - PAD;  // window start inside the first texel
override NT: u32 = (4u * ((PAD + 3u) / 4u) - PAD + 3u * S + K + 3u) / 4u; // texels per window (<= 3)

// The accumulators live in named private variables and every loop over taps and channels is
// written out (with K, PAD and CO pipeline constants folding the branches away): llvmpipe keeps
// dynamically indexed private arrays in memory.
var<private> c0: vec4<f32>;
var<private> c1: vec4<f32>;
var<private> c2: vec4<f32>;
var<private> c3: vec4<f32>;
var<private> c4: vec4<f32>;
var<private> c5: vec4<f32>;
var<private> c6: vec4<f32>;
var<private> c7: vec4<f32>;
var<private> d0: vec4<f32>;
var<private> d1: vec4<f32>;
var<private> d2: vec4<f32>;
var<private> d3: vec4<f32>;
var<private> d4: vec4<f32>;
var<private> d5: vec4<f32>;
var<private> d6: vec4<f32>;
var<private> d7: vec4<f32>;

fn step_c(a: f32, xv: vec4<f32>) {
    c0 = fma(vec4<f32>(subgroupBroadcast(a, 0u)), xv, c0);
    if (CV > 1u) { c1 = fma(vec4<f32>(subgroupBroadcast(a, 1u)), xv, c1); }
    if (CV > 2u) { c2 = fma(vec4<f32>(subgroupBroadcast(a, 2u)), xv, c2); }
    if (CV > 3u) { c3 = fma(vec4<f32>(subgroupBroadcast(a, 3u)), xv, c3); }
    if (CV > 4u) { c4 = fma(vec4<f32>(subgroupBroadcast(a, 4u)), xv, c4); }
    if (CV > 5u) { c5 = fma(vec4<f32>(subgroupBroadcast(a, 5u)), xv, c5); }
    if (CV > 6u) { c6 = fma(vec4<f32>(subgroupBroadcast(a, 6u)), xv, c6); }
    if (CV > 7u) { c7 = fma(vec4<f32>(subgroupBroadcast(a, 7u)), xv, c7); }
}

fn step_d(a: f32, xv: vec4<f32>) {
    if (CV > 8u) { d0 = fma(vec4<f32>(subgroupBroadcast(a, 0u)), xv, d0); }
    if (CV > 9u) { d1 = fma(vec4<f32>(subgroupBroadcast(a, 1u)), xv, d1); }
    if (CV > 10u) { d2 = fma(vec4<f32>(subgroupBroadcast(a, 2u)), xv, d2); }
    if (CV > 11u) { d3 = fma(vec4<f32>(subgroupBroadcast(a, 3u)), xv, d3); }
    if (CV > 12u) { d4 = fma(vec4<f32>(subgroupBroadcast(a, 4u)), xv, d4); }
    if (CV > 13u) { d5 = fma(vec4<f32>(subgroupBroadcast(a, 5u)), xv, d5); }
    if (CV > 14u) { d6 = fma(vec4<f32>(subgroupBroadcast(a, 6u)), xv, d6); }
    if (CV > 15u) { d7 = fma(vec4<f32>(subgroupBroadcast(a, 7u)), xv, d7); }
}

// The 4 consecutive floats starting at float s of the window t0 | t1 | t2 (s is a constant).
fn win(t0: vec4<f32>, t1: vec4<f32>, t2: vec4<f32>, s: u32) -> vec4<f32> {
    switch s {
        case 0u: { return t0; }
        case 1u: { return vec4<f32>(t0.yzw, t1.x); }
        case 2u: { return vec4<f32>(t0.zw, t1.xy); }
        case 3u: { return vec4<f32>(t0.w, t1.xyz); }
        case 4u: { return t1; }
        case 5u: { return vec4<f32>(t1.yzw, t2.x); }
        case 6u: { return vec4<f32>(t1.zw, t2.xy); }
        case 7u: { return vec4<f32>(t1.w, t2.xyz); }
        default: { return t2; }
    }
}

// Every other float from float s of t0 | t1 | t2 (stride 2; s + 6 <= 11).
fn win2(t0: vec4<f32>, t1: vec4<f32>, t2: vec4<f32>, s: u32) -> vec4<f32> {
    switch s {
        case 0u: { return vec4<f32>(t0.xz, t1.xz); }
        case 1u: { return vec4<f32>(t0.yw, t1.yw); }
        case 2u: { return vec4<f32>(t0.z, t1.xz, t2.x); }
        case 3u: { return vec4<f32>(t0.w, t1.yw, t2.y); }
        case 4u: { return vec4<f32>(t1.xz, t2.xz); }
        default: { return vec4<f32>(t1.yw, t2.yw); }
    }
}

// acc plus the K taps of one kernel row, with weights w0 | w1 (uniform across the subgroup).
fn taps(acc: vec4<f32>, w0: vec4<f32>, w1: vec4<f32>, t0: vec4<f32>, t1: vec4<f32>,
        t2: vec4<f32>) -> vec4<f32> {
    var r = fma(vec4<f32>(w0.x), xwin(t0, t1, t2, 0u), acc);
    if (K > 1u) { r = fma(vec4<f32>(w0.y), xwin(t0, t1, t2, 1u), r); }
    if (K > 2u) { r = fma(vec4<f32>(w0.z), xwin(t0, t1, t2, 2u), r); }
    if (K > 3u) { r = fma(vec4<f32>(w0.w), xwin(t0, t1, t2, 3u), r); }
    if (K > 4u) { r = fma(vec4<f32>(w1.x), xwin(t0, t1, t2, 4u), r); }
    return r;
}

// The inputs of tap kw (a constant) for the 4 output columns.
fn xwin(t0: vec4<f32>, t1: vec4<f32>, t2: vec4<f32>, kw: u32) -> vec4<f32> {
    if (S == 2u) {
        return win2(t0, t1, t2, M + kw);
    }
    return win(t0, t1, t2, M + kw);
}

fn fetch_x(row: u32, rowok: bool, jj: i32) -> vec4<f32> {
    let ok = rowok && jj >= 0 && jj < i32(q.w4);
    let t = select(0u, row * q.w4 + u32(jj), ok);
    let xy = texel_xy(t);
    return select(vec4<f32>(0.0), textureLoad(xt, xy.xy, xy.z), ok);
}

// Accumulates the CO channels x 4 columns of output item `item` into c0..c7 (and d0..d7).
fn conv_acc(n: u32, oh: u32, j: u32, co0: u32, sl: u32) {
    let kt = (K + 3u) / 4u;
    let wra = co0 + sl;
    let wrb = co0 + 8u + sl;
    let j0 = i32(S * j) - i32(PADT);
    let zero = vec4<f32>(0.0);
    // kernel rows that fall in the padding for every lane of the subgroup add nothing, so the
    // loop runs over the rows that some lane needs (backward-data at pad K - 1 skips about a
    // quarter of them)
    var kh_lo = 0u;
    var kh_hi = K;
    if (PAD > 0u) {
        let top = i32(subgroupMax(oh * S)) - i32(PAD);
        let bottom = i32(subgroupMin(oh * S)) - i32(PAD);
        kh_lo = u32(clamp(-top, 0, i32(K)));
        kh_hi = u32(clamp(i32(q.h) - bottom, 0, i32(K)));
    }
    for (var ci = 0u; ci < q.cin; ci++) {
        for (var kh = kh_lo; kh < kh_hi; kh++) {
            let ih = i32(oh * S + kh) - i32(PAD);
            let rowok = ih >= 0 && ih < i32(q.h);
            let row = (n * q.cin + ci) * q.h + u32(clamp(ih, 0, i32(q.h) - 1));
            let t0 = fetch_x(row, rowok, j0);
            var t1 = zero;
            var t2 = zero;
            if (NT > 1u) {
                t1 = fetch_x(row, rowok, j0 + 1);
            }
            if (NT > 2u) {
                t2 = fetch_x(row, rowok, j0 + 2);
            }
            var wa0: vec4<f32>;
            var wa1 = zero;
            var wb0 = zero;
            var wb1 = zero;
            if (FLIPW == 1u) {
                // backward-data from the forward's packed weights: eq. input channel ci is the
                // forward's output channel (its row), the lane's eq. output channel the forward's
                // input channel, kernel row K - 1 - kh, taps reversed
                let fx = (min(wra, q.cout - 1u) * K + (K - 1u - kh)) * kt;
                let f0 = textureLoad(wt, vec2<u32>(fx, ci), 0);
                var f1 = zero;
                if (K > 4u) {
                    f1 = textureLoad(wt, vec2<u32>(fx + 1u, ci), 0);
                }
                wa0 = vec4<f32>(tapr(f0, f1, 0u), tapr(f0, f1, 1u), tapr(f0, f1, 2u),
                                tapr(f0, f1, 3u));
                wa1 = vec4<f32>(tapr(f0, f1, 4u), 0.0, 0.0, 0.0);
                if (CO == 16u) {
                    let gx = (min(wrb, q.cout - 1u) * K + (K - 1u - kh)) * kt;
                    let g0 = textureLoad(wt, vec2<u32>(gx, ci), 0);
                    var g1 = zero;
                    if (K > 4u) {
                        g1 = textureLoad(wt, vec2<u32>(gx + 1u, ci), 0);
                    }
                    wb0 = vec4<f32>(tapr(g0, g1, 0u), tapr(g0, g1, 1u), tapr(g0, g1, 2u),
                                    tapr(g0, g1, 3u));
                    wb1 = vec4<f32>(tapr(g0, g1, 4u), 0.0, 0.0, 0.0);
                }
            } else {
                let wx = (ci * K + kh) * kt;
                wa0 = textureLoad(wt, vec2<u32>(wx, wra), 0);
                if (K > 4u) {
                    wa1 = textureLoad(wt, vec2<u32>(wx + 1u, wra), 0);
                }
                if (CO == 16u) {
                    wb0 = textureLoad(wt, vec2<u32>(wx, wrb), 0);
                    if (K > 4u) {
                        wb1 = textureLoad(wt, vec2<u32>(wx + 1u, wrb), 0);
                    }
                }
            }
            // channel-major: each accumulator takes all K taps in a row (llvmpipe keeps
            // the accumulators in memory, so this loads and stores each once per kernel row)
            c0 = taps(c0, subgroupBroadcast(wa0, 0u), subgroupBroadcast(wa1, 0u), t0, t1, t2);
            if (CV > 1u) { c1 = taps(c1, subgroupBroadcast(wa0, 1u), subgroupBroadcast(wa1, 1u), t0, t1, t2); }
            if (CV > 2u) { c2 = taps(c2, subgroupBroadcast(wa0, 2u), subgroupBroadcast(wa1, 2u), t0, t1, t2); }
            if (CV > 3u) { c3 = taps(c3, subgroupBroadcast(wa0, 3u), subgroupBroadcast(wa1, 3u), t0, t1, t2); }
            if (CV > 4u) { c4 = taps(c4, subgroupBroadcast(wa0, 4u), subgroupBroadcast(wa1, 4u), t0, t1, t2); }
            if (CV > 5u) { c5 = taps(c5, subgroupBroadcast(wa0, 5u), subgroupBroadcast(wa1, 5u), t0, t1, t2); }
            if (CV > 6u) { c6 = taps(c6, subgroupBroadcast(wa0, 6u), subgroupBroadcast(wa1, 6u), t0, t1, t2); }
            if (CV > 7u) { c7 = taps(c7, subgroupBroadcast(wa0, 7u), subgroupBroadcast(wa1, 7u), t0, t1, t2); }
            if (CO == 16u) {
                if (CV > 8u) { d0 = taps(d0, subgroupBroadcast(wb0, 0u), subgroupBroadcast(wb1, 0u), t0, t1, t2); }
                if (CV > 9u) { d1 = taps(d1, subgroupBroadcast(wb0, 1u), subgroupBroadcast(wb1, 1u), t0, t1, t2); }
                if (CV > 10u) { d2 = taps(d2, subgroupBroadcast(wb0, 2u), subgroupBroadcast(wb1, 2u), t0, t1, t2); }
                if (CV > 11u) { d3 = taps(d3, subgroupBroadcast(wb0, 3u), subgroupBroadcast(wb1, 3u), t0, t1, t2); }
                if (CV > 12u) { d4 = taps(d4, subgroupBroadcast(wb0, 4u), subgroupBroadcast(wb1, 4u), t0, t1, t2); }
                if (CV > 13u) { d5 = taps(d5, subgroupBroadcast(wb0, 5u), subgroupBroadcast(wb1, 5u), t0, t1, t2); }
                if (CV > 14u) { d6 = taps(d6, subgroupBroadcast(wb0, 6u), subgroupBroadcast(wb1, 6u), t0, t1, t2); }
                if (CV > 15u) { d7 = taps(d7, subgroupBroadcast(wb0, 7u), subgroupBroadcast(wb1, 7u), t0, t1, t2); }
            }
        }
    }
}

fn acc_at(c: u32) -> vec4<f32> {
    let acc = array<vec4<f32>, 16>(c0, c1, c2, c3, c4, c5, c6, c7, d0, d1, d2, d3, d4, d5, d6, d7);
    return acc[c];
}

// Stores the accumulators of channels co0 .. co0 + nc - 1 (those < q.cout) at output row
// (n, row), columns 4j .. 4j + 3 (those < q.ow), one scalar store each; adds when q.accumulate.
fn store_cols(n: u32, row: u32, j: u32, co0: u32, nc: u32) {
    let ohw = q.oh * q.ow;
    let col = 4u * j;
    let base = n * q.cout * ohw + row * q.ow + col;
    for (var c = 0u; c < nc; c++) {
        if (co0 + c < q.cout) {
            let v = acc_at(c);
            for (var e = 0u; e < 4u; e++) {
                if (col + e < q.ow) {
                    let i = base + (co0 + c) * ohw + e;
                    if (q.accumulate != 0u) {
                        y[i] = y[i] + v[e];
                    } else {
                        y[i] = v[e];
                    }
                }
            }
        }
    }
}

// The output item of invocation li of workgroup wgx: image n, output row oh, texel column j, and
// whether it exists (an invocation past the last item computes the last one, uniform control
// flow for the broadcasts, and stores nothing).
struct Item {
    n: u32,
    oh: u32,
    j: u32,
    ok: bool,
}

// Accumulates the CO channels from co0 of the invocation's item into c0..c7 (and d0..d7) and
// returns the item.
fn conv_item(wgx: u32, li: u32, co0: u32, sl: u32) -> Item {
    let total = q.n * q.oh * q.ow4;
    let raw = wgx * 64u + li;
    let item = min(raw, total - 1u);
    let r = item / q.ow4;
    let it = Item(r / q.oh, r % q.oh, item - r * q.ow4, raw < total);
    conv_acc(it.n, it.oh, it.j, co0, sl);
    return it;
}

// Any output width: scalar stores, the last texel of a row cut at q.ow.
@compute @workgroup_size(64)
fn conv_tex(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32,
            @builtin(subgroup_invocation_id) sl: u32) {
    q = p;
    let co0 = wg.y * CO;
    let it = conv_item(wg.x, li, co0, sl);
    if (it.ok) {
        store_cols(it.n, it.oh, it.j, co0, CO);
    }
}

@group(0) @binding(1) var<storage, read_write> y4: array<vec4<f32>>;

// The output texel of item `it` in channel co, where q.ow % 4 == 0 (so texel (oh, j) of a plane
// is whole): its vec4 index in y, and its texel in a row texture of the output.
fn out_texel(it: Item, co: u32) -> u32 {
    return (it.n * q.cout + co) * q.oh * q.ow4 + it.oh * q.ow4 + it.j;
}

// Output width a multiple of 4: one vec4 store per channel (about 4 times cheaper on llvmpipe).
@compute @workgroup_size(64)
fn conv_tex4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32,
             @builtin(subgroup_invocation_id) sl: u32) {
    q = p;
    let co0 = wg.y * CO;
    let it = conv_item(wg.x, li, co0, sl);
    if (it.ok) {
        for (var c = 0u; c < CO; c++) {
            if (co0 + c < q.cout) {
                let i = out_texel(it, co0 + c);
                if (q.accumulate != 0u) {
                    y4[i] = y4[i] + acc_at(c);
                } else {
                    y4[i] = acc_at(c);
                }
            }
        }
    }
}

@group(0) @binding(1) var y_rows: texture_storage_2d_array<rgba32float, write>;

// conv_tex4 storing its texels into a texture instead of a buffer: with q.ow % 4 == 0, texel i of
// the output buffer, at texel_xy(i) (the layout of pack_act, and of a buffer-to-texture copy), for
// the texture-fed batch norm after the conv, which would otherwise copy the buffer in. Forward
// only, never accumulating.
@compute @workgroup_size(64)
fn conv_tex4_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32,
                  @builtin(subgroup_invocation_id) sl: u32) {
    q = p;
    let co0 = wg.y * CO;
    let it = conv_item(wg.x, li, co0, sl);
    if (it.ok) {
        for (var c = 0u; c < CO; c++) {
            if (co0 + c < q.cout) {
                let xy = texel_xy(out_texel(it, co0 + c));
                textureStore(y_rows, xy.xy, xy.z, acc_at(c));
            }
        }
    }
}

@group(0) @binding(1) var<storage, read_write> y2: array<vec2<f32>>;

// Output width even (not a multiple of 4): two vec2 stores per channel, the second only where
// columns 4j + 2 and 4j + 3 exist (a vec2 store costs llvmpipe about what a float store does).
@compute @workgroup_size(64)
fn conv_tex2(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32,
             @builtin(subgroup_invocation_id) sl: u32) {
    q = p;
    let co0 = wg.y * CO;
    let it = conv_item(wg.x, li, co0, sl);
    if (it.ok) {
        let n = it.n;
        let oh = it.oh;
        let j = it.j;
        let ohw = q.oh * q.ow;
        let col = 4u * j;
        let second = col + 2u < q.ow;
        // (n, co, oh, col) with col and q.ow even: the float offset is even
        let base = (n * q.cout * ohw + oh * q.ow + col) / 2u;
        for (var c = 0u; c < CO; c++) {
            if (co0 + c < q.cout) {
                let i = base + (co0 + c) * ohw / 2u;
                let v = acc_at(c);
                if (q.accumulate != 0u) {
                    y2[i] = y2[i] + v.xy;
                    if (second) {
                        y2[i + 1u] = y2[i + 1u] + v.zw;
                    }
                } else {
                    y2[i] = v.xy;
                    if (second) {
                        y2[i + 1u] = v.zw;
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Backward-weight. x (channel-grouped, pack_act_c4) and dy (rows, pack_act) as textures.

@group(0) @binding(1) var c4_out: texture_storage_2d_array<rgba32float, write>;
@group(0) @binding(2) var<storage, read> c4_src: array<f32>;

@compute @workgroup_size(64)
fn pack_act_c4(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    q = p;
    let t = g.x + g.y * nwg.x * 64u;
    if (t >= q.n * q.h * q.w * q.c4) {
        return;
    }
    let c = t % q.c4;
    let pix = t / q.c4;
    let hw = q.h * q.w;
    let n = pix / hw;
    let base = n * q.cin * hw + pix % hw;
    var v = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        let ci = 4u * c + j;
        if (ci < q.cin) {
            v[j] = c4_src[base + ci * hw];
        }
    }
    let xy = texel_xy(t);
    textureStore(c4_out, xy.xy, xy.z, v);
}

@group(0) @binding(2) var c4_rows: texture_storage_2d_array<rgba32float, read>;

// pack_act_c4 for rows of a multiple of 4 columns, from x's row texture (copied): invocation =
// (n, h, column group j, channel group c); it fetches the 4 channel rows' texel j (4 columns
// each) and writes the 4 pixels' channel texels, a 4 x 4 transpose in registers (4 fetches
// instead of 16 storage loads).
@compute @workgroup_size(64)
fn pack_c4_from_rows(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    q = p;
    let i = g.x + g.y * nwg.x * 64u;
    let w4 = q.w / 4u;
    if (i >= q.n * q.h * w4 * q.c4) {
        return;
    }
    let c = i % q.c4;
    let j = (i / q.c4) % w4;
    let nh = i / (q.c4 * w4);      // n * h + h
    let h = nh % q.h;
    let n = nh / q.h;
    var v: array<vec4<f32>, 4>;
    for (var k = 0u; k < 4u; k++) {
        let ci = 4u * c + k;
        let t = ((n * q.cin + min(ci, q.cin - 1u)) * q.h + h) * w4 + j;
        let xy = texel_xy(t);
        v[k] = select(vec4<f32>(0.0), textureLoad(c4_rows, xy.xy, xy.z), ci < q.cin);
    }
    for (var e = 0u; e < 4u; e++) {
        let o = (nh * q.w + 4u * j + e) * q.c4 + c;
        let xy = texel_xy(o);
        textureStore(c4_out, xy.xy, xy.z, vec4<f32>(v[0][e], v[1][e], v[2][e], v[3][e]));
    }
}

@group(0) @binding(1) var<storage, read_write> dw: array<f32>;
@group(0) @binding(2) var dyt: texture_storage_2d_array<rgba32float, read>;
@group(0) @binding(3) var xct: texture_storage_2d_array<rgba32float, read>;

fn fetch_xc(n: u32, ih: i32, iw: i32, c: u32) -> vec4<f32> {
    let ok = ih >= 0 && ih < i32(q.h) && iw >= 0 && iw < i32(q.w);
    let t = select(0u, ((n * q.h + u32(ih)) * q.w + u32(iw)) * q.c4 + c, ok);
    let xy = texel_xy(t);
    return select(vec4<f32>(0.0), textureLoad(xct, xy.xy, xy.z), ok);
}

fn dw_step(a: f32, n: u32, ih: i32, iw: i32, c: u32) {
    step_c(a, fetch_xc(n, ih, iw, c));
}

// q.h/q.w/q.cin: the layer input; q.oh/q.ow/q.cout: its output (dy); out = partial[slice][cout][cin*K*K]
@compute @workgroup_size(64)
fn conv_dw_tex(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32,
               @builtin(subgroup_invocation_id) sl: u32) {
    q = p;
    let lanes = q.c4 * K * K;
    let lane_raw = wg.x * 64u + li;
    let lane = min(lane_raw, lanes - 1u);
    let kw = lane % K;
    let kh = (lane / K) % K;
    let c = lane / (K * K);
    let co0 = wg.y * 8u;
    let dco = min(co0 + sl, q.cout - 1u);
    let items = q.n * q.oh * q.ow4;
    let chunk = (items + q.slices - 1u) / q.slices;
    let first = wg.z * chunk;
    let last = min(first + chunk, items);
    let s = i32(q.stride);
    for (var it = first; it < last; it++) {
        let j = it % q.ow4;
        let row = it / q.ow4;            // n * oh + oh
        let oh = row % q.oh;
        let n = row / q.oh;
        let dxy = texel_xy((n * q.cout + dco) * q.oh * q.ow4 + oh * q.ow4 + j);
        let dv = textureLoad(dyt, dxy.xy, dxy.z);
        let ih = i32(oh) * s + i32(kh) - i32(q.pad);
        let iw0 = i32(4u * j) * s + i32(kw) - i32(q.pad);
        dw_step(dv.x, n, ih, iw0, c);
        dw_step(dv.y, n, ih, iw0 + s, c);
        dw_step(dv.z, n, ih, iw0 + 2 * s, c);
        dw_step(dv.w, n, ih, iw0 + 3 * s, c);
    }
    if (lane_raw < lanes) {
        let kk = K * K;
        let taps = q.cin * kk;
        let base = wg.z * q.cout * taps + kh * K + kw;
        for (var o = 0u; o < 8u; o++) {
            let co = co0 + o;
            if (co < q.cout) {
                let v = acc_at(o);
                for (var e = 0u; e < 4u; e++) {
                    let ci = 4u * c + e;
                    if (ci < q.cin) {
                        let i = base + co * taps + ci * kk;
                        if (q.accumulate != 0u) {
                            dw[i] = dw[i] + v[e];
                        } else {
                            dw[i] = v[e];
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// conv_dw_rows_tex: backward-weight at stride 1 (2-3x conv_dw_tex on ResNet-20's shapes, and for
// LeNet's 1 and 6 input channels conv_dw_tex's 4-channel groups would be mostly padding).
// Lane = one (ci, kh) row of taps of the
// layer input (8 rows per one-subgroup workgroup), wg.y = 8 output channels, wg.z = a slice of the
// (n, oh, 4-column) items. Per item a lane fetches one dy texel (4 positions of channel co0 + lane,
// from pack_act) and the NT x texels under its row's window (x rows from pack_act or a copy), the
// 8 channels' dy reach every lane by broadcast, and the K taps take a dot product each:
// 1 + NT fetches for 32 * K FMAs. c_j accumulates taps 0..3 of channel co0 + j, d_j taps 4..7.
@group(0) @binding(3) var xrt: texture_storage_2d_array<rgba32float, read>;

fn fetch_xr(row: u32, rowok: bool, jj: i32) -> vec4<f32> {
    let ok = rowok && jj >= 0 && jj < i32(q.w4);
    let xy = texel_xy(select(0u, row * q.w4 + u32(jj), ok));
    return select(vec4<f32>(0.0), textureLoad(xrt, xy.xy, xy.z), ok);
}

// The K taps' dot products of dy values dv with the windows of t0 | t1 | t2.
fn taps_dot(dv: vec4<f32>, t0: vec4<f32>, t1: vec4<f32>, t2: vec4<f32>) -> array<vec4<f32>, 2> {
    var lo = vec4<f32>(0.0);
    var hi = vec4<f32>(0.0);
    lo.x = dot(dv, win(t0, t1, t2, M));
    if (K > 1u) { lo.y = dot(dv, win(t0, t1, t2, M + 1u)); }
    if (K > 2u) { lo.z = dot(dv, win(t0, t1, t2, M + 2u)); }
    if (K > 3u) { lo.w = dot(dv, win(t0, t1, t2, M + 3u)); }
    if (K > 4u) { hi.x = dot(dv, win(t0, t1, t2, M + 4u)); }
    return array<vec4<f32>, 2>(lo, hi);
}

// (channels co0 + j >= co0 + CV, which do not exist, are skipped)
fn dw_rows_step(dv: vec4<f32>, t0: vec4<f32>, t1: vec4<f32>, t2: vec4<f32>) {
    var r = taps_dot(subgroupBroadcast(dv, 0u), t0, t1, t2); c0 += r[0]; d0 += r[1];
    if (CV > 1u) { r = taps_dot(subgroupBroadcast(dv, 1u), t0, t1, t2); c1 += r[0]; d1 += r[1]; }
    if (CV > 2u) { r = taps_dot(subgroupBroadcast(dv, 2u), t0, t1, t2); c2 += r[0]; d2 += r[1]; }
    if (CV > 3u) { r = taps_dot(subgroupBroadcast(dv, 3u), t0, t1, t2); c3 += r[0]; d3 += r[1]; }
    if (CV > 4u) { r = taps_dot(subgroupBroadcast(dv, 4u), t0, t1, t2); c4 += r[0]; d4 += r[1]; }
    if (CV > 5u) { r = taps_dot(subgroupBroadcast(dv, 5u), t0, t1, t2); c5 += r[0]; d5 += r[1]; }
    if (CV > 6u) { r = taps_dot(subgroupBroadcast(dv, 6u), t0, t1, t2); c6 += r[0]; d6 += r[1]; }
    if (CV > 7u) { r = taps_dot(subgroupBroadcast(dv, 7u), t0, t1, t2); c7 += r[0]; d7 += r[1]; }
}

// q.h/q.w/q.w4/q.cin: the layer input; q.oh/q.ow/q.ow4/q.cout: its output (dy);
// dw = partial[slice][cout][cin][K][K]
@compute @workgroup_size(8)
fn conv_dw_rows_tex(@builtin(workgroup_id) wg: vec3<u32>, @builtin(subgroup_invocation_id) sl: u32) {
    q = p;
    let rows = q.cin * K;
    let r_raw = wg.x * 8u + sl;
    let r = min(r_raw, rows - 1u);
    let ci = r / K;
    let kh = r % K;
    let co0 = wg.y * 8u;
    let dco = min(co0 + sl, q.cout - 1u);
    let items = q.n * q.oh * q.ow4;
    let chunk = (items + q.slices - 1u) / q.slices;
    let first = wg.z * chunk;
    let last = min(first + chunk, items);
    let zero = vec4<f32>(0.0);
    // (n, oh, j) of item `first`, then stepped without divisions (llvmpipe divides lane by lane)
    var j = first % q.ow4;
    var oh = (first / q.ow4) % q.oh;
    var n = first / (q.ow4 * q.oh);
    for (var it = first; it < last; it++) {
        let dxy = texel_xy((n * q.cout + dco) * q.oh * q.ow4 + oh * q.ow4 + j);
        let dv = textureLoad(dyt, dxy.xy, dxy.z);
        let ih = i32(oh + kh) - i32(PAD);
        let rowok = ih >= 0 && ih < i32(q.h);
        let xrow = (n * q.cin + ci) * q.h + u32(clamp(ih, 0, i32(q.h) - 1));
        let j0 = i32(j) - i32(PADT);
        let t0 = fetch_xr(xrow, rowok, j0);
        var t1 = zero;
        var t2 = zero;
        if (NT > 1u) {
            t1 = fetch_xr(xrow, rowok, j0 + 1);
        }
        if (NT > 2u) {
            t2 = fetch_xr(xrow, rowok, j0 + 2);
        }
        // (dy columns past q.ow are pack_act's zero padding: a copied dy has none)
        dw_rows_step(dv, t0, t1, t2);
        j += 1u;
        let wrap = j == q.ow4;
        j = select(j, 0u, wrap);
        oh += select(0u, 1u, wrap);
        let wrap_n = oh == q.oh;
        oh = select(oh, 0u, wrap_n);
        n += select(0u, 1u, wrap_n);
    }
    if (r_raw < rows) {
        let taps = q.cin * K * K;
        let base = wg.z * q.cout * taps + r * K;
        for (var o = 0u; o < 8u; o++) {
            let co = co0 + o;
            if (co < q.cout) {
                let v = array<vec4<f32>, 2>(acc_at(o), acc_at(8u + o));
                for (var kw = 0u; kw < K; kw++) {
                    let i = base + co * taps + kw;
                    let a = v[kw / 4u][kw % 4u];
                    if (q.accumulate != 0u) {
                        dw[i] = dw[i] + a;
                    } else {
                        dw[i] = a;
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Stride-2 backward-data. q.cin/q.h/q.w/q.w4: dy (the layer's output); q.cout/q.oh/q.ow/q.ow4: dx
// (the layer's input); weights packed by pack_wt with flip = 1 (rows = the layer's input
// channels); y/y4 = dx.

// float i of t0 | t1 | t2 (i a constant)
fn pick(t0: vec4<f32>, t1: vec4<f32>, t2: vec4<f32>, i: i32) -> f32 {
    if (i < 4) {
        return t0[i];
    } else if (i < 8) {
        return t1[i - 4];
    }
    return t2[i - 8];
}

// Tap kw (a constant): dx columns e0 and e0 + 2 of the 4 take dy columns 2j + d and 2j + d + 1.
fn tap2(kw: u32, odd: bool, wa0: vec4<f32>, wa1: vec4<f32>, t0: vec4<f32>, t1: vec4<f32>, t2: vec4<f32>) {
    let e0 = (kw + PAD) % 2u;
    let d = (i32(e0) + i32(PAD) - i32(kw)) / 2;
    let a = select(pick(t0, t1, t2, 4 + d), pick(t0, t1, t2, 6 + d), odd);
    let b = select(pick(t0, t1, t2, 5 + d), pick(t0, t1, t2, 7 + d), odd);
    var xv = vec4<f32>(0.0, a, 0.0, b);
    if (e0 == 0u) {
        xv = vec4<f32>(a, 0.0, b, 0.0);
    }
    let kf = K - 1u - kw;
    if (kf < 4u) {
        step_c(wa0[kf], xv);
    } else {
        step_c(wa1[kf - 4u], xv);
    }
}

@compute @workgroup_size(64)
fn conv_bwd_data2_tex(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32,
                      @builtin(subgroup_invocation_id) sl: u32) {
    q = p;
    let total = q.n * q.oh * q.ow4;
    let item_raw = wg.x * 64u + li;
    let item = min(item_raw, total - 1u);
    let j = item % q.ow4;
    let r = (item / q.ow4) % q.oh;
    let n = item / (q.ow4 * q.oh);
    let half = (q.oh + 1u) / 2u;
    let ih = select(2u * (r - half) + 1u, 2u * r, r < half);
    let co0 = wg.y * 8u;
    let kt = (K + 3u) / 4u;
    let odd = (j & 1u) == 1u;
    let jb = i32(j / 2u);
    let zero = vec4<f32>(0.0);
    for (var ci = 0u; ci < q.cin; ci++) {
        for (var kh = 0u; kh < K; kh++) {
            let th = i32(ih + PAD) - i32(kh);
            let oh = th / 2;
            let rowok = th >= 0 && (th & 1) == 0 && oh < i32(q.h);
            if (!subgroupAny(rowok)) {
                continue;
            }
            let row = (n * q.cin + ci) * q.h + u32(clamp(oh, 0, i32(q.h) - 1));
            let t0 = fetch_x(row, rowok, jb - 1);
            let t1 = fetch_x(row, rowok, jb);
            let t2 = fetch_x(row, rowok, jb + 1);
            let wx = (ci * K + (K - 1u - kh)) * kt;
            let wa0 = textureLoad(wt, vec2<u32>(wx, co0 + sl), 0);
            var wa1 = zero;
            if (K > 4u) {
                wa1 = textureLoad(wt, vec2<u32>(wx + 1u, co0 + sl), 0);
            }
            tap2(0u, odd, wa0, wa1, t0, t1, t2);
            if (K > 1u) {
                tap2(1u, odd, wa0, wa1, t0, t1, t2);
            }
            if (K > 2u) {
                tap2(2u, odd, wa0, wa1, t0, t1, t2);
            }
            if (K > 3u) {
                tap2(3u, odd, wa0, wa1, t0, t1, t2);
            }
            if (K > 4u) {
                tap2(4u, odd, wa0, wa1, t0, t1, t2);
            }
        }
    }
    if (item_raw < total) {
        store_cols(n, ih, j, co0, 8u);
    }
}
