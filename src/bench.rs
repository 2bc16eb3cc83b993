//! `incq bench`: the roofline (FMA peak and copy bandwidth, measured with WGSL microkernels) and
//! kernel benchmarks. Every row gives the shape, the median and min–max time over repeats after a
//! warm-up, the rate (GFLOP/s or GB/s), and its share of the roofline measured in the same run.
//! Every kernel variant is checked against its CPU twin before it is timed.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::gpu::device::Gpu;
use crate::gpu::profile::{time_pass, Timing};
use crate::gpu::tensor::Tensor;
use crate::gpu::Rec;
use crate::ops;
use crate::ops::gemm::{GemmDesc, GemmVariant};

/// Options shared by the bench subcommands.
#[derive(Clone, Debug, Default)]
pub struct BenchOpts {
    /// A smoke run: small sizes, few repeats (CI checks the path, not the speed).
    pub quick: bool,
    /// Time with host wall clock + device sync even when timestamps exist.
    pub wall: bool,
    /// Only rows whose name contains this.
    pub filter: Option<String>,
    /// Use the autotuner's kernel choices (workload benches); false = device defaults.
    pub tune: bool,
}

/// One printed row.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub bench: String,
    pub shape: String,
    pub variant: String,
    pub clock: String,
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub value: f64,
    pub unit: String,
    /// Share of the same run's roofline figure (FMA peak for GFLOP/s, copy bandwidth for GB/s).
    pub pct_of_peak: Option<f64>,
}

impl Row {
    fn new(
        bench: &str,
        shape: String,
        variant: String,
        t: &Timing,
        work: f64,
        unit: &str,
        peak: Option<f64>,
    ) -> Row {
        let med = t.median();
        let value = work / med / 1e9;
        Row {
            bench: bench.into(),
            shape,
            variant,
            clock: t.clock.name().into(),
            median_ms: med * 1e3,
            min_ms: t.min() * 1e3,
            max_ms: t.max() * 1e3,
            value,
            unit: unit.into(),
            pct_of_peak: peak.map(|p| 100.0 * value / p),
        }
    }
}

/// Prints rows as an aligned table, or one JSON object per row.
pub fn print_rows(rows: &[Row], json: bool) {
    if json {
        for r in rows {
            println!("{}", serde_json::to_string(r).unwrap_or_default());
        }
        return;
    }
    println!(
        "{:<16} {:<22} {:<16} {:>10} {:>21} {:>10} {:<8} {:>8} clock",
        "bench", "shape", "variant", "median ms", "min–max ms", "rate", "unit", "% peak"
    );
    for r in rows {
        let pct = r
            .pct_of_peak
            .map(|p| format!("{p:.1}"))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<16} {:<22} {:<16} {:>10.3} {:>21} {:>10.2} {:<8} {:>8} {}",
            r.bench,
            r.shape,
            r.variant,
            r.median_ms,
            format!("{:.3}–{:.3}", r.min_ms, r.max_ms),
            r.value,
            r.unit,
            pct,
            r.clock
        );
    }
}

/// The roofline figures of one run.
#[derive(Clone, Debug)]
pub struct Roofline {
    pub fma_gflops: f64,
    pub copy_gbs: f64,
    pub rows: Vec<Row>,
}

/// Measures the FMA peak and the copy bandwidth.
pub fn roofline(gpu: &Gpu, opts: &BenchOpts) -> Result<Roofline> {
    let cpu = gpu.info.device_type == wgpu::DeviceType::Cpu;
    let repeats = if opts.quick { 3 } else { 7 };
    // FMA: enough invocations to fill the device, and iterations calibrated to ~50 ms a run.
    let inv = if cpu { 1 << 14 } else { 1 << 21 };
    let dst = Tensor::empty(gpu, "roofline fma out", &[inv * 4], crate::gpu::DType::F32)?;
    let mut iters = 64u32;
    let target = if opts.quick { 0.01 } else { 0.05 };
    let fma = loop {
        let d = ops::bench::fma_peak(gpu, inv, iters, 0.5, &dst.buf)?;
        let t = time_pass(gpu, "fma_peak", 1, 1, opts.wall, &|p| d.encode(p))?;
        if t.median() >= target || iters >= 1 << 20 {
            break d;
        }
        let scale = (target / t.median().max(1e-7)).clamp(2.0, 64.0);
        iters = ((f64::from(iters) * scale) as u32).min(1 << 20);
    };
    let _ = &fma;
    let t_fma = time_pass(gpu, "fma_peak", 1, repeats, opts.wall, &|p| fma.encode(p))?;
    let flops = ops::bench::fma_flops(inv, iters);
    let fma_row = Row::new(
        "roofline",
        format!("fma {inv}x{iters}"),
        "2xvec4".into(),
        &t_fma,
        flops,
        "GFLOP/s",
        None,
    );

    // Copy: the largest buffer pair that fits one binding, capped at 64 MiB (4 MiB when quick).
    let cap: u64 = if opts.quick { 4 << 20 } else { 64 << 20 };
    let bytes = cap
        .min(gpu.limits.max_storage_buffer_binding_size)
        .min(gpu.limits.max_buffer_size);
    let n4 = (bytes / 16) as usize;
    let src = Tensor::empty(gpu, "roofline copy src", &[n4 * 4], crate::gpu::DType::F32)?;
    let dst2 = Tensor::empty(gpu, "roofline copy dst", &[n4 * 4], crate::gpu::DType::F32)?;
    let copy = ops::bench::copy_vec4(gpu, n4, &src.buf, &dst2.buf)?;
    let t_copy = time_pass(gpu, "copy_vec4", 1, repeats, opts.wall, &|p| copy.encode(p))?;
    let moved = 2.0 * (n4 * 16) as f64;
    let copy_row = Row::new(
        "roofline",
        format!("copy {} MiB", (n4 * 16) >> 20),
        "vec4".into(),
        &t_copy,
        moved,
        "GB/s",
        None,
    );
    Ok(Roofline {
        fma_gflops: fma_row.value,
        copy_gbs: copy_row.value,
        rows: vec![fma_row, copy_row],
    })
}

fn lcg(seed: &mut u64) -> f32 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
}

/// Checks `variant` against the CPU twin on an awkward shape, all three transposes; returns the
/// largest relative error, or an error naming the variant if it is wrong.
pub fn check_gemm_variant(gpu: &Gpu, variant: GemmVariant) -> Result<f64> {
    let mut seed = 7u64;
    let mut worst = 0.0f64;
    for (ta, tb) in [(false, false), (true, false), (false, true)] {
        let d = GemmDesc {
            trans_a: ta,
            trans_b: tb,
            ..GemmDesc::new(67, 45, 33)
        };
        let a: Vec<f32> = (0..d.m * d.k).map(|_| lcg(&mut seed)).collect();
        let b: Vec<f32> = (0..d.k * d.n).map(|_| lcg(&mut seed)).collect();
        let ta_ = Tensor::from_f32(gpu, "A", &[a.len()], &a)?;
        let tb_ = Tensor::from_f32(gpu, "B", &[b.len()], &b)?;
        let tc = Tensor::from_f32(gpu, "C", &[d.m * d.n], &vec![f32::NAN; d.m * d.n])?;
        ops::gemm::gemm(gpu, variant, &d, &ta_.buf, &tb_.buf, &tc.buf)?.run(gpu);
        let got = tc.to_f32(gpu)?;
        let mut want = vec![0.0; d.m * d.n];
        crate::reference::gemm::gemm(&d, &a, &b, &mut want);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let err = f64::from((g - w).abs()) / (1.0 + f64::from(w.abs()));
            if err.is_nan() || err > 1e-4 {
                return Err(Error::Gpu {
                    op: format!("gemm {} check (transA {ta}, transB {tb})", variant.name()),
                    msg: format!("element {i}: GPU {g}, CPU {w}"),
                });
            }
            worst = worst.max(err);
        }
    }
    Ok(worst)
}

/// `incq bench gemm`: square sizes, each variant, with the roofline of the same run.
pub fn gemm_bench(
    gpu: &Gpu,
    opts: &BenchOpts,
    sizes: &[usize],
    variants: &[GemmVariant],
) -> Result<Vec<Row>> {
    let roof = roofline(gpu, opts)?;
    let mut rows = roof.rows.clone();
    for &v in variants {
        check_gemm_variant(gpu, v)?;
        for &s in sizes {
            let name = format!("{s}x{s}x{s}");
            if let Some(f) = &opts.filter {
                if !name.contains(f.as_str()) && !v.name().contains(f.as_str()) {
                    continue;
                }
            }
            let d = GemmDesc::new(s, s, s);
            let mut seed = 11u64;
            let a: Vec<f32> = (0..s * s).map(|_| lcg(&mut seed)).collect();
            let ta = Tensor::from_f32(gpu, "A", &[s * s], &a)?;
            let tb = Tensor::from_f32(gpu, "B", &[s * s], &a)?;
            let tc = Tensor::empty(gpu, "C", &[s * s], crate::gpu::DType::F32)?;
            let disp = ops::gemm::gemm(gpu, v, &d, &ta.buf, &tb.buf, &tc.buf)?;
            let reps = if opts.quick {
                2
            } else if s >= 2048 {
                3
            } else {
                7
            };
            let t = time_pass(gpu, "gemm", 1, reps, opts.wall, &|p| disp.encode(p))?;
            rows.push(Row::new(
                "gemm",
                name,
                v.name(),
                &t,
                d.flops(),
                "GFLOP/s",
                Some(roof.fma_gflops),
            ));
        }
    }
    Ok(rows)
}

/// One peer-comparable figure in the line format of shared/WORKLOADS.md.
#[derive(Clone, Debug, Serialize)]
pub struct WorkloadFigure {
    pub workload: String,
    pub metric: String,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

impl WorkloadFigure {
    /// `incq wgpu W1 train_img_s 812.3 runs=3 min=790.1 max=830.0`
    pub fn line(&self) -> String {
        format!(
            "incq wgpu {} {} {:.1} runs={} min={:.1} max={:.1}",
            self.workload, self.metric, self.median, self.runs, self.min, self.max
        )
    }
}

/// The shortest untimed warm-up of a workload bench where the keep-warm guard is on: it pins a
/// CPU adapter's workers after watching them for 200 ms (src/gpu/warm.rs).
const WARMUP_MIN: std::time::Duration = std::time::Duration::from_millis(400);

/// `incq bench train --workload W1|W2`: train and inference images/s of WORKLOADS.md's W1
/// (LeNet-BN, train batch 64) or W2 (ResNet-20, train batch 128), inference batch 256, one fixed
/// N(0, 1) batch resident on the device, SGD lr 0.01 momentum 0.9. Each run times `steps` steps
/// submitted back to back and ends with a device sync (a metrics read). `metrics` picks
/// train_img_s and/or infer_img_s.
pub fn workload(
    gpu: &Gpu,
    opts: &BenchOpts,
    name: &str,
    runs: usize,
    steps: Option<usize>,
    metrics: &[&str],
) -> Result<Vec<WorkloadFigure>> {
    use crate::graph::model::{lenet_bn, resnet20};
    use crate::graph::plan::{Net, OptimConfig, Plan};
    let (model, train_batch, default_steps, warmup) = match name {
        "W1" | "w1" => (lenet_bn(), 64, 30, 3),
        "W2" | "w2" => (resnet20(), 128, 2, 1),
        other => {
            return Err(Error::BadArg {
                flag: "--workload".into(),
                msg: format!("'{other}' is not W1 or W2"),
            })
        }
    };
    let steps = if opts.quick {
        1
    } else {
        steps.unwrap_or(default_steps)
    };
    let runs = if opts.quick { 1 } else { runs.max(1) };
    let net = Net::new(gpu, &model, 0)?;
    let opt = OptimConfig::WORKLOAD;
    let mut seed = 99u64;
    let mut normal = || {
        let u1 = (lcg(&mut seed) * 0.5 + 0.5).max(1e-7);
        let u2 = lcg(&mut seed) * 0.5 + 0.5;
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    };
    let (c, h, w) = model.input;
    let mut figures = Vec::new();
    for (metric, batch, train) in [
        ("train_img_s", train_batch, true),
        ("infer_img_s", 256, false),
    ] {
        if !metrics.contains(&metric) {
            continue;
        }
        let tuner = crate::tune::Tuner::new(gpu, opts.tune);
        let plan = Plan::new_tuned(gpu, &net, batch, train.then_some(opt), &tuner)?;
        let x: Vec<f32> = (0..batch * c * h * w).map(|_| normal()).collect();
        let labels: Vec<u32> = (0..batch as u32).map(|i| (i * 7 + 3) % 10).collect();
        plan.input.write_f32(gpu, &x)?;
        plan.labels.write_u32(gpu, &labels)?;
        let step = |p: &mut Rec<'_>| {
            if train {
                plan.encode_train(p)
            } else {
                plan.encode_eval(p)
            }
        };
        // As `incq train` does: spinners keep a CPU adapter's cores awake while steps run, and
        // the driver's workers are pinned once the guard has watched them for a moment; where
        // the guard is on, the untimed warm-up lasts long enough for that (unless --quick).
        let _warm = gpu.keep_warm();
        let (warm_steps, warm_min) = match (opts.quick, gpu.keep_warm) {
            (true, _) => (1, std::time::Duration::ZERO),
            (false, on) => (warmup, if on { WARMUP_MIN } else { Default::default() }),
        };
        let t_warm = std::time::Instant::now();
        let mut done = 0;
        while done < warm_steps || t_warm.elapsed() < warm_min {
            gpu.run_pass("warmup", step);
            done += 1;
            // a sync now and then, so that the time spent is the device's, not queued steps
            if done % 8 == 0 {
                plan.read_metrics(gpu)?;
            }
        }
        plan.read_metrics(gpu)?;
        let mut rates = Vec::new();
        for _ in 0..runs {
            let t0 = std::time::Instant::now();
            for _ in 0..steps {
                gpu.run_pass(metric, step);
            }
            plan.read_metrics(gpu)?;
            rates.push((batch * steps) as f64 / t0.elapsed().as_secs_f64());
        }
        rates.sort_by(f64::total_cmp);
        figures.push(WorkloadFigure {
            workload: name.to_uppercase(),
            metric: metric.into(),
            median: rates[rates.len() / 2],
            min: rates[0],
            max: rates[rates.len() - 1],
            runs,
        });
    }
    Ok(figures)
}

/// `incq bench conv`: the W3a and W3b conv2d forward microbenchmarks of WORKLOADS.md (3x3,
/// stride 1, pad 1, batch 128), inputs and weights resident, the output buffer reused, with the
/// roofline of the same run. Returns table rows and the peer-format figures.
pub fn conv_workloads(
    gpu: &Gpu,
    opts: &BenchOpts,
    runs: usize,
) -> Result<(Vec<Row>, Vec<WorkloadFigure>)> {
    use crate::ops::conv::{self, ConvShape, ConvVariant};
    let roof = roofline(gpu, opts)?;
    let mut rows = roof.rows.clone();
    let mut figs = Vec::new();
    let variant = ConvVariant::default_for(gpu);
    for (name, c, hw) in [("W3a", 16usize, 32usize), ("W3b", 64, 8)] {
        if let Some(f) = &opts.filter {
            if !name.contains(f.as_str()) {
                continue;
            }
        }
        let n = if opts.quick { 8 } else { 128 };
        let s = ConvShape {
            n,
            cin: c,
            h: hw,
            w: hw,
            cout: c,
            k: 3,
            stride: 1,
            pad: 1,
        };
        let mut seed = 5u64;
        let x: Vec<f32> = (0..s.x_len()).map(|_| lcg(&mut seed)).collect();
        let w: Vec<f32> = (0..s.w_len()).map(|_| lcg(&mut seed)).collect();
        let tx = Tensor::from_f32(gpu, "x", &[x.len()], &x)?;
        let tw = Tensor::from_f32(gpu, "w", &[w.len()], &w)?;
        let ty = Tensor::empty(gpu, "y", &[s.y_len()], crate::gpu::DType::F32)?;
        let op = conv::fwd(gpu, variant, &s, &tx.buf, &tw.buf, &ty.buf)?;
        // Check against the CPU twin on a sample of outputs before timing.
        op.run(gpu);
        let got = ty.to_f32(gpu)?;
        let want =
            crate::reference::conv::conv2d_fwd(&ConvShape { n: 1, ..s }, &x[..s.x_len() / n], &w);
        for (i, (g, r)) in got.iter().zip(&want).enumerate().step_by(97) {
            if (g - r).abs() > 1e-3 * (1.0 + r.abs()) {
                return Err(Error::Gpu {
                    op: format!("conv {name} check"),
                    msg: format!("output {i}: GPU {g}, CPU {r}"),
                });
            }
        }
        let reps = if opts.quick { 1 } else { runs.max(1) };
        let t = time_pass(gpu, name, 1, reps, opts.wall, &|p| op.encode(p))?;
        let flops = s.flops();
        let shape = format!("{name} {n}x{c}x{hw}x{hw}");
        rows.push(Row::new(
            "conv",
            shape,
            variant.name(),
            &t,
            flops,
            "GFLOP/s",
            Some(roof.fma_gflops),
        ));
        let mut rates: Vec<f64> = t.samples.iter().map(|s| flops / s / 1e9).collect();
        rates.sort_by(f64::total_cmp);
        figs.push(WorkloadFigure {
            workload: name.into(),
            metric: "gflop_s".into(),
            median: flops / t.median() / 1e9,
            min: rates[0],
            max: rates[rates.len() - 1],
            runs: reps,
        });
    }
    Ok((rows, figs))
}

/// `incq bench kernels`: every kernel family at training shapes of W1 and W2, each timed after a
/// warm-up, as GFLOP/s (GEMM, conv) or GB/s of the bytes it must move (the rest), against the
/// roofline of the same run.
pub fn kernels(gpu: &Gpu, opts: &BenchOpts) -> Result<Vec<Row>> {
    use crate::ops::conv::{self, ConvShape, ConvVariant};
    use crate::ops::norm::{self, BnBwd, BnShape};
    use crate::ops::pool::{self, PoolShape};
    use crate::ops::{elementwise, reduce};
    let roof = roofline(gpu, opts)?;
    let mut rows = roof.rows.clone();
    let reps = if opts.quick { 1 } else { 5 };
    let mut seed = 21u64;
    let mut vec = |n: usize| -> Result<Tensor> {
        let v: Vec<f32> = (0..n).map(|_| lcg(&mut seed)).collect();
        Tensor::from_f32(gpu, "bench", &[n], &v)
    };
    let keep = |name: &str| {
        opts.filter
            .as_ref()
            .is_none_or(|f| name.contains(f.as_str()))
    };
    let timed = |rows: &mut Vec<Row>,
                 name: &str,
                 shape: String,
                 variant: String,
                 op: &crate::ops::Op,
                 work: f64,
                 unit: &str|
     -> Result<()> {
        if !keep(name) {
            return Ok(());
        }
        let t = time_pass(gpu, name, 1, reps, opts.wall, &|p| op.encode(p))?;
        let peak = if unit == "GB/s" {
            roof.copy_gbs
        } else {
            roof.fma_gflops
        };
        rows.push(Row::new(name, shape, variant, &t, work, unit, Some(peak)));
        Ok(())
    };
    let n = if opts.quick { 4 } else { 64 };
    // GEMM at LeNet's first linear layer (batch x 400 -> 120) and a square 512.
    let gv = GemmVariant::default_for(gpu);
    for d in [
        GemmDesc {
            trans_b: true,
            ..GemmDesc::new(n, 120, 400)
        },
        GemmDesc::new(512, 512, 512),
    ] {
        let (a, b, c) = (vec(d.m * d.k)?, vec(d.k * d.n)?, vec(d.m * d.n)?);
        let op = ops::gemm::gemm(gpu, gv, &d, &a.buf, &b.buf, &c.buf)?;
        timed(
            &mut rows,
            "gemm",
            format!("{}x{}x{}", d.m, d.n, d.k),
            gv.name(),
            &op,
            d.flops(),
            "GFLOP/s",
        )?;
    }
    // conv at LeNet conv2 and a ResNet-20 stage-1 conv.
    let cv = ConvVariant::default_for(gpu);
    let rn = if opts.quick { 2 } else { 32 };
    for s in [
        ConvShape {
            n,
            cin: 6,
            h: 14,
            w: 14,
            cout: 16,
            k: 5,
            stride: 1,
            pad: 0,
        },
        ConvShape {
            n: rn,
            cin: 16,
            h: 32,
            w: 32,
            cout: 16,
            k: 3,
            stride: 1,
            pad: 1,
        },
    ] {
        let (x, w, y) = (vec(s.x_len())?, vec(s.w_len())?, vec(s.y_len())?);
        let shape = format!("{}x{}x{}x{} k{} ->{}", s.n, s.cin, s.h, s.w, s.k, s.cout);
        let v = cv.name();
        timed(
            &mut rows,
            "conv_fwd",
            shape.clone(),
            v.clone(),
            &conv::fwd(gpu, cv, &s, &x.buf, &w.buf, &y.buf)?,
            s.flops(),
            "GFLOP/s",
        )?;
        let dx = vec(s.x_len())?;
        let op = conv::bwd_data(gpu, cv, &s, &y.buf, &w.buf, &dx.buf, false)?;
        timed(
            &mut rows,
            "conv_bwd_data",
            shape.clone(),
            v.clone(),
            &op,
            s.flops(),
            "GFLOP/s",
        )?;
        let dw = vec(s.w_len())?;
        let op = conv::bwd_weight(gpu, cv, &s, &y.buf, &x.buf, &dw.buf, false)?;
        timed(
            &mut rows,
            "conv_bwd_weight",
            shape,
            v,
            &op,
            s.flops(),
            "GFLOP/s",
        )?;
    }
    // Batch norm, pooling, elementwise and reductions at LeNet's first activation.
    let bs = BnShape {
        n,
        c: 6,
        hw: 28 * 28,
        relu: true,
    };
    let (x, y, dy, dx) = (
        vec(bs.len())?,
        vec(bs.len())?,
        vec(bs.len())?,
        vec(bs.len())?,
    );
    let (st, run, g, b, dg, db) = (vec(12)?, vec(12)?, vec(6)?, vec(6)?, vec(6)?, vec(6)?);
    let bytes = (bs.len() * 4) as f64;
    let shape = format!("{}x6x28x28", n);
    // the variant training uses: from textures on CPU-backed adapters, else the buffer kernels
    let bw = BnBwd {
        x: &x.buf,
        beta: &b.buf,
        dy: &dy.buf,
        stats: &st.buf,
        gamma: &g.buf,
        dgamma: &dg.buf,
        dbeta: &db.buf,
        dx: &dx.buf,
    };
    let (fwd, bwd, how) = if norm::tex_ok(gpu, &bs) {
        let (f, xv) = norm::forward_tex(
            gpu,
            &bs,
            true,
            &x.buf,
            &st.buf,
            &run.buf,
            &g.buf,
            &b.buf,
            norm::BnOut::Y(&y.buf),
        )?;
        let bwd = norm::backward_tex(gpu, &bs, &bw, &xv)?;
        (f, bwd, "relu, textures")
    } else {
        let f = crate::ops::Op::of(vec![
            norm::stats(gpu, &bs, true, &x.buf, &st.buf, &run.buf)?,
            norm::apply(gpu, &bs, &x.buf, &st.buf, &g.buf, &b.buf, &y.buf)?,
        ]);
        let [d1, d2] = norm::backward(gpu, &bs, &bw)?;
        (f, crate::ops::Op::of(vec![d1, d2]), "relu")
    };
    timed(
        &mut rows,
        "bn_fwd",
        shape.clone(),
        how.into(),
        &fwd,
        3.0 * bytes,
        "GB/s",
    )?;
    timed(
        &mut rows,
        "bn_bwd",
        shape.clone(),
        how.into(),
        &bwd,
        5.0 * bytes,
        "GB/s",
    )?;
    let ps = PoolShape {
        n,
        c: 6,
        h: 28,
        w: 28,
    };
    let (py, arg) = (
        vec(bs.len() / 4)?,
        Tensor::empty(gpu, "arg", &[bs.len() / 4], crate::gpu::DType::U32)?,
    );
    if norm::pool_ok(gpu, &bs, ps.w) {
        // a forward pass with pooling into `out`, timed as `variant` (x read by the statistics and
        // by the pooling; pooled values, and the argmax where there is one, written); returns the
        // view of x's texture for a backward pass
        let pool_fwd = |rows: &mut Vec<Row>, out: norm::BnOut<'_>, variant: &str| {
            let (f, xv) = norm::forward_tex(
                gpu, &bs, true, &x.buf, &st.buf, &run.buf, &g.buf, &b.buf, out,
            )?;
            timed(
                rows,
                "bn_fwd",
                shape.clone(),
                variant.into(),
                &f,
                2.5 * bytes,
                "GB/s",
            )?;
            Ok::<_, Error>(xv)
        };
        // what training runs when a max pooling follows: apply, ReLU and pooling in one kernel
        let out = norm::BnOut::MaxPool2 {
            w: ps.w,
            y: &py.buf,
            arg: Some(&arg.buf),
        };
        pool_fwd(&mut rows, out, "relu + maxpool, textures")?;
        // the same with the pooled values written into the next conv's row texture
        let (_t, pv) = crate::ops::conv::planes_texture(gpu, "bench pooled rows", n, 6, 14, 14);
        let out = norm::BnOut::MaxPool2Rows {
            w: ps.w,
            y: &pv,
            arg: Some(&arg.buf),
        };
        let xv = pool_fwd(&mut rows, out, "relu + maxpool into a conv texture")?;
        // backward with dx written into the previous conv's row texture (dy rows)
        let (_t, dv) = crate::ops::conv::planes_texture(gpu, "bench dx rows", n, 6, 28, 28);
        let op = norm::backward_tex_rows(gpu, &bs, &bw, &xv, 28, &dv)?;
        timed(
            &mut rows,
            "bn_bwd",
            shape.clone(),
            "relu, dx into a conv texture".into(),
            &op,
            5.0 * bytes,
            "GB/s",
        )?;
        if norm::pool_bwd_ok(gpu, &bs, ps.w) {
            // what training runs there: the forward stores no argmax, and the backward takes the
            // pooled dy and does the pooling's backward too (x read twice, a quarter-size dy
            // twice, dx written)
            let out = norm::BnOut::MaxPool2Rows {
                w: ps.w,
                y: &pv,
                arg: None,
            };
            let xv = pool_fwd(
                &mut rows,
                out,
                "relu + maxpool into a conv texture, no argmax",
            )?;
            let pooled = BnBwd { dy: &py.buf, ..bw };
            let op = norm::backward_tex_pooled(gpu, &bs, &pooled, &xv, ps.w)?;
            timed(
                &mut rows,
                "bn_bwd",
                shape.clone(),
                "relu + maxpool backward, from the pooled dy".into(),
                &op,
                3.5 * bytes,
                "GB/s",
            )?;
        }
    }
    let op = pool::max_fwd(gpu, &ps, &x.buf, &py.buf, &arg.buf)?.into();
    timed(
        &mut rows,
        "maxpool_fwd",
        shape.clone(),
        "2x2".into(),
        &op,
        1.5 * bytes,
        "GB/s",
    )?;
    let op = pool::max_bwd(gpu, &ps, &py.buf, &arg.buf, &dx.buf)?.into();
    timed(
        &mut rows,
        "maxpool_bwd",
        shape.clone(),
        "2x2".into(),
        &op,
        1.5 * bytes,
        "GB/s",
    )?;
    let op = elementwise::elementwise_op(gpu, elementwise::EwOp::ReluBwd, 0.0, &dx, &[&x, &dy])?;
    let how = if op.textures.is_empty() {
        ""
    } else {
        "textures"
    };
    timed(
        &mut rows,
        "relu_bwd",
        shape.clone(),
        how.into(),
        &op,
        3.0 * bytes,
        "GB/s",
    )?;
    let r = vec(1)?;
    let op = reduce::reduce(
        gpu,
        reduce::ReduceOp::MaxAbs,
        reduce::ReduceShape::whole(bs.len()),
        &x,
        &r,
    )?
    .into();
    timed(
        &mut rows,
        "reduce",
        shape,
        "max_abs".into(),
        &op,
        bytes,
        "GB/s",
    )?;
    // Quantizers and projections at LeNet's largest weight (120 x 400). GB/s counts one read of
    // w and one write of the result; the exact ternary also sorts.
    let (qr, ql) = (120, 400);
    let qn = qr * ql;
    let w = vec(qn)?;
    let (mask, exps, smax) = (
        Tensor::from_f32(gpu, "mask", &[qn], &vec![0.0; qn])?,
        Tensor::from_u32(gpu, "exps", &[2], &[0, 0])?,
        vec(1)?,
    );
    let op = crate::ops::Op::of(vec![
        reduce::reduce(
            gpu,
            reduce::ReduceOp::MaxAbs,
            reduce::ReduceShape::whole(qn),
            &w,
            &smax,
        )?,
        ops::quant::pow2_exponents(gpu, 5, &smax, &exps)?,
        ops::quant::pow2_quantize_inplace(gpu, 5, &w, &mask, &exps)?,
    ]);
    let qshape = format!("{qr}x{ql}");
    timed(
        &mut rows,
        "inq_quantize",
        qshape.clone(),
        "pow2:5".into(),
        &op,
        3.0 * (qn * 4) as f64,
        "GB/s",
    )?;
    let eff = vec(qn)?;
    let w = vec(qn)?;
    for quant in ["binary", "ternary", "ternary-twn", "uniform:4", "pow2:5"] {
        let proj = ops::relax::Proj::parse(quant)?;
        for (r, l, how) in [(1, qn, "layer"), (qr, ql, "channel")] {
            let op = ops::relax::RelaxOp::new(gpu, proj, r, l, &w, &eff)?;
            let op = crate::ops::Op::of(op.steps);
            timed(
                &mut rows,
                "relax_proj",
                qshape.clone(),
                format!("{quant} per {how}"),
                &op,
                2.0 * (qn * 4) as f64,
                "GB/s",
            )?;
        }
    }
    Ok(rows)
}
