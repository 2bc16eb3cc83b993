// Roofline microkernels: the device's FMA peak and its copy bandwidth, measured by incq bench.
//
// fma_peak: every invocation runs `iters` rounds of 8 vec4 FMAs over 2 independent vec4
// accumulators, with no memory traffic in the loop, then writes one value so the work cannot be
// removed. FLOPs = invocations * iters * 8 * 4 * 2. Two accumulators is the measured best on
// lavapipe: SIMD-across-invocations turns each vec4 into 4 AVX registers, so 2 vec4 chains are 8
// independent register FMAs (enough to cover latency), while 8 vec4 chains (32 registers) spill
// and ran at a third of the rate.
// copy_vec4: dst[i] = src[i] over vec4s; bytes moved = 2 * 16 * n4.

struct BenchParams {
    n: u32,       // fma_peak: invocations that write; copy_vec4: vec4 count
    iters: u32,
    seed: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: BenchParams;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> src: array<vec4<f32>>;

override WG: u32 = 64;

@compute @workgroup_size(WG)
fn fma_peak(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    let x = vec4<f32>(f32(i & 7u) * 1e-3 + p.seed);
    let m = vec4<f32>(0.999);
    var a0 = x;
    var a1 = x + 0.1;
    for (var it = 0u; it < p.iters; it++) {
        a0 = fma(a0, m, x); a1 = fma(a1, m, x); a0 = fma(a0, m, x); a1 = fma(a1, m, x);
        a0 = fma(a0, m, x); a1 = fma(a1, m, x); a0 = fma(a0, m, x); a1 = fma(a1, m, x);
    }
    if (i < p.n) {
        dst[i] = a0 + a1;
    }
}

@compute @workgroup_size(WG)
fn copy_vec4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i < p.n) {
        dst[i] = src[i];
    }
}
