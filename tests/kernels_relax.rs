//! BinaryRelax/STE projections on the GPU (relax_sort_init and relax_sort_step for the exact
//! ternary, relax_stats, relax_apply) against their CPU twins: codes compared exactly and
//! scales to 1e-6 relative, for binary, exact and TWN ternary, uniform 2/4/8 bits and pow2, per
//! layer and per channel, on random tensors of awkward shapes (1 x 1, odd rows, a 40,001-long row)
//! and on edge cases (all-equal weights, all zeros, one huge outlier). The exact ternary projection
//! is checked against brute force over every support; the relaxed weights move from w toward
//! proj(w) as λ grows; hard projections hold at most 2 / 3 / 2^K - 1 values per row. Outputs are
//! poisoned before every run.

mod common;
use common::{gpu, Rng, POISON};
use incq::gpu::{DType, Tensor};
use incq::ops::relax::{Proj, RelaxOp};
use incq::reference::relax as twin;

const PROJS: [Proj; 8] = [
    Proj::Binary,
    Proj::Ternary,
    Proj::TernaryTwn,
    Proj::Uniform { bits: 2 },
    Proj::Uniform { bits: 4 },
    Proj::Uniform { bits: 8 },
    Proj::Pow2 { bits: 3 },
    Proj::Pow2 { bits: 5 },
];

/// Runs the projection at (λ, hard) and returns (stats, eff).
fn run(
    g: &incq::Gpu,
    proj: Proj,
    rows: usize,
    len: usize,
    w: &[f32],
    lambda: f32,
    hard: bool,
) -> (Vec<(f32, f32)>, Vec<f32>) {
    let tw = Tensor::from_f32(g, "w", &[w.len()], w).unwrap();
    let eff = Tensor::empty(g, "eff", &[w.len()], DType::F32).unwrap();
    let mut op = RelaxOp::new(g, proj, rows, len, &tw, &eff).unwrap();
    eff.poison(g, POISON);
    op.stats.poison(g, POISON);
    op.set_lambda(g, lambda, hard);
    g.run_pass("relax", |p| op.encode(p));
    let s = op.stats.to_f32(g).unwrap();
    let stats = s.chunks(2).map(|c| (c[0], c[1])).collect();
    (stats, eff.to_f32(g).unwrap())
}

fn close(a: f32, b: f32) -> bool {
    a == b || (a - b).abs() <= 1e-6 * a.abs().max(b.abs())
}

/// The integer code of a projected value (pow2: its bits).
fn code(proj: Proj, v: f32, alpha: f32) -> i64 {
    match proj {
        Proj::Pow2 { .. } => i64::from(v.to_bits()),
        _ if alpha == 0.0 => 0,
        _ => (v / alpha).round() as i64,
    }
}

fn check(g: &incq::Gpu, proj: Proj, rows: usize, len: usize, w: &[f32], what: &str) {
    let (gs, ge) = run(g, proj, rows, len, w, 0.0, true);
    let ts = twin::stats(proj, w, rows, len);
    let te = twin::apply(proj, w, len, &ts, 0.0, true);
    let pow2 = matches!(proj, Proj::Pow2 { .. });
    for r in 0..rows {
        if pow2 {
            assert_eq!(
                gs[r].0.to_bits(),
                ts[r].0.to_bits(),
                "{what} {proj:?} n1 row {r}"
            );
            assert_eq!(
                gs[r].1.to_bits(),
                ts[r].1.to_bits(),
                "{what} {proj:?} n2 row {r}"
            );
        } else {
            assert!(
                close(gs[r].0, ts[r].0),
                "{what} {proj:?} alpha row {r}: GPU {} CPU {}",
                gs[r].0,
                ts[r].0
            );
        }
    }
    let mut levels = vec![std::collections::BTreeSet::new(); rows];
    for i in 0..w.len() {
        let r = i / len;
        assert!(
            !ge[i].is_nan(),
            "{what} {proj:?}: eff[{i}] unwritten or NaN"
        );
        let (cg, ct) = (code(proj, ge[i], gs[r].0), code(proj, te[i], ts[r].0));
        assert_eq!(cg, ct, "{what} {proj:?}: code of w[{i}] = {:e}", w[i]);
        levels[r].insert(ge[i].to_bits());
    }
    for (r, l) in levels.iter().enumerate() {
        assert!(
            l.len() <= proj.max_levels(),
            "{what} {proj:?} row {r}: {} values",
            l.len()
        );
    }
}

#[test]
fn projections_match_twins_on_random_tensors() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::new(21);
    for (rows, len) in [
        (1, 1),
        (1, 1000),
        (7, 25),
        (16, 150),
        (1, 40_001),
        (120, 401),
    ] {
        let w: Vec<f32> = (0..rows * len).map(|_| rng.normal() * 0.1).collect();
        for proj in PROJS {
            check(g, proj, rows, len, &w, &format!("{rows}x{len}"));
        }
    }
}

#[test]
fn projections_match_twins_on_edge_cases() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::new(22);
    let len = 257;
    let mut outlier: Vec<f32> = (0..len).map(|_| rng.normal() * 0.01).collect();
    outlier[100] = 1000.0;
    let mut signed_zeros = vec![0.0f32; len];
    signed_zeros[3] = -0.0;
    let cases = [
        ("all equal", vec![0.25f32; len]),
        ("all equal negative", vec![-0.5f32; len]),
        ("zeros", signed_zeros),
        ("outlier", outlier),
    ];
    for (what, w) in cases {
        for proj in PROJS {
            check(g, proj, 1, len, &w, what);
        }
    }
}

#[test]
fn exact_ternary_equals_brute_force() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::new(23);
    for n in [1usize, 2, 3, 5, 8, 11, 13] {
        for trial in 0..6 {
            let w: Vec<f32> = (0..n)
                .map(|_| {
                    if trial % 2 == 0 {
                        rng.normal()
                    } else {
                        rng.uniform(-1.0, 1.0).powi(3)
                    }
                })
                .collect();
            let (_, e) = run(g, Proj::Ternary, 1, n, &w, 0.0, true);
            let err: f64 = w
                .iter()
                .zip(&e)
                .map(|(&x, &p)| (f64::from(x) - f64::from(p)).powi(2))
                .sum();
            let best = twin::ternary_brute_force(&w);
            assert!(
                (err - best).abs() <= 1e-6 * best.max(1e-12),
                "n {n}: GPU projection error {err}, brute force {best}, w {w:?}"
            );
        }
    }
}

#[test]
fn relaxed_weights_move_from_w_to_proj_as_lambda_grows() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::new(24);
    let (rows, len) = (6, 75);
    let w: Vec<f32> = (0..rows * len).map(|_| rng.normal() * 0.1).collect();
    for proj in [Proj::Binary, Proj::Ternary, Proj::Uniform { bits: 4 }] {
        let (_, hard) = run(g, proj, rows, len, &w, 0.0, true);
        let dist = |a: &[f32], b: &[f32]| -> f64 {
            a.iter()
                .zip(b)
                .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
                .sum::<f64>()
                .sqrt()
        };
        let mut last_to_proj = f64::INFINITY;
        let mut last_to_w = -1.0;
        for lambda in [0.0f32, 0.5, 2.0, 10.0, 1000.0] {
            let (s, u) = run(g, proj, rows, len, &w, lambda, false);
            let want = twin::apply(proj, &w, len, &s, lambda, false);
            common::assert_close(
                &format!("{proj:?} u at λ {lambda}"),
                &u,
                &want,
                common::Tol {
                    abs: 1e-7,
                    rel: 1e-6,
                },
            );
            let (tp, tw) = (dist(&u, &hard), dist(&u, &w));
            assert!(tp < last_to_proj, "{proj:?} λ {lambda}: not closer to proj");
            assert!(tw > last_to_w, "{proj:?} λ {lambda}: not further from w");
            if lambda == 0.0 {
                assert_eq!(tw, 0.0, "λ = 0 gives u = w");
            }
            (last_to_proj, last_to_w) = (tp, tw);
        }
        assert!(last_to_proj < 1e-3 * dist(&w, &hard));
    }
}

#[test]
fn bad_projection_names_are_errors_naming_the_flag() {
    for s in ["quaternary", "uniform:9", "uniform:1", "pow2:x", "uniform"] {
        let e = Proj::parse(s).expect_err(s).to_string();
        assert!(e.contains("--quant") && e.contains(s), "{e}");
    }
    assert_eq!(Proj::parse("uniform:3").unwrap(), Proj::Uniform { bits: 3 });
    assert_eq!(Proj::parse("pow2:5").unwrap(), Proj::Pow2 { bits: 5 });
}
