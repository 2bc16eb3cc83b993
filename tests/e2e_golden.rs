//! Golden end-to-end test: four LeNet-BN training steps from a fixed seed on the GPU plan, beside
//! the CPU reference composed from the twins (src/reference/model.rs) starting from the same
//! parameters and batches. After every step the losses agree to 1e-4 relative, and after the
//! first step every parameter gradient agrees within abs 2e-4 + rel 2e-3 (f32 sums over the batch
//! in different orders against f64); later the updated weights agree within abs 1e-4.

mod common;
use common::{gpu, Rng};
use incq::graph::model::lenet_bn;
use incq::graph::plan::{Net, OptimConfig, Plan};
use incq::ops::optim::SgdParams;
use incq::reference::model::{adam_step, sgd_step, train_step, CpuNet};

#[test]
fn lenet_bn_steps_match_the_cpu_reference() {
    golden(false);
}

/// The same with Adam (step count advanced by `set_step`, as the trainer does).
#[test]
fn lenet_bn_adam_steps_match_the_cpu_reference() {
    golden(true);
}

fn golden(adam: bool) {
    let Some(g) = gpu() else { return };
    let model = lenet_bn();
    let net = Net::new(g, &model, 42).unwrap();
    // WORKLOADS.md W1: 61,728 parameters.
    assert_eq!(net.num_params(), 61_728);
    let cfg = OptimConfig {
        // Adam normalises every gradient, so its usual small step keeps the runs comparable.
        lr: if adam { 1e-3 } else { 0.05 },
        momentum: 0.9,
        weight_decay: 5e-4,
        nesterov: false,
        adam,
    };
    let n = 8;
    let mut plan = Plan::new(g, &net, n, Some(cfg)).unwrap();
    let mut cpu = CpuNet {
        params: net.params.iter().map(|p| p.w.to_f32(g).unwrap()).collect(),
        running: net
            .buffers
            .iter()
            .map(|(_, t)| t.to_f32(g).unwrap())
            .collect(),
    };
    let decay: Vec<bool> = net.params.iter().map(|p| p.decay).collect();
    let mut mom: Vec<Vec<f32>> = cpu.params.iter().map(|p| vec![0.0; p.len()]).collect();
    let mut second = mom.clone();
    let sp = SgdParams {
        lr: cfg.lr,
        momentum: cfg.momentum,
        weight_decay: cfg.weight_decay,
        ..Default::default()
    };
    let mut rng = Rng::new(2024);
    for step in 0..4u32 {
        let x: Vec<f32> = (0..n * 28 * 28).map(|_| rng.normal()).collect();
        let labels: Vec<u32> = (0..n).map(|_| rng.below(10) as u32).collect();
        plan.input.write_f32(g, &x).unwrap();
        plan.labels.write_u32(g, &labels).unwrap();
        plan.reset_metrics(g);
        plan.set_step(g, &net, cfg.lr, step + 1);
        g.run_pass("golden step", |p| plan.encode_train(p));
        let (gpu_loss, _, _) = plan.read_metrics(g).unwrap();
        let (cpu_loss, grads) = train_step(&model, &mut cpu, n, &x, &labels);
        let rel = (gpu_loss - cpu_loss).abs() / cpu_loss.abs();
        assert!(
            rel < 1e-4,
            "step {step}: GPU loss {gpu_loss}, CPU loss {cpu_loss}"
        );
        eprintln!("step {step}: loss GPU {gpu_loss:.6} CPU {cpu_loss:.6}");
        if step == 0 {
            for (p, want) in net.params.iter().zip(&grads) {
                let got = p.grad.to_f32(g).unwrap();
                for (i, (a, b)) in got.iter().zip(want).enumerate() {
                    let err = f64::from((a - b).abs());
                    assert!(
                        err <= 2e-4 + 2e-3 * f64::from(b.abs()),
                        "gradient of {} element {i}: GPU {a:e} CPU {b:e}",
                        p.name
                    );
                }
            }
        }
        if adam {
            adam_step(
                &mut cpu,
                &grads,
                &mut mom,
                &mut second,
                &decay,
                cfg.lr,
                cfg.weight_decay,
                step + 1,
            );
        } else {
            sgd_step(&mut cpu, &grads, &mut mom, &decay, &sp);
        }
        for (p, want) in net.params.iter().zip(&cpu.params) {
            let got = p.w.to_f32(g).unwrap();
            for (i, (a, b)) in got.iter().zip(want).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-4,
                    "step {step}: {} element {i}: GPU {a} CPU {b}",
                    p.name
                );
            }
        }
        for ((name, t), want) in net.buffers.iter().zip(&cpu.running) {
            let got = t.to_f32(g).unwrap();
            for (i, (a, b)) in got.iter().zip(want).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-4 + 1e-4 * b.abs(),
                    "step {step}: {name}[{i}]: GPU {a} CPU {b}"
                );
            }
        }
    }
}
