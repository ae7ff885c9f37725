//! The paper's early-stopping protocol: score the held-out 10% of the training set regularly
//! (the real metric, mIoU or mAP, not the loss), average the scores over windows, and when a
//! window's average does not improve on the best of the current stage, drop the learning rate
//! x0.1 (only after `min_stage_iterations` in the stage); at the `max_drops`-th plateau, stop
//! ("stop at the third stage, i.e. after two drops"). The drops found are the schedule that
//! `--retrain-full` reuses on 100% of the training set.
use serde::{Deserialize, Serialize};

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
        }
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
        if self.best.is_none_or(|b| mean > b + self.config.min_delta) {
            self.best = Some(mean);
            return Decision::Continue;
        }
        if iteration - self.stage_start < self.config.min_stage_iterations {
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
