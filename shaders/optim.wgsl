// Optimizers. Each element has a mask (1 = trainable, 0 = frozen). A frozen element (INQ) is not
// touched at all: its weight, momentum and Adam moments keep their values, so retraining updates
// only the weights with mask 1, momentum included. Other mask values scale the weight update.
//
//  - sgd (PyTorch semantics, dampening 0, as vec4s): d = g + wd * w; v = mu * v + d;
//    u = d + mu * v (Nesterov) or v; w -= lr * u * mask.
//  - adam (L2 weight decay added to the gradient): m = b1 m + (1 - b1) d; v = b2 v + (1 - b2) d^2;
//    w -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) * mask.

struct SgdParams {
    n: u32,
    nesterov: u32,
    _pad0: u32,
    _pad1: u32,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    _pad2: f32,
}

struct AdamParams {
    n: u32,
    t: u32,
    _pad0: u32,
    _pad1: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    _pad2: f32,
    _pad3: f32,
    _pad4: f32,
}

override WG: u32 = 256;

@group(0) @binding(0) var<uniform> sp: SgdParams;
// sgd works on vec4s: invocation i updates elements 4i .. 4i+3 (tensor buffers are zero padded to
// a multiple of 4 floats, and a padding element has mask 0, so it is never written). llvmpipe
// loads a vec4 from a storage buffer for about the price of a float (14x faster at 48000).
@group(0) @binding(1) var<storage, read_write> w4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> mom4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> grad4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> mask4: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= (sp.n + 3u) / 4u) { return; }
    let mk = mask4[i];
    let live = mk != vec4<f32>(0.0);
    let w0 = w4[i];
    let d = fma(vec4<f32>(sp.weight_decay), w0, grad4[i]);
    let m0 = mom4[i];
    let v = fma(vec4<f32>(sp.momentum), m0, d);
    mom4[i] = select(m0, v, live);
    var u = v;
    if (sp.nesterov != 0u) { u = fma(vec4<f32>(sp.momentum), v, d); }
    w4[i] = select(w0, w0 - sp.lr * u * mk, live);
}

// sgd_tex: sgd reading w, momentum, grad and mask from rgba32float textures (texel i = elements
// 4i .. 4i+3 at x = i % 2048, row (i / 2048) % 4096, layer i / 2^23, as shaders/conv_tex.wgsl lays
// out rows; the host fills them with buffer-to-texture copies) and storing w and momentum to their
// buffers. On llvmpipe a texel fetch is a vector gather while a storage-buffer vec4 load is a
// per-invocation loop, several times slower. The arithmetic is sgd's, so both give the same bits.
// The host makes each texture hold ceil(n/4) texels, so i < n4 is a texel that exists. (The layer
// is 0 wherever a storage buffer binding holds at most 2^25 floats, as on lavapipe.)
@group(0) @binding(3) var w_t: texture_storage_2d_array<rgba32float, read>;
@group(0) @binding(4) var mom_t: texture_storage_2d_array<rgba32float, read>;
@group(0) @binding(5) var grad_t: texture_storage_2d_array<rgba32float, read>;
@group(0) @binding(6) var mask_t: texture_storage_2d_array<rgba32float, read>;

@compute @workgroup_size(WG)
fn sgd_tex(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= (sp.n + 3u) / 4u) { return; }
    let row = i >> 11u;
    let xy = vec2<u32>(i & 2047u, row & 4095u);
    let layer = row >> 12u;
    let mk = textureLoad(mask_t, xy, layer);
    let live = mk != vec4<f32>(0.0);
    let w0 = textureLoad(w_t, xy, layer);
    let d = fma(vec4<f32>(sp.weight_decay), w0, textureLoad(grad_t, xy, layer));
    let m0 = textureLoad(mom_t, xy, layer);
    let v = fma(vec4<f32>(sp.momentum), m0, d);
    mom4[i] = select(m0, v, live);
    var u = v;
    if (sp.nesterov != 0u) { u = fma(vec4<f32>(sp.momentum), v, d); }
    w4[i] = select(w0, w0 - sp.lr * u * mk, live);
}

// sgd_multi: the same update for up to MULTI_SLOTS tensors in one dispatch (a training step's
// optimizer is then ceil(params / 6) dispatches instead of one per tensor: on llvmpipe each
// dispatch costs a wake-up and a wait of the worker threads, whatever its size). Slot k's tensor
// holds vec4s [ends[k-1], ends[k]) of the grid (ends[-1] = 0); an unused slot is bound to a dummy
// buffer and has ends[k] = ends[k-1], so no invocation reaches it. Six slots use 24 storage
// buffers, within Metal's 31. The arithmetic is sgd's, so both give the same bits.
const MULTI_SLOTS: u32 = 6u;

struct SgdMultiParams {
    nesterov: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    lr: f32,
    momentum: f32,
    _pad3: f32,
    _pad4: f32,
    // cumulative vec4 counts, slot k in ends[k / 4][k % 4]
    ends: array<vec4<u32>, 2>,
    // weight decay of each slot
    decay: array<vec4<f32>, 2>,
}

@group(0) @binding(0) var<uniform> mp: SgdMultiParams;
@group(0) @binding(1) var<storage, read_write> mw0: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> mm0: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> mg0: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> mk0: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> mw1: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> mm1: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> mg1: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> mk1: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read_write> mw2: array<vec4<f32>>;
@group(0) @binding(10) var<storage, read_write> mm2: array<vec4<f32>>;
@group(0) @binding(11) var<storage, read> mg2: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read> mk2: array<vec4<f32>>;
@group(0) @binding(13) var<storage, read_write> mw3: array<vec4<f32>>;
@group(0) @binding(14) var<storage, read_write> mm3: array<vec4<f32>>;
@group(0) @binding(15) var<storage, read> mg3: array<vec4<f32>>;
@group(0) @binding(16) var<storage, read> mk3: array<vec4<f32>>;
@group(0) @binding(17) var<storage, read_write> mw4: array<vec4<f32>>;
@group(0) @binding(18) var<storage, read_write> mm4: array<vec4<f32>>;
@group(0) @binding(19) var<storage, read> mg4: array<vec4<f32>>;
@group(0) @binding(20) var<storage, read> mk4: array<vec4<f32>>;
@group(0) @binding(21) var<storage, read_write> mw5: array<vec4<f32>>;
@group(0) @binding(22) var<storage, read_write> mm5: array<vec4<f32>>;
@group(0) @binding(23) var<storage, read> mg5: array<vec4<f32>>;
@group(0) @binding(24) var<storage, read> mk5: array<vec4<f32>>;

// (new w, new momentum) of one vec4, with sgd's operation order.
fn sgd_update(w0: vec4<f32>, m0: vec4<f32>, g: vec4<f32>, mk: vec4<f32>, wd: f32) -> array<vec4<f32>, 2> {
    let live = mk != vec4<f32>(0.0);
    let d = fma(vec4<f32>(wd), w0, g);
    let v = fma(vec4<f32>(mp.momentum), m0, d);
    var u = v;
    if (mp.nesterov != 0u) { u = fma(vec4<f32>(mp.momentum), v, d); }
    return array<vec4<f32>, 2>(select(w0, w0 - mp.lr * u * mk, live), select(m0, v, live));
}

@compute @workgroup_size(WG)
fn sgd_multi(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    var slot = 0u;
    var start = 0u;
    loop {
        if (slot >= MULTI_SLOTS) { return; }
        let end = mp.ends[slot / 4u][slot % 4u];
        if (i < end) { break; }
        start = end;
        slot += 1u;
    }
    let j = i - start;
    let wd = mp.decay[slot / 4u][slot % 4u];
    switch slot {
        case 0u: {
            let r = sgd_update(mw0[j], mm0[j], mg0[j], mk0[j], wd);
            mw0[j] = r[0];
            mm0[j] = r[1];
        }
        case 1u: {
            let r = sgd_update(mw1[j], mm1[j], mg1[j], mk1[j], wd);
            mw1[j] = r[0];
            mm1[j] = r[1];
        }
        case 2u: {
            let r = sgd_update(mw2[j], mm2[j], mg2[j], mk2[j], wd);
            mw2[j] = r[0];
            mm2[j] = r[1];
        }
        case 3u: {
            let r = sgd_update(mw3[j], mm3[j], mg3[j], mk3[j], wd);
            mw3[j] = r[0];
            mm3[j] = r[1];
        }
        case 4u: {
            let r = sgd_update(mw4[j], mm4[j], mg4[j], mk4[j], wd);
            mw4[j] = r[0];
            mm4[j] = r[1];
        }
        case 5u: {
            let r = sgd_update(mw5[j], mm5[j], mg5[j], mk5[j], wd);
            mw5[j] = r[0];
            mm5[j] = r[1];
        }
        default: {}
    }
}

@group(0) @binding(0) var<uniform> ap: AdamParams;
@group(0) @binding(1) var<storage, read_write> aw: array<f32>;
@group(0) @binding(2) var<storage, read_write> am: array<f32>;
@group(0) @binding(3) var<storage, read_write> av: array<f32>;
@group(0) @binding(4) var<storage, read> agrad: array<f32>;
@group(0) @binding(5) var<storage, read> amask: array<f32>;

@compute @workgroup_size(WG)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= ap.n) { return; }
    let mk = amask[i];
    if (mk == 0.0) { return; }
    let d = fma(ap.weight_decay, aw[i], agrad[i]);
    let m = ap.beta1 * am[i] + (1.0 - ap.beta1) * d;
    let v = ap.beta2 * av[i] + (1.0 - ap.beta2) * d * d;
    am[i] = m;
    av[i] = v;
    let t = f32(ap.t);
    let mhat = m / (1.0 - pow(ap.beta1, t));
    let vhat = v / (1.0 - pow(ap.beta2, t));
    aw[i] = aw[i] - ap.lr * mhat / (sqrt(vhat) + ap.eps) * mk;
}
