//! The fine-tuning loop, in the shape of torchvision's `references/*/train.py`: build the
//! network, then per iteration a train step, every `eval_every` iterations the early-stopping
//! decision on the held-out part ([`crate::early_stop`]), metrics and checkpoints.
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use colorproxy_data::RgbImage8;
use colorproxy_dist::ProcessGroup;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::batch::batch_loss;
use super::config::TransferConfig;
use super::eval::{evaluate, reference_score};
use super::net::TransferNet;
use super::{load_split_with, LabelledSet, OnBad};
use crate::checkpoint;
use crate::data_parallel;
use crate::early_stop::{
    protocol_split, schedule_path, Decision, EarlyStopConfig, EarlyStopping, FoundSchedule,
};
use crate::optim::Sgd;
use crate::run_dir::{DataRecord, MetricsLog, Resume, RunLock, RunPaths, TrainObserver};
use crate::run_start::RunStart;
use crate::schedule::step_lr;
use crate::NnError;

/// Options of a fine-tuning run that are not part of the saved config.
pub struct FinetuneRun<'a> {
    pub config: TransferConfig,
    pub data: PathBuf,
    pub train_split: String,
    pub out: PathBuf,
    pub device: Device,
    /// Retrain on 100% of the training split with this schedule (from a previous run).
    pub fixed_schedule: Option<FoundSchedule>,
    pub on_bad: OnBad,
    /// Continue from the folder's checkpoint to the same result as an uninterrupted run (`Auto`:
    /// when the folder holds one).
    pub resume: Resume,
    /// Start over in a folder that holds a run (without it, such a folder is refused).
    pub force: bool,
    /// Set (e.g. by Ctrl-C) to checkpoint and stop after the current iteration.
    pub interrupt: Arc<AtomicBool>,
    pub observer: &'a mut dyn TrainObserver,
    /// Data-parallel fine-tuning over this process group (`None`: one process): each rank trains
    /// on its share of every batch, all evaluate the held-out part and follow rank 0's score;
    /// rank 0 alone writes the run folder.
    pub dist: Option<&'a ProcessGroup>,
}

/// How the run ended.
pub struct FinetuneSummary {
    pub iterations: usize,
    pub schedule: FoundSchedule,
    pub best_held_out: Option<f64>,
    /// The run's resolved config (with the class names of a single-label set).
    pub config: TransferConfig,
    /// Stopped by `interrupt` before the schedule's end (resume with `resume`).
    pub interrupted: bool,
    /// Training images that failed to decode and were skipped.
    pub skipped: usize,
}

/// Fine-tuning state saved beside the weights (`checkpoints/last.state.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FinetuneState {
    /// Iterations completed.
    iteration: usize,
    /// Learning-rate drops so far.
    drops: Vec<usize>,
    best: Option<f64>,
    early_stopping: EarlyStopping,
    skipped: usize,
    /// Early stopping said stop: the run is complete.
    finished: bool,
    /// Loss sum and count of the current logging window.
    window: (f64, usize),
}

/// Scales the gradients so their global norm is at most `max` (0: off).
pub fn clip_grad_norm(params: &BTreeMap<String, Tensor>, max: f64) {
    if max <= 0.0 {
        return;
    }
    tch::no_grad(|| {
        let total: f64 = params
            .values()
            .filter(|t| t.grad().defined())
            .map(|t| t.grad().square().sum(Kind::Double).double_value(&[]))
            .sum();
        let norm = total.sqrt();
        if norm > max {
            for t in params.values() {
                let mut g = t.grad();
                if g.defined() {
                    let _ = g.g_mul_scalar_(max / norm);
                }
            }
        }
    });
}

impl FinetuneState {
    fn new(cfg: &TransferConfig, fixed: Option<&FoundSchedule>) -> Self {
        Self {
            iteration: 0,
            drops: fixed.map(|s| s.drops.clone()).unwrap_or_default(),
            best: None,
            early_stopping: EarlyStopping::new(cfg.early_stop.clone()),
            skipped: 0,
            finished: false,
            window: (0.0, 0),
        }
    }
}

/// One training step: the batch's loss, backward, gradient clipping and the SGD update at `lr`.
/// Returns the loss (an error, before any update, if it is not finite).
#[allow(clippy::too_many_arguments)]
pub fn train_step(
    net: &TransferNet,
    cfg: &TransferConfig,
    set: &LabelledSet,
    idx: &[usize],
    params: &BTreeMap<String, Tensor>,
    sgd: &mut Sgd,
    lr: f64,
    iteration: usize,
    dist: Option<&ProcessGroup>,
) -> Result<f64, NnError> {
    sgd.zero_grad();
    let slots = match dist {
        Some(pg) => data_parallel::shard(pg, cfg.job_batch())?,
        None => 0..cfg.job_batch(),
    };
    let (loss, count) = batch_loss(net, cfg, set, idx, iteration, slots)?;
    if let Some(e) = data_parallel::take_sync_bn_error() {
        return Err(e.into());
    }
    let (loss, lv) = match dist {
        None => {
            let lv = loss.double_value(&[]);
            (loss, lv)
        }
        Some(pg) => data_parallel::weight_share(pg, loss, count)?,
    };
    if !lv.is_finite() {
        return Err(NnError::NonFiniteLoss { iteration, value: lv });
    }
    // f_backward: a synchronised BN's all-reduce can fail inside the backward pass.
    loss.f_backward()?;
    if let Some(e) = data_parallel::take_sync_bn_error() {
        return Err(e.into());
    }
    if let Some(pg) = dist {
        data_parallel::average_gradients(pg, sgd)?;
    }
    clip_grad_norm(params, cfg.grad_clip);
    sgd.step(lr);
    Ok(lv)
}

/// The network of a run: built, initialised from `cfg.init`, BN absorbed, pad-with-bias and
/// rebalancing applied as configured.
pub fn build_net(
    cfg: &TransferConfig,
    device: Device,
    set: &LabelledSet,
    obs: &mut dyn TrainObserver,
) -> Result<TransferNet, NnError> {
    let mut net = TransferNet::new(cfg, device)?;
    let bn_statistics =
        if cfg.init != "random" { net.load_backbone(Path::new(&cfg.init))?.bn_statistics } else { true };
    match (cfg.absorb_bn, bn_statistics) {
        (true, true) => net.absorb_bn(),
        // Torchvision or supervised weights: no parameter-free BN to absorb.
        (true, false) => net.backbone.set_use_bn(false),
        (false, _) => {}
    }
    if cfg.pad_with_bias {
        net.set_pad_with_bias(true);
    }
    if cfg.rebalance {
        let sample: Vec<RgbImage8> =
            (0..set.len().min(32)).map(|i| set.image(i).map(Cow::into_owned)).collect::<Result<_, _>>()?;
        let dev = net.rebalance(&sample);
        obs.message(&format!(
            "rebalanced {} layers to unit variance (largest std deviation from 1 before: {:.3})",
            dev.len(),
            dev.iter().cloned().fold(0.0, f64::max)
        ));
    }
    Ok(net)
}

/// A resumed run must have the same config, except the early-stopping limits.
fn check_resumed_config(paths: &RunPaths, cfg: &TransferConfig) -> Result<(), NnError> {
    let saved = TransferConfig::from_toml(&paths.read_config()?)
        .map_err(|e| NnError::File { path: paths.config(), msg: format!("unreadable run config: {e}") })?;
    // The job's batch is compared, whatever its split over the processes; the learning rate's
    // multiplier follows from it.
    let same = |c: &TransferConfig| {
        let mut c = TransferConfig {
            early_stop: EarlyStopConfig::default(),
            total_batch: c.job_batch(),
            world_size: 0,
            batch_size: 0,
            ..c.clone()
        };
        c.optim.lr_scale = 1.0;
        c
    };
    let (a, b) = (same(&saved), same(cfg));
    if a != b {
        let diff = crate::config::toml_differences(&a.to_toml(), &b.to_toml());
        return Err(NnError::Config(format!(
            "this run's config differs from the one saved in {} ({diff}); resume with the command \
             that started it (only --max-iterations may change), or start a new run in another --out",
            paths.config().display()
        )));
    }
    Ok(())
}

/// Scores the held-out images and lets the early-stopping controller decide; returns the score.
fn early_stopping_step(
    net: &TransferNet,
    set: &LabelledSet,
    held: &[usize],
    state: &mut FinetuneState,
    obs: &mut dyn TrainObserver,
    dist: Option<&ProcessGroup>,
) -> Result<f64, NnError> {
    let it = state.iteration;
    let mut r = evaluate(net, set, held, &mut |_, _| {})?;
    // Every rank scored the same weights; all follow rank 0's score, so all decide alike.
    r.value = data_parallel::broadcast_scalar(dist, r.value)?;
    state.best = Some(state.best.map_or(r.value, |b: f64| b.max(r.value)));
    match state.early_stopping.observe(it, r.value) {
        Decision::Continue => {}
        Decision::DropLr => {
            state.drops.push(it);
            obs.message(&format!("held-out {} plateaued: learning rate x0.1 at iteration {it}", r.metric));
        }
        Decision::Stop => {
            obs.message(&format!("held-out {} plateaued again: stopping at iteration {it}", r.metric));
            state.finished = true;
        }
    }
    Ok(r.value)
}

/// A run set up and ready to train: the locked folder, the data, the network and its state.
struct Session {
    paths: RunPaths,
    _lock: Option<RunLock>,
    set: LabelledSet,
    cfg: TransferConfig,
    net: TransferNet,
    params: BTreeMap<String, Tensor>,
    sgd: Sgd,
    state: FinetuneState,
    resumed: bool,
}

impl FinetuneRun<'_> {
    /// Validates every input, then takes the run folder (lock, fresh / resume / overwrite),
    /// records the config and data, builds the network and, on resume, loads the checkpoint.
    fn open(&mut self) -> Result<Session, NnError> {
        let obs = &mut *self.observer;
        // Per-process batch: the job trains on world_size x batch_size images per step, with the
        // learning rate of the batch rule (recorded in the saved config).
        if let Some(rule) = self.config.for_world_size(self.dist.map_or(1, |pg| pg.size())) {
            if data_parallel::is_rank0(self.dist) {
                obs.message(&rule);
            }
        }
        self.config.validate()?;
        let paths = RunPaths::new(&self.out);
        if self.config.threads > 0 {
            tch::set_num_threads(self.config.threads as i32);
        }
        if self.config.workers > 0 {
            // The process's batch-building pool (the first run of a process sets it).
            let _ = rayon::ThreadPoolBuilder::new().num_threads(self.config.workers).build_global();
        }
        let given = (!self.config.classes.is_empty()).then_some(&self.config.classes[..]);
        let (task, split) = (self.config.task, &self.train_split);
        let mut set = load_split_with(task, &self.data, split, given, self.on_bad, &mut |m| obs.message(m))?;
        if !self.config.label_space.is_identity() {
            let space = &self.config.label_space;
            let r = set.relabel(space).map_err(|e| NnError::Config(format!("label space: {e}")))?;
            obs.message(&format!(
                "label space: {} -> {} images, {} labels, {} noisy labels",
                space.describe(),
                r.keep.len(),
                r.class_names.len(),
                r.noisy
            ));
        }
        let mut cfg = self.config.clone();
        cfg.classes = set.class_names.clone();
        cfg.single_label = set.single_label;
        // The network is built (and its init loaded and checked, the frozen layers named) before
        // the folder is taken: a bad input leaves an existing run untouched, even with --force.
        let mut net = build_net(&cfg, self.device, &set, obs)?;
        let params = net.trainable()?;
        let mut sgd =
            Sgd::new(params.iter().map(|(k, v)| (k.clone(), v.shallow_clone())).collect(), cfg.optim.clone());
        let start = RunStart { paths: &paths, resume: self.resume, force: self.force, dist: self.dist };
        let source = format!("{} ({})", self.data.display(), self.train_split);
        let (lock, resumed) =
            start.take_folder(&DataRecord::new(&source, &set.ids), |p| check_resumed_config(p, &cfg))?;
        if lock.is_some() {
            paths.write_config(&cfg.to_toml())?;
        }
        let fresh = FinetuneState::new(&cfg, self.fixed_schedule.as_ref());
        let it = |s: &FinetuneState| s.iteration;
        let mut state = start.load(resumed, &mut net.vs, &mut sgd, fresh, it, &mut |m| obs.message(m))?;
        if resumed {
            state.early_stopping.config = cfg.early_stop.clone();
            set.skipped.store(state.skipped, Ordering::Relaxed);
        }
        Ok(Session { paths, _lock: lock, set, cfg, net, params, sgd, state, resumed })
    }

    /// Trains until early stopping (or the fixed schedule) ends the run, or `interrupt` is set.
    pub fn run(mut self) -> Result<FinetuneSummary, NnError> {
        let Session { paths, _lock, set, cfg, net, params, mut sgd, mut state, resumed } = self.open()?;
        let (fixed, obs) = (self.fixed_schedule.take(), self.observer);
        let (train_idx, held_idx) = protocol_split(&set.ids, cfg.held_out, cfg.seed, fixed.is_some());
        if fixed.is_none() && !resumed {
            let (name, r) = reference_score(&cfg, &set, &held_idx);
            state.early_stopping.set_reference(r);
            obs.message(&format!(
                "held-out reference ({name}): {r:.4}; plateaus count once a window beats it by {}",
                cfg.early_stop.reference_margin
            ));
        }
        let max_iters = fixed.as_ref().map_or(cfg.early_stop.max_iterations, |s| s.stop);
        let (dist, rank0) = (self.dist, data_parallel::is_rank0(self.dist));
        let mut log = match rank0 {
            true => Some(MetricsLog::open(&paths.metrics(), resumed.then_some(state.iteration))?),
            false => None,
        };
        obs.start(state.iteration, max_iters);
        let (t0, start) = (std::time::Instant::now(), state.iteration);
        let mut interrupted = false;
        // Data-parallel: each rank's dropout masks are its slice of the global batch's.
        let shard = dist.map(|pg| data_parallel::shard(pg, cfg.job_batch())).transpose()?;
        let _shard = shard.map(|s| crate::init::DropoutShard::new(s.start, s.len()));
        // Data-parallel with the pretraining's BN kept (absorb_bn = false): training batches are
        // normalised with the statistics of the global batch, so the ranks take the 1-process step.
        let _sync = dist.filter(|_| !cfg.absorb_bn).map(data_parallel::SyncBnScope::new);
        while state.iteration < max_iters && !state.finished {
            if data_parallel::any(dist, self.interrupt.load(Ordering::Relaxed))? {
                interrupted = true;
                break;
            }
            let lr = step_lr(cfg.optim.scaled_lr(), cfg.optim.gamma, &state.drops, state.iteration);
            let memory = || {
                let during = format!("in fine-tuning step {}", state.iteration + 1);
                crate::out_of_memory::StepMemory::new(net.vs.device(), during, cfg.batch_size, cfg.crop)
            };
            let loss = crate::out_of_memory::guard(memory, || {
                train_step(&net, &cfg, &set, &train_idx, &params, &mut sgd, lr, state.iteration, dist)
            })?;
            state.iteration += 1;
            state.window = (state.window.0 + loss, state.window.1 + 1);
            let it = state.iteration;
            let ips = (cfg.job_batch() * (it - start)) as f64 / t0.elapsed().as_secs_f64().max(1e-9);
            obs.lr(lr);
            obs.step(it, loss, ips);
            set.take_skip_notes().iter().for_each(|n| obs.message(n));
            let score = (fixed.is_none() && it.is_multiple_of(cfg.early_stop.eval_every))
                .then(|| early_stopping_step(&net, &set, &held_idx, &mut state, obs, dist))
                .transpose()?;
            if it.is_multiple_of(cfg.log_every) || score.is_some() {
                let loss = state.window.0 / state.window.1.max(1) as f64;
                if let Some(log) = log.as_mut() {
                    log.append(&serde_json::json!({
                        "iteration": it, "loss": loss, "lr": lr, "held_out_score": score, "images_per_s": ips,
                    }))?;
                }
                state.window = (0.0, 0);
            }
            if cfg.checkpoint_every > 0 && it.is_multiple_of(cfg.checkpoint_every) {
                state.skipped = set.skipped.load(Ordering::Relaxed);
                data_parallel::check_in_sync(dist, &net.vs, it, obs)?;
                if rank0 {
                    checkpoint::save_resumable(&paths, &net.vs, &sgd, state.iteration, &state)?;
                }
            }
        }
        state.skipped = set.skipped.load(Ordering::Relaxed);
        if !interrupted {
            data_parallel::check_in_sync(dist, &net.vs, state.iteration, obs)?;
        }
        if rank0 {
            checkpoint::save_resumable(&paths, &net.vs, &sgd, state.iteration, &state)?;
        }
        let schedule = fixed.unwrap_or_else(|| FoundSchedule {
            drops: state.drops.clone(),
            stop: state.iteration,
            windows: state.early_stopping.found.windows.clone(),
        });
        if !interrupted && rank0 {
            checkpoint::write_json(&schedule_path(&self.out), &schedule)?;
        }
        let (iterations, best_held_out, skipped) = (state.iteration, state.best, state.skipped);
        Ok(FinetuneSummary { iterations, schedule, best_held_out, config: cfg, interrupted, skipped })
    }
}
