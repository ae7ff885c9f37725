//! The paper's early-stopping protocol: score the held-out 10% of the training set regularly
//! (the real metric, mIoU or mAP, not the loss), average the scores over windows, and when a
//! window's average does not improve on the best of the current stage, drop the learning rate
//! x0.1 (only after `min_stage_iterations` in the stage); at the `max_drops`-th plateau, stop
//! ("stop at the third stage, i.e. after two drops"). The drops found are the schedule that
//! `--retrain-full` reuses on 100% of the training set.
//!
//! The whole protocol lives here: the 90/10 split ([`split_held_out`], [`protocol_split`]), the
//! controller ([`EarlyStopping`]) and the `--retrain-full` schedule ([`FoundSchedule`],
//! [`read_schedule`], [`retrain_full_dir`]).
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::NnError;

/// Parameters (iterations are counted in training steps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EarlyStopConfig {
    /// Score the held-out part every this many iterations.
    pub eval_every: usize,
    /// Average this many consecutive scores into one window.
    pub window: usize,
    /// A window must beat the stage's best by more than this to count as an improvement.
    pub min_delta: f64,
    /// No drop before this many iterations in the current stage.
    pub min_stage_iterations: usize,
    /// The plateau that stops the run (2: one drop, then stop at the second plateau).
    pub max_drops: usize,
    /// Hard cap on iterations.
    pub max_iterations: usize,
    /// A plateau only counts (drop or stop) once a window has beaten the reference score (what
    /// a network that learned nothing gets, see [`EarlyStopping::set_reference`]) by more than
    /// this: a run still at the trivial solution goes on, up to `max_iterations` (a margin of -1
    /// or less turns the rule off).
    pub reference_margin: f64,
}

impl Default for EarlyStopConfig {
    fn default() -> Self {
        Self {
            eval_every: 10,
            window: 500,
            min_delta: 0.0,
            min_stage_iterations: 5000,
            max_drops: 2,
            max_iterations: 80_000,
            reference_margin: 0.01,
        }
    }
}

/// What the training loop should do after an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Continue,
    /// Multiply the learning rate by 0.1 from the next iteration on.
    DropLr,
    Stop,
}

/// The schedule found: iterations at which the learning rate dropped, and where training stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct FoundSchedule {
    pub drops: Vec<usize>,
    pub stop: usize,
    /// Window averages, for the report: (iteration at the window's end, mean score).
    pub windows: Vec<(usize, f64)>,
}

/// The controller (serialisable: a resumed run continues its decisions).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EarlyStopping {
    pub config: EarlyStopConfig,
    scores: Vec<f64>,
    /// The best window mean of the current stage (`None` at a stage's start).
    best: Option<f64>,
    stage_start: usize,
    plateaus: usize,
    pub found: FoundSchedule,
    /// The reference score of the held-out part, if known.
    #[serde(default)]
    reference: Option<f64>,
    /// The best window mean of the whole run.
    #[serde(default)]
    best_overall: Option<f64>,
}

impl EarlyStopping {
    pub fn new(config: EarlyStopConfig) -> Self {
        Self {
            config,
            scores: Vec::new(),
            best: None,
            stage_start: 0,
            plateaus: 0,
            found: FoundSchedule::default(),
            reference: None,
            best_overall: None,
        }
    }

    /// The score of the trivial solution on the held-out part (majority class, constant scorer):
    /// no plateau counts before a window beats it by `reference_margin`.
    pub fn set_reference(&mut self, reference: f64) {
        self.reference = Some(reference);
    }

    /// Records the held-out score after `iteration` training steps.
    pub fn observe(&mut self, iteration: usize, score: f64) -> Decision {
        self.scores.push(score);
        if iteration >= self.config.max_iterations {
            self.found.stop = iteration;
            return Decision::Stop;
        }
        if self.scores.len() < self.config.window {
            return Decision::Continue;
        }
        let mean = self.scores.iter().sum::<f64>() / self.scores.len() as f64;
        self.scores.clear();
        self.found.windows.push((iteration, mean));
        self.best_overall = Some(self.best_overall.map_or(mean, |b| b.max(mean)));
        if self.best.is_none_or(|b| mean > b + self.config.min_delta) {
            self.best = Some(mean);
            return Decision::Continue;
        }
        if iteration - self.stage_start < self.config.min_stage_iterations {
            return Decision::Continue;
        }
        let beaten = |r: f64| self.best_overall.is_some_and(|b| b > r + self.config.reference_margin);
        if self.reference.is_some_and(|r| !beaten(r)) {
            // Still at the trivial solution: not a plateau to act on.
            return Decision::Continue;
        }
        self.plateaus += 1;
        if self.plateaus >= self.config.max_drops {
            self.found.stop = iteration;
            return Decision::Stop;
        }
        self.found.drops.push(iteration);
        self.stage_start = iteration;
        // The new stage is judged against its own windows.
        self.best = None;
        Decision::DropLr
    }
}

/// A deterministic train/held-out split of `n` ids: an id goes to the held-out part when the hash
/// of its name falls in the last `held_out` fraction (the paper's 90/10 early-stopping split).
pub fn split_held_out(ids: &[String], held_out: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (i, id) in ids.iter().enumerate() {
        let h =
            id.bytes().fold(0xcbf29ce484222325u64 ^ seed, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3));
        let u = (colorproxy_data::Rng::new(h).next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        if u < held_out {
            val.push(i);
        } else {
            train.push(i);
        }
    }
    // Never leave either side empty.
    if val.is_empty() && train.len() > 1 {
        val.push(train.pop().expect("non-empty"));
    }
    if train.is_empty() && val.len() > 1 {
        train.push(val.pop().expect("non-empty"));
    }
    (train, val)
}

/// The images a fine-tuning run trains on and scores for early stopping: with a fixed schedule
/// (`--retrain-full`) all of them and none; with `held_out <= 0` all of them, scored on
/// themselves; otherwise the 90/10 split (a set too small to hold any out is scored on its
/// training images).
pub fn protocol_split(
    ids: &[String],
    held_out: f64,
    seed: u64,
    fixed_schedule: bool,
) -> (Vec<usize>, Vec<usize>) {
    let all: Vec<usize> = (0..ids.len()).collect();
    if fixed_schedule {
        return (all, vec![]);
    }
    if held_out <= 0.0 {
        return (all.clone(), all);
    }
    let (t, h) = split_held_out(ids, held_out, seed);
    if h.is_empty() {
        (t.clone(), t)
    } else {
        (t, h)
    }
}

/// Where an early-stopping run keeps the schedule it found.
pub fn schedule_path(run_dir: &Path) -> PathBuf {
    run_dir.join("schedule.json")
}

/// Where `--retrain-full` writes the retraining on 100% of the training set: `RUN_DIR/full`
/// (the early-stopping run's files stay).
pub fn retrain_full_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("full")
}

/// The schedule found by the early-stopping run in `run_dir`, for `--retrain-full`.
pub fn read_schedule(run_dir: &Path) -> Result<FoundSchedule, NnError> {
    let p = schedule_path(run_dir);
    crate::checkpoint::read_json(&p).map_err(|e| NnError::File {
        path: p.clone(),
        msg: format!("--retrain-full needs the schedule of an early-stopping run here: {e}"),
    })
}
