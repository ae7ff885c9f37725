//! The start of a training run, shared by pretraining and fine-tuning: rank 0 takes the run folder
//! (lock; fresh, resume or overwrite; the data record; a resumed run's config checked), then, on
//! resume, every rank loads the newest complete checkpoint (rank 0 first: it may repair the
//! folder), and a data-parallel job starts from rank 0's weights.
use colorproxy_dist::ProcessGroup;
use serde::Deserialize;
use tch::nn::VarStore;

use crate::checkpoint;
use crate::data_parallel;
use crate::optim::Sgd;
use crate::run_dir::{DataRecord, Resume, RunLock, RunPaths};
use crate::NnError;

/// Where and how a run starts.
pub struct RunStart<'a> {
    pub paths: &'a RunPaths,
    /// Continue from the newest complete checkpoint (`Auto`: when there is one).
    pub resume: Resume,
    /// Start over in a folder that holds a run.
    pub force: bool,
    /// The job's process group (`None`: one process).
    pub dist: Option<&'a ProcessGroup>,
}

impl RunStart<'_> {
    /// Rank 0 (or the only process): the one that owns the folder.
    pub fn rank0(&self) -> bool {
        data_parallel::is_rank0(self.dist)
    }

    /// Takes the folder on rank 0 (`check_config` sees a resumed run's folder); the lock is held
    /// for the run. Other ranks take nothing. Every rank learns whether the run resumes (rank 0
    /// decides `Resume::Auto` and broadcasts it). Call after every input was validated: `--force`
    /// deletes the earlier run here.
    pub fn take_folder(
        &self,
        data: &DataRecord,
        check_config: impl Fn(&RunPaths) -> Result<(), NnError>,
    ) -> Result<(Option<RunLock>, bool), NnError> {
        let (lock, resumed) = if self.rank0() {
            let (lock, resumed) = self.paths.take(self.resume, self.force, data, check_config)?;
            (Some(lock), resumed)
        } else {
            (None, self.resume == Resume::Yes)
        };
        let resumed = match (self.dist, self.resume) {
            (Some(_), Resume::Auto) => {
                data_parallel::broadcast_scalar(self.dist, resumed as u8 as f64)? > 0.5
            }
            _ => resumed,
        };
        Ok((lock, resumed))
    }

    /// If `resumed`, the training state of the newest complete checkpoint, its weights and
    /// optimiser state loaded into `vs` and `sgd` (`fresh` otherwise); then a job's ranks get rank
    /// 0's weights. `say` hears what happened (on rank 0 only).
    pub fn load<S: for<'de> Deserialize<'de>>(
        &self,
        resumed: bool,
        vs: &mut VarStore,
        sgd: &mut Sgd,
        fresh: S,
        iteration: impl Fn(&S) -> usize,
        say: &mut dyn FnMut(&str),
    ) -> Result<S, NnError> {
        let rank0 = self.rank0();
        let mut state = fresh;
        data_parallel::rank0_first(self.dist, rank0, || {
            if resumed {
                let mut warn = |m: &str| {
                    if rank0 {
                        say(m)
                    }
                };
                state = checkpoint::load_resumable(self.paths, vs, sgd, &iteration, &mut warn)?;
                if rank0 {
                    say(&format!("resuming at iteration {}", iteration(&state)));
                }
            }
            Ok(())
        })?;
        if let Some(pg) = self.dist {
            colorproxy_dist::ddp::broadcast_variables(pg, vs)?;
        }
        Ok(state)
    }
}
