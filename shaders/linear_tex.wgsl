// Texture-fed GEMMs of a linear layer for CPU-backed devices (lavapipe/llvmpipe): one entry point,
// `linear_tex`, in three forms chosen by the FORM override, each reading both operands from
// rgba32float textures in the row layout of shaders/conv_tex.wgsl (texel t at x = t % 2048,
// row (t / 2048) % 4096, layer t / 2^23; a matrix's row r, texels j = r * rs4 + j, each texel 4
// consecutive columns, rows zero padded to rs4 texels). Rows whose length is a multiple of 4 are
// exactly the buffer's bytes, so the host fills these textures with copy_buffer_to_texture and
// packs nothing. With x [m][fin], W [fout][fin] and dz [m][fout]:
//
//  - FORM 0 (NT), the forward pass: C[m][n] = sum_k A[m][k] B[n][k]   (A = x, B = W);
//  - FORM 1 (NN), backward-data:    C[m][n] = sum_k A[m][k] B[k][n]   (A = dz, B = W);
//  - FORM 2 (TN), backward-weight:  C[m][n] = sum_k A[k][m] B[k][n]   (A = dz, B = x).
//
// The textures of x and W serve the forward pass and the backward pass, and dz's serves both
// backward GEMMs. Each subgroup of 8 invocations owns 8 rows and 32 columns of C, each invocation
// an 8 x 4 register tile (as gemm_tex). Per 4 reduction steps a lane fetches one A texel and 4 B
// texels (5 fetches for 128 FMAs) and the 8 lanes' A texels reach every lane by subgroupBroadcast.
// A workgroup is WG / 8 subgroups stacked along the rows.
// The epilogue adds a bias (BIAS = 1, aux = bias[n]) and applies ReLU (RELU = 1), or zeroes the
// elements whose mask source is not positive (MASK = 1, aux = [m][n]: the input of a linear layer
// that followed a ReLU, so backward-data also applies that ReLU's backward). With SUM = 1 the TN
// form also writes colsum[m] = sum_k A[k][m], the bias gradient, from the A texels it fetched.
//
// This file is built without wgpu's injected bounds checks, so every access is in bounds by
// construction. The host (ops/linear.rs) guarantees: subgroups are exactly 8 wide; texture A
// holds a_rows * a_rs4 texels and B b_rows * b_rs4 (both >= 1); c holds m * n floats; aux holds n
// floats when BIAS = 1 and m * n when MASK = 1 (never both); colsum holds m floats when SUM = 1
// (written only for r < m). Then fetch() clamps the row to
// rows - 1 and the texel to rs4 - 1, so t < rows * rs4; stores and aux reads happen only for
// row < m and col < n. Clamped fetches feed only outputs that are not stored, or are zeroed by
// the reduction-range test (`live`) before they reach an accumulator.

struct LinParams {
    m: u32, n: u32, k: u32, k4: u32,          // C is m x n; k reduction steps in k4 = ceil(k/4) texels
    a_rows: u32, a_rs4: u32, b_rows: u32, b_rs4: u32,  // stored rows and texels per row of A and B
}

override FORM: u32 = 0u;
override BIAS: u32 = 0u;
override RELU: u32 = 0u;
override MASK: u32 = 0u;
override SUM: u32 = 0u;   // TN only: also colsum[m] = sum_k A[k][m] (a linear layer's bias gradient)
// Invocations per workgroup, a multiple of 8: 64 (8 subgroups, 64 rows of C), or 8 (one subgroup,
// 8 rows) where the grid would otherwise have too few workgroups to keep llvmpipe's threads busy:
// llvmpipe hands each thread a fixed share of a dispatch's workgroups, so a 1-workgroup GEMM runs
// on one core.
override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: LinParams;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var tex_a: texture_storage_2d_array<rgba32float, read>;
@group(0) @binding(3) var tex_b: texture_storage_2d_array<rgba32float, read>;
@group(0) @binding(4) var<storage, read> aux: array<f32>;
@group(0) @binding(5) var<storage, read_write> colsum: array<f32>;

var<private> c0: vec4<f32>;
var<private> c1: vec4<f32>;
var<private> c2: vec4<f32>;
var<private> c3: vec4<f32>;
var<private> c4: vec4<f32>;
var<private> c5: vec4<f32>;
var<private> c6: vec4<f32>;
var<private> c7: vec4<f32>;

fn texel_xy(t: u32) -> vec3<u32> {
    let row = t >> 11u;
    return vec3<u32>(t & 2047u, row & 4095u, row >> 12u);
}

fn fetch_a(row: u32, j: u32) -> vec4<f32> {
    let xy = texel_xy(min(row, p.a_rows - 1u) * p.a_rs4 + min(j, p.a_rs4 - 1u));
    return textureLoad(tex_a, xy.xy, xy.z);
}

fn fetch_b(row: u32, j: u32) -> vec4<f32> {
    let xy = texel_xy(min(row, p.b_rows - 1u) * p.b_rs4 + min(j, p.b_rs4 - 1u));
    return textureLoad(tex_b, xy.xy, xy.z);
}

// B row `kk` of reduction texel k4 (forms NN and TN), zero past the reduction.
fn b_row(k4: u32, kk: u32, col4: u32) -> vec4<f32> {
    let r = 4u * k4 + kk;
    return select(vec4<f32>(0.0), fetch_b(r, col4), r < p.k);
}

// One reduction step: rows 0-3 of the subgroup's tile take lo, rows 4-7 hi, times the B values bv.
fn acc(lo: vec4<f32>, hi: vec4<f32>, bv: vec4<f32>) {
    c0 = fma(vec4<f32>(lo.x), bv, c0);
    c1 = fma(vec4<f32>(lo.y), bv, c1);
    c2 = fma(vec4<f32>(lo.z), bv, c2);
    c3 = fma(vec4<f32>(lo.w), bv, c3);
    c4 = fma(vec4<f32>(hi.x), bv, c4);
    c5 = fma(vec4<f32>(hi.y), bv, c5);
    c6 = fma(vec4<f32>(hi.z), bv, c6);
    c7 = fma(vec4<f32>(hi.w), bv, c7);
}

fn store_row(r: u32, col: u32, v: vec4<f32>) {
    if (r >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let cj = col + j;
        if (cj < p.n) {
            var x = v[j];
            let idx = r * p.n + cj;
            if (BIAS == 1u) {
                x += aux[cj];
            }
            if (RELU == 1u) {
                x = max(x, 0.0);
            }
            if (MASK == 1u && !(aux[idx] > 0.0)) {
                x = 0.0;
            }
            c[idx] = x;
        }
    }
}

@compute @workgroup_size(WG)
fn linear_tex(@builtin(workgroup_id) wg: vec3<u32>,
              @builtin(local_invocation_index) li: u32,
              @builtin(subgroup_invocation_id) sl: u32) {
    let col4 = wg.x * 8u + sl;
    let row0 = wg.y * WG + (li / 8u) * 8u;
    var asum = vec4<f32>(0.0);
    for (var k4 = 0u; k4 < p.k4; k4++) {
        if (FORM == 2u) {
            // lane sl holds A[k = 4 k4 + sl % 4][rows row0 + 4 (sl / 4) .. + 3]
            let kr = 4u * k4 + (sl & 3u);
            let at = select(vec4<f32>(0.0), fetch_a(kr, row0 / 4u + (sl >> 2u)), kr < p.k);
            asum += at;
            acc(subgroupBroadcast(at, 0u), subgroupBroadcast(at, 4u), b_row(k4, 0u, col4));
            acc(subgroupBroadcast(at, 1u), subgroupBroadcast(at, 5u), b_row(k4, 1u, col4));
            acc(subgroupBroadcast(at, 2u), subgroupBroadcast(at, 6u), b_row(k4, 2u, col4));
            acc(subgroupBroadcast(at, 3u), subgroupBroadcast(at, 7u), b_row(k4, 3u, col4));
        } else {
            // lane sl holds A[row0 + sl][4 k4 .. 4 k4 + 3] (zero past k: rows are zero padded)
            let av = fetch_a(row0 + sl, k4);
            let a0 = subgroupBroadcast(av, 0u);
            let a1 = subgroupBroadcast(av, 1u);
            let a2 = subgroupBroadcast(av, 2u);
            let a3 = subgroupBroadcast(av, 3u);
            let a4 = subgroupBroadcast(av, 4u);
            let a5 = subgroupBroadcast(av, 5u);
            let a6 = subgroupBroadcast(av, 6u);
            let a7 = subgroupBroadcast(av, 7u);
            var b0: vec4<f32>;
            var b1: vec4<f32>;
            var b2: vec4<f32>;
            var b3: vec4<f32>;
            if (FORM == 0u) {
                // B[n][k]: one texel per output column holds its 4 k values; transpose them
                let t0 = fetch_b(4u * col4, k4);
                let t1 = fetch_b(4u * col4 + 1u, k4);
                let t2 = fetch_b(4u * col4 + 2u, k4);
                let t3 = fetch_b(4u * col4 + 3u, k4);
                b0 = vec4<f32>(t0.x, t1.x, t2.x, t3.x);
                b1 = vec4<f32>(t0.y, t1.y, t2.y, t3.y);
                b2 = vec4<f32>(t0.z, t1.z, t2.z, t3.z);
                b3 = vec4<f32>(t0.w, t1.w, t2.w, t3.w);
            } else {
                b0 = b_row(k4, 0u, col4);
                b1 = b_row(k4, 1u, col4);
                b2 = b_row(k4, 2u, col4);
                b3 = b_row(k4, 3u, col4);
            }
            acc(vec4<f32>(a0.x, a1.x, a2.x, a3.x), vec4<f32>(a4.x, a5.x, a6.x, a7.x), b0);
            acc(vec4<f32>(a0.y, a1.y, a2.y, a3.y), vec4<f32>(a4.y, a5.y, a6.y, a7.y), b1);
            acc(vec4<f32>(a0.z, a1.z, a2.z, a3.z), vec4<f32>(a4.z, a5.z, a6.z, a7.z), b2);
            acc(vec4<f32>(a0.w, a1.w, a2.w, a3.w), vec4<f32>(a4.w, a5.w, a6.w, a7.w), b3);
        }
    }
    if (SUM == 1u) {
        // lanes 0-3 summed k = 0, 1, 2, 3 (mod 4) of rows row0 .. +3, lanes 4-7 of rows +4 .. +7
        let lo = subgroupBroadcast(asum, 0u) + subgroupBroadcast(asum, 1u)
            + subgroupBroadcast(asum, 2u) + subgroupBroadcast(asum, 3u);
        let hi = subgroupBroadcast(asum, 4u) + subgroupBroadcast(asum, 5u)
            + subgroupBroadcast(asum, 6u) + subgroupBroadcast(asum, 7u);
        let r = row0 + sl;
        if (wg.x == 0u && r < p.m) {
            colsum[r] = select(lo[sl & 3u], hi[sl & 3u], sl >= 4u);
        }
    }
    let col = col4 * 4u;
    store_row(row0, col, c0);
    store_row(row0 + 1u, col, c1);
    store_row(row0 + 2u, col, c2);
    store_row(row0 + 3u, col, c3);
    store_row(row0 + 4u, col, c4);
    store_row(row0 + 5u, col, c5);
    store_row(row0 + 6u, col, c6);
    store_row(row0 + 7u, col, c7);
}
