//! The `incq` command line: `info` and `bench` (more subcommands arrive with training and the
//! quantization schedules). Errors print one line, `incq: error: ...`, and exit non-zero; incq
//! never panics on bad input or a missing GPU.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use incq::bench::{self, BenchOpts};
use incq::gpu::device::{list_adapters, DeviceOptions, Gpu};
use incq::ops::gemm::GemmVariant;
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
    /// Benchmarks: roofline, gemm.
    Bench {
        #[command(subcommand)]
        what: BenchCmd,
    },
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
}

#[derive(Subcommand)]
enum BenchCmd {
    /// The device's FMA peak (GFLOP/s) and copy bandwidth (GB/s).
    Roofline {
        #[command(flatten)]
        common: CommonBench,
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
    };
    match cli.cmd {
        Cmd::Info { verbose } => info(&dev, verbose),
        Cmd::Bench { what } => {
            let gpu = Gpu::open(&dev)?;
            eprintln!("device: {}", gpu.describe());
            match what {
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
