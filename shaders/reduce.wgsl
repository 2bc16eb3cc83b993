// Reductions: sum, max|x| and mean|x|, per row (channel) or over the whole tensor.
//
// The input is viewed as [outer, rows, inner]; row r reduces the outer*inner values
// x[o*rows*inner + r*inner + i]. A matrix's per-row reduction is (1, R, C); an NCHW tensor's
// per-channel reduction is (N, C, H*W); a whole-tensor reduction is (1, 1, len).
// One workgroup per row: each invocation folds a strided share in f32, then a tree in workgroup
// memory combines the partials in a fixed order, so the result is deterministic.
// reduce_outer_sum is the barrier-free form for views with inner = 1 and a short outer extent
// (partial sums of sliced kernels, bias gradients): one invocation per row, summing in order.

struct ReduceParams {
    outer: u32,
    rows: u32,
    inner: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: ReduceParams;
// The params, copied into private registers at the start of every entry point (llvmpipe otherwise
// reloads the uniform buffer inside loops).
var<private> prm: ReduceParams;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;

const WGR: u32 = 256u;
var<workgroup> part: array<f32, WGR>;

// op 0: sum, 1: max|x|, 2: sum|x|
fn fold(op: u32, acc: f32, v: f32) -> f32 {
    if (op == 0u) { return acc + v; }
    if (op == 1u) { return max(acc, abs(v)); }
    return acc + abs(v);
}

fn combine(op: u32, a: f32, b: f32) -> f32 {
    if (op == 1u) { return max(a, b); }
    return a + b;
}

fn reduce_row(op: u32, row: u32, lid: u32) -> f32 {
    let count = prm.outer * prm.inner;
    var acc = 0.0;
    for (var e = lid; e < count; e += WGR) {
        let o = e / prm.inner;
        let i = e - o * prm.inner;
        acc = fold(op, acc, x[(o * prm.rows + row) * prm.inner + i]);
    }
    part[lid] = acc;
    workgroupBarrier();
    for (var s = WGR / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            part[lid] = combine(op, part[lid], part[lid + s]);
        }
        workgroupBarrier();
    }
    return part[0];
}

fn row_of(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wg.x + wg.y * nwg.x;
}

@compute @workgroup_size(256)
fn reduce_sum(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    prm = p;
    let row = row_of(wg, nwg);
    let r = reduce_row(0u, min(row, prm.rows - 1u), lid);
    if (lid == 0u && row < prm.rows) { out[row] = r; }
}

@compute @workgroup_size(256)
fn reduce_max_abs(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    prm = p;
    let row = row_of(wg, nwg);
    let r = reduce_row(1u, min(row, prm.rows - 1u), lid);
    if (lid == 0u && row < prm.rows) { out[row] = r; }
}

@compute @workgroup_size(256)
fn reduce_mean_abs(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    prm = p;
    let row = row_of(wg, nwg);
    let r = reduce_row(2u, min(row, prm.rows - 1u), lid);
    if (lid == 0u && row < prm.rows) { out[row] = r / f32(max(prm.outer * prm.inner, 1u)); }
}

@compute @workgroup_size(64)
fn reduce_outer_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    prm = p;
    let row = gid.x + gid.y * nwg.x * 64u;
    if (row >= prm.rows) { return; }
    var acc = 0.0;
    for (var o = 0u; o < prm.outer; o++) {
        acc += x[o * prm.rows + row];
    }
    out[row] = acc;
}
