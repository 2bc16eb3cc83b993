// f32 <-> f16 storage conversion, for tensors stored in half precision where the adapter has
// SHADER_F16. Rounding is IEEE round-to-nearest-even, as in the `half` crate's from_f32.

enable f16;

struct ConvertParams {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: ConvertParams;
// The params, copied into private registers at the start of every entry point (llvmpipe otherwise
// reloads the uniform buffer inside loops).
var<private> prm: ConvertParams;
@group(0) @binding(1) var<storage, read_write> dst16: array<f16>;
@group(0) @binding(2) var<storage, read> src32: array<f32>;

@compute @workgroup_size(256)
fn f32_to_f16(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    prm = p;
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i < prm.n) { dst16[i] = f16(src32[i]); }
}
