// Texture-fed register-tiled GEMM for CPU-backed devices (lavapipe/llvmpipe), and its pack kernel.
//
// Why textures: llvmpipe (Mesa 22.3) lowers every storage-buffer and workgroup-memory load to a
// per-invocation scalar loop with a bounds check and a store-forwarding stall, about 20 cycles
// per element per invocation even when the address is uniform, while a read-only storage-texture
// fetch of an rgba32float texel is a vectorised gather (about 9 cycles per texel, 4 floats).
// FMAs cost about 0.2 cycles per invocation, so the kernel is shaped to fetch as little as possible:
//
//  - pack_rgba writes op(A) as an [Mp rows][K4 texels] texture and op(B) as a [4*K4 rows][N4p
//    texels] texture (zero padded, transposes resolved by strides), one layer per batch entry;
//  - gemm_tex: each subgroup of 8 invocations owns 8 rows and 8 texel columns (32 columns); an
//    invocation keeps an 8 x 4 register tile. Per 4 k-steps a lane fetches one A texel (4 k values
//    of the row it is responsible for) and per k-step one B texel, and the 8 rows' A values reach
//    every lane through subgroupBroadcast, so each B texel feeds 32 FMAs.
//
// It needs subgroups of exactly 8 consecutive invocations (lavapipe's layout); the host only
// selects it there, and checks it against the CPU twin before timing it.

struct GemmParams {
    m: u32, n: u32, k: u32, batch: u32,
    a_off: u32, a_rs: u32, a_cs: u32, a_bs: u32,
    b_off: u32, b_rs: u32, b_cs: u32, b_bs: u32,
    c_off: u32, c_rs: u32, c_bs: u32, _pad0: u32,
    alpha: f32, beta: f32, _pad1: u32, _pad2: u32,
}

struct PackParams {
    rows: u32,   // logical rows of the source matrix
    cols: u32,   // logical columns
    off: u32,    // element offset of (0, 0)
    rs: u32,     // row stride
    cs: u32,     // column stride
    bs: u32,     // batch stride
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: GemmParams;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var tex_a: texture_storage_2d_array<rgba32float, read>;
@group(0) @binding(3) var tex_b: texture_storage_2d_array<rgba32float, read>;

@group(0) @binding(0) var<uniform> pp: PackParams;
@group(0) @binding(1) var pack_out: texture_storage_2d_array<rgba32float, write>;
@group(0) @binding(2) var<storage, read> pack_src: array<f32>;

// Texel (x, y) of layer z holds source row y, columns 4x .. 4x+3 (zero outside the matrix).
@compute @workgroup_size(8, 8)
fn pack_rgba(@builtin(global_invocation_id) g: vec3<u32>) {
    let dims = textureDimensions(pack_out);
    if (g.x >= dims.x || g.y >= dims.y) {
        return;
    }
    var v = vec4<f32>(0.0);
    if (g.y < pp.rows) {
        let base = pp.off + g.z * pp.bs + g.y * pp.rs;
        for (var j = 0u; j < 4u; j++) {
            let col = 4u * g.x + j;
            if (col < pp.cols) {
                v[j] = pack_src[base + col * pp.cs];
            }
        }
    }
    textureStore(pack_out, vec2<u32>(g.x, g.y), g.z, v);
}

fn store_c(idx: u32, v: f32) {
    if (p.beta == 0.0) {
        c[idx] = p.alpha * v;
    } else {
        c[idx] = p.alpha * v + p.beta * c[idx];
    }
}

fn store_row(r: u32, col: u32, v: vec4<f32>, cb: u32) {
    if (r >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (col + j < p.n) {
            store_c(cb + r * p.c_rs + col + j, v[j]);
        }
    }
}

@compute @workgroup_size(64)
fn gemm_tex(@builtin(workgroup_id) wg: vec3<u32>,
            @builtin(local_invocation_index) li: u32,
            @builtin(subgroup_invocation_id) sl: u32) {
    let col4 = wg.x * 8u + sl;
    let row0 = wg.y * 64u + (li / 8u) * 8u;
    let z = wg.z;
    let k4n = textureDimensions(tex_a).x;
    var c0 = vec4<f32>(0.0);
    var c1 = vec4<f32>(0.0);
    var c2 = vec4<f32>(0.0);
    var c3 = vec4<f32>(0.0);
    var c4 = vec4<f32>(0.0);
    var c5 = vec4<f32>(0.0);
    var c6 = vec4<f32>(0.0);
    var c7 = vec4<f32>(0.0);
    for (var k4 = 0u; k4 < k4n; k4++) {
        let av = textureLoad(tex_a, vec2<u32>(k4, row0 + sl), z);
        for (var kk = 0u; kk < 4u; kk++) {
            let bv = textureLoad(tex_b, vec2<u32>(col4, 4u * k4 + kk), z);
            let a = av[kk];
            c0 = fma(vec4<f32>(subgroupBroadcast(a, 0u)), bv, c0);
            c1 = fma(vec4<f32>(subgroupBroadcast(a, 1u)), bv, c1);
            c2 = fma(vec4<f32>(subgroupBroadcast(a, 2u)), bv, c2);
            c3 = fma(vec4<f32>(subgroupBroadcast(a, 3u)), bv, c3);
            c4 = fma(vec4<f32>(subgroupBroadcast(a, 4u)), bv, c4);
            c5 = fma(vec4<f32>(subgroupBroadcast(a, 5u)), bv, c5);
            c6 = fma(vec4<f32>(subgroupBroadcast(a, 6u)), bv, c6);
            c7 = fma(vec4<f32>(subgroupBroadcast(a, 7u)), bv, c7);
        }
    }
    let cb = p.c_off + z * p.c_bs;
    let col = col4 * 4u;
    store_row(row0, col, c0, cb);
    store_row(row0 + 1u, col, c1, cb);
    store_row(row0 + 2u, col, c2, cb);
    store_row(row0 + 3u, col, c3, cb);
    store_row(row0 + 4u, col, c4, cb);
    store_row(row0 + 5u, col, c5, cb);
    store_row(row0 + 6u, col, c6, cb);
    store_row(row0 + 7u, col, c7, cb);
}
