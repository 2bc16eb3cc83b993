// Texture-fed elementwise kernels for CPU-backed devices: the streaming ops of a residual block
// (add_relu, relu_bwd, axpy; also add and relu_fwd) over n f32 values, n a multiple of 4, with
// the inputs copied into rgba32float textures (texel t = values 4t .. 4t+3, at texel_xy(t) as in
// conv_tex.wgsl) and one vec4 store per invocation. The same formulas as elementwise.wgsl.
// OP selects the formula (a pipeline constant): 0 add_relu, 1 relu_bwd, 2 axpy, 3 add, 4 relu_fwd.
// ta holds x; tb holds y (relu_bwd: the upstream gradient; axpy: the old out; unused ops bind ta).

struct EwParams {
    n: u32,
    cols: u32,
    alpha: f32,
    _pad1: f32,
}

@group(0) @binding(0) var<uniform> p: EwParams;
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
    let t = gid.x + gid.y * nwg.x * 256u;
    if (t >= p.n / 4u) { return; }
    let xy = texel_xy(t);
    let x = textureLoad(ta, xy.xy, xy.z);
    var r: vec4<f32>;
    switch OP {
        case 0u: { r = max(x + textureLoad(tb, xy.xy, xy.z), vec4<f32>(0.0)); }
        case 1u: { r = select(vec4<f32>(0.0), textureLoad(tb, xy.xy, xy.z), x > vec4<f32>(0.0)); }
        case 2u: { r = fma(vec4<f32>(p.alpha), x, textureLoad(tb, xy.xy, xy.z)); }
        case 3u: { r = x + textureLoad(tb, xy.xy, xy.z); }
        default: { r = max(x, vec4<f32>(0.0)); }
    }
    out4[t] = r;
}
