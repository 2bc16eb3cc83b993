//! Reductions (reduce_sum, reduce_max_abs, reduce_mean_abs, reduce_outer_sum) against f64 CPU twins: whole tensors
//! of 1, 255, 257 and 1,000,003 values, per-row (7 x 33, 1 x 1), and per-channel NCHW views
//! (3 x 5 x 49, 1 x 16 x 1). Outputs are poisoned first.
//! Tolerances: max|x| is exact (no rounding); sums use abs 1e-5 * (count) + rel 1e-5 scaled by
//! the row's sum of |x|, which bounds f32 accumulation error.

mod common;
use common::{assert_exact_f32, gpu, Rng, POISON};
use incq::gpu::Tensor;
use incq::ops::reduce::{reduce, ReduceOp, ReduceShape};
use incq::reference;

fn case(op: ReduceOp, s: ReduceShape, seed: u64) {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::new(seed);
    let x: Vec<f32> = (0..s.len()).map(|_| rng.normal() * 3.0).collect();
    let tx = Tensor::from_f32(g, "x", &[x.len()], &x).unwrap();
    let to = Tensor::from_f32(g, "out", &[s.rows], &vec![0.0; s.rows]).unwrap();
    to.poison(g, POISON);
    reduce(g, op, s, &tx, &to).unwrap().run(g);
    let got = to.to_f32(g).unwrap();
    let want = reference::reduce::reduce(op, s, &x);
    if op == ReduceOp::MaxAbs {
        assert_exact_f32(&format!("{op:?} {s:?}"), &got, &want);
        return;
    }
    let abs_sum = reference::reduce::reduce(ReduceOp::MeanAbs, s, &x);
    let count = (s.outer * s.inner) as f64;
    for r in 0..s.rows {
        let scale = f64::from(abs_sum[r])
            * if matches!(op, ReduceOp::Sum | ReduceOp::OuterSum) {
                count
            } else {
                1.0
            };
        let bound = 1e-5 * scale + 1e-6;
        let err = (f64::from(got[r]) - f64::from(want[r])).abs();
        assert!(
            err <= bound,
            "{op:?} {s:?} row {r}: GPU {} CPU {} err {err:e} > {bound:e}",
            got[r],
            want[r]
        );
    }
}

fn shapes() -> Vec<ReduceShape> {
    vec![
        ReduceShape::whole(1),
        ReduceShape::whole(255),
        ReduceShape::whole(257),
        ReduceShape::whole(1_000_003),
        ReduceShape::per_row(7, 33),
        ReduceShape::per_row(1, 1),
        ReduceShape::per_channel(3, 5, 49),
        ReduceShape::per_channel(1, 16, 1),
    ]
}

#[test]
fn reduce_sum_matches_twin() {
    for (i, s) in shapes().into_iter().enumerate() {
        case(ReduceOp::Sum, s, i as u64);
    }
}

#[test]
fn reduce_max_abs_matches_twin() {
    for (i, s) in shapes().into_iter().enumerate() {
        case(ReduceOp::MaxAbs, s, 10 + i as u64);
    }
}

#[test]
fn reduce_mean_abs_matches_twin() {
    for (i, s) in shapes().into_iter().enumerate() {
        case(ReduceOp::MeanAbs, s, 20 + i as u64);
    }
}

#[test]
fn reduce_rejects_a_mismatched_view() {
    let Some(g) = gpu() else { return };
    let x = Tensor::from_f32(g, "x", &[10], &[0.0; 10]).unwrap();
    let o = Tensor::from_f32(g, "o", &[2], &[0.0; 2]).unwrap();
    assert!(reduce(g, ReduceOp::Sum, ReduceShape::per_row(2, 4), &x, &o).is_err());
}

#[test]
fn reduce_outer_sum_matches_twin() {
    for (i, s) in [
        ReduceShape::per_channel(1, 1, 1),
        ReduceShape::per_channel(7, 33, 1),
        ReduceShape::per_channel(64, 120, 1),
        ReduceShape::per_channel(3, 70001, 1),
    ]
    .into_iter()
    .enumerate()
    {
        case(ReduceOp::OuterSum, s, 40 + i as u64);
    }
}
