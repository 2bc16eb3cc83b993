//! BinaryRelax and STE as the executor runs them on a real LeNet-BN plan: forward and backward read
//! `w_eff` (logits equal a float net holding those values, bit for bit), `w_eff` is the twin's
//! relaxed blend of the current `w` at the start of every step, the optimizer moves the float `w`
//! by the gradient taken at `w_eff` (straight-through), λ follows the schedule (per epoch: λ0·ρ^(e+1);
//! per step; hard from the given epoch; STE hard throughout), and after phase II every quantized
//! row holds at most 2 (binary) or 3 (ternary) values.

mod common;
use common::{gpu, Rng};
use incq::graph::model::lenet_bn;
use incq::graph::plan::{Net, OptimConfig, Plan, WeightMode};
use incq::ops::relax::Proj;
use incq::reference::relax as twin;
use incq::schedule::relax::{Relax, RelaxConfig};

const BATCH: usize = 8;

fn opt() -> OptimConfig {
    OptimConfig {
        lr: 0.05,
        momentum: 0.0,
        weight_decay: 0.0,
        nesterov: false,
        adam: false,
    }
}

fn batch(g: &incq::Gpu, plan: &Plan, rng: &mut Rng) {
    let x: Vec<f32> = (0..BATCH * 28 * 28).map(|_| rng.normal()).collect();
    let y: Vec<u32> = (0..BATCH).map(|_| rng.below(10) as u32).collect();
    plan.input.write_f32(g, &x).unwrap();
    plan.labels.write_u32(g, &y).unwrap();
}

#[test]
fn relaxed_weights_feed_forward_and_backward_and_w_takes_the_update() {
    let Some(g) = gpu() else { return };
    let mut net = Net::new(g, &lenet_bn(), 3).unwrap();
    let cfg = RelaxConfig {
        quant: "ternary".into(),
        per_channel: true,
        ..RelaxConfig::default()
    };
    let mut relax = Relax::new(g, &mut net, &cfg, false).unwrap();
    let q: Vec<usize> = (0..net.params.len())
        .filter(|&i| net.params[i].mode == WeightMode::Derived)
        .collect();
    assert_eq!(q.len(), 5, "every conv and linear weight");
    let plan = Plan::new(g, &net, BATCH, Some(opt())).unwrap();
    let mut rng = Rng::new(8);
    relax.set_lambda(g, 2.5, false);
    let w0: Vec<Vec<f32>> = q
        .iter()
        .map(|&i| net.params[i].w.to_f32(g).unwrap())
        .collect();
    batch(g, &plan, &mut rng);
    g.run_pass("step", |p| {
        relax.encode(p);
        plan.encode_train(p);
    });
    for (j, &i) in q.iter().enumerate() {
        let p = &net.params[i];
        let rows = p.shape[0];
        let len = p.len() / rows;
        // w_eff is the twin's blend of the weights the step started from.
        let st = twin::stats(Proj::Ternary, &w0[j], rows, len);
        let want = twin::apply(Proj::Ternary, &w0[j], len, &st, 2.5, false);
        let eff = p.eff.as_ref().unwrap().to_f32(g).unwrap();
        common::assert_close(
            &format!("{} w_eff", p.name),
            &eff,
            &want,
            common::Tol {
                abs: 1e-7,
                rel: 1e-6,
            },
        );
        // Plain SGD without momentum or decay: w = w0 - lr * grad, the gradient taken at w_eff.
        let grad = p.grad.to_f32(g).unwrap();
        let w = p.w.to_f32(g).unwrap();
        for k in 0..w.len() {
            let expect = w0[j][k] - 0.05 * grad[k];
            assert!(
                (w[k] - expect).abs() <= 1e-6 * (1.0 + expect.abs()),
                "{}[{k}]",
                p.name
            );
        }
        assert!(grad.iter().any(|&x| x != 0.0), "{}: no gradient", p.name);
    }

    // Forward reads w_eff: a float net holding w_eff's values gives the same logits, bit for bit.
    relax.set_lambda(g, 0.0, true);
    relax.refresh(g);
    let float = Net::new(g, &lenet_bn(), 3).unwrap();
    for (a, b) in net.params.iter().zip(&float.params) {
        b.w.write_f32(g, &a.w_eff().to_f32(g).unwrap()).unwrap();
    }
    for ((_, a), (_, b)) in net.buffers.iter().zip(&float.buffers) {
        b.write_f32(g, &a.to_f32(g).unwrap()).unwrap();
    }
    let ea = Plan::new(g, &net, BATCH, None).unwrap();
    let eb = Plan::new(g, &float, BATCH, None).unwrap();
    batch(g, &ea, &mut rng);
    eb.input.write_f32(g, &ea.input.to_f32(g).unwrap()).unwrap();
    eb.labels
        .write_u32(g, &ea.labels.to_u32(g).unwrap())
        .unwrap();
    g.run_pass("eval", |p| {
        ea.encode_eval(p);
        eb.encode_eval(p);
    });
    common::assert_exact_f32(
        "logits at w_eff",
        &ea.logits().to_f32(g).unwrap(),
        &eb.logits().to_f32(g).unwrap(),
    );
    // Hard: every row of every quantized layer holds at most 3 values.
    for &i in &q {
        let p = &net.params[i];
        let eff = p.eff.as_ref().unwrap().to_f32(g).unwrap();
        for row in eff.chunks(p.len() / p.shape[0]) {
            let d: std::collections::BTreeSet<u32> = row.iter().map(|x| x.to_bits()).collect();
            assert!(d.len() <= 3, "{}: {} values in a row", p.name, d.len());
        }
    }
    let report = relax.report(g, &net).unwrap();
    assert!(report
        .iter()
        .all(|l| l.max_distinct_per_row <= 3 && l.alpha.len() == l.rows));
}

#[test]
fn lambda_schedule_per_epoch_per_step_hard_and_ste() {
    let Some(g) = gpu() else { return };
    let mut net = Net::new(g, &lenet_bn(), 1).unwrap();
    let cfg = RelaxConfig {
        lambda0: 2.0,
        rho: 1.5,
        hard_from_epoch: 3,
        ..RelaxConfig::default()
    };
    let r = Relax::new(g, &mut net, &cfg, false).unwrap();
    assert_eq!(r.lambda_at(0, 0), (3.0, false), "epoch 1 already uses λ0·ρ");
    assert_eq!(r.lambda_at(1, 100), (4.5, false));
    assert_eq!(r.lambda_at(2, 0), (6.75, false));
    assert!(
        r.lambda_at(3, 0).1 && r.lambda_at(7, 0).1,
        "phase II from epoch 3"
    );
    let mut net = Net::new(g, &lenet_bn(), 1).unwrap();
    let per_step = RelaxConfig {
        growth: "step".into(),
        ..cfg.clone()
    };
    let r = Relax::new(g, &mut net, &per_step, false).unwrap();
    assert_eq!(r.lambda_at(0, 0), (2.0, false));
    assert_eq!(r.lambda_at(1, 2), (4.5, false));
    let mut net = Net::new(g, &lenet_bn(), 1).unwrap();
    let ste = Relax::new(g, &mut net, &cfg, true).unwrap();
    assert!(ste.lambda_at(0, 0).1, "STE is hard from the first step");

    // STE binary: after one refresh each layer holds exactly ±alpha.
    ste.refresh(g);
    for l in ste.report(g, &net).unwrap() {
        assert!(l.distinct_values <= 2, "{}: {}", l.name, l.distinct_values);
    }
    let bad = RelaxConfig {
        rho: 0.5,
        ..cfg.clone()
    };
    let e = Relax::new(g, &mut Net::new(g, &lenet_bn(), 1).unwrap(), &bad, false)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("--rho"), "{e}");
}
