//! The runs of a recipe taken one at a time by one or more workers: this process alone, or
//! `--workers N` threads (the demo: two), beside any other processes running the same recipe
//! into the same folder (their claims, [`super::claim`], keep each run to one claimant).
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};

use super::plan::{self, Plan};
use super::{claim, runner, status, Status};
use crate::Context;

/// A run of the plan: a pretraining or a fine-tuning (indices into the plan).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Job {
    Pretrain(usize),
    Finetune(usize),
}

/// The selected runs not taken yet, shared by the workers of this process (`--workers`, the
/// demo's side-by-side runs). A worker takes the first run it can start: a fine-tuning waits
/// while its pretraining is still to run or running (here, in a sibling worker or in another
/// process); a run another process holds (`RUN.claim`) is left to it.
pub(super) struct Queue<'a> {
    plan: &'a Plan,
    device: &'a Option<String>,
    pending: Mutex<Vec<Job>>,
    /// Pretrainings selected (`--only`): one whose holder died is taken over.
    selected: BTreeSet<usize>,
    total: usize,
    taken: AtomicUsize,
    /// Set when a worker fails: the others stop after their current run.
    abort: AtomicBool,
    /// Workers side by side: a run with libtorch's default threads (`threads = 0`) runs alone
    /// (write), the others side by side (read), each setting its own count on its own thread. A
    /// run that sets none would take whatever count the process's thread pool was last given, and
    /// its result (the last bits, then everything) would depend on timing.
    side_by_side: Option<RwLock<()>>,
    workers: usize,
}

/// libtorch's threads before any queue of this process set them: what a run with `threads = 0`
/// gets, whatever ran before it.
fn default_threads() -> i32 {
    static DEFAULT: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
    *DEFAULT.get_or_init(tch::get_num_threads)
}

/// Sets the queue's abort flag when its worker thread unwinds from a panic, so that the siblings
/// stop after their current run instead of working through the queue.
struct AbortOnPanic<'a>(&'a AtomicBool);

impl Drop for AbortOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

impl<'a> Queue<'a> {
    pub(super) fn new(
        plan: &'a Plan,
        pre: &BTreeSet<usize>,
        ft: &BTreeSet<usize>,
        device: &'a Option<String>,
        workers: usize,
    ) -> Self {
        default_threads(); // read before this process's first run sets any
        let jobs: Vec<Job> =
            pre.iter().map(|&i| Job::Pretrain(i)).chain(ft.iter().map(|&i| Job::Finetune(i))).collect();
        Queue {
            plan,
            device,
            total: jobs.len(),
            pending: Mutex::new(jobs),
            selected: pre.clone(),
            taken: AtomicUsize::new(0),
            abort: AtomicBool::new(false),
            side_by_side: (workers > 1).then(|| RwLock::new(())),
            workers,
        }
    }

    /// Runs the selected runs with the queue's workers (threads when more than one); returns
    /// how many were left to other processes.
    pub(super) fn run(&self) -> crate::Result<usize> {
        if self.workers <= 1 {
            return self.work();
        }
        std::thread::scope(|scope| {
            let handles: Vec<_> = (1..=self.workers as u32)
                .map(|w| {
                    scope.spawn(move || {
                        claim::set_worker(w);
                        let _guard = AbortOnPanic(&self.abort);
                        let r = self.work();
                        if let Err(e) = &r {
                            eprintln!("worker {w}: {e}; the other workers stop after their current run");
                            self.abort.store(true, Ordering::SeqCst);
                        }
                        r
                    })
                })
                .collect();
            let mut elsewhere = 0;
            let mut first = None;
            for h in handles {
                match h.join() {
                    Ok(Ok(n)) => elsewhere += n,
                    Ok(Err(e)) => _ = first.get_or_insert(e),
                    Err(_) => _ = first.get_or_insert(crate::RunError::msg("a worker thread panicked")),
                }
            }
            first.map_or(Ok(elsewhere), Err)
        })
    }

    /// libtorch threads a run sets (0: it keeps the process's).
    fn threads(&self, job: Job) -> usize {
        match job {
            Job::Pretrain(i) => match &self.plan.pretrain[i].config {
                plan::Config::Color(c) => c.threads,
                plan::Config::Supervised(c) => c.threads,
            },
            Job::Finetune(i) => self.plan.finetune[i].config.threads,
        }
    }

    /// Runs a claimed job: alone when it keeps libtorch's default threads and siblings exist.
    fn run_job(&self, job: Job) -> crate::Result<()> {
        let poisoned = || crate::RunError::msg("a worker panicked");
        let _turn = match &self.side_by_side {
            None => None,
            Some(l) if self.threads(job) == 0 => Some(Err(l.write().map_err(|_| poisoned())?)),
            Some(l) => Some(Ok(l.read().map_err(|_| poisoned())?)),
        };
        if self.abort.load(Ordering::SeqCst) {
            // A sibling failed while this run waited for its turn.
            return Ok(());
        }
        if self.threads(job) == 0 {
            tch::set_num_threads(default_threads());
        }
        match job {
            Job::Pretrain(i) => runner::run_pretrain(&self.plan.pretrain[i], self.device),
            Job::Finetune(i) => runner::run_finetune(&self.plan.finetune[i], self.plan, self.device),
        }
    }

    /// Whether `job` can start now. A fine-tuning whose pretraining is unfinished waits while that
    /// pretraining is pending here or held by a live claimant; one whose holder died is queued
    /// again (taken over) when it is selected, else the fine-tuning starts and says what is missing.
    fn ready(&self, job: Job, pending: &mut Vec<Job>) -> bool {
        let Job::Finetune(i) = job else { return true };
        let Some((k, _)) = self.plan.finetune[i].from else { return true };
        let dir = &self.plan.pretrain[k].dir;
        if status(dir) == Status::Done {
            return true;
        }
        if pending.contains(&Job::Pretrain(k)) || claim::holder(dir).is_some() {
            return false;
        }
        if self.selected.contains(&k) {
            pending.insert(0, Job::Pretrain(k));
            return false;
        }
        true
    }

    /// Takes runs until none is left; returns how many were left to other processes.
    fn work(&self) -> crate::Result<usize> {
        let mut left = Vec::new();
        let elsewhere = |left: &Vec<&Path>| left.iter().filter(|d| status(d) != Status::Done).count();
        let mut told_waiting = false;
        loop {
            if self.abort.load(Ordering::SeqCst) {
                return Ok(elsewhere(&left));
            }
            let next = {
                let mut pending =
                    self.pending.lock().map_err(|_| crate::RunError::msg("a worker panicked"))?;
                if pending.is_empty() {
                    return Ok(elsewhere(&left));
                }
                let mut found = None;
                for at in 0..pending.len() {
                    let job = pending[at];
                    if self.ready(job, &mut pending) {
                        let at = pending.iter().position(|&j| j == job).unwrap_or(at);
                        found = Some(pending.remove(at));
                        break;
                    }
                }
                found
            };
            let Some(job) = next else {
                if crate::progress::interrupt_requested() {
                    return Err(crate::session::interrupted_error());
                }
                if !told_waiting {
                    eprintln!("    waiting for pretraining(s) still running before fine-tuning from them");
                    told_waiting = true;
                }
                std::thread::sleep(std::time::Duration::from_secs(1));
                continue;
            };
            told_waiting = false;
            let k = self.taken.fetch_add(1, Ordering::SeqCst) + 1;
            let dir = match job {
                Job::Pretrain(i) => {
                    let p = &self.plan.pretrain[i];
                    eprintln!(
                        "[{k}/{}] pretraining {} ({:?}) -> {}",
                        self.total,
                        p.name,
                        p.kind,
                        p.dir.display()
                    );
                    &p.dir
                }
                Job::Finetune(i) => {
                    let f = &self.plan.finetune[i];
                    eprintln!(
                        "[{k}/{}] fine-tuning {} from {}, seed {} -> {}",
                        self.total,
                        f.name,
                        f.init,
                        f.seed,
                        f.dir.display()
                    );
                    &f.dir
                }
            };
            match claim::claim(dir).with_context(|| format!("claiming {}", dir.display()))? {
                claim::Outcome::Held(_claim) => self.run_job(job)?,
                claim::Outcome::Busy(h) => {
                    eprintln!("    held by {h}: left to it ({})", claim::claim_path(dir).display());
                    left.push(dir.as_path());
                }
            }
        }
    }
}
