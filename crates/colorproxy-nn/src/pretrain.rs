//! The pretraining loop: `colorproxy pretrain`.
//!
//! RUN_DIR/config.toml (resolved config), RUN_DIR/metrics.jsonl (one line per `log_every`
//! iterations), RUN_DIR/checkpoints/last.safetensors + last.optim.safetensors + last.state.json
//! (every `checkpoint_every` iterations, at the end and on interrupt), and
//! RUN_DIR/checkpoints/iter-<N>.safetensors snapshots.
//!
//! Exact resume: the data stream restarts at the saved position, momentum buffers are restored,
//! the learning rate is a function of the iteration and dropout is seeded per iteration.
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use colorproxy_data::{BatchLoader, ColorBatch, DataPosition, ImageSource, PretrainData};
use serde::{Deserialize, Serialize};
use tch::Device;

use crate::checkpoint::{self, TrainState};
use crate::config::PretrainConfig;
use crate::model::ColorizationNet;
use crate::optim::Sgd;
use crate::NnError;

/// One line of metrics.jsonl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Iterations completed.
    pub iteration: usize,
    /// Mean loss over the logging window.
    pub loss: f64,
    pub hue_kl: f64,
    pub chroma_kl: f64,
    pub lr: f64,
    pub images_per_s: f64,
}

/// What the caller sees while training (progress bars, logs).
pub trait TrainObserver {
    fn start(&mut self, _start_iteration: usize, _total: usize) {}
    fn step(&mut self, _iteration: usize, _loss: f64, _images_per_s: f64) {}
    fn log(&mut self, _m: &Metrics) {}
    fn message(&mut self, _msg: &str) {}
}

/// An observer that does nothing.
pub struct Silent;
impl TrainObserver for Silent {}

/// Paths of a run folder.
#[derive(Debug, Clone)]
pub struct RunPaths {
    pub root: PathBuf,
}

impl RunPaths {
    pub fn new(root: &Path) -> Self {
        Self { root: root.to_owned() }
    }
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }
    pub fn last_weights(&self) -> PathBuf {
        self.checkpoints().join("last.safetensors")
    }
    pub fn last_optim(&self) -> PathBuf {
        self.checkpoints().join("last.optim.safetensors")
    }
    pub fn last_state(&self) -> PathBuf {
        self.checkpoints().join("last.state.json")
    }
    pub fn snapshot(&self, iteration: usize) -> PathBuf {
        self.checkpoints().join(format!("iter-{iteration}.safetensors"))
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct PretrainSummary {
    pub iterations_done: usize,
    pub interrupted: bool,
    pub final_loss: Option<f64>,
    pub skipped_images: usize,
    pub seconds: f64,
}

/// Options that are not part of the saved config.
pub struct PretrainRun<'a> {
    pub config: PretrainConfig,
    pub data_dir: PathBuf,
    pub out: PathBuf,
    pub resume: bool,
    pub device: Device,
    /// Set from outside (Ctrl-C) to checkpoint and stop after the current step.
    pub interrupt: Arc<AtomicBool>,
    pub observer: &'a mut dyn TrainObserver,
}

fn io_err(path: &Path, e: std::io::Error) -> NnError {
    NnError::File { path: path.to_owned(), msg: e.to_string() }
}

/// The scalar results of one step.
pub struct StepResult {
    pub loss: f64,
    pub hue_kl: f64,
    pub chroma_kl: f64,
}

/// One SGD step on a batch: forward, loss, backward, update (skipped if the loss is not finite).
/// Dropout masks come from `key`.
pub fn train_step(net: &ColorizationNet, sgd: &mut Sgd, batch: &ColorBatch, lr: f64, key: u64) -> StepResult {
    sgd.zero_grad();
    let parts = net.batch_loss(batch, true, key);
    let loss = parts.total.double_value(&[]);
    if loss.is_finite() {
        parts.total.backward();
        sgd.step(lr);
    }
    StepResult { loss, hue_kl: parts.hue_kl, chroma_kl: parts.chroma_kl }
}

/// Builds the network and optimiser for a config (seeded).
pub fn build(cfg: &PretrainConfig, device: Device) -> Result<(ColorizationNet, Sgd), NnError> {
    let net = ColorizationNet::new(
        &cfg.model,
        cfg.targets.hue_bins as i64,
        cfg.targets.chroma_bins as i64,
        device,
        cfg.seed,
    )?;
    let named: BTreeMap<_, _> = net.vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
    let sgd = Sgd::new(named, cfg.optim.clone());
    Ok((net, sgd))
}

/// Keeps the metrics lines up to `iteration` (after a resume, lines past the checkpoint are
/// recomputed).
pub(crate) fn truncate_metrics(path: &Path, iteration: usize) -> Result<(), NnError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("iteration")?.as_u64())
                .is_some_and(|i| i as usize <= iteration)
        })
        .collect();
    let mut s = kept.join("\n");
    if !s.is_empty() {
        s.push('\n');
    }
    std::fs::write(path, s).map_err(|e| io_err(path, e))
}

impl PretrainRun<'_> {
    pub fn run(self) -> Result<PretrainSummary, NnError> {
        let cfg = &self.config;
        cfg.validate()?;
        let paths = RunPaths::new(&self.out);
        std::fs::create_dir_all(paths.checkpoints()).map_err(|e| io_err(&paths.checkpoints(), e))?;
        if self.device.is_cuda() {
            tch::Cuda::cudnn_set_benchmark(true);
        }
        if cfg.threads > 0 {
            tch::set_num_threads(cfg.threads as i32);
        }
        let (mut net, mut sgd) = build(cfg, self.device)?;
        let mut state =
            TrainState { iteration: 0, data: DataPosition::default(), seed: cfg.seed, skipped_images: 0 };
        if self.resume {
            if !paths.last_state().is_file() {
                return Err(NnError::File {
                    path: paths.last_state(),
                    msg: "no checkpoint to resume from".into(),
                });
            }
            let saved: PretrainConfig = PretrainConfig::from_toml(
                &std::fs::read_to_string(paths.config()).map_err(|e| io_err(&paths.config(), e))?,
            )?;
            if saved != *cfg {
                let (a, b) = (saved.clone(), cfg.clone());
                // Only the iteration count may change on resume.
                if (PretrainConfig { iterations: 0, ..a }) != (PretrainConfig { iterations: 0, ..b }) {
                    return Err(NnError::Config(format!(
                        "--resume with a config that differs from {} (only --iterations may change)",
                        paths.config().display()
                    )));
                }
            }
            state = checkpoint::load_resumable(&paths, &mut net.vs, &mut sgd, |s: &TrainState| s.iteration)?;
            truncate_metrics(&paths.metrics(), state.iteration)?;
            self.observer.message(&format!("resuming at iteration {}", state.iteration));
        } else {
            let _ = std::fs::remove_file(paths.metrics());
        }
        std::fs::write(paths.config(), cfg.to_toml()).map_err(|e| io_err(&paths.config(), e))?;

        let source = ImageSource::open(&self.data_dir)?;
        let data = Arc::new(PretrainData::new(source, cfg.data.clone(), cfg.targets.clone(), cfg.seed)?);
        let mut loader = BatchLoader::new(data.clone(), state.data)?;
        let mut metrics_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(paths.metrics())
            .map_err(|e| io_err(&paths.metrics(), e))?;

        self.observer.start(state.iteration, cfg.iterations);
        let t0 = Instant::now();
        let start_iteration = state.iteration;
        let mut window = (0.0, 0.0, 0.0, 0usize, Instant::now());
        let mut last_loss = None;
        let mut interrupted = false;
        let b = cfg.data.batch_size as f64;
        while state.iteration < cfg.iterations {
            if self.interrupt.load(Ordering::SeqCst) {
                interrupted = true;
                break;
            }
            let (pos, batch) = loader.next().ok_or_else(|| NnError::Config("data loader stopped".into()))?;
            let batch = batch?;
            for (p, r) in &batch.skipped {
                self.observer.message(&format!("skipped {}: {r}", p.display()));
            }
            state.skipped_images += batch.skipped.len();
            let it = state.iteration;
            let lr = cfg.optim.lr_at(it);
            let parts =
                train_step(&net, &mut sgd, &batch, lr, crate::init::dropout_key(cfg.seed, it as u64, 0));
            let loss = parts.loss;
            if !loss.is_finite() {
                return Err(NnError::NonFiniteLoss { iteration: it, value: loss });
            }
            state.iteration += 1;
            state.data = pos.next(data.batches_per_epoch());
            last_loss = Some(loss);
            window.0 += loss;
            window.1 += parts.hue_kl;
            window.2 += parts.chroma_kl;
            window.3 += 1;
            let ips = b * (state.iteration - start_iteration) as f64 / t0.elapsed().as_secs_f64().max(1e-9);
            self.observer.step(state.iteration, loss, ips);
            let done = state.iteration == cfg.iterations;
            if state.iteration.is_multiple_of(cfg.log_every) || done {
                let n = window.3 as f64;
                let m = Metrics {
                    iteration: state.iteration,
                    loss: window.0 / n,
                    hue_kl: window.1 / n,
                    chroma_kl: window.2 / n,
                    lr,
                    images_per_s: b * n / window.4.elapsed().as_secs_f64().max(1e-9),
                };
                writeln!(metrics_file, "{}", serde_json::to_string(&m).expect("metrics serialise"))
                    .map_err(|e| io_err(&paths.metrics(), e))?;
                self.observer.log(&m);
                window = (0.0, 0.0, 0.0, 0, Instant::now());
            }
            if cfg.snapshots.contains(&state.iteration) {
                checkpoint::save_weights(&net.vs, &paths.snapshot(state.iteration))?;
            }
            if state.iteration.is_multiple_of(cfg.checkpoint_every) || done {
                checkpoint::save_resumable(&paths, &net.vs, &sgd, state.iteration, &state)?;
            }
        }
        if interrupted {
            checkpoint::save_resumable(&paths, &net.vs, &sgd, state.iteration, &state)?;
            self.observer
                .message(&format!("interrupted: checkpoint written at iteration {}", state.iteration));
        }
        Ok(PretrainSummary {
            iterations_done: state.iteration,
            interrupted,
            final_loss: last_loss,
            skipped_images: state.skipped_images,
            seconds: t0.elapsed().as_secs_f64(),
        })
    }
}

/// Reads metrics.jsonl.
pub fn read_metrics(path: &Path) -> Result<Vec<Metrics>, NnError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| NnError::File { path: path.to_owned(), msg: format!("line {}: {e}", i + 1) })
        })
        .collect()
}

/// CPU/GPU agreement of one training step (loss and gradients).
#[derive(Debug, Clone, Serialize)]
pub struct StepParity {
    pub loss_reference: f64,
    pub loss_device: f64,
    /// `|loss_device - loss_reference| / |loss_reference|`.
    pub loss_rel_error: f64,
    /// Max over parameters of `||g_device - g_reference|| / ||g_reference||`, and where.
    pub grad_rel_error: f64,
    pub worst_parameter: String,
}

/// Runs the same forward/backward (same seed, batch and dropout masks, TF32 off) on `reference`
/// (normally the CPU) and on `device`, and compares the loss and every parameter's gradient.
pub fn step_parity(
    cfg: &PretrainConfig,
    batch: &ColorBatch,
    reference: Device,
    device: Device,
) -> Result<StepParity, NnError> {
    crate::backbone::set_allow_tf32(false);
    let grads = |dev: Device| -> Result<(f64, BTreeMap<String, tch::Tensor>), NnError> {
        let (net, mut sgd) = build(cfg, dev)?;
        sgd.zero_grad();
        let parts = net.batch_loss(batch, true, crate::init::dropout_key(cfg.seed, 0, 0));
        parts.total.backward();
        let g = net
            .vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .map(|(n, t)| (n, t.grad().to_device(Device::Cpu).to_kind(tch::Kind::Double)))
            .collect();
        Ok((parts.total.double_value(&[]), g))
    };
    let (l0, g0) = grads(reference)?;
    let (l1, g1) = grads(device)?;
    crate::backbone::set_allow_tf32(true);
    let (mut worst, mut name) = (0f64, String::new());
    for (n, a) in &g0 {
        let b = &g1[n];
        let denom = a.norm().double_value(&[]).max(1e-30);
        let rel = (b - a).norm().double_value(&[]) / denom;
        if rel > worst {
            worst = rel;
            name = n.clone();
        }
    }
    Ok(StepParity {
        loss_reference: l0,
        loss_device: l1,
        loss_rel_error: (l1 - l0).abs() / l0.abs().max(1e-30),
        grad_rel_error: worst,
        worst_parameter: name,
    })
}
