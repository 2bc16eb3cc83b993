//! Training and evaluation loops: epochs over a GPU-resident data set, learning-rate schedules,
//! metrics that accumulate on the GPU and are read only when logged, an eval on the test set after
//! every epoch, and files in the output directory: metrics.jsonl (one line per logged step and per
//! epoch), model.safetensors (written atomically every epoch) and summary.json.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::data::gpu::GpuDataset;
use crate::data::{DataKind, Dataset};
use crate::error::{Error, Result};
use crate::gpu::device::Gpu;
use crate::gpu::tensor::Tensor;
use crate::graph::model::Model;
use crate::graph::plan::{Net, OptimConfig, Plan};
use crate::io::checkpoint;
use crate::schedule::inq::{Inq, InqConfig, LayerReport};
use crate::schedule::relax::{Relax, RelaxConfig, RelaxLayerReport};
use crate::schedule::Method;

/// Learning-rate schedule.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// lr x 0.1 at 50 % and again at 75 % of the epochs.
    Step,
    /// Cosine decay to 0 over all steps.
    Cosine,
    /// Constant.
    Constant,
}

/// Everything `incq train` takes (also the keys of `--config FILE.toml`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub model: String,
    pub data: String,
    pub data_dir: Option<PathBuf>,
    pub epochs: usize,
    pub batch: usize,
    pub lr: f32,
    pub lr_schedule: LrSchedule,
    pub momentum: f32,
    pub weight_decay: f32,
    pub nesterov: bool,
    /// `sgd` (momentum, weight decay, optional Nesterov) or `adam`.
    pub optimizer: String,
    pub seed: u64,
    pub out: PathBuf,
    pub eval_batch: usize,
    pub log_every: usize,
    pub progress: bool,
    /// Stop each epoch after this many steps (smoke tests); 0 = the whole epoch.
    pub max_steps_per_epoch: usize,
    /// Stop this invocation after this many epochs (0 = run to the end); `--resume` continues.
    /// A command-line setting only: never read from or written to a config file.
    #[serde(skip)]
    pub stop_after_epochs: usize,
    /// Choose kernel variants with the autotuner (cached per adapter); false = device defaults.
    pub tune: bool,
    /// `float` or `inq`.
    pub method: String,
    /// INQ's settings (`[inq]` in a config file), used when `method` is `inq`.
    pub inq: InqConfig,
    /// BinaryRelax's and STE's settings (`[relax]`).
    pub relax: RelaxConfig,
    /// Start from this checkpoint's weights and BN statistics (optimizer state starts fresh).
    pub init: Option<PathBuf>,
    /// After INQ's last partition, re-estimate the BN running statistics over this many training
    /// batches (forward only; no weight changes). 0 = off.
    pub bn_recalibrate: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            model: "lenet-bn".into(),
            data: "mnist".into(),
            data_dir: None,
            epochs: 3,
            batch: 64,
            lr: 0.05,
            lr_schedule: LrSchedule::Cosine,
            momentum: 0.9,
            weight_decay: 5e-4,
            nesterov: false,
            optimizer: "sgd".into(),
            seed: 1,
            out: PathBuf::from("runs/latest"),
            eval_batch: 500,
            log_every: 100,
            progress: true,
            max_steps_per_epoch: 0,
            stop_after_epochs: 0,
            tune: true,
            method: "float".into(),
            inq: InqConfig::default(),
            relax: RelaxConfig::default(),
            init: None,
            bn_recalibrate: 100,
        }
    }
}

/// The result of a run (also written to summary.json).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    pub model: String,
    pub data: String,
    pub epochs: usize,
    pub batch: usize,
    pub seed: u64,
    pub device: String,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub test_loss: f64,
    pub test_accuracy: f64,
    pub train_images_per_s: f64,
    pub seconds_per_epoch: f64,
    pub params: usize,
    pub method: String,
    /// Test accuracy of the --init checkpoint before any training (None without --init).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_test_accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inq: Option<InqSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relax: Option<RelaxSummary>,
    pub wall_seconds: f64,
}

/// The BinaryRelax / STE part of summary.json.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RelaxSummary {
    pub config: RelaxConfig,
    /// λ in force during each epoch (null: hard projection).
    pub lambda_per_epoch: Vec<Option<f32>>,
    pub layers: Vec<RelaxLayerReport>,
}

/// The INQ part of summary.json.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InqSummary {
    pub config: InqConfig,
    /// Test accuracy right after each partition (before its retraining).
    pub after_partition: Vec<PhaseAccuracy>,
    /// Test accuracy after the last partition and before the BN re-estimate (None: no re-estimate).
    pub before_bn_recalibrate: Option<f64>,
    pub bn_recalibrate_batches: usize,
    /// Per quantized layer after the last phase: n1, n2, share, distinct values.
    pub layers: Vec<LayerReport>,
}

/// The test accuracy at one point of a schedule.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PhaseAccuracy {
    pub phase: usize,
    pub portion: f64,
    pub test_accuracy: f64,
}

/// The learning rate at `step` of `epoch`, for a schedule of `epochs` epochs (a phase of a
/// quantization schedule restarts it).
fn lr_at(cfg: &TrainConfig, epochs: usize, epoch: usize, step: usize, steps: usize) -> f32 {
    match cfg.lr_schedule {
        LrSchedule::Constant => cfg.lr,
        LrSchedule::Step => {
            let f = epoch as f32 / epochs.max(1) as f32;
            cfg.lr
                * if f >= 0.75 {
                    0.01
                } else if f >= 0.5 {
                    0.1
                } else {
                    1.0
                }
        }
        LrSchedule::Cosine => {
            let total = (epochs * steps).max(1) as f32;
            let t = (epoch * steps + step) as f32 / total;
            0.5 * cfg.lr * (1.0 + (std::f32::consts::PI * t).cos())
        }
    }
}

fn permutation(n: usize, seed: u64) -> Vec<u32> {
    let mut v: Vec<u32> = (0..n as u32).collect();
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for i in (1..n).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v.swap(i, (s % (i as u64 + 1)) as usize);
    }
    v
}

/// Loads one split of `cfg.data`.
pub fn load_data(cfg: &TrainConfig, train: bool) -> Result<Dataset> {
    let kind = DataKind::parse(&cfg.data)?;
    let dir = cfg.data_dir.clone().unwrap_or_else(|| kind.default_dir());
    Dataset::load(kind, &dir, train)
}

/// Checks the output directory can be written before any work starts.
pub fn prepare_out(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::File {
        path: dir.to_path_buf(),
        msg: format!("--out: cannot create directory: {e}"),
    })?;
    let probe = dir.join(".incq-write-test");
    std::fs::write(&probe, b"").map_err(|e| Error::File {
        path: dir.to_path_buf(),
        msg: format!("--out: directory is not writable: {e}"),
    })?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

struct Log(std::fs::File, PathBuf);

impl Log {
    fn line(&mut self, v: serde_json::Value) -> Result<()> {
        writeln!(self.0, "{v}").map_err(|e| Error::io(&self.1, e))
    }
}

/// Evaluates `net` on `data` with `plan` (an eval plan); returns (mean loss, accuracy).
pub fn evaluate(gpu: &Gpu, plan: &Plan, data: &GpuDataset) -> Result<(f64, f64)> {
    let perm: Vec<u32> = (0..data.n as u32).collect();
    let perm_t = Tensor::from_u32(gpu, "eval order", &[data.n], &perm)?;
    let gather = data.gather(
        gpu,
        &data.params(plan.batch, 0, false, 0),
        &perm_t,
        &plan.input,
        &plan.labels,
    )?;
    plan.reset_metrics(gpu);
    let mut start = 0;
    while start < data.n {
        let n = plan.batch.min(data.n - start);
        gather.set_params(gpu, &data.params(n, start, false, 0));
        plan.set_valid(gpu, n);
        gpu.run_pass("eval step", |pass| {
            gather.encode(pass);
            plan.encode_eval(pass);
        });
        start += n;
    }
    plan.set_valid(gpu, plan.batch);
    let (loss, acc, _) = plan.read_metrics(gpu)?;
    Ok((loss, acc))
}

/// Trains per `cfg` (resuming from `resume`, a run directory, if given) and returns the summary.
/// With `method = "inq"` the run is INQ's schedule: before each phase's `epochs_per_phase` epochs
/// the next share of every quantized layer is frozen and quantized on the GPU (the learning-rate
/// schedule restarts per phase); the last partition quantizes everything and ends the run.
pub fn train(gpu: &Gpu, cfg: &TrainConfig, resume: Option<&Path>) -> Result<Summary> {
    let wall = Instant::now();
    let method = Method::parse(&cfg.method)?;
    let epochs = match method {
        Method::Float => cfg.epochs,
        Method::Inq => {
            cfg.inq.validate()?;
            cfg.inq.total_epochs()
        }
        Method::BinaryRelax | Method::Ste => {
            cfg.relax.validate()?;
            cfg.epochs
        }
    };
    if epochs == 0 && method != Method::Inq {
        return Err(Error::BadArg {
            flag: "--epochs".into(),
            msg: "must be at least 1".into(),
        });
    }
    if !(cfg.lr > 0.0 && cfg.lr.is_finite()) {
        return Err(Error::BadArg {
            flag: "--lr".into(),
            msg: format!("{} is not a positive learning rate", cfg.lr),
        });
    }
    prepare_out(&cfg.out)?;
    if resume.is_none() {
        // The exact settings of the run, for reproduction and for --resume.
        let text = toml::to_string(cfg).map_err(|e| Error::BadArg {
            flag: "--config".into(),
            msg: format!("cannot record the config: {e}"),
        })?;
        checkpoint::write_atomic(&cfg.out.join("config.toml"), text.as_bytes())?;
    }
    let train_d = load_data(cfg, true)?;
    let test_d = load_data(cfg, false)?;
    if cfg.batch > train_d.n {
        return Err(Error::BadArg {
            flag: "--batch".into(),
            msg: format!(
                "{} is larger than the {} training images",
                cfg.batch, train_d.n
            ),
        });
    }
    let model = Model::by_name(&cfg.model, (train_d.c, train_d.h, train_d.w), 10)?;
    let mut net = Net::new(gpu, &model, cfg.seed)?;
    let opt = OptimConfig {
        lr: cfg.lr,
        momentum: cfg.momentum,
        weight_decay: cfg.weight_decay,
        nesterov: cfg.nesterov,
        adam: match cfg.optimizer.as_str() {
            "sgd" => false,
            "adam" => true,
            other => {
                return Err(Error::BadArg {
                    flag: "--optimizer".into(),
                    msg: format!("'{other}' is not sgd or adam"),
                })
            }
        },
    };
    // Weights first (a schedule's w_eff starts as a copy of them), then the schedule, then plans.
    let mut first_epoch = 0;
    if let Some(dir) = resume {
        let meta = checkpoint::load(gpu, &net, &dir.join("model.safetensors"))?;
        first_epoch = meta.get("epoch").and_then(|e| e.parse().ok()).unwrap_or(0);
    } else if let Some(init) = &cfg.init {
        checkpoint::load_weights(gpu, &net, init).map_err(|e| match e {
            Error::File { path, msg } => Error::File {
                path,
                msg: format!("--init: {msg}"),
            },
            e => e,
        })?;
    }
    let mut relax = match method {
        Method::BinaryRelax | Method::Ste => Some(Relax::new(
            gpu,
            &mut net,
            &cfg.relax,
            method == Method::Ste,
        )?),
        _ => None,
    };
    let tuner = crate::tune::Tuner::new(gpu, cfg.tune);
    let mut plan = Plan::new_tuned(gpu, &net, cfg.batch, Some(opt), &tuner)?;
    let eval_plan = Plan::new_tuned(gpu, &net, cfg.eval_batch.min(test_d.n).max(1), None, &tuner)?;
    let train_g = GpuDataset::upload(gpu, &train_d)?;
    let test_g = GpuDataset::upload(gpu, &test_d)?;
    let augment = train_d.kind == DataKind::Cifar10;
    let perm_t = Tensor::from_u32(gpu, "epoch permutation", &[train_g.n], &vec![0; train_g.n])?;
    let gather = train_g.gather(
        gpu,
        &train_g.params(cfg.batch, 0, augment, 0),
        &perm_t,
        &plan.input,
        &plan.labels,
    )?;

    let mut init_test_accuracy = None;
    if resume.is_none() && cfg.init.is_some() {
        // w_eff is still a plain copy of the loaded weights here.
        init_test_accuracy = Some(evaluate(gpu, &eval_plan, &test_g)?.1);
    }
    let mut inq = match method {
        Method::Inq => Some(Inq::new(gpu, &net, &cfg.inq, cfg.seed)?),
        _ => None,
    };
    let log_path = cfg.out.join("metrics.jsonl");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(resume.is_some())
        .write(true)
        .truncate(resume.is_none())
        .open(&log_path)
        .map_err(|e| Error::io(&log_path, e))?;
    let mut log = Log(file, log_path);
    if let Some(acc) = init_test_accuracy {
        eprintln!(
            "init {}: test accuracy {:.2}%",
            cfg.init.as_deref().unwrap_or(Path::new("")).display(),
            100.0 * acc
        );
        log.line(serde_json::json!({"kind": "init", "test_accuracy": acc}))?;
    }

    let steps = train_g.n / cfg.batch;
    let steps = if cfg.max_steps_per_epoch > 0 {
        steps.min(cfg.max_steps_per_epoch)
    } else {
        steps
    };
    let mut summary = Summary {
        model: cfg.model.clone(),
        data: cfg.data.clone(),
        epochs,
        batch: cfg.batch,
        seed: cfg.seed,
        device: gpu.describe(),
        train_loss: f64::NAN,
        train_accuracy: f64::NAN,
        test_loss: f64::NAN,
        test_accuracy: f64::NAN,
        train_images_per_s: 0.0,
        seconds_per_epoch: 0.0,
        params: net.num_params(),
        method: cfg.method.clone(),
        init_test_accuracy,
        inq: None,
        relax: None,
        wall_seconds: 0.0,
    };
    let mut after_partition = Vec::new();
    // Epochs per learning-rate schedule: the whole run, or one INQ phase.
    let per_phase = if inq.is_some() {
        cfg.inq.epochs_per_phase
    } else {
        epochs
    };
    let mut meta = HashMap::new();
    meta.insert("model".to_string(), cfg.model.clone());
    meta.insert("data".to_string(), cfg.data.clone());
    meta.insert("method".to_string(), cfg.method.clone());
    if let Some(q) = &inq {
        meta.insert("inq.bits".to_string(), q.cfg.bits.to_string());
        meta.insert("inq.layers".to_string(), q.layer_names(&net).join(","));
        meta.insert("inq.final".to_string(), "0".to_string());
    }
    if let Some(r) = &relax {
        meta.insert("relax.quant".to_string(), r.cfg.quant.clone());
        meta.insert("relax.layers".to_string(), r.layer_names(&net).join(","));
        meta.insert(
            "relax.per_channel".to_string(),
            r.cfg.per_channel.to_string(),
        );
    }
    let mut lambda_per_epoch = Vec::new();
    let mut partition = |inq: &mut Inq, phase: usize, log: &mut Log| -> Result<()> {
        inq.apply_phase(gpu, phase)?;
        let (_, acc) = evaluate(gpu, &eval_plan, &test_g)?;
        let portion = inq.cfg.portions[phase];
        eprintln!(
            "INQ phase {}/{}: {:.2}% of each layer quantized to {} bits; test accuracy {:.2}%",
            phase + 1,
            inq.cfg.portions.len(),
            100.0 * portion,
            inq.cfg.bits,
            100.0 * acc
        );
        log.line(serde_json::json!({
            "kind": "partition", "phase": phase + 1, "portion": portion, "test_accuracy": acc,
        }))?;
        after_partition.push(PhaseAccuracy {
            phase: phase + 1,
            portion,
            test_accuracy: acc,
        });
        Ok(())
    };
    let mut total_time = 0.0;
    let mut total_images = 0usize;
    let end = if cfg.stop_after_epochs > 0 {
        (first_epoch + cfg.stop_after_epochs).min(epochs)
    } else {
        epochs
    };
    // Spinners keep a CPU adapter's cores awake until training ends (see crate::gpu::warm).
    let _warm = gpu.keep_warm();
    for epoch in first_epoch..end {
        let (phase, in_phase) = (epoch / per_phase.max(1), epoch % per_phase.max(1));
        if let Some(q) = inq.as_mut() {
            if in_phase == 0 {
                partition(q, phase, &mut log)?;
            }
        }
        if let Some(r) = relax.as_mut() {
            let (lambda, hard) = r.lambda_at(epoch, epoch * steps);
            r.set_lambda(gpu, lambda, hard);
            lambda_per_epoch.push((!hard).then_some(lambda));
            let what = if hard {
                "hard projection (phase II)".to_string()
            } else if r.cfg.growth == "step" {
                format!("λ from {lambda:.3} growing per step")
            } else {
                format!("λ = {lambda:.3}")
            };
            eprintln!("{} epoch {}: {what}", cfg.method, epoch + 1);
            log.line(serde_json::json!({
                "kind": "lambda", "epoch": epoch + 1, "lambda": (!hard).then_some(lambda),
            }))?;
        }
        let perm = permutation(
            train_g.n,
            cfg.seed ^ (epoch as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407),
        );
        perm_t.write_u32(gpu, &perm)?;
        plan.reset_metrics(gpu);
        let bar = if cfg.progress {
            let b = indicatif::ProgressBar::new(steps as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_prefix(format!("{}/{}", epoch + 1, epochs));
            b
        } else {
            indicatif::ProgressBar::hidden()
        };
        let t0 = Instant::now();
        let seed32 = (cfg.seed as u32) ^ (epoch as u32).wrapping_mul(0x9E37_79B9);
        for step in 0..steps {
            let t = (epoch * steps + step + 1) as u32;
            let lr = lr_at(cfg, per_phase, in_phase, step, steps);
            plan.set_step(gpu, &net, lr, t);
            gather.set_params(
                gpu,
                &train_g.params(cfg.batch, step * cfg.batch, augment, seed32),
            );
            if let Some(r) = relax.as_mut() {
                if r.cfg.growth == "step" {
                    let (lambda, hard) = r.lambda_at(epoch, epoch * steps + step);
                    r.set_lambda(gpu, lambda, hard);
                }
            }
            gpu.run_pass("train step", |pass| {
                if let Some(r) = &relax {
                    r.encode(pass);
                }
                gather.encode(pass);
                plan.encode_train(pass);
            });
            if (step + 1) % cfg.log_every == 0 || step + 1 == steps {
                let (loss, acc, _) = plan.read_metrics(gpu)?;
                let ips = ((step + 1) * cfg.batch) as f64 / t0.elapsed().as_secs_f64();
                bar.set_position(step as u64 + 1);
                bar.set_message(format!(
                    "loss {loss:.4} acc {:.2}% {ips:.0} img/s",
                    100.0 * acc
                ));
                log.line(serde_json::json!({
                    "kind": "step", "epoch": epoch + 1, "step": step + 1, "train_loss": loss,
                    "train_accuracy": acc, "lr": lr, "images_per_s": ips,
                }))?;
            }
        }
        gpu.sync()?;
        let secs = t0.elapsed().as_secs_f64();
        bar.finish_and_clear();
        total_time += secs;
        total_images += steps * cfg.batch;
        let (train_loss, train_acc, _) = plan.read_metrics(gpu)?;
        if let Some(r) = &relax {
            // Eval and the checkpoint see w_eff of the final weights: u in phase I, proj(w) in II.
            r.refresh(gpu);
        }
        let (test_loss, test_acc) = evaluate(gpu, &eval_plan, &test_g)?;
        let ips = (steps * cfg.batch) as f64 / secs;
        eprintln!(
            "epoch {}/{}: train loss {train_loss:.4} acc {:.2}% | test loss {test_loss:.4} acc {:.2}% | {secs:.1} s, {ips:.0} img/s",
            epoch + 1,
            epochs,
            100.0 * train_acc,
            100.0 * test_acc
        );
        log.line(serde_json::json!({
            "kind": "epoch", "epoch": epoch + 1, "train_loss": train_loss, "train_accuracy": train_acc,
            "test_loss": test_loss, "test_accuracy": test_acc, "seconds": secs, "images_per_s": ips,
        }))?;
        meta.insert("epoch".to_string(), (epoch + 1).to_string());
        meta.insert("test_accuracy".to_string(), format!("{test_acc}"));
        if let Some(r) = &relax {
            let hard = r.lambda_at(epoch, (epoch + 1) * steps).1;
            meta.insert("relax.hard".to_string(), u8::from(hard).to_string());
        }
        let extra = relax
            .as_ref()
            .map(|r| r.extra_tensors(&net))
            .unwrap_or_default();
        checkpoint::save(
            gpu,
            &net,
            &cfg.out.join("model.safetensors"),
            meta.clone(),
            &extra,
        )?;
        summary.train_loss = train_loss;
        summary.train_accuracy = train_acc;
        summary.test_loss = test_loss;
        summary.test_accuracy = test_acc;
    }
    if total_time > 0.0 {
        summary.train_images_per_s = total_images as f64 / total_time;
        summary.seconds_per_epoch = total_time / (end - first_epoch) as f64;
    }
    if end < epochs {
        eprintln!(
            "stopped after epoch {end} of {epochs}; continue with --resume {}",
            cfg.out.display()
        );
        summary.epochs = end;
        summary.wall_seconds = wall.elapsed().as_secs_f64();
        let json = serde_json::to_vec_pretty(&summary).unwrap_or_default();
        checkpoint::write_atomic(&cfg.out.join("summary.json"), &json)?;
        return Ok(summary);
    }
    if let Some(r) = &relax {
        summary.relax = Some(RelaxSummary {
            config: r.cfg.clone(),
            lambda_per_epoch,
            layers: r.report(gpu, &net)?,
        });
    }
    if let Some(q) = inq.as_mut() {
        let extra = Vec::new();
        // The last partition quantizes 100 %; no training follows.
        let last = q.cfg.portions.len() - 1;
        partition(q, last, &mut log)?;
        let before = after_partition.last().map(|p| p.test_accuracy);
        let recal = cfg.bn_recalibrate.min(steps);
        if recal > 0 {
            // Forward passes of the training plan update the BN running statistics only.
            perm_t.write_u32(gpu, &permutation(train_g.n, cfg.seed ^ 0xB4_7C4E))?;
            for step in 0..recal {
                gather.set_params(
                    gpu,
                    &train_g.params(cfg.batch, step * cfg.batch, augment, cfg.seed as u32),
                );
                gpu.run_pass("bn re-estimate", |pass| {
                    gather.encode(pass);
                    plan.encode_eval(pass);
                });
            }
        }
        let (test_loss, test_acc) = evaluate(gpu, &eval_plan, &test_g)?;
        if recal > 0 {
            eprintln!(
                "BN statistics re-estimated over {recal} batches: test accuracy {:.2}%",
                100.0 * test_acc
            );
            log.line(serde_json::json!({
                "kind": "bn_recalibrate", "batches": recal, "test_accuracy": test_acc,
            }))?;
        }
        let layers = q.report(gpu, &net)?;
        for l in &layers {
            // one value per row: the layer's set, or each output channel's
            let list = |whole: i32, rows: &[i32]| match rows.is_empty() {
                true => whole.to_string(),
                false => rows
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            };
            meta.insert(format!("inq.{}.n1", l.name), list(l.n1, &l.n1_rows));
            meta.insert(format!("inq.{}.n2", l.name), list(l.n2, &l.n2_rows));
            if l.frozen != l.weights || l.frozen_not_in_set != 0 {
                return Err(Error::Shape {
                    op: "inq",
                    msg: format!(
                        "layer {} ended with {} of {} weights frozen and {} outside its set",
                        l.name, l.frozen, l.weights, l.frozen_not_in_set
                    ),
                });
            }
        }
        meta.insert("inq.final".to_string(), "1".to_string());
        meta.insert("epoch".to_string(), epochs.to_string());
        meta.insert("test_accuracy".to_string(), format!("{test_acc}"));
        checkpoint::save(
            gpu,
            &net,
            &cfg.out.join("model.safetensors"),
            meta.clone(),
            &extra,
        )?;
        summary.test_loss = test_loss;
        summary.test_accuracy = test_acc;
        summary.inq = Some(InqSummary {
            config: q.cfg.clone(),
            after_partition,
            before_bn_recalibrate: (recal > 0).then_some(before).flatten(),
            bn_recalibrate_batches: recal,
            layers,
        });
    }
    summary.wall_seconds = wall.elapsed().as_secs_f64();
    let json = serde_json::to_vec_pretty(&summary).unwrap_or_default();
    checkpoint::write_atomic(&cfg.out.join("summary.json"), &json)?;
    Ok(summary)
}

/// `incq eval`: loads a checkpoint of `model` and evaluates it on the test split of `cfg.data`.
pub fn eval_checkpoint(gpu: &Gpu, cfg: &TrainConfig, path: &Path) -> Result<(f64, f64)> {
    let test_d = load_data(cfg, false)?;
    let model = Model::by_name(&cfg.model, (test_d.c, test_d.h, test_d.w), 10)?;
    let net = Net::new(gpu, &model, 0)?;
    checkpoint::load_for_eval(gpu, &net, path)?;
    // The same tuner cache as training, so eval runs the same kernel variants.
    let tuner = crate::tune::Tuner::new(gpu, cfg.tune);
    let plan = Plan::new_tuned(gpu, &net, cfg.eval_batch.min(test_d.n).max(1), None, &tuner)?;
    let test_g = GpuDataset::upload(gpu, &test_d)?;
    let _warm = gpu.keep_warm();
    evaluate(gpu, &plan, &test_g)
}
