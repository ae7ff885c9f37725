//! The pretraining loop: `colorproxy pretrain`.
//!
//! RUN_DIR/config.toml (resolved config), RUN_DIR/metrics.jsonl (one line per `log_every`
//! iterations), RUN_DIR/checkpoints/last.safetensors + last.optim.safetensors + last.state.json
//! (every `checkpoint_every` iterations, at the end and on interrupt), and
//! `RUN_DIR/checkpoints/iter-<N>.safetensors` snapshots.
//!
//! Exact resume: the data stream restarts at the saved position, momentum buffers are restored,
//! the learning rate is a function of the iteration and dropout is seeded per iteration.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use colorproxy_data::{BatchLoader, ColorBatch, DataPosition, ImageSource, PretrainData};
use serde::{Deserialize, Serialize};
use tch::Device;

use colorproxy_dist::ProcessGroup;

use crate::checkpoint::{self, TrainState};
use crate::config::PretrainConfig;
use crate::data_parallel;
pub use crate::data_parallel::StepResult;
use crate::model::ColorizationNet;
use crate::optim::Sgd;
use crate::run_dir::MetricsLog;
use crate::run_dir::{DataRecord, Resume, RunLock, RunPaths, TrainObserver};
use crate::run_start::RunStart;
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

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct PretrainSummary {
    pub iterations_done: usize,
    /// Iterations trained by this call (0: the run had already finished).
    pub trained: usize,
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
    /// Continue from the folder's checkpoint (`Auto`: when it holds one).
    pub resume: Resume,
    /// Start over in a folder that holds a run (without it, such a folder is refused).
    pub force: bool,
    pub device: Device,
    /// Set from outside (Ctrl-C) to checkpoint and stop after the current step.
    pub interrupt: Arc<AtomicBool>,
    pub observer: &'a mut dyn TrainObserver<Metrics>,
    /// Data-parallel training over this process group (`None`: one process). Rank 0 alone writes
    /// the run folder; every rank builds its share of each global batch.
    pub dist: Option<&'a ProcessGroup>,
}

/// One SGD step on a batch: forward, loss, backward, update (skipped if the loss is not finite).
/// Dropout masks come from `key`. Data-parallel (`dist`): `batch` is this rank's share of the
/// global batch; the loss is averaged over the ranks (all skip together if it is not finite),
/// gradients are averaged before the update and BN buffers are taken from rank 0 after it.
pub fn train_step(
    net: &ColorizationNet,
    sgd: &mut Sgd,
    batch: &ColorBatch,
    lr: f64,
    key: u64,
    dist: Option<&ProcessGroup>,
) -> Result<StepResult, NnError> {
    sgd.zero_grad();
    let parts = net.batch_loss(batch, true, key);
    if let Some(e) = data_parallel::take_sync_bn_error() {
        return Err(e.into());
    }
    let mut r =
        StepResult { loss: parts.total.double_value(&[]), hue_kl: parts.hue_kl, chroma_kl: parts.chroma_kl };
    if let Some(pg) = dist {
        r = data_parallel::mean_step_result(pg, &r)?;
    }
    if r.loss.is_finite() {
        // f_backward: a synchronised BN's all-reduce can fail inside the backward pass.
        parts.total.f_backward()?;
        if let Some(pg) = dist {
            data_parallel::average_gradients(pg, sgd)?;
        }
        sgd.step(lr);
        if let Some(pg) = dist {
            colorproxy_dist::ddp::broadcast_buffers(pg, &net.vs)?;
        }
    }
    Ok(r)
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

/// Metrics summed over a logging window.
struct Window {
    loss: f64,
    hue_kl: f64,
    chroma_kl: f64,
    steps: usize,
    since: Instant,
}

impl Window {
    fn new() -> Self {
        Self { loss: 0.0, hue_kl: 0.0, chroma_kl: 0.0, steps: 0, since: Instant::now() }
    }

    fn add(&mut self, s: &StepResult) {
        self.loss += s.loss;
        self.hue_kl += s.hue_kl;
        self.chroma_kl += s.chroma_kl;
        self.steps += 1;
    }

    /// The window's metrics line, ending at `iteration`.
    fn metrics(&self, iteration: usize, lr: f64, batch: f64) -> Metrics {
        let n = self.steps as f64;
        Metrics {
            iteration,
            loss: self.loss / n,
            hue_kl: self.hue_kl / n,
            chroma_kl: self.chroma_kl / n,
            lr,
            images_per_s: batch * n / self.since.elapsed().as_secs_f64().max(1e-9),
        }
    }
}

/// Continues a run: the saved config must equal `cfg` except for the iteration count and what
/// follows from it (the learning-rate drops and snapshots that `--iterations` rescales). The
/// batch is compared as the job's total, so a run may resume on another number of processes
/// with the per-process batch that keeps the total (2 x 8 -> 4 x 4 or 1 x 16).
pub fn check_resumed_config(paths: &RunPaths, cfg: &PretrainConfig) -> Result<(), NnError> {
    let saved = PretrainConfig::from_toml(&paths.read_config()?)
        .map_err(|e| NnError::File { path: paths.config(), msg: format!("unreadable run config: {e}") })?;
    let defining = |c: &PretrainConfig| {
        let mut c = c.clone();
        (c.iterations, c.snapshots, c.optim.lr_drops) = (0, vec![], vec![]);
        // The job's batch, whatever its split over the processes (a config saved before
        // total_batch was recorded: batch_size x world_size); the learning rate's multiplier
        // follows from it.
        c.total_batch = c.data.batch_size * c.world_size;
        (c.world_size, c.data.batch_size, c.optim.lr_scale) = (0, 0, 1.0);
        c
    };
    let (a, b) = (defining(&saved), defining(cfg));
    if a != b {
        let diff = crate::config::toml_differences(&a.to_toml(), &b.to_toml());
        let hint = if a.total_batch != b.total_batch {
            format!(
                "; the run trains on {} images per step ({} per process x {}): give --batch-size so \
                 that processes x batch size = {}",
                a.total_batch, saved.data.batch_size, saved.world_size, a.total_batch
            )
        } else {
            String::new()
        };
        return Err(NnError::Config(format!(
            "this run's config differs from the one saved in {} ({diff}){hint}; resume with the \
             command that started it (only --iterations may change), or start a new run in another --out",
            paths.config().display()
        )));
    }
    Ok(())
}

/// A run set up and ready to train.
struct Session {
    paths: RunPaths,
    _lock: Option<RunLock>,
    data: Arc<PretrainData>,
    net: ColorizationNet,
    sgd: Sgd,
    state: TrainState,
    resumed: bool,
}

impl PretrainRun<'_> {
    /// Validates every input before the run folder is touched, then takes the folder (lock,
    /// fresh / resume / overwrite), records the data, builds the network and, on resume, loads
    /// the newest complete checkpoint.
    fn open(&mut self) -> Result<Session, NnError> {
        // Per-process batch: the job trains on world_size x batch_size images per step, with the
        // learning rate of the batch rule (recorded in the saved config).
        if let Some(rule) = self.config.for_world_size(self.dist.map_or(1, |pg| pg.size())) {
            if data_parallel::is_rank0(self.dist) {
                self.observer.message(&rule);
            }
        }
        let cfg = &self.config;
        cfg.validate()?;
        let source = ImageSource::open(&self.data_dir)?;
        let rank0 = data_parallel::is_rank0(self.dist);
        for (d, why) in source.skipped_dirs.iter().filter(|_| rank0) {
            self.observer.message(&format!("skipped folder {}: {why}", d.display()));
        }
        let data_record = DataRecord::of_files(&self.data_dir, &source.files);
        let rank = self.dist.map(|pg| (pg.rank(), pg.size()));
        let data = Arc::new(cfg.pretrain_data(source, rank)?);
        let paths = RunPaths::new(&self.out);
        if cfg.threads > 0 {
            tch::set_num_threads(cfg.threads as i32);
        }
        // The network is built before the folder is taken: a config that cannot build one leaves
        // an existing run untouched, even with --force.
        let (mut net, mut sgd) = build(cfg, self.device)?;
        let start = RunStart { paths: &paths, resume: self.resume, force: self.force, dist: self.dist };
        let (lock, resumed) = start.take_folder(&data_record, |p| check_resumed_config(p, cfg))?;
        if self.device.is_cuda() {
            tch::Cuda::cudnn_set_benchmark(true);
        }
        let fresh =
            TrainState { iteration: 0, data: DataPosition::default(), seed: cfg.seed, skipped_images: 0 };
        let obs = &mut *self.observer;
        let state =
            start.load(resumed, &mut net.vs, &mut sgd, fresh, |s: &TrainState| s.iteration, &mut |m| {
                obs.message(m)
            })?;
        Ok(Session { paths, _lock: lock, data, net, sgd, state, resumed })
    }

    /// Trains to `config.iterations`, or until `interrupt` is set (then checkpoints and returns).
    pub fn run(mut self) -> Result<PretrainSummary, NnError> {
        let Session { paths, _lock, data, net, mut sgd, mut state, resumed } = self.open()?;
        let cfg = &self.config;
        let (dist, rank0) = (self.dist, data_parallel::is_rank0(self.dist));
        if rank0 {
            paths.write_config(&cfg.to_toml())?;
        }
        let mut loader = BatchLoader::new(data.clone(), state.data)?;
        let mut log = match rank0 {
            true => Some(MetricsLog::open(&paths.metrics(), resumed.then_some(state.iteration))?),
            false => None,
        };
        self.observer.start(state.iteration, cfg.iterations);
        let (t0, start_iteration) = (Instant::now(), state.iteration);
        // Data-parallel: each rank's dropout masks are its slice of the global batch's; with
        // sync_bn the BN statistics are all ranks'.
        let _shard = data.shard.clone().map(|s| crate::init::DropoutShard::new(s.start, s.len()));
        let _sync = dist.filter(|_| cfg.sync_bn).map(data_parallel::SyncBnScope::new);
        let (mut window, mut last_loss, mut interrupted) = (Window::new(), None, false);
        let mut named_bad = std::collections::HashSet::new();
        let b = cfg.job_pipeline().batch_size as f64;
        while state.iteration < cfg.iterations {
            if data_parallel::any(dist, self.interrupt.load(Ordering::SeqCst))? {
                interrupted = true;
                break;
            }
            let (pos, batch) = loader.next().ok_or_else(|| NnError::Config("data loader stopped".into()))?;
            let batch = batch?;
            for (p, r) in &batch.skipped {
                // Each bad file is named once; it is drawn (and skipped) again every epoch.
                if named_bad.insert(p.clone()) {
                    self.observer.message(&format!("skipped {}: {r} (not named again)", p.display()));
                }
            }
            state.skipped_images += batch.skipped.len();
            let it = state.iteration;
            let lr = cfg.optim.lr_at(it);
            let key = crate::init::dropout_key(cfg.seed, it as u64, 0);
            let memory = || {
                let during = format!("in pretraining step {}", it + 1);
                crate::out_of_memory::StepMemory::new(
                    self.device,
                    during,
                    cfg.data.batch_size,
                    cfg.data.augment.crop as usize,
                )
            };
            let step =
                crate::out_of_memory::guard(memory, || train_step(&net, &mut sgd, &batch, lr, key, dist))?;
            if !step.loss.is_finite() {
                return Err(NnError::NonFiniteLoss { iteration: it, value: step.loss });
            }
            state.iteration += 1;
            state.data = pos.next(data.batches_per_epoch());
            last_loss = Some(step.loss);
            window.add(&step);
            let ips = b * (state.iteration - start_iteration) as f64 / t0.elapsed().as_secs_f64().max(1e-9);
            self.observer.lr(lr);
            self.observer.step(state.iteration, step.loss, ips);
            let done = state.iteration == cfg.iterations;
            if state.iteration.is_multiple_of(cfg.log_every) || done {
                let m = window.metrics(state.iteration, lr, b);
                if let Some(log) = log.as_mut() {
                    log.append(&m)?;
                }
                self.observer.log(&m);
                window = Window::new();
            }
            if cfg.snapshots.contains(&state.iteration) && rank0 {
                checkpoint::save_weights(&net.vs, &paths.snapshot(state.iteration))?;
            }
            if state.iteration.is_multiple_of(cfg.checkpoint_every) || done {
                data_parallel::check_in_sync(dist, &net.vs, state.iteration, &mut *self.observer)?;
                if rank0 {
                    checkpoint::save_resumable(&paths, &net.vs, &sgd, state.iteration, &state)?;
                }
            }
        }
        if interrupted && rank0 {
            checkpoint::save_resumable(&paths, &net.vs, &sgd, state.iteration, &state)?;
            self.observer
                .message(&format!("interrupted: checkpoint written at iteration {}", state.iteration));
        }
        Ok(PretrainSummary {
            iterations_done: state.iteration,
            trained: state.iteration - start_iteration,
            interrupted,
            final_loss: last_loss,
            skipped_images: state.skipped_images,
            seconds: t0.elapsed().as_secs_f64(),
        })
    }
}

/// Reads metrics.jsonl.
pub fn read_metrics(path: &Path) -> Result<Vec<Metrics>, NnError> {
    crate::run_dir::read_jsonl(path)
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
