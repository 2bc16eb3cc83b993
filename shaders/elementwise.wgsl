// Elementwise kernels over n f32 values: fill, scale, axpy, bias_add, add, ReLU forward and
// backward, and add_relu (a residual add and its ReLU in one pass); at the end ew_tex, their
// texture-fed form.
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
// The params, copied into private registers at the start of every entry point (llvmpipe otherwise
// reloads the uniform buffer inside loops).
var<private> prm: EwParams;
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
    prm = p;
    let i = flat(gid, nwg);
    if (i < prm.n) { out[i] = prm.alpha; }
}

// out[i] = alpha * out[i]
@compute @workgroup_size(WG)
fn scale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    prm = p;
    let i = flat(gid, nwg);
    if (i < prm.n) { out[i] = prm.alpha * out[i]; }
}

// out[i] = alpha * x[i] + out[i]
@compute @workgroup_size(WG)
fn axpy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    prm = p;
    let i = flat(gid, nwg);
    if (i < prm.n) { out[i] = fma(prm.alpha, x[i], out[i]); }
}

// out[i] += x[i % cols]   (a bias over the last dimension of a row-major matrix)
@compute @workgroup_size(WG)
fn bias_add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    prm = p;
    let i = flat(gid, nwg);
    if (i < prm.n) { out[i] = out[i] + x[i % prm.cols]; }
}

// out[i] = max(x[i], 0)
@compute @workgroup_size(WG)
fn relu_fwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    prm = p;
    let i = flat(gid, nwg);
    if (i < prm.n) { out[i] = max(x[i], 0.0); }
}

// out[i] = x[i] + y[i]
@compute @workgroup_size(WG)
fn add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    prm = p;
    let i = flat(gid, nwg);
    if (i < prm.n) { out[i] = x[i] + y[i]; }
}

// out[i] = y[i] if x[i] > 0 else 0   (x: the forward input, y: the upstream gradient)
@compute @workgroup_size(WG)
fn relu_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    prm = p;
    let i = flat(gid, nwg);
    if (i < prm.n) { out[i] = select(0.0, y[i], x[i] > 0.0); }
}

// out[i] = max(x[i] + y[i], 0)
@compute @workgroup_size(WG)
fn add_relu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    prm = p;
    let i = flat(gid, nwg);
    if (i < prm.n) { out[i] = max(x[i] + y[i], 0.0); }
}

// ew_tex: the texture-fed form for CPU-backed devices of the streaming ops of a residual block
// (add_relu, relu_bwd, axpy; also add and relu_fwd), for n a multiple of 4, with the inputs
// copied into rgba32float textures (texel t = values 4t .. 4t+3, at texel_xy(t) as in
// conv_tex.wgsl) and one vec4 store per invocation; the same formulas as above. OP selects the
// formula (a pipeline constant): 0 add_relu, 1 relu_bwd, 2 axpy, 3 add, 4 relu_fwd. ta holds x; tb
// holds y (relu_bwd: the upstream gradient; axpy: the old out; single-input ops bind ta twice).
@group(0) @binding(1) var<storage, read_write> out4: array<vec4<f32>>;
@group(0) @binding(2) var ta: texture_storage_2d_array<rgba32float, read>;
@group(0) @binding(3) var tb: texture_storage_2d_array<rgba32float, read>;

override OP: u32 = 0u;

fn texel_xy(t: u32) -> vec3<u32> {
    let row = t >> 11u;
    return vec3<u32>(t & 2047u, row & 4095u, row >> 12u);
}

@compute @workgroup_size(256)
fn ew_tex(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    prm = p;
    let t = gid.x + gid.y * nwg.x * 256u;
    if (t >= prm.n / 4u) { return; }
    let xy = texel_xy(t);
    let x = textureLoad(ta, xy.xy, xy.z);
    var r: vec4<f32>;
    switch OP {
        case 0u: { r = max(x + textureLoad(tb, xy.xy, xy.z), vec4<f32>(0.0)); }
        case 1u: { r = select(vec4<f32>(0.0), textureLoad(tb, xy.xy, xy.z), x > vec4<f32>(0.0)); }
        case 2u: { r = fma(vec4<f32>(prm.alpha), x, textureLoad(tb, xy.xy, xy.z)); }
        case 3u: { r = x + textureLoad(tb, xy.xy, xy.z); }
        default: { r = max(x, vec4<f32>(0.0)); }
    }
    out4[t] = r;
}
