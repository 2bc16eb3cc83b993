// GEMM: C[z] = alpha * op(A[z]) * op(B[z]) + beta * C[z], any M, N, K, batched over z.
//
// Transposes are strides: element (m, k) of op(A) is a[a_off + z*a_bs + m*a_rs + k*a_cs] and
// element (k, n) of op(B) is b[b_off + z*b_bs + k*b_rs + n*b_cs]; C is row-major with row stride
// c_rs. So A·B, Aᵀ·B and A·Bᵀ are one kernel with different strides (see src/ops/gemm.rs).
//
// Variants, side by side:
//  - gemm_reg8x2: portable register tiles with no workgroup memory and no barriers. All
//    invocations of a workgroup share the same 8 rows of A (uniform addresses), and each owns 2
//    columns spaced WG apart. It runs anywhere; on lavapipe the texture-fed variant in
//    gemm_tex.wgsl is far faster, because llvmpipe makes every storage-buffer load a scalar loop.
//  - gemm_tiled: for real GPUs. A BM x BK tile of A and a BK x BN tile of B are staged in
//    workgroup memory; each invocation accumulates a 4x4 register tile. BM = 4*WY, BN = 4*WX.
//
// Out-of-range rows and columns are clamped on load (no branches in the inner loop) and skipped
// on store.

struct GemmParams {
    m: u32, n: u32, k: u32, batch: u32,
    a_off: u32, a_rs: u32, a_cs: u32, a_bs: u32,
    b_off: u32, b_rs: u32, b_cs: u32, b_bs: u32,
    c_off: u32, c_rs: u32, c_bs: u32, _pad0: u32,
    alpha: f32, beta: f32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: GemmParams;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;

// ---- gemm_reg8x2 ----------------------------------------------------------------------------
// The accumulators are named vec4 values, not arrays, so that they stay in registers on every
// compiler (override-sized private arrays were spilled to memory on llvmpipe). A vec4 holds 4
// rows of one column.
override WG: u32 = 64;  // invocations per workgroup, along N

fn store_c(idx: u32, v: f32) {
    if (p.beta == 0.0) {
        c[idx] = p.alpha * v;
    } else {
        c[idx] = p.alpha * v + p.beta * c[idx];
    }
}

fn store4(c_base: u32, row0: u32, col: u32, acc: vec4<f32>) {
    if (col >= p.n) { return; }
    for (var i = 0u; i < 4u; i++) {
        if (row0 + i < p.m) {
            store_c(c_base + (row0 + i) * p.c_rs + col, acc[i]);
        }
    }
}

// 4 rows of A at column kk (uniform across the workgroup: scalar loads, broadcast).
fn a4(r0: u32, r1: u32, r2: u32, r3: u32, kk: u32) -> vec4<f32> {
    let o = kk * p.a_cs;
    return vec4<f32>(a[r0 + o], a[r1 + o], a[r2 + o], a[r3 + o]);
}

fn arow(base: u32, r: u32) -> u32 {
    return base + min(r, p.m - 1u) * p.a_rs;
}

// 8 rows x 2 columns (WG apart) per invocation: 4 vec4 accumulators, one gather per 8 FMAs.
@compute @workgroup_size(WG)
fn gemm_reg8x2(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row0 = wg.y * 8u;
    let col0 = wg.x * WG * 2u + lid;
    let col1 = col0 + WG;
    let ab = p.a_off + wg.z * p.a_bs;
    let r0 = arow(ab, row0); let r1 = arow(ab, row0 + 1u); let r2 = arow(ab, row0 + 2u); let r3 = arow(ab, row0 + 3u);
    let r4 = arow(ab, row0 + 4u); let r5 = arow(ab, row0 + 5u); let r6 = arow(ab, row0 + 6u); let r7 = arow(ab, row0 + 7u);
    let bb = p.b_off + wg.z * p.b_bs;
    let b0 = bb + min(col0, p.n - 1u) * p.b_cs;
    let b1 = bb + min(col1, p.n - 1u) * p.b_cs;
    var c00 = vec4<f32>(0.0);
    var c10 = vec4<f32>(0.0);
    var c01 = vec4<f32>(0.0);
    var c11 = vec4<f32>(0.0);
    for (var kk = 0u; kk < p.k; kk++) {
        let o = kk * p.b_rs;
        let bv0 = vec4<f32>(b[b0 + o]);
        let bv1 = vec4<f32>(b[b1 + o]);
        let a0 = a4(r0, r1, r2, r3, kk);
        let a1 = a4(r4, r5, r6, r7, kk);
        c00 = fma(a0, bv0, c00);
        c10 = fma(a1, bv0, c10);
        c01 = fma(a0, bv1, c01);
        c11 = fma(a1, bv1, c11);
    }
    let cb = p.c_off + wg.z * p.c_bs;
    store4(cb, row0, col0, c00);
    store4(cb, row0 + 4u, col0, c10);
    store4(cb, row0, col1, c01);
    store4(cb, row0 + 4u, col1, c11);
}

// ---- gemm_tiled ---------------------------------------------------------------------------
override WX: u32 = 16;  // invocations along N; BN = 4 * WX
override WY: u32 = 16;  // invocations along M; BM = 4 * WY
override BK: u32 = 16;  // K depth of a tile; (4*WY)*BK and BK*(4*WX) must be at most 2048

const TILE_MAX: u32 = 2048u;
var<workgroup> ta: array<f32, TILE_MAX>;  // [BM][BK]
var<workgroup> tb: array<f32, TILE_MAX>;  // [BK][BN]

@compute @workgroup_size(WX, WY)
fn gemm_tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let bm = 4u * WY;
    let bn = 4u * WX;
    let row0 = wg.y * bm;
    let col0 = wg.x * bn;
    let z = wg.z;
    let a_base = p.a_off + z * p.a_bs;
    let b_base = p.b_off + z * p.b_bs;
    let tid = lid.y * WX + lid.x;
    let nthreads = WX * WY;

    var acc: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        for (var e = tid; e < bm * BK; e += nthreads) {
            let r = e / BK;
            let kk = e % BK;
            let gk = k0 + kk;
            var v = 0.0;
            if (gk < p.k) {
                v = a[a_base + min(row0 + r, p.m - 1u) * p.a_rs + gk * p.a_cs];
            }
            ta[e] = v;
        }
        for (var e = tid; e < BK * bn; e += nthreads) {
            let kk = e / bn;
            let cc = e % bn;
            let gk = k0 + kk;
            var v = 0.0;
            if (gk < p.k) {
                v = b[b_base + gk * p.b_rs + min(col0 + cc, p.n - 1u) * p.b_cs];
            }
            tb[e] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            let bv = vec4<f32>(
                tb[kk * bn + lid.x],
                tb[kk * bn + lid.x + WX],
                tb[kk * bn + lid.x + 2u * WX],
                tb[kk * bn + lid.x + 3u * WX],
            );
            for (var i = 0u; i < 4u; i++) {
                let av = ta[(lid.y + i * WY) * BK + kk];
                acc[i] = fma(vec4<f32>(av), bv, acc[i]);
            }
        }
        workgroupBarrier();
    }
    let c_base = p.c_off + z * p.c_bs;
    for (var i = 0u; i < 4u; i++) {
        let r = row0 + lid.y + i * WY;
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + lid.x + j * WX;
            if (r < p.m && col < p.n) {
                store_c(c_base + r * p.c_rs + col, acc[i][j]);
            }
        }
    }
}
