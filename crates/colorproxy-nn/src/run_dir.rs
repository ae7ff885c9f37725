//! A run folder, shared by pretraining and fine-tuning: its paths, the metrics log (JSON lines,
//! cut back to the checkpoint on resume), the progress callbacks of a training loop, starting
//! fresh or resuming, and finding the run config that belongs to a checkpoint.
//!
//! ```text
//! RUN_DIR/config.toml        the resolved config
//! RUN_DIR/metrics.jsonl      one JSON object per logged iteration
//! RUN_DIR/checkpoints/       last.* (resumable), iter-N.safetensors (snapshots)
//! ```
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::NnError;

fn file_err(path: &Path, e: impl std::fmt::Display) -> NnError {
    NnError::File { path: path.to_owned(), msg: e.to_string() }
}

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

    /// Creates the folder for a run: on `resume`, checks there is a checkpoint to continue;
    /// otherwise removes what an earlier run left (metrics, the resumable checkpoint), so nothing
    /// of it is resumed or reported.
    pub fn start(&self, resume: bool) -> Result<(), NnError> {
        std::fs::create_dir_all(self.checkpoints()).map_err(|e| file_err(&self.checkpoints(), e))?;
        if resume {
            if !self.last_state().is_file() {
                return Err(file_err(&self.last_state(), "no checkpoint to resume from"));
            }
        } else {
            for p in [self.metrics(), self.last_state(), self.last_optim(), self.last_weights()] {
                let _ = std::fs::remove_file(p);
            }
        }
        Ok(())
    }

    /// The saved config text (for comparing a resumed run's config with the original).
    pub fn read_config(&self) -> Result<String, NnError> {
        std::fs::read_to_string(self.config()).map_err(|e| file_err(&self.config(), e))
    }

    /// Writes the resolved config.
    pub fn write_config(&self, toml: &str) -> Result<(), NnError> {
        std::fs::write(self.config(), toml).map_err(|e| file_err(&self.config(), e))
    }
}

/// What the caller sees while a training loop runs (progress bars, logs).
pub trait TrainObserver {
    fn start(&mut self, _start_iteration: usize, _total: usize) {}
    fn step(&mut self, _iteration: usize, _loss: f64, _images_per_s: f64) {}
    fn log(&mut self, _m: &crate::pretrain::Metrics) {}
    fn message(&mut self, _msg: &str) {}
}

/// An observer that does nothing.
pub struct Silent;
impl TrainObserver for Silent {}

/// The metrics log `metrics.jsonl`, opened for appending.
pub struct MetricsLog {
    path: PathBuf,
    file: std::fs::File,
}

impl MetricsLog {
    /// Opens the log; `resumed_at`: the iteration of the checkpoint a run resumes from (lines
    /// past it are dropped and will be recomputed).
    pub fn open(path: &Path, resumed_at: Option<usize>) -> Result<Self, NnError> {
        if let Some(it) = resumed_at {
            truncate_metrics(path, it)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| file_err(path, e))?;
        Ok(Self { path: path.to_owned(), file })
    }

    /// Appends one line.
    pub fn append<T: Serialize>(&mut self, row: &T) -> Result<(), NnError> {
        let line = serde_json::to_string(row).map_err(|e| file_err(&self.path, e))?;
        writeln!(self.file, "{line}").map_err(|e| file_err(&self.path, e))
    }
}

/// Keeps the metrics lines up to `iteration`.
pub fn truncate_metrics(path: &Path, iteration: usize) -> Result<(), NnError> {
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
    std::fs::write(path, s).map_err(|e| file_err(path, e))
}

/// Reads a metrics log (one `T` per line).
pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, NnError> {
    let text = std::fs::read_to_string(path).map_err(|e| file_err(path, e))?;
    text.lines()
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| file_err(path, format!("line {}: {e}", i + 1))))
        .collect()
}

/// The config of the run a checkpoint belongs to: `given`, else the run folder's config.toml
/// (`RUN_DIR/checkpoints/X.safetensors` -> `RUN_DIR/config.toml`, or a config.toml beside the
/// checkpoint). Returns the file's path and text.
pub fn config_of_checkpoint(ck: &Path, given: Option<&Path>) -> Result<(PathBuf, String), NnError> {
    let candidates: Vec<PathBuf> = match given {
        Some(p) => vec![p.to_owned()],
        None => {
            let dir = ck.parent().unwrap_or(Path::new("."));
            vec![dir.join("../config.toml"), dir.join("config.toml")]
        }
    };
    for c in &candidates {
        if c.is_file() {
            let text = std::fs::read_to_string(c).map_err(|e| file_err(c, e))?;
            return Ok((c.clone(), text));
        }
    }
    Err(file_err(
        ck,
        format!(
            "no run config: expected the run's config.toml at {} (or pass --config)",
            candidates[0].display()
        ),
    ))
}
