//! Running one planned run of a recipe: reused when finished (`done.json`), resumed from its
//! checkpoint when interrupted, started over when it has none; `done.json` written atomically at
//! the end with the run's scores, iterations, seconds and key.
use std::path::{Path, PathBuf};
use std::time::Instant;

use colorproxy_nn::atomic_io::write_json;
use colorproxy_nn::pretrain::PretrainRun;
use colorproxy_nn::run_dir::{generations, Resume, RunPaths};
use colorproxy_nn::transfer::Task;

use super::plan::{Config, FinetunePlan, Plan, PretrainData, PretrainPlan};
use crate::request::FinetuneRequest;
use crate::session::{interrupted_error, Session};
use crate::{bail, Context};

/// A finished run's record (`RUN/done.json`).
pub const DONE: &str = "done.json";

/// The state of a run folder.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    Done,
    /// Interrupted: resumes from the checkpoint at this iteration.
    Partial(usize),
    Todo,
}

pub fn status(dir: &Path) -> Status {
    if dir.join(DONE).is_file() {
        return Status::Done;
    }
    match generations(&RunPaths::new(dir)).last() {
        Some((it, _)) => Status::Partial(*it),
        None => Status::Todo,
    }
}

/// Resume flags for a run folder: (resume, force). A folder keyed by the run's config hash holds
/// this run: resumed from its checkpoint, or started over if it holds only an unfinished start.
fn start_mode(dir: &Path) -> (Resume, bool) {
    let resume = !generations(&RunPaths::new(dir)).is_empty();
    (if resume { Resume::Yes } else { Resume::No }, !resume && dir.exists())
}

fn write_pool(list: &Path, sources: &[(PathBuf, Option<String>)]) -> crate::Result<()> {
    let mut files = Vec::new();
    for (path, split) in sources {
        match split {
            None => files.extend(colorproxy_data::ImageSource::open(path)?.files),
            Some(split) => {
                // The images of a VOC split (used without their labels).
                let lists = ["Segmentation", "Main"]
                    .map(|d| path.join("ImageSets").join(d).join(format!("{split}.txt")));
                let list = lists.iter().find(|l| l.is_file()).with_context(|| {
                    format!(
                        "{}: no split {split} (ImageSets/Segmentation or Main/{split}.txt)",
                        path.display()
                    )
                })?;
                let text =
                    std::fs::read_to_string(list).with_context(|| format!("reading {}", list.display()))?;
                let ids = text.lines().map(str::trim).filter(|l| !l.is_empty());
                files.extend(ids.map(|id| path.join("JPEGImages").join(format!("{id}.jpg"))));
            }
        }
    }
    // Absolute paths: a list's relative paths are read relative to the list's own folder.
    let mut text = String::new();
    for f in &files {
        let abs = std::fs::canonicalize(f).with_context(|| format!("{}: no such image", f.display()))?;
        text.push_str(&format!("{}\n", abs.display()));
    }
    if let Some(d) = list.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(list, text).with_context(|| format!("writing {}", list.display()))
}

pub(super) fn run_pretrain(p: &PretrainPlan, device_arg: &Option<String>) -> crate::Result<()> {
    let device = colorproxy_nn::parse_device(device_arg.as_deref())?;
    if status(&p.dir) == Status::Done {
        eprintln!("    finished earlier: reused");
        return Ok(());
    }
    let t0 = Instant::now();
    if let PretrainData::Pooled { list, sources } = &p.data {
        write_pool(list, sources)?;
    }
    let (resume, force) = start_mode(&p.dir);
    let done = match &p.config {
        Config::Color(c) => {
            let session = Session::local(device);
            let pb = session.bar(c.iterations, &p.name);
            let mut observer = session.observer(&pb);
            let s = PretrainRun {
                config: (**c).clone(),
                data_dir: p.data.path().to_path_buf(),
                out: p.dir.clone(),
                resume,
                force,
                device,
                interrupt: session.interrupt.clone(),
                observer: observer.as_mut(),
                dist: None,
            }
            .run()?;
            pb.finish_and_clear();
            if s.interrupted {
                eprintln!("interrupted; rerun the same command to continue");
                return Err(interrupted_error());
            }
            let metrics = colorproxy_nn::pretrain::read_metrics(&RunPaths::new(&p.dir).metrics())?;
            crate::report::loss_curve(&metrics, &p.dir.join("loss.png"))?;
            serde_json::json!({"kind": "colorization", "iterations": s.iterations_done,
                "final_loss": s.final_loss, "seconds": t0.elapsed().as_secs_f64(), "key": p.key})
        }
        Config::Supervised(c) => {
            let mut args = finetune_args(Task::Cls, p.data.path(), &p.dir, "train", "val", resume, force);
            args.device = device_arg.clone();
            crate::finetune::finetune_resolved(args, (**c).clone())?;
            let mut v = read_results(&p.dir).unwrap_or(serde_json::json!({}));
            v["kind"] = "supervised".into();
            v["seconds"] = t0.elapsed().as_secs_f64().into();
            v["key"] = p.key.clone().into();
            v
        }
    };
    Ok(write_json(&p.dir.join(DONE), &done)?)
}

fn read_results(dir: &Path) -> crate::Result<serde_json::Value> {
    let p = dir.join("results.json");
    Ok(serde_json::from_str(
        &std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?,
    )?)
}

fn finetune_args(
    task: Task,
    data: &Path,
    out: &Path,
    train: &str,
    eval: &str,
    resume: Resume,
    force: bool,
) -> FinetuneRequest {
    FinetuneRequest {
        resume,
        force,
        train_split: train.into(),
        eval_split: eval.into(),
        ..FinetuneRequest::new(task, data, out)
    }
}

pub(super) fn run_finetune(f: &FinetunePlan, plan: &Plan, device: &Option<String>) -> crate::Result<()> {
    if status(&f.dir) == Status::Done {
        eprintln!("    finished earlier: reused");
        return Ok(());
    }
    let t0 = Instant::now();
    let mut cfg = f.config.clone();
    if let Some((k, at)) = f.from {
        let p = &plan.pretrain[k];
        if status(&p.dir) != Status::Done {
            bail!("pretraining {} has not finished (run it first, e.g. without --only)", p.name);
        }
        let paths = RunPaths::new(&p.dir);
        let ck = at.map(|it| paths.snapshot(it)).unwrap_or_else(|| paths.last_weights());
        if !ck.is_file() {
            bail!("{}: no such checkpoint", ck.display());
        }
        cfg.init = ck.to_string_lossy().into_owned();
    }
    // The early-stopping run is finished when its schedule is written (a retrain may follow).
    let early_done =
        colorproxy_nn::early_stop::schedule_path(&f.dir).is_file() && f.dir.join("results.json").is_file();
    if !(f.retrain_full && early_done) {
        let (resume, force) = start_mode(&f.dir);
        let mut args = finetune_args(f.task, &f.data, &f.dir, &f.train_split, &f.eval_split, resume, force);
        args.device = device.clone();
        crate::finetune::finetune_resolved(args, cfg.clone())?;
    }
    let mut v = read_results(&f.dir)?;
    if f.retrain_full {
        // On 100% of the training split with the schedule found, in RUN/full; its score is the row's.
        let full = colorproxy_nn::early_stop::retrain_full_dir(&f.dir);
        let (resume, force) = start_mode(&full);
        let mut args = finetune_args(f.task, &f.data, &f.dir, &f.train_split, &f.eval_split, resume, force);
        (args.device, args.retrain_full) = (device.clone(), true);
        crate::finetune::finetune_resolved(args, cfg)?;
        let early = v["value"].clone();
        v = read_results(&full)?;
        v["early_stopping_value"] = early;
    }
    let schedule = colorproxy_nn::early_stop::read_schedule(&f.dir).ok();
    v["iterations"] = schedule.map(|s| s.stop).into();
    v["seconds"] = t0.elapsed().as_secs_f64().into();
    v["key"] = f.key.clone().into();
    Ok(write_json(&f.dir.join(DONE), &v)?)
}
