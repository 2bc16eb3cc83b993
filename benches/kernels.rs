//! `cargo bench`: criterion benchmarks of the same kernels `incq bench` times (GEMM, conv forward
//! and backward, batch norm) and of a whole W1 training step. Every sample records the work,
//! submits it and waits for the device, so the time is GPU time plus one sync. Throughput is in
//! elements (FLOPs for GEMM and conv). Without a GPU adapter the benchmarks print why and skip.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use incq::gpu::{DeviceOptions, Gpu, Tensor};
use incq::graph::model::lenet_bn;
use incq::graph::plan::{Net, OptimConfig, Plan};
use incq::ops::conv::{self, ConvShape, ConvVariant};
use incq::ops::gemm::{gemm, GemmDesc, GemmVariant};

fn data(gpu: &Gpu, n: usize) -> Tensor {
    let v: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    Tensor::from_f32(gpu, "bench", &[n], &v).expect("upload")
}

/// Times `iters` runs of `record`, each submitted and synced.
fn timed(gpu: &Gpu, iters: u64, record: &dyn Fn(&mut incq::gpu::Rec<'_>)) -> Duration {
    let t0 = Instant::now();
    for _ in 0..iters {
        gpu.run_pass("bench", |p| record(p));
        gpu.sync().expect("device sync");
    }
    t0.elapsed()
}

fn benches(c: &mut Criterion) {
    std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    let gpu = match Gpu::open(&DeviceOptions::default()) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("cargo bench: skipped, no GPU adapter: {e}");
            return;
        }
    };
    let mut g = c.benchmark_group("incq");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));

    let v = GemmVariant::default_for(&gpu);
    for n in [256usize, 512] {
        let d = GemmDesc::new(n, n, n);
        let (a, b, cc) = (data(&gpu, n * n), data(&gpu, n * n), data(&gpu, n * n));
        let op = gemm(&gpu, v, &d, &a.buf, &b.buf, &cc.buf).expect("gemm");
        g.throughput(Throughput::Elements(d.flops() as u64));
        g.bench_function(format!("gemm {} {n}^3", v.name()), |bch| {
            bch.iter_custom(|iters| timed(&gpu, iters, &|p| op.encode(p)))
        });
    }

    let cv = ConvVariant::default_for(&gpu);
    let s = ConvShape {
        n: 64,
        cin: 6,
        h: 14,
        w: 14,
        cout: 16,
        k: 5,
        stride: 1,
        pad: 0,
    };
    let (x, w, y, dx, dw) = (
        data(&gpu, s.x_len()),
        data(&gpu, s.w_len()),
        data(&gpu, s.y_len()),
        data(&gpu, s.x_len()),
        data(&gpu, s.w_len()),
    );
    let fwd = conv::fwd(&gpu, cv, &s, &x.buf, &w.buf, &y.buf).expect("conv");
    let bd = conv::bwd_data(&gpu, cv, &s, &y.buf, &w.buf, &dx.buf, false).expect("conv");
    let bw = conv::bwd_weight(&gpu, cv, &s, &y.buf, &x.buf, &dw.buf, false).expect("conv");
    g.throughput(Throughput::Elements(s.flops() as u64));
    for (name, op) in [("fwd", &fwd), ("bwd_data", &bd), ("bwd_weight", &bw)] {
        g.bench_function(format!("conv {name} lenet-conv2 b64"), |bch| {
            bch.iter_custom(|iters| timed(&gpu, iters, &|p| op.encode(p)))
        });
    }

    let net = Net::new(&gpu, &lenet_bn(), 0).expect("net");
    let opt = OptimConfig::WORKLOAD;
    let plan = Plan::new(&gpu, &net, 64, Some(opt)).expect("plan");
    g.throughput(Throughput::Elements(64));
    g.bench_function("W1 train step (images)", |bch| {
        bch.iter_custom(|iters| timed(&gpu, iters, &|p| plan.encode_train(p)))
    });
    g.finish();
}

criterion_group!(kernels, benches);
criterion_main!(kernels);
