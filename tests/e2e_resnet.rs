//! BasicBlock wiring (identity and projection shortcuts, the residual add, gradient accumulation
//! into the block input) checked end to end on the GPU, two ways:
//! - a two-block residual net's loss, gradients and running stats against the CPU reference model;
//! - per block kind, parameter gradients from one plan step against central differences of the
//!   plan's own loss. With lr = 0 and no momentum or weight decay a step leaves the weights
//!   unchanged, so the loss is a function of the weights we perturb. Tolerance: abs 3e-3 +
//!   rel 5e-2 (f32 loss, step 2e-3, small enough not to cross ReLU kinks at these seeds).

mod common;
use common::{gpu, Rng};
use incq::graph::model::{Layer, Model};
use incq::graph::plan::{Net, OptimConfig, Plan};

fn tiny(blocks: Vec<Layer>) -> Model {
    let mut layers = vec![
        Layer::Conv {
            cout: 4,
            k: 3,
            stride: 1,
            pad: 1,
        },
        Layer::Bn { relu: true },
    ];
    layers.extend(blocks);
    layers.push(Layer::Gap);
    layers.push(Layer::Linear {
        fout: 5,
        relu: false,
    });
    Model {
        name: "tiny-resnet".into(),
        input: (3, 8, 8),
        classes: 5,
        layers,
    }
}

#[test]
fn chain_without_blocks_gradients_match_finite_differences() {
    check(tiny(vec![]));
}

#[test]
fn identity_block_gradients_match_finite_differences() {
    check(tiny(vec![Layer::BasicBlock { cout: 4, stride: 1 }]));
}

#[test]
fn projection_block_gradients_match_finite_differences() {
    check(tiny(vec![Layer::BasicBlock { cout: 8, stride: 2 }]));
}

/// Two blocks (identity, then projection) against the CPU reference model, exactly as the LeNet
/// golden test: loss to 1e-4 relative and every gradient within abs 2e-4 + rel 2e-3.
#[test]
fn residual_net_matches_the_cpu_reference() {
    let Some(g) = gpu() else { return };
    let model = tiny(vec![
        Layer::BasicBlock { cout: 4, stride: 1 },
        Layer::BasicBlock { cout: 8, stride: 2 },
    ]);
    let net = Net::new(g, &model, 11).unwrap();
    let n = 5;
    let cfg = OptimConfig {
        lr: 0.0,
        momentum: 0.0,
        weight_decay: 0.0,
        nesterov: false,
        adam: false,
    };
    let plan = Plan::new(g, &net, n, Some(cfg)).unwrap();
    let mut cpu = incq::reference::model::CpuNet {
        params: net.params.iter().map(|p| p.w.to_f32(g).unwrap()).collect(),
        running: net
            .buffers
            .iter()
            .map(|(_, t)| t.to_f32(g).unwrap())
            .collect(),
    };
    let mut rng = Rng::new(3);
    let x: Vec<f32> = (0..n * 3 * 64).map(|_| rng.normal()).collect();
    let labels: Vec<u32> = (0..n).map(|_| rng.below(5) as u32).collect();
    plan.input.write_f32(g, &x).unwrap();
    plan.labels.write_u32(g, &labels).unwrap();
    plan.reset_metrics(g);
    g.run_pass("residual step", |p| plan.encode_train(p));
    let (gpu_loss, _, _) = plan.read_metrics(g).unwrap();
    let (cpu_loss, grads) = incq::reference::model::train_step(&model, &mut cpu, n, &x, &labels);
    assert!(
        (gpu_loss - cpu_loss).abs() / cpu_loss < 1e-4,
        "GPU loss {gpu_loss}, CPU {cpu_loss}"
    );
    for (p, want) in net.params.iter().zip(&grads) {
        let got = p.grad.to_f32(g).unwrap();
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!(
                f64::from((a - b).abs()) <= 2e-4 + 2e-3 * f64::from(b.abs()),
                "gradient of {} element {i}: GPU {a:e} CPU {b:e}",
                p.name
            );
        }
    }
    for ((name, t), want) in net.buffers.iter().zip(&cpu.running) {
        let got = t.to_f32(g).unwrap();
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 + 1e-4 * b.abs(),
                "{name}[{i}]: GPU {a} CPU {b}"
            );
        }
    }
}

fn check(model: Model) {
    let Some(g) = gpu() else { return };
    let net = Net::new(g, &model, 7).unwrap();
    let n = 6;
    let cfg = OptimConfig {
        lr: 0.0,
        momentum: 0.0,
        weight_decay: 0.0,
        nesterov: false,
        adam: false,
    };
    let plan = Plan::new(g, &net, n, Some(cfg)).unwrap();
    let mut rng = Rng::new(1);
    let x: Vec<f32> = (0..n * 3 * 64).map(|_| rng.normal()).collect();
    let labels: Vec<u32> = (0..n).map(|_| rng.below(5) as u32).collect();
    plan.input.write_f32(g, &x).unwrap();
    plan.labels.write_u32(g, &labels).unwrap();
    let loss = || {
        plan.reset_metrics(g);
        g.run_pass("fd step", |p| plan.encode_train(p));
        plan.read_metrics(g).unwrap().0
    };
    let base = loss();
    assert!(base.is_finite());
    let h = 2e-3f32;
    let mut checked = 0;
    for p in &net.params {
        let grad = p.grad.to_f32(g).unwrap();
        let w = p.w.to_f32(g).unwrap();
        // re-read the gradient at the unperturbed point for each parameter tensor
        for _ in 0..3 {
            let i = rng.below(w.len() as u64) as usize;
            let mut wp = w.clone();
            wp[i] += h;
            p.w.write_f32(g, &wp).unwrap();
            let lp = loss();
            wp[i] -= 2.0 * h;
            p.w.write_f32(g, &wp).unwrap();
            let lm = loss();
            p.w.write_f32(g, &w).unwrap();
            let num = (lp - lm) / (2.0 * f64::from(h));
            let err = (num - f64::from(grad[i])).abs();
            assert!(
                err <= 3e-3 + 5e-2 * num.abs(),
                "{}[{i}]: finite difference {num:e}, plan gradient {:e}",
                p.name,
                grad[i]
            );
            checked += 1;
        }
        // restore the gradient buffers at the unperturbed point for the next tensor
        loss();
    }
    assert!(checked >= 3 * net.params.len());
    eprintln!("{checked} coordinates checked, base loss {base}");
}

/// The CIFAR builders compile into plans, and a training step of each runs with a finite loss
/// (ResNet-20's wiring is checked above on a small residual net; this covers the full models).
#[test]
fn vgg_small_and_resnet20_plans_run_a_step() {
    let Some(g) = gpu() else { return };
    for model in [
        incq::graph::model::vgg_small(),
        incq::graph::model::resnet20(),
    ] {
        let net = Net::new(g, &model, 1).unwrap();
        let cfg = OptimConfig {
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 5e-4,
            nesterov: false,
            adam: false,
        };
        let plan = Plan::new(g, &net, 2, Some(cfg)).unwrap();
        let mut rng = Rng::new(8);
        plan.input
            .write_f32(
                g,
                &(0..2 * 3 * 32 * 32)
                    .map(|_| rng.normal())
                    .collect::<Vec<_>>(),
            )
            .unwrap();
        plan.labels.write_u32(g, &[3, 7]).unwrap();
        plan.reset_metrics(g);
        g.run_pass("step", |p| plan.encode_train(p));
        let (loss, _, n) = plan.read_metrics(g).unwrap();
        assert!(
            loss.is_finite() && loss > 0.0 && n == 2.0,
            "{}: loss {loss}",
            model.name
        );
        let params: usize = net.num_params();
        eprintln!(
            "{}: {params} parameters, first-step loss {loss}",
            model.name
        );
        if model.name == "resnet20" {
            // WORKLOADS.md W2: 272,474 parameters with option-B shortcuts.
            assert_eq!(params, 272_474);
        }
    }
}
