// Texture-fed GEMMs of a linear layer for CPU-backed devices (lavapipe/llvmpipe): one entry point,
// `linear_tex` (`linear_tex4` where n % 4 == 0: the same with vec4 stores), in three forms chosen
// by the FORM override, each reading both operands from
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
// (written only for r < m); linear_tex4 runs only where n % 4 == 0, so a column block 4 col4 < n
// lies inside its row and its vec4 index (r n + 4 col4) / 4 < m n / 4. Then fetch() clamps the row to
// rows - 1 and the texel to rs4 - 1, so t < rows * rs4; stores and aux reads happen only for
// row < m and col < n. Clamped fetches feed only outputs that are not stored, or are zeroed by
// the reduction-range test (`live`) before they reach an accumulator. Row-texture outputs (ROWS,
// DW_ROWS, DX_ROWS) store texel idx only where the buffer store at vec4 idx happens, and the host
// checks that their textures hold the product's m n / 4 texels.

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

// Texel j of row `row` of a matrix texture t with `rows` rows of rs4 texels (both clamped).
fn fetch_t(t: texture_storage_2d_array<rgba32float, read>, rows: u32, rs4: u32, row: u32,
           j: u32) -> vec4<f32> {
    let xy = texel_xy(min(row, rows - 1u) * rs4 + min(j, rs4 - 1u));
    return textureLoad(t, xy.xy, xy.z);
}

// B row `kk` of reduction texel k4 (forms NN and TN), zero past the reduction.
fn b_row(lp: LinParams, tb: texture_storage_2d_array<rgba32float, read>, k4: u32, kk: u32,
         col4: u32) -> vec4<f32> {
    let r = 4u * k4 + kk;
    return select(vec4<f32>(0.0), fetch_t(tb, lp.b_rows, lp.b_rs4, r, col4), r < lp.k);
}

// One accumulator's 4 reduction steps: c + a.x b0 + a.y b1 + a.z b2 + a.w b3, in that order.
// Each accumulator takes its 4 steps in a row: llvmpipe keeps the 8 accumulators in memory (32
// vector registers), so this loads and stores each once per reduction texel instead of 4 times.
fn acc4(c: vec4<f32>, a: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>) -> vec4<f32> {
    let r = fma(vec4<f32>(a.x), b0, c);
    let s = fma(vec4<f32>(a.y), b1, r);
    let t = fma(vec4<f32>(a.z), b2, s);
    return fma(vec4<f32>(a.w), b3, t);
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

// The GEMM (form `form`, a constant at every call, of params lp over textures ta and tb) of the
// subgroup's 8 rows from row0 and the lane's 4 columns from 4 col4 into c0..c7; with `sum` (TN
// only) also writes colsum (from the workgroups of column block 0).
fn gemm_with(form: u32, lp: LinParams, ta: texture_storage_2d_array<rgba32float, read>,
             tb: texture_storage_2d_array<rgba32float, read>, col4: u32, row0: u32, sl: u32,
             first_cols: bool, sum: bool) {
    var asum = vec4<f32>(0.0);
    for (var k4 = 0u; k4 < lp.k4; k4++) {
        if (form == 2u) {
            // lane sl holds A[k = 4 k4 + sl % 4][rows row0 + 4 (sl / 4) .. + 3]
            let kr = 4u * k4 + (sl & 3u);
            let at = select(vec4<f32>(0.0), fetch_t(ta, lp.a_rows, lp.a_rs4, kr, row0 / 4u + (sl >> 2u)), kr < lp.k);
            asum += at;
            // u_kk = A[4 k4 + kk][rows row0 .. +3], v_kk = rows row0 + 4 .. +7
            let u0 = subgroupBroadcast(at, 0u);
            let u1 = subgroupBroadcast(at, 1u);
            let u2 = subgroupBroadcast(at, 2u);
            let u3 = subgroupBroadcast(at, 3u);
            let v0 = subgroupBroadcast(at, 4u);
            let v1 = subgroupBroadcast(at, 5u);
            let v2 = subgroupBroadcast(at, 6u);
            let v3 = subgroupBroadcast(at, 7u);
            let b0 = b_row(lp, tb, k4, 0u, col4);
            let b1 = b_row(lp, tb, k4, 1u, col4);
            let b2 = b_row(lp, tb, k4, 2u, col4);
            let b3 = b_row(lp, tb, k4, 3u, col4);
            c0 = acc4(c0, vec4<f32>(u0.x, u1.x, u2.x, u3.x), b0, b1, b2, b3);
            c1 = acc4(c1, vec4<f32>(u0.y, u1.y, u2.y, u3.y), b0, b1, b2, b3);
            c2 = acc4(c2, vec4<f32>(u0.z, u1.z, u2.z, u3.z), b0, b1, b2, b3);
            c3 = acc4(c3, vec4<f32>(u0.w, u1.w, u2.w, u3.w), b0, b1, b2, b3);
            c4 = acc4(c4, vec4<f32>(v0.x, v1.x, v2.x, v3.x), b0, b1, b2, b3);
            c5 = acc4(c5, vec4<f32>(v0.y, v1.y, v2.y, v3.y), b0, b1, b2, b3);
            c6 = acc4(c6, vec4<f32>(v0.z, v1.z, v2.z, v3.z), b0, b1, b2, b3);
            c7 = acc4(c7, vec4<f32>(v0.w, v1.w, v2.w, v3.w), b0, b1, b2, b3);
        } else {
            // lane sl holds A[row0 + sl][4 k4 .. 4 k4 + 3] (zero past k: rows are zero padded)
            let av = fetch_t(ta, lp.a_rows, lp.a_rs4, row0 + sl, k4);
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
            if (form == 0u) {
                // B[n][k]: one texel per output column holds its 4 k values; transpose them
                let t0 = fetch_t(tb, lp.b_rows, lp.b_rs4, 4u * col4, k4);
                let t1 = fetch_t(tb, lp.b_rows, lp.b_rs4, 4u * col4 + 1u, k4);
                let t2 = fetch_t(tb, lp.b_rows, lp.b_rs4, 4u * col4 + 2u, k4);
                let t3 = fetch_t(tb, lp.b_rows, lp.b_rs4, 4u * col4 + 3u, k4);
                b0 = vec4<f32>(t0.x, t1.x, t2.x, t3.x);
                b1 = vec4<f32>(t0.y, t1.y, t2.y, t3.y);
                b2 = vec4<f32>(t0.z, t1.z, t2.z, t3.z);
                b3 = vec4<f32>(t0.w, t1.w, t2.w, t3.w);
            } else {
                b0 = b_row(lp, tb, k4, 0u, col4);
                b1 = b_row(lp, tb, k4, 1u, col4);
                b2 = b_row(lp, tb, k4, 2u, col4);
                b3 = b_row(lp, tb, k4, 3u, col4);
            }
            c0 = acc4(c0, a0, b0, b1, b2, b3);
            c1 = acc4(c1, a1, b0, b1, b2, b3);
            c2 = acc4(c2, a2, b0, b1, b2, b3);
            c3 = acc4(c3, a3, b0, b1, b2, b3);
            c4 = acc4(c4, a4, b0, b1, b2, b3);
            c5 = acc4(c5, a5, b0, b1, b2, b3);
            c6 = acc4(c6, a6, b0, b1, b2, b3);
            c7 = acc4(c7, a7, b0, b1, b2, b3);
        }
    }
    if (sum) {
        // lanes 0-3 summed k = 0, 1, 2, 3 (mod 4) of rows row0 .. +3, lanes 4-7 of rows +4 .. +7
        let lo = subgroupBroadcast(asum, 0u) + subgroupBroadcast(asum, 1u)
            + subgroupBroadcast(asum, 2u) + subgroupBroadcast(asum, 3u);
        let hi = subgroupBroadcast(asum, 4u) + subgroupBroadcast(asum, 5u)
            + subgroupBroadcast(asum, 6u) + subgroupBroadcast(asum, 7u);
        let r = row0 + sl;
        if (first_cols && r < lp.m) {
            colsum[r] = select(lo[sl & 3u], hi[sl & 3u], sl >= 4u);
        }
    }
}

@compute @workgroup_size(WG)
fn linear_tex(@builtin(workgroup_id) wg: vec3<u32>,
              @builtin(local_invocation_index) li: u32,
              @builtin(subgroup_invocation_id) sl: u32) {
    let col4 = wg.x * 8u + sl;
    let row0 = wg.y * WG + (li / 8u) * 8u;
    gemm_with(FORM, p, tex_a, tex_b, col4, row0, sl, wg.x == 0u, SUM == 1u && FORM == 2u);
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

@group(0) @binding(1) var<storage, read_write> c4v: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> aux4: array<vec4<f32>>;
// ROWS = 1: linear_tex4 also stores C into this row texture, which the next linear layer reads
// as its x (rows of n % 4 == 0 floats have no padding, so C's vec4 idx is its texel), and no copy
// fills it. The host checks that the texture holds m n / 4 texels.
override ROWS: u32 = 0u;
@group(0) @binding(6) var c_rows: texture_storage_2d_array<rgba32float, write>;

// Row r, columns col .. col + 3 of C as one vec4 (p.n % 4 == 0, so col < p.n holds all four).
fn store_row4(lp: LinParams, r: u32, col: u32, v: vec4<f32>, bias: vec4<f32>) {
    if (r >= lp.m || col >= lp.n) {
        return;
    }
    let idx = (r * lp.n + col) / 4u;
    var x = v;
    if (BIAS == 1u) {
        x += bias;
    }
    if (RELU == 1u) {
        x = max(x, vec4<f32>(0.0));
    }
    if (MASK == 1u) {
        x = select(vec4<f32>(0.0), x, aux4[idx] > vec4<f32>(0.0));
    }
    c4v[idx] = x;
    if (ROWS == 1u) {
        let xy = texel_xy(idx);
        textureStore(c_rows, xy.xy, xy.z, x);
    }
}

// linear_tex for p.n % 4 == 0: one vec4 store per row (llvmpipe stores a vec4 for about the price
// of a float).
@compute @workgroup_size(WG)
fn linear_tex4(@builtin(workgroup_id) wg: vec3<u32>,
               @builtin(local_invocation_index) li: u32,
               @builtin(subgroup_invocation_id) sl: u32) {
    let col4 = wg.x * 8u + sl;
    let row0 = wg.y * WG + (li / 8u) * 8u;
    let lp = p;
    gemm_with(FORM, lp, tex_a, tex_b, col4, row0, sl, wg.x == 0u, SUM == 1u && FORM == 2u);
    let col = col4 * 4u;
    // the lane's 4 bias values, loaded once for its 8 rows
    var bias = vec4<f32>(0.0);
    if (BIAS == 1u && col < lp.n) {
        bias = aux4[col / 4u];
    }
    store_row4(lp, row0, col, c0, bias);
    store_row4(lp, row0 + 1u, col, c1, bias);
    store_row4(lp, row0 + 2u, col, c2, bias);
    store_row4(lp, row0 + 3u, col, c3, bias);
    store_row4(lp, row0 + 4u, col, c4, bias);
    store_row4(lp, row0 + 5u, col, c5, bias);
    store_row4(lp, row0 + 6u, col, c6, bias);
    store_row4(lp, row0 + 7u, col, c7, bias);
}

// ---------------------------------------------------------------------------------------------
// linear_bwd_tex4: a linear layer's backward pass in one dispatch (on llvmpipe every dispatch
// costs a fixed wake-up and wait of the worker threads). Workgroups with wg.y < bp.split run the
// TN GEMM of bp.a (dW = dz^T x into c4v, with the bias gradient in colsum), the others the NN GEMM
// of bp.b (dx = dz W into dx4, zeroed where the mask source aux4 is not positive when MASK = 1).
// dz is tex_a for both, x tex_b, W tex_w. Both products have rows of n floats, n % 4 == 0 (the
// same n: the layer's fin), so the grid's column blocks serve both, and stores are vec4s guarded
// as linear_tex4's.
struct BwdParams {
    a: LinParams,
    b: LinParams,
    split: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> bp: BwdParams;
@group(0) @binding(6) var<storage, read_write> dx4: array<vec4<f32>>;
@group(0) @binding(7) var tex_w: texture_storage_2d_array<rgba32float, read>;
// DW_ROWS = 1: dW's texels also go to dw_rows (the optimizer reads the gradient there); DX_ROWS =
// 1: dx's to dx_rows (the dz rows of the linear layer before, or the pooled dy of the batch norm
// before). Rows of n % 4 == 0 floats, so a vec4's index is its texel; the host checks that each
// texture holds m n / 4 texels of its product.
override DW_ROWS: u32 = 0u;
override DX_ROWS: u32 = 0u;
@group(0) @binding(8) var dw_rows: texture_storage_2d_array<rgba32float, write>;
@group(0) @binding(9) var dx_rows: texture_storage_2d_array<rgba32float, write>;

fn store_dw4(lp: LinParams, r: u32, col: u32, v: vec4<f32>) {
    if (r >= lp.m || col >= lp.n) {
        return;
    }
    let idx = (r * lp.n + col) / 4u;
    c4v[idx] = v;
    if (DW_ROWS == 1u) {
        let xy = texel_xy(idx);
        textureStore(dw_rows, xy.xy, xy.z, v);
    }
}

fn store_dx4(lp: LinParams, r: u32, col: u32, v: vec4<f32>) {
    if (r >= lp.m || col >= lp.n) {
        return;
    }
    let idx = (r * lp.n + col) / 4u;
    var x = v;
    if (MASK == 1u) {
        x = select(vec4<f32>(0.0), x, aux4[idx] > vec4<f32>(0.0));
    }
    dx4[idx] = x;
    if (DX_ROWS == 1u) {
        let xy = texel_xy(idx);
        textureStore(dx_rows, xy.xy, xy.z, x);
    }
}

@compute @workgroup_size(WG)
fn linear_bwd_tex4(@builtin(workgroup_id) wg: vec3<u32>,
                   @builtin(local_invocation_index) li: u32,
                   @builtin(subgroup_invocation_id) sl: u32) {
    let col4 = wg.x * 8u + sl;
    let col = col4 * 4u;
    if (wg.y < bp.split) {
        let lp = bp.a;
        let row0 = wg.y * WG + (li / 8u) * 8u;
        gemm_with(2u, lp, tex_a, tex_b, col4, row0, sl, wg.x == 0u, SUM == 1u);
        store_dw4(lp, row0, col, c0);
        store_dw4(lp, row0 + 1u, col, c1);
        store_dw4(lp, row0 + 2u, col, c2);
        store_dw4(lp, row0 + 3u, col, c3);
        store_dw4(lp, row0 + 4u, col, c4);
        store_dw4(lp, row0 + 5u, col, c5);
        store_dw4(lp, row0 + 6u, col, c6);
        store_dw4(lp, row0 + 7u, col, c7);
    } else {
        let lp = bp.b;
        let row0 = (wg.y - bp.split) * WG + (li / 8u) * 8u;
        gemm_with(1u, lp, tex_a, tex_w, col4, row0, sl, false, false);
        store_dx4(lp, row0, col, c0);
        store_dx4(lp, row0 + 1u, col, c1);
        store_dx4(lp, row0 + 2u, col, c2);
        store_dx4(lp, row0 + 3u, col, c3);
        store_dx4(lp, row0 + 4u, col, c4);
        store_dx4(lp, row0 + 5u, col, c5);
        store_dx4(lp, row0 + 6u, col, c6);
        store_dx4(lp, row0 + 7u, col, c7);
    }
}
