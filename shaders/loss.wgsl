// Softmax cross-entropy, mean over the batch, fused with its gradient, and on-GPU metrics.
//
//  - softmax_ce: one invocation per sample: loss_n = logsumexp(z_n) - z_n[label];
//    dz[n, j] = (softmax(z_n)_j - [j == label]) / N; per_sample[n] = (loss_n, correct_n), where
//    correct means the first maximum logit is the label.
//  - metrics_accumulate: one workgroup adds sum(loss_n), sum(correct_n) and N to metrics[0..3],
//    so a whole epoch accumulates on the GPU and the host reads three floats when it logs.
//  - softmax_ce_metrics: both in one workgroup, for N <= 256;
//  - softmax_ce_metrics_rows: the same, also storing each dz row into a row texture (the layout
//    of conv_tex.wgsl's pack_act: texel n * ceil(classes/4) + t holds dz[n, 4t .. 4t + 3], zeros
//    past the classes), which the last linear layer's backward reads, so no kernel packs dz.

struct LossParams {
    n: u32,
    classes: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: LossParams;
// The params, copied into private registers at the start of every entry point (llvmpipe otherwise
// reloads the uniform buffer inside loops).
var<private> prm: LossParams;

@group(0) @binding(1) var<storage, read_write> dz: array<f32>;
@group(0) @binding(2) var<storage, read_write> per_sample: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read> z: array<f32>;
@group(0) @binding(4) var<storage, read> labels: array<u32>;

// Sample n's (lse, loss, correct) and its label's logit row base; n < prm.n.
struct SampleStats {
    base: u32,
    label: u32,
    lse: f32,
    r: vec2<f32>,   // (loss, correct)
}

fn sample_stats(n: u32) -> SampleStats {
    let base = n * prm.classes;
    let label = labels[n];
    var mx = z[base];
    var arg = 0u;
    for (var j = 1u; j < prm.classes; j++) {
        let v = z[base + j];
        if (v > mx) { mx = v; arg = j; }
    }
    var s = 0.0;
    for (var j = 0u; j < prm.classes; j++) { s += exp(z[base + j] - mx); }
    let lse = mx + log(s);
    return SampleStats(base, label, lse, vec2<f32>(lse - z[base + label], select(0.0, 1.0, arg == label)));
}

// Stores dz[n, 4t .. 4t + 3] (those < prm.classes) and returns them (zeros past the classes).
fn dz_texel(st: SampleStats, t: u32) -> vec4<f32> {
    let inv_n = 1.0 / f32(prm.n);
    var v = vec4<f32>(0.0);
    for (var e = 0u; e < 4u; e++) {
        let j = 4u * t + e;
        if (j < prm.classes) {
            var g = exp(z[st.base + j] - st.lse);
            if (j == st.label) { g -= 1.0; }
            v[e] = g * inv_n;
            dz[st.base + j] = v[e];
        }
    }
    return v;
}

// Sample n's loss, dz row and (loss, correct); n < prm.n.
fn sample_ce(n: u32) -> vec2<f32> {
    let st = sample_stats(n);
    for (var t = 0u; t < (prm.classes + 3u) / 4u; t++) {
        _ = dz_texel(st, t);
    }
    per_sample[n] = st.r;
    return st.r;
}

@compute @workgroup_size(64)
fn softmax_ce(@builtin(global_invocation_id) gid: vec3<u32>) {
    prm = p;
    let n = gid.x;
    if (n >= prm.n) { return; }
    sample_ce(n);
}

@group(0) @binding(1) var<storage, read_write> metrics: array<f32>;
@group(0) @binding(2) var<storage, read> samples: array<vec2<f32>>;

var<workgroup> red: array<vec2<f32>, 256>;

// red[0] = the sum of red[0..256) by a fixed tree (every invocation of the workgroup calls it).
fn red_tree(lid: u32) {
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
        workgroupBarrier();
    }
}

@compute @workgroup_size(256)
fn metrics_accumulate(@builtin(local_invocation_index) lid: u32) {
    prm = p;
    var acc = vec2<f32>(0.0);
    for (var i = lid; i < prm.n; i += 256u) { acc += samples[i]; }
    red[lid] = acc;
    red_tree(lid);
    if (lid == 0u) {
        metrics[0] = metrics[0] + red[0].x;
        metrics[1] = metrics[1] + red[0].y;
        metrics[2] = metrics[2] + f32(prm.n);
    }
}

// softmax_ce_metrics: softmax_ce and metrics_accumulate in one workgroup, for prm.n <= 256 (one
// dispatch instead of two; the sums are metrics_accumulate's, in the same order, so the same bits).
@group(0) @binding(5) var<storage, read_write> metrics_f: array<f32>;

// The workgroup's (loss, correct) sums into metrics_f, as metrics_accumulate adds them.
fn add_metrics(lid: u32, acc: vec2<f32>) {
    red[lid] = acc;
    red_tree(lid);
    if (lid == 0u) {
        metrics_f[0] = metrics_f[0] + red[0].x;
        metrics_f[1] = metrics_f[1] + red[0].y;
        metrics_f[2] = metrics_f[2] + f32(prm.n);
    }
}

@compute @workgroup_size(256)
fn softmax_ce_metrics(@builtin(local_invocation_index) lid: u32) {
    prm = p;
    var acc = vec2<f32>(0.0);
    if (lid < prm.n) {
        acc = sample_ce(lid);
    }
    add_metrics(lid, acc);
}

@group(0) @binding(6) var dz_rows: texture_storage_2d_array<rgba32float, write>;

// conv_tex.wgsl's texel addressing: texel t at x = t % 2048, row (t / 2048) % 4096, layer t / 2^23.
fn texel_xy(t: u32) -> vec3<u32> {
    let row = t >> 11u;
    return vec3<u32>(t & 2047u, row & 4095u, row >> 12u);
}

@compute @workgroup_size(256)
fn softmax_ce_metrics_rows(@builtin(local_invocation_index) lid: u32) {
    prm = p;
    var acc = vec2<f32>(0.0);
    if (lid < prm.n) {
        let st = sample_stats(lid);
        let w4 = (prm.classes + 3u) / 4u;
        for (var t = 0u; t < w4; t++) {
            let xy = texel_xy(lid * w4 + t);
            textureStore(dz_rows, xy.xy, xy.z, dz_texel(st, t));
        }
        per_sample[lid] = st.r;
        acc = st.r;
    }
    add_metrics(lid, acc);
}
