//! INQ's schedule on the GPU buffers of a real LeNet-BN plan: after each phase the frozen count of
//! every quantized layer equals round(portion · n) exactly, the frozen set only grows, pruning
//! freezes the largest |w| of the float ones, and frozen weights are in the layer's set; across
//! training steps frozen values and their momentum never change while float weights move; after
//! the last phase every weight is in P (n1, n2 recomputed on the CPU from max|W|). Both
//! partition strategies, and the first/last-float option.

mod common;
use common::{gpu, Rng};
use incq::graph::model::lenet_bn;
use incq::graph::plan::{Net, OptimConfig, Plan};
use incq::reference::quant as twin;
use incq::schedule::inq::{in_pow2_set, target_count, Inq, InqConfig};

fn run(partition: &str, float_first_last: bool, bits: u32, per_channel: bool) {
    let Some(g) = gpu() else { return };
    let net = Net::new(g, &lenet_bn(), 9).unwrap();
    let opt = OptimConfig {
        lr: 0.05,
        momentum: 0.9,
        weight_decay: 5e-4,
        nesterov: false,
        adam: false,
    };
    let batch = 16;
    let plan = Plan::new(g, &net, batch, Some(opt)).unwrap();
    let cfg = InqConfig {
        bits,
        portions: vec![0.5, 0.75, 0.875, 1.0],
        epochs_per_phase: 1,
        partition: partition.into(),
        float_first_last,
        per_channel,
    };
    let mut inq = Inq::new(g, &net, &cfg, 5).unwrap();
    let names = inq.layer_names(&net);
    let weights: Vec<usize> = (0..net.params.len())
        .filter(|&i| net.params[i].shape.len() >= 2)
        .collect();
    assert_eq!(
        names.len(),
        if float_first_last {
            weights.len() - 2
        } else {
            weights.len()
        }
    );
    let qidx: Vec<usize> = names
        .iter()
        .map(|n| net.params.iter().position(|p| p.name == *n).unwrap())
        .collect();
    let mut rng = Rng::new(77);
    let mut prev_mask: Vec<Vec<f32>> = qidx
        .iter()
        .map(|&i| vec![1.0; net.params[i].len()])
        .collect();
    for (phase, &portion) in cfg.portions.iter().enumerate() {
        let before: Vec<Vec<f32>> = qidx
            .iter()
            .map(|&i| net.params[i].w.to_f32(g).unwrap())
            .collect();
        inq.apply_phase(g, phase).unwrap();
        let report = inq.report(g, &net).unwrap();
        for (j, &pi) in qidx.iter().enumerate() {
            let p = &net.params[pi];
            let mask = p.mask.to_f32(g).unwrap();
            let w = p.w.to_f32(g).unwrap();
            let frozen = mask.iter().filter(|&&m| m == 0.0).count();
            assert_eq!(
                frozen,
                target_count(p.len(), portion),
                "{} phase {phase}",
                p.name
            );
            assert_eq!(report[j].frozen, frozen);
            assert_eq!(report[j].frozen_not_in_set, 0, "{} phase {phase}", p.name);
            for i in 0..mask.len() {
                assert!(
                    !(prev_mask[j][i] == 0.0 && mask[i] != 0.0),
                    "{}[{i}] returned to float in phase {phase}",
                    p.name
                );
                if mask[i] == 0.0 {
                    // the set of the weight's row (output channel) or of the whole layer
                    let r = &report[j];
                    let (n1, n2) = match per_channel {
                        true => {
                            let row = i / (p.len() / r.n1_rows.len());
                            (r.n1_rows[row], r.n2_rows[row])
                        }
                        false => (r.n1, r.n2),
                    };
                    assert!(in_pow2_set(w[i], n1, n2), "{}[{i}] = {}", p.name, w[i]);
                } else {
                    assert_eq!(w[i].to_bits(), before[j][i].to_bits(), "float weight moved");
                }
            }
            if partition == "pruning" {
                // Every newly frozen |w| is at least every still-float |w| (before rounding).
                let newly = (0..mask.len()).filter(|&i| mask[i] == 0.0 && prev_mask[j][i] != 0.0);
                let lo = newly
                    .map(|i| before[j][i].abs())
                    .fold(f32::INFINITY, f32::min);
                let hi = (0..mask.len())
                    .filter(|&i| mask[i] != 0.0)
                    .map(|i| before[j][i].abs())
                    .fold(0.0f32, f32::max);
                assert!(
                    lo >= hi,
                    "{} phase {phase}: froze {lo} but kept {hi}",
                    p.name
                );
            }
            prev_mask[j] = mask;
        }
        if portion == 1.0 {
            break;
        }
        // Retrain a few steps: frozen values and momentum stay, float weights move.
        let frozen_w: Vec<Vec<f32>> = qidx
            .iter()
            .map(|&i| net.params[i].w.to_f32(g).unwrap())
            .collect();
        for _ in 0..3 {
            let x: Vec<f32> = (0..batch * 28 * 28).map(|_| rng.normal()).collect();
            let y: Vec<u32> = (0..batch).map(|_| rng.below(10) as u32).collect();
            plan.input.write_f32(g, &x).unwrap();
            plan.labels.write_u32(g, &y).unwrap();
            g.run_pass("step", |p| plan.encode_train(p));
        }
        for (j, &pi) in qidx.iter().enumerate() {
            let p = &net.params[pi];
            let w = p.w.to_f32(g).unwrap();
            let m = p.momentum.to_f32(g).unwrap();
            let mut moved = 0;
            for i in 0..w.len() {
                if prev_mask[j][i] == 0.0 {
                    assert_eq!(
                        w[i].to_bits(),
                        frozen_w[j][i].to_bits(),
                        "{}[{i}] frozen moved",
                        p.name
                    );
                    assert_eq!(m[i], 0.0, "{}[{i}] frozen momentum", p.name);
                } else if w[i] != frozen_w[j][i] {
                    moved += 1;
                }
            }
            assert!(moved > 0, "{}: no float weight trained", p.name);
        }
    }
    // After the last phase every weight of a quantized layer is in P of its own max|W|, and the
    // others (BN, biases, float layers) still have masks of 1.
    for (pi, p) in net.params.iter().enumerate() {
        let w = p.w.to_f32(g).unwrap();
        let mask = p.mask.to_f32(g).unwrap();
        if qidx.contains(&pi) {
            let rows = if per_channel { p.shape[0] } else { 1 };
            for row in w.chunks(w.len() / rows) {
                let s = row.iter().fold(0.0f32, |a, x| a.max(x.abs()));
                let (n1, n2) = twin::pow2_exponents(s, bits);
                let levels = twin::pow2_levels(n1, n2);
                for x in row {
                    assert!(
                        levels.contains(&f64::from(x.abs())),
                        "{}: {x} not in P",
                        p.name
                    );
                }
                let distinct: std::collections::BTreeSet<u32> =
                    row.iter().map(|x| x.to_bits()).collect();
                assert!(
                    distinct.len() <= (1 << (bits - 1)) + 1,
                    "{}: {} values",
                    p.name,
                    distinct.len()
                );
            }
            assert!(mask.iter().all(|&m| m == 0.0));
        } else {
            assert!(
                mask.iter().all(|&m| m == 1.0),
                "{} is not quantized",
                p.name
            );
        }
    }
}

#[test]
fn inq_pruning_schedule_on_lenet() {
    run("pruning", false, 5, false);
}

#[test]
fn inq_random_schedule_keeping_first_and_last_float() {
    run("random", true, 3, false);
}

#[test]
fn inq_ternary_schedule() {
    run("pruning", false, 2, false);
}

#[test]
fn inq_per_channel_schedule() {
    run("pruning", false, 3, true);
}

#[test]
fn inq_config_errors_name_their_flag() {
    let bad = |c: InqConfig, flag: &str| {
        let e = c.validate().expect_err("invalid").to_string();
        assert!(e.contains(flag), "{e}");
    };
    let d = InqConfig::default();
    bad(
        InqConfig {
            bits: 1,
            ..d.clone()
        },
        "--bits",
    );
    bad(
        InqConfig {
            bits: 9,
            ..d.clone()
        },
        "--bits",
    );
    bad(
        InqConfig {
            portions: vec![0.5, 0.4, 1.0],
            ..d.clone()
        },
        "--portions",
    );
    bad(
        InqConfig {
            portions: vec![0.5, 0.75],
            ..d.clone()
        },
        "--portions",
    );
    bad(
        InqConfig {
            portions: vec![],
            ..d.clone()
        },
        "--portions",
    );
    bad(
        InqConfig {
            partition: "magnitude".into(),
            ..d.clone()
        },
        "--partition",
    );
    bad(
        InqConfig {
            epochs_per_phase: 0,
            ..d
        },
        "--epochs-per-phase",
    );
}
