// Elementwise kernels over n f32 values: fill, scale, axpy, bias_add, add, ReLU forward and
// backward, and add_relu (a residual add and its ReLU in one pass).
//
// One invocation per element. Large tensors use a 2-D grid of workgroups; the flat index is
// gid.x + gid.y * (num_workgroups.x * WG). Bindings are numbered so that each entry point uses a
// prefix: out (1), then x (2), then y (3). In-place forms (scale, axpy) read and write `out`.

struct EwParams {
    n: u32,
    cols: u32,    // bias_add: row length
    alpha: f32,   // fill value, scale factor or axpy's a
    _pad1: f32,
}

@group(0) @binding(0) var<uniform> p: EwParams;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> y: array<f32>;

override WG: u32 = 256;

fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// out[i] = alpha
@compute @workgroup_size(WG)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) { out[i] = p.alpha; }
}

// out[i] = alpha * out[i]
@compute @workgroup_size(WG)
fn scale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) { out[i] = p.alpha * out[i]; }
}

// out[i] = alpha * x[i] + out[i]
@compute @workgroup_size(WG)
fn axpy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) { out[i] = fma(p.alpha, x[i], out[i]); }
}

// out[i] += x[i % cols]   (a bias over the last dimension of a row-major matrix)
@compute @workgroup_size(WG)
fn bias_add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) { out[i] = out[i] + x[i % p.cols]; }
}

// out[i] = max(x[i], 0)
@compute @workgroup_size(WG)
fn relu_fwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) { out[i] = max(x[i], 0.0); }
}

// out[i] = x[i] + y[i]
@compute @workgroup_size(WG)
fn add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) { out[i] = x[i] + y[i]; }
}

// out[i] = y[i] if x[i] > 0 else 0   (x: the forward input, y: the upstream gradient)
@compute @workgroup_size(WG)
fn relu_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) { out[i] = select(0.0, y[i], x[i] > 0.0); }
}

// out[i] = max(x[i] + y[i], 0)
@compute @workgroup_size(WG)
fn add_relu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i < p.n) { out[i] = max(x[i] + y[i], 0.0); }
}
