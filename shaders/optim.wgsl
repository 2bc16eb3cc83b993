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
