//! The `incq` command line: `info` and `bench` (more subcommands arrive with training and the
//! quantization schedules). Errors print one line, `incq: error: ...`, and exit non-zero; incq
//! never panics on bad input or a missing GPU.

use std::process::ExitCode;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use incq::bench::{self, BenchOpts};
use incq::gpu::device::{list_adapters, DeviceOptions, Gpu};
use incq::gpu::KeepWarmMode;
use incq::ops::gemm::GemmVariant;
use incq::train::{LrSchedule, TrainConfig};
use incq::{Error, Result};

#[derive(Parser)]
#[command(
    name = "incq",
    version,
    about = "Train and incrementally quantize small CNNs on any GPU through wgpu"
)]
struct Cli {
    /// GPU backend: vulkan, metal, dx12 or gl (default: every primary backend, or WGPU_BACKEND).
    #[arg(long, global = true)]
    backend: Option<String>,
    /// Choose the adapter whose name contains this (case-insensitive; or WGPU_ADAPTER_NAME).
    #[arg(long, global = true)]
    adapter: Option<String>,
    /// On a CPU adapter (lavapipe), spin idle-priority threads during training and inference
    /// loops so that the cores never halt between dispatches, and pin the driver's workers one
    /// per core: auto (CPU adapters on Linux), on or off.
    #[arg(long, global = true, default_value = "auto")]
    keep_warm: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List every adapter with its driver, limits and features, and mark the one chosen.
    Info {
        /// Print every limit and feature.
        #[arg(long)]
        verbose: bool,
    },
    /// Benchmarks: roofline, kernels, train and infer (W1, W2), conv (W3), gemm.
    Bench {
        #[command(subcommand)]
        what: BenchCmd,
    },
    /// Per-kernel and per-layer GPU time of training steps, and an optional Chrome trace.
    Profile {
        /// lenet-bn or resnet20 (or vgg-small).
        #[arg(long, default_value = "lenet-bn")]
        model: String,
        /// Steps to time (medians are reported).
        #[arg(long, default_value_t = 3)]
        steps: usize,
        /// Batch (default: 64 for LeNet-BN, 128 otherwise, as in WORKLOADS.md).
        #[arg(long)]
        batch: Option<usize>,
        /// Write a Chrome trace (chrome://tracing, Perfetto) here.
        #[arg(long)]
        trace: Option<PathBuf>,
    },
    /// Train a model (default: LeNet-BN on the bundled MNIST).
    Train(Box<TrainArgs>),
    /// Export a quantized checkpoint (INQ, or BinaryRelax/STE in phase II) as int8 codes plus
    /// each row's (n1, n2) or scale, in safetensors, with a JSON summary.
    Export {
        /// A model.safetensors written by `incq train --method inq|binary-relax|ste`.
        #[arg(long)]
        checkpoint: PathBuf,
        /// Output directory (model.safetensors, export.json).
        #[arg(long)]
        out: PathBuf,
    },
    /// Evaluate a checkpoint (or an export) on a test set.
    Eval {
        /// A model.safetensors written by `incq train`.
        #[arg(long)]
        checkpoint: PathBuf,
        /// lenet-bn, resnet20 or vgg-small (default: the checkpoint's own).
        #[arg(long)]
        model: Option<String>,
        /// mnist, fashion-mnist or cifar10 (default: the checkpoint's own).
        #[arg(long)]
        data: Option<String>,
        /// Directory holding the data set files.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Use each device's default kernel variants instead of the autotuner's.
        #[arg(long)]
        no_tune: bool,
    },
}

#[derive(Args, Clone, Debug, Default)]
struct TrainArgs {
    /// A TOML file with any of the keys below (flags given on the command line win).
    #[arg(long)]
    config: Option<PathBuf>,
    /// lenet-bn, resnet20 or vgg-small.
    #[arg(long)]
    model: Option<String>,
    /// mnist, fashion-mnist or cifar10.
    #[arg(long)]
    data: Option<String>,
    /// Directory holding the data set files (default: bundled MNIST, Debian's Fashion-MNIST).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    batch: Option<usize>,
    #[arg(long)]
    lr: Option<f32>,
    /// step, cosine or constant.
    #[arg(long)]
    lr_schedule: Option<String>,
    #[arg(long)]
    momentum: Option<f32>,
    #[arg(long)]
    weight_decay: Option<f32>,
    #[arg(long)]
    nesterov: bool,
    /// sgd or adam.
    #[arg(long)]
    optimizer: Option<String>,
    #[arg(long)]
    seed: Option<u64>,
    /// Output directory (metrics.jsonl, model.safetensors, summary.json).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in this directory from its last checkpoint.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Stop each epoch after this many steps (smoke runs).
    #[arg(long)]
    max_steps_per_epoch: Option<usize>,
    /// Stop after this many epochs of this invocation; `--resume DIR` continues the run.
    #[arg(long)]
    stop_after_epochs: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Use each device's default kernel variants instead of the autotuner's choices.
    #[arg(long)]
    no_tune: bool,
    /// float (default), inq (incremental quantization to powers of two), binary-relax or ste.
    #[arg(long)]
    method: Option<String>,
    /// Start from this checkpoint's weights and BN statistics (the normal start of INQ).
    #[arg(long)]
    init: Option<PathBuf>,
    /// INQ: weight bits, 2 (ternary) to 8.
    #[arg(long)]
    bits: Option<u32>,
    /// INQ: accumulated portions, comma-separated, ending at 1 (default 0.5,0.75,0.875,1).
    #[arg(long, value_delimiter = ',')]
    portions: Option<Vec<f64>>,
    /// INQ: training epochs after each partition but the last (the LR schedule restarts).
    #[arg(long)]
    epochs_per_phase: Option<usize>,
    /// INQ: pruning (largest |w| first, default) or random.
    #[arg(long)]
    partition: Option<String>,
    /// INQ, BinaryRelax, STE: keep the first and last weight layers in float.
    #[arg(long)]
    float_first_last: bool,
    /// BinaryRelax, STE: binary, ternary (exact), ternary-twn, uniform:K or pow2:K.
    #[arg(long)]
    quant: Option<String>,
    /// BinaryRelax: initial λ (default 1).
    #[arg(long)]
    lambda0: Option<f32>,
    /// BinaryRelax: λ growth factor ρ (default 1.04).
    #[arg(long)]
    rho: Option<f32>,
    /// BinaryRelax: apply ρ per epoch (default, as the official code) or per step.
    #[arg(long)]
    lambda_growth: Option<String>,
    /// BinaryRelax: hard quantization (phase II) from this epoch on (0-based).
    #[arg(long)]
    hard_from_epoch: Option<usize>,
    /// BinaryRelax, STE: one scale per output channel; INQ: one power-of-two set (n1 from the
    /// row's max|W|) per output channel.
    #[arg(long)]
    per_channel: bool,
    /// INQ: batches over which the BN running statistics are re-estimated after the last
    /// partition (forward only; default 100; 0 = off).
    #[arg(long)]
    bn_recalibrate: Option<usize>,
}

fn train_config(a: &TrainArgs) -> Result<TrainConfig> {
    // A resumed run starts from the config its directory recorded.
    let recorded = a.resume.as_ref().map(|d| d.join("config.toml"));
    let base = a.config.clone().or_else(|| recorded.filter(|p| p.exists()));
    let mut cfg = match &base {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
            toml::from_str::<TrainConfig>(&text).map_err(|e| Error::File {
                path: p.clone(),
                msg: format!("bad config: {}", e.message()),
            })?
        }
        None => TrainConfig::default(),
    };
    macro_rules! set {
        ($f:ident) => {
            if let Some(v) = &a.$f {
                cfg.$f = v.clone();
            }
        };
    }
    set!(model);
    set!(data);
    set!(epochs);
    set!(batch);
    set!(lr);
    set!(momentum);
    set!(weight_decay);
    set!(seed);
    set!(out);
    set!(max_steps_per_epoch);
    set!(stop_after_epochs);
    set!(optimizer);
    set!(method);
    set!(bn_recalibrate);
    if a.init.is_some() {
        cfg.init = a.init.clone();
    }
    if let Some(b) = a.bits {
        cfg.inq.bits = b;
    }
    if let Some(p) = &a.portions {
        cfg.inq.portions = p.clone();
    }
    if let Some(e) = a.epochs_per_phase {
        cfg.inq.epochs_per_phase = e;
    }
    if let Some(p) = &a.partition {
        cfg.inq.partition = p.clone();
    }
    if a.float_first_last {
        cfg.inq.float_first_last = true;
        cfg.relax.float_first_last = true;
    }
    if let Some(q) = &a.quant {
        cfg.relax.quant = q.clone();
    }
    if let Some(l) = a.lambda0 {
        cfg.relax.lambda0 = l;
    }
    if let Some(r) = a.rho {
        cfg.relax.rho = r;
    }
    if let Some(g) = &a.lambda_growth {
        cfg.relax.growth = g.clone();
    }
    if let Some(e) = a.hard_from_epoch {
        cfg.relax.hard_from_epoch = e;
    }
    if a.per_channel {
        cfg.inq.per_channel = true;
        cfg.relax.per_channel = true;
    }
    if a.data_dir.is_some() {
        cfg.data_dir = a.data_dir.clone();
    }
    if let Some(s) = &a.lr_schedule {
        cfg.lr_schedule = match s.as_str() {
            "step" => LrSchedule::Step,
            "cosine" => LrSchedule::Cosine,
            "constant" => LrSchedule::Constant,
            other => {
                return Err(Error::BadArg {
                    flag: "--lr-schedule".into(),
                    msg: format!("'{other}' is not one of step, cosine, constant"),
                })
            }
        };
    }
    if a.nesterov {
        cfg.nesterov = true;
    }
    if a.quiet {
        cfg.progress = false;
    }
    if a.no_tune {
        cfg.tune = false;
    }
    if let Some(dir) = &a.resume {
        cfg.out = dir.clone();
    }
    Ok(cfg)
}

#[derive(Args, Clone)]
struct CommonBench {
    /// One JSON object per row.
    #[arg(long)]
    json: bool,
    /// Smoke run: small sizes and few repeats.
    #[arg(long)]
    quick: bool,
    /// Time with the host clock and a device sync even when timestamp queries exist.
    #[arg(long)]
    wall: bool,
    /// Only rows whose shape or variant contains this.
    #[arg(long)]
    filter: Option<String>,
    /// Use each device's default kernel variants, not the autotuner's (train/infer workloads).
    #[arg(long)]
    no_tune: bool,
}

#[derive(Subcommand)]
enum BenchCmd {
    /// The device's FMA peak (GFLOP/s) and copy bandwidth (GB/s).
    Roofline {
        #[command(flatten)]
        common: CommonBench,
    },
    /// Train and inference images/s of workload W1 (LeNet-BN) or W2 (ResNet-20), in the peer line
    /// format of WORKLOADS.md.
    Train {
        #[command(flatten)]
        common: CommonBench,
        /// W1 or W2.
        #[arg(long, default_value = "W1")]
        workload: String,
        /// Timed runs (the median is reported with min and max).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Steps per timed run (default: 30 for W1, 2 for W2).
        #[arg(long)]
        steps: Option<usize>,
    },
    /// Every kernel family at training shapes: GFLOP/s or GB/s and % of the same run's roofline.
    Kernels {
        #[command(flatten)]
        common: CommonBench,
    },
    /// Inference images/s (batch 256, BN in eval mode) of workload W1 or W2.
    Infer {
        #[command(flatten)]
        common: CommonBench,
        /// W1 or W2.
        #[arg(long, default_value = "W1")]
        workload: String,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Steps per timed run.
        #[arg(long)]
        steps: Option<usize>,
    },
    /// conv2d forward W3a and W3b (WORKLOADS.md), GFLOP/s and % of the same run's FMA peak.
    Conv {
        #[command(flatten)]
        common: CommonBench,
        /// Timed repeats.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// GEMM GFLOP/s at square sizes, with the % of the same run's FMA peak.
    Gemm {
        #[command(flatten)]
        common: CommonBench,
        /// Square sizes.
        #[arg(long, value_delimiter = ',', default_value = "256,512,1024,2048")]
        sizes: Vec<usize>,
        /// `default` (the device's default variant), `all`, or variant names such as reg64x8x2.
        #[arg(long, value_delimiter = ',', default_value = "default")]
        variant: Vec<String>,
    },
}

fn opts(c: &CommonBench) -> BenchOpts {
    BenchOpts {
        quick: c.quick,
        wall: c.wall,
        filter: c.filter.clone(),
        tune: !c.no_tune,
    }
}

fn parse_variants(gpu: &Gpu, names: &[String]) -> Result<Vec<GemmVariant>> {
    let mut out = Vec::new();
    for n in names {
        match n.as_str() {
            "default" => out.push(GemmVariant::default_for(gpu)),
            "all" => out.extend(GemmVariant::candidates(gpu)),
            other => match GemmVariant::candidates(gpu)
                .into_iter()
                .find(|v| v.name() == other)
            {
                Some(v) => out.push(v),
                None => {
                    let known: Vec<String> = GemmVariant::candidates(gpu)
                        .iter()
                        .map(|v| v.name())
                        .collect();
                    return Err(Error::BadArg {
                        flag: "--variant".into(),
                        msg: format!(
                            "'{other}' is not default, all, or one of {}",
                            known.join(", ")
                        ),
                    });
                }
            },
        }
    }
    Ok(out)
}

fn info(dev: &DeviceOptions, verbose: bool) -> Result<()> {
    let adapters = list_adapters(dev)?;
    if adapters.is_empty() {
        return Err(Error::NoAdapter {
            detail: String::new(),
        });
    }
    for a in &adapters {
        let i = &a.info;
        println!(
            "{} {} [{:?}, {:?}] driver: {} {}",
            if a.chosen { "*" } else { " " },
            i.name,
            i.backend,
            i.device_type,
            i.driver,
            i.driver_info
        );
        let l = &a.limits;
        println!(
            "    limits: max_storage_buffer_binding_size {} B, max_buffer_size {} B, max_compute_invocations_per_workgroup {}, max_compute_workgroup_storage_size {} B, max_compute_workgroups_per_dimension {}",
            l.max_storage_buffer_binding_size,
            l.max_buffer_size,
            l.max_compute_invocations_per_workgroup,
            l.max_compute_workgroup_storage_size,
            l.max_compute_workgroups_per_dimension
        );
        let interesting = [
            ("TIMESTAMP_QUERY", wgpu::Features::TIMESTAMP_QUERY),
            (
                "TIMESTAMP_QUERY_INSIDE_PASSES",
                wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES,
            ),
            ("SHADER_F16", wgpu::Features::SHADER_F16),
            ("SUBGROUP", wgpu::Features::SUBGROUP),
            (
                "SHADER_FLOAT32_ATOMIC",
                wgpu::Features::SHADER_FLOAT32_ATOMIC,
            ),
        ];
        let have: Vec<&str> = interesting
            .iter()
            .filter(|(_, f)| a.features.contains(*f))
            .map(|(n, _)| *n)
            .collect();
        println!("    features: {}", have.join(", "));
        if verbose {
            println!("    all limits: {:?}", a.limits);
            println!("    all features: {:?}", a.features);
        }
    }
    println!("(* = the adapter incq uses; choose with --backend and --adapter)");
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    let dev = DeviceOptions {
        backend: cli.backend.clone(),
        adapter: cli.adapter.clone(),
        keep_warm: KeepWarmMode::parse(&cli.keep_warm).ok_or_else(|| Error::BadArg {
            flag: "--keep-warm".into(),
            msg: format!("'{}' is not auto, on or off", cli.keep_warm),
        })?,
    };
    match cli.cmd {
        Cmd::Info { verbose } => info(&dev, verbose),
        Cmd::Profile {
            model,
            steps,
            batch,
            trace,
        } => {
            let input = if model.starts_with("lenet") {
                (1, 28, 28)
            } else {
                (3, 32, 32)
            };
            let m = incq::graph::model::Model::by_name(&model, input, 10)?;
            let batch = batch.unwrap_or(if model.starts_with("lenet") { 64 } else { 128 });
            let gpu = Gpu::open(&dev)?;
            eprintln!("device: {}", gpu.describe());
            let p = incq::profiler::profile(&gpu, &m, batch, steps)?;
            println!(
                "{model} batch {batch}: step {:.2} ms; the named dispatches below sum to {:.2} ms ({:.1}% of the step); clock: {}",
                p.step_ms,
                p.named_ms(),
                100.0 * p.named_ms() / p.step_ms,
                p.clock
            );
            println!("\n{:<36} {:>6} {:>10} {:>7}", "kernel", "calls", "ms", "%");
            for (k, c, t) in p.by(|e| e.kernel.clone()) {
                println!(
                    "{k:<36} {c:>6} {t:>10.3} {:>6.1}%",
                    100.0 * t / p.named_ms()
                );
            }
            println!("\n{:<36} {:>6} {:>10} {:>7}", "layer", "calls", "ms", "%");
            for (k, c, t) in p.by(|e| e.layer.clone()) {
                println!(
                    "{k:<36} {c:>6} {t:>10.3} {:>6.1}%",
                    100.0 * t / p.named_ms()
                );
            }
            if let Some(path) = trace {
                incq::io::checkpoint::write_atomic(&path, p.chrome_trace().as_bytes())?;
                eprintln!("trace written to {}", path.display());
            }
            Ok(())
        }
        Cmd::Train(a) => {
            let cfg = train_config(&a)?;
            let gpu = Gpu::open(&dev)?;
            eprintln!("device: {}", gpu.describe());
            let s = incq::train::train(&gpu, &cfg, a.resume.as_deref())?;
            println!(
                "{} on {}: test accuracy {:.2}% (loss {:.4}), train accuracy {:.2}%, {:.0} images/s, {:.1} s/epoch; files in {}",
                s.model,
                s.data,
                100.0 * s.test_accuracy,
                s.test_loss,
                100.0 * s.train_accuracy,
                s.train_images_per_s,
                s.seconds_per_epoch,
                cfg.out.display()
            );
            Ok(())
        }
        Cmd::Export { checkpoint, out } => {
            let s = incq::io::export::export(&checkpoint, &out)?;
            for l in &s.layers {
                let set = if l.scale.is_empty() && l.rows == 1 {
                    format!("n1 {} n2 {}", l.n1[0], l.n2[0])
                } else if l.scale.is_empty() {
                    let (lo, hi) = (l.n2.iter().min(), l.n1.iter().max());
                    let (lo, hi) = (lo.copied().unwrap_or(0), hi.copied().unwrap_or(0));
                    format!("{} per-channel sets, exponents {lo}..{hi}", l.rows)
                } else if l.rows == 1 {
                    format!("scale {:e}", l.scale[0])
                } else {
                    format!("{} per-channel scales", l.rows)
                };
                println!(
                    "{:<28} {:?} {set}: {} distinct codes, {:.1}% zero",
                    l.name,
                    l.shape,
                    l.distinct_values,
                    100.0 * l.zero_share
                );
            }
            println!(
                "{} layers as int8 codes ({} B) and {} float tensors ({} B) in {}",
                s.layers.len(),
                s.bytes_codes,
                s.float_tensors.len(),
                s.bytes_float,
                out.join("model.safetensors").display()
            );
            Ok(())
        }
        Cmd::Eval {
            checkpoint,
            model,
            data,
            data_dir,
            no_tune,
        } => {
            let meta = incq::io::checkpoint::read_metadata(&checkpoint)?;
            let cfg = TrainConfig {
                model: model
                    .or_else(|| meta.get("model").cloned())
                    .unwrap_or_else(|| "lenet-bn".into()),
                data: data
                    .or_else(|| meta.get("data").cloned())
                    .unwrap_or_else(|| "mnist".into()),
                data_dir,
                tune: !no_tune,
                ..TrainConfig::default()
            };
            let gpu = Gpu::open(&dev)?;
            let (loss, acc) = incq::train::eval_checkpoint(&gpu, &cfg, &checkpoint)?;
            println!(
                "{} on {}: test accuracy {:.2}% (loss {loss:.6})",
                cfg.model,
                cfg.data,
                100.0 * acc
            );
            Ok(())
        }
        Cmd::Bench { what } => {
            let gpu = Gpu::open(&dev)?;
            eprintln!("device: {}", gpu.describe());
            match what {
                BenchCmd::Train {
                    common,
                    workload,
                    runs,
                    steps,
                } => {
                    let m = ["train_img_s", "infer_img_s"];
                    for f in bench::workload(&gpu, &opts(&common), &workload, runs, steps, &m)? {
                        if common.json {
                            println!("{}", serde_json::to_string(&f).unwrap_or_default());
                        } else {
                            println!("{}", f.line());
                        }
                    }
                }
                BenchCmd::Infer {
                    common,
                    workload,
                    runs,
                    steps,
                } => {
                    for f in bench::workload(
                        &gpu,
                        &opts(&common),
                        &workload,
                        runs,
                        steps,
                        &["infer_img_s"],
                    )? {
                        if common.json {
                            println!("{}", serde_json::to_string(&f).unwrap_or_default());
                        } else {
                            println!("{}", f.line());
                        }
                    }
                }
                BenchCmd::Kernels { common } => {
                    let rows = bench::kernels(&gpu, &opts(&common))?;
                    bench::print_rows(&rows, common.json);
                }
                BenchCmd::Conv { common, runs } => {
                    let (rows, figs) = bench::conv_workloads(&gpu, &opts(&common), runs)?;
                    bench::print_rows(&rows, common.json);
                    if !common.json {
                        for f in figs {
                            println!("{}", f.line());
                        }
                    }
                }
                BenchCmd::Roofline { common } => {
                    let r = bench::roofline(&gpu, &opts(&common))?;
                    bench::print_rows(&r.rows, common.json);
                }
                BenchCmd::Gemm {
                    common,
                    sizes,
                    variant,
                } => {
                    let variants = parse_variants(&gpu, &variant)?;
                    let sizes = if common.quick { vec![64, 128] } else { sizes };
                    if sizes.contains(&0) {
                        return Err(Error::BadArg {
                            flag: "--sizes".into(),
                            msg: "sizes must be positive".into(),
                        });
                    }
                    let rows = bench::gemm_bench(&gpu, &opts(&common), &sizes, &variants)?;
                    bench::print_rows(&rows, common.json);
                }
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    // Mesa's software drivers print a harmless warning when this is unset (headless machines).
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("incq: error: {e}");
            ExitCode::FAILURE
        }
    }
}
