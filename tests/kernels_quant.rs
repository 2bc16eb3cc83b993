//! INQ's power-of-two quantizer (pow2_exponents, pow2_quantize) against its CPU twin, compared
//! exactly (bits of every output, exponents as integers), for every bit width from 2 to 8:
//! random weights through the real pipeline (reduce_max_abs -> pow2_exponents -> pow2_quantize),
//! per layer and per row (output channel),
//! and edge cases: 0, ±max, the ties 1.5 * 2^k, the zero boundary 2^(n2-1) and the float below
//! it, NaN and ±inf. Outputs are poisoned first; unfrozen weights must come back bit for bit.
//!
//! INQ's partition (an 8-pass radix select on the GPU: select_hist, select_scan, then
//! select_freeze) against a CPU twin that sorts: masks and
//! momenta compared exactly over successive partitions, with ties, NaN/inf/-0, k = 0, k = all
//! float weights, n = 1, and the random strategy.

mod common;
use common::{gpu, Rng, POISON};
use incq::gpu::{DType, Tensor};
use incq::ops::quant::{
    partition, pow2_exponents, pow2_quantize, pow2_quantize_inplace, select_state, Partition,
    SelectScratch,
};
use incq::ops::reduce::{reduce, ReduceOp, ReduceShape};
use incq::reference::quant as twin;

fn exps_on_gpu(g: &incq::Gpu, bits: u32, s: f32) -> (i32, i32) {
    let ts = Tensor::from_f32(g, "s", &[1], &[s]).unwrap();
    let te = Tensor::empty(g, "exps", &[2], DType::U32).unwrap();
    te.poison(g, POISON);
    pow2_exponents(g, bits, &ts, &te).unwrap().run(g);
    let e = te.to_u32(g).unwrap();
    (e[0] as i32, e[1] as i32)
}

#[test]
fn pow2_exponents_match_twin_exactly() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::new(1);
    let mut cases = vec![
        0.0f32,
        f32::INFINITY,
        f32::NAN,
        1.0,
        0.75,
        3.0,
        1e-30,
        3.0e38,
    ];
    for k in -20..10 {
        let t = 1.5 * 2f32.powi(k);
        cases.extend([
            t,
            f32::from_bits(t.to_bits() - 1),
            f32::from_bits(t.to_bits() + 1),
            2f32.powi(k),
        ]);
    }
    cases.extend((0..40).map(|_| rng.uniform(1e-4, 4.0)));
    for bits in 2..=8 {
        for &s in &cases {
            assert_eq!(
                exps_on_gpu(g, bits, s),
                twin::pow2_exponents(s, bits),
                "s = {s:e} ({:#x}), {bits} bits",
                s.to_bits()
            );
        }
    }
}

#[test]
fn pow2_exponents_rejects_unsupported_bit_widths() {
    let Some(g) = gpu() else { return };
    let t = Tensor::from_f32(g, "s", &[1], &[1.0]).unwrap();
    for bits in [0, 1, 9] {
        let e = pow2_exponents(g, bits, &t, &t)
            .err()
            .expect("unsupported width")
            .to_string();
        assert!(e.contains("--bits") && e.contains(&bits.to_string()), "{e}");
    }
}

#[test]
fn pow2_quantize_matches_twin_exactly_through_the_gpu_pipeline() {
    let Some(g) = gpu() else { return };
    for bits in 2..=8u32 {
        let mut rng = Rng::new(u64::from(bits));
        let n = 7001;
        let w: Vec<f32> = (0..n).map(|_| rng.normal() * 0.05).collect();
        let mask: Vec<f32> = (0..n).map(|i| if i % 3 == 1 { 1.0 } else { 0.0 }).collect();
        let (tw, tm) = (
            Tensor::from_f32(g, "w", &[n], &w).unwrap(),
            Tensor::from_f32(g, "m", &[n], &mask).unwrap(),
        );
        let smax = Tensor::empty(g, "smax", &[1], DType::F32).unwrap();
        let exps = Tensor::empty(g, "exps", &[2], DType::U32).unwrap();
        let out = Tensor::empty(g, "out", &[n], DType::F32).unwrap();
        out.poison(g, POISON);
        let ops = [
            reduce(g, ReduceOp::MaxAbs, ReduceShape::whole(n), &tw, &smax).unwrap(),
            pow2_exponents(g, bits, &smax, &exps).unwrap(),
            pow2_quantize(g, bits, &tw, &tm, &exps, &out).unwrap(),
        ];
        g.run_pass("inq quantize", |p| ops.iter().for_each(|d| d.encode(p)));
        let s = w.iter().fold(0.0f32, |a, x| a.max(x.abs()));
        assert_eq!(smax.to_f32(g).unwrap()[0].to_bits(), s.to_bits(), "max|w|");
        let (n1, n2) = twin::pow2_exponents(s, bits);
        let want = twin::pow2_quantize(&w, &mask, n1, n2);
        let got = out.to_f32(g).unwrap();
        common::assert_exact_f32(&format!("pow2_quantize {bits} bits"), &got, &want);
        // Every frozen weight is in the set; the others are untouched.
        let levels = twin::pow2_levels(n1, n2);
        for i in 0..n {
            if mask[i] == 0.0 {
                assert!(
                    levels.contains(&f64::from(got[i].abs())),
                    "{bits} bits: {} not in P",
                    got[i]
                );
            } else {
                assert_eq!(got[i].to_bits(), w[i].to_bits());
            }
        }
        let distinct: std::collections::BTreeSet<u32> = (0..n)
            .filter(|&i| mask[i] == 0.0)
            .map(|i| got[i].to_bits())
            .collect();
        assert!(
            distinct.len() <= (1 << (bits - 1)) + 1,
            "{bits} bits: {} distinct values",
            distinct.len()
        );
    }
}

/// Per output channel: one max|W| and one (n1, n2) per row, through the same pipeline, and the
/// in-place form INQ runs; rows with very different ranges (one all zero, one with an outlier).
#[test]
fn pow2_quantize_per_row_matches_twin_exactly() {
    let Some(g) = gpu() else { return };
    for bits in [2u32, 3, 5, 8] {
        let mut rng = Rng::new(40 + u64::from(bits));
        let (rows, len) = (67, 25);
        let n = rows * len;
        let mut w: Vec<f32> = (0..n)
            .map(|i| rng.normal() * 0.05 * (1 + i / len % 7) as f32)
            .collect();
        w[3 * len..4 * len].iter_mut().for_each(|x| *x = 0.0);
        w[5 * len + 2] = 40.0;
        w[9 * len + 7] = f32::INFINITY;
        let mask: Vec<f32> = (0..n).map(|i| if i % 4 == 1 { 1.0 } else { 0.0 }).collect();
        let (tw, tm) = (
            Tensor::from_f32(g, "w", &[rows, len], &w).unwrap(),
            Tensor::from_f32(g, "m", &[n], &mask).unwrap(),
        );
        let smax = Tensor::empty(g, "smax", &[rows], DType::F32).unwrap();
        let exps = Tensor::empty(g, "exps", &[2 * rows], DType::U32).unwrap();
        let out = Tensor::empty(g, "out", &[n], DType::F32).unwrap();
        exps.poison(g, POISON);
        out.poison(g, POISON);
        let rs = ReduceShape {
            outer: 1,
            rows,
            inner: len,
        };
        let ops = [
            reduce(g, ReduceOp::MaxAbs, rs, &tw, &smax).unwrap(),
            pow2_exponents(g, bits, &smax, &exps).unwrap(),
            pow2_quantize(g, bits, &tw, &tm, &exps, &out).unwrap(),
            pow2_quantize_inplace(g, bits, &tw, &tm, &exps).unwrap(),
        ];
        g.run_pass("inq quantize rows", |p| {
            ops.iter().for_each(|d| d.encode(p))
        });
        let want_exps: Vec<(i32, i32)> = w
            .chunks(len)
            .map(|r| twin::pow2_exponents(r.iter().fold(0.0f32, |a, x| a.max(x.abs())), bits))
            .collect();
        let got_exps: Vec<(i32, i32)> = exps
            .to_u32(g)
            .unwrap()
            .chunks(2)
            .map(|e| (e[0] as i32, e[1] as i32))
            .collect();
        assert_eq!(got_exps, want_exps, "{bits} bits: per-row exponents");
        let want = twin::pow2_quantize_rows(&w, &mask, &want_exps);
        common::assert_exact_f32(
            &format!("pow2_quantize per row, {bits} bits"),
            &out.to_f32(g).unwrap(),
            &want,
        );
        common::assert_exact_f32(
            &format!("pow2_quantize_inplace per row, {bits} bits"),
            &tw.to_f32(g).unwrap(),
            &want,
        );
    }
}

#[test]
fn pow2_quantize_edge_cases_match_twin_exactly() {
    let Some(g) = gpu() else { return };
    for bits in 2..=8u32 {
        let s = 0.8f32;
        let (n1, n2) = twin::pow2_exponents(s, bits);
        let mut w = vec![
            0.0f32,
            -0.0,
            s,
            -s,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ];
        for k in n2..=n1 {
            let t = 1.5 * 2f32.powi(k);
            w.extend([t, -t, f32::from_bits(t.to_bits() - 1), 2f32.powi(k)]);
        }
        let zb = 2f32.powi(n2 - 1);
        w.extend([zb, -zb, f32::from_bits(zb.to_bits() - 1), 2f32.powi(n2 - 3)]);
        let n = w.len();
        let mask = vec![0.0f32; n];
        let tw = Tensor::from_f32(g, "w", &[n], &w).unwrap();
        let tm = Tensor::from_f32(g, "m", &[n], &mask).unwrap();
        let ts = Tensor::from_f32(g, "s", &[1], &[s]).unwrap();
        let exps = Tensor::empty(g, "exps", &[2], DType::U32).unwrap();
        let out = Tensor::empty(g, "out", &[n], DType::F32).unwrap();
        out.poison(g, POISON);
        pow2_exponents(g, bits, &ts, &exps).unwrap().run(g);
        pow2_quantize(g, bits, &tw, &tm, &exps, &out)
            .unwrap()
            .run(g);
        let got = out.to_f32(g).unwrap();
        let want = twin::pow2_quantize(&w, &mask, n1, n2);
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            let same = a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
            assert!(same, "{bits} bits, input {:e}: GPU {a:e}, CPU {b:e}", w[i]);
        }
        // The ties round up, the zero boundary rounds to 2^n2, the float below it to 0.
        assert_eq!(
            twin::pow2_round(1.5 * 2f32.powi(n1 - 1), n1, n2),
            2f32.powi(n1)
        );
        assert_eq!(twin::pow2_round(zb, n1, n2), 2f32.powi(n2));
        assert_eq!(
            twin::pow2_round(f32::from_bits(zb.to_bits() - 1), n1, n2),
            0.0
        );
        assert_eq!(twin::pow2_round(f32::INFINITY, n1, n2), 2f32.powi(n1));
    }
}

/// Runs successive partitions of `w` freezing `ks[j]` more each, on the GPU and the twin, and
/// compares the masks and momenta exactly after each.
fn check_partitions(g: &incq::Gpu, w: &[f32], ks: &[usize], part: Partition, what: &str) {
    let n = w.len();
    let seed = match part {
        Partition::Pruning => None,
        Partition::Random { seed } => Some(seed),
    };
    let mut rng = Rng::new(n as u64);
    let mom0: Vec<f32> = (0..n).map(|_| rng.uniform(0.5, 1.0)).collect();
    let tw = Tensor::from_f32(g, "w", &[n], w).unwrap();
    let tmask = Tensor::from_f32(g, "mask", &[n], &vec![1.0; n]).unwrap();
    let tmom = Tensor::from_f32(g, "mom", &[n], &mom0).unwrap();
    let scratch = SelectScratch::new(g).unwrap();
    let ops = partition(g, part, &tw, &tmask, &tmom, &scratch).unwrap();
    let (mut mask, mut mom) = (vec![1.0f32; n], mom0.clone());
    let mut frozen = 0;
    for (j, &k) in ks.iter().enumerate() {
        scratch.state.write_u32(g, &select_state(k as u32)).unwrap();
        g.run_pass("partition", |p| ops.iter().for_each(|d| d.encode(p)));
        twin::partition(w, &mut mask, &mut mom, k, seed);
        frozen += k;
        let gm = tmask.to_f32(g).unwrap();
        common::assert_exact_f32(&format!("{what}: mask after partition {j}"), &gm, &mask);
        common::assert_exact_f32(
            &format!("{what}: momentum after partition {j}"),
            &tmom.to_f32(g).unwrap(),
            &mom,
        );
        let count = gm.iter().filter(|&&m| m == 0.0).count();
        assert_eq!(count, frozen, "{what}: frozen count after partition {j}");
        // The histogram is left cleared for the next partition.
        assert!(scratch.hist.to_u32(g).unwrap().iter().all(|&c| c == 0));
    }
}

#[test]
fn partition_matches_sorting_twin_exactly() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::new(11);
    // Random weights, the default portions 0.5, 0.75, 0.875, 1 of an odd size.
    let n = 7001;
    let w: Vec<f32> = (0..n).map(|_| rng.normal() * 0.05).collect();
    let ks = [3501, 1750, 875, 875];
    check_partitions(g, &w, &ks, Partition::Pruning, "pruning");
    check_partitions(g, &w, &ks, Partition::Random { seed: 7 }, "random");
    // Heavy ties: the cut falls inside groups of equal magnitude.
    let w: Vec<f32> = (0..n)
        .map(|_| [0.5f32, -0.5, 0.25, -0.25, 0.0, -0.0][rng.below(6) as usize])
        .collect();
    check_partitions(
        g,
        &w,
        &[1000, 1234, 0, 2000, 2767],
        Partition::Pruning,
        "ties",
    );
    // Non-finite and signed zeros; k = 0 then all.
    let mut w: Vec<f32> = (0..301).map(|_| rng.normal()).collect();
    w[3] = f32::NAN;
    w[50] = f32::INFINITY;
    w[51] = f32::NEG_INFINITY;
    w[52] = -0.0;
    w[53] = 0.0;
    w[54] = -f32::MAX;
    check_partitions(g, &w, &[3, 0, 298], Partition::Pruning, "non-finite");
    // Batch of one weight; large n over several workgroup rows.
    check_partitions(g, &[0.3], &[1], Partition::Pruning, "n = 1");
    let w: Vec<f32> = (0..100_003).map(|_| rng.normal()).collect();
    check_partitions(g, &w, &[50_001, 50_002], Partition::Pruning, "large");
}

#[test]
fn pow2_quantize_inplace_matches_twin_exactly() {
    let Some(g) = gpu() else { return };
    for bits in [2u32, 5, 8] {
        let mut rng = Rng::new(u64::from(bits) + 100);
        let n = 3001;
        let w: Vec<f32> = (0..n).map(|_| rng.normal() * 0.1).collect();
        let mask: Vec<f32> = (0..n).map(|i| if i % 4 == 0 { 1.0 } else { 0.0 }).collect();
        let tw = Tensor::from_f32(g, "w", &[n], &w).unwrap();
        let tm = Tensor::from_f32(g, "m", &[n], &mask).unwrap();
        let smax = Tensor::empty(g, "smax", &[1], DType::F32).unwrap();
        let exps = Tensor::empty(g, "exps", &[2], DType::U32).unwrap();
        smax.poison(g, POISON);
        exps.poison(g, POISON);
        let ops = [
            reduce(g, ReduceOp::MaxAbs, ReduceShape::whole(n), &tw, &smax).unwrap(),
            pow2_exponents(g, bits, &smax, &exps).unwrap(),
            pow2_quantize_inplace(g, bits, &tw, &tm, &exps).unwrap(),
        ];
        g.run_pass("inq quantize in place", |p| {
            ops.iter().for_each(|d| d.encode(p))
        });
        let s = w.iter().fold(0.0f32, |a, x| a.max(x.abs()));
        let (n1, n2) = twin::pow2_exponents(s, bits);
        let mut want = w.clone();
        twin::pow2_quantize_inplace(&mut want, &mask, n1, n2);
        common::assert_exact_f32(
            &format!("pow2_quantize_inplace {bits} bits"),
            &tw.to_f32(g).unwrap(),
            &want,
        );
    }
}
