//! `colorproxy pretrain`: colorization pretraining (the paper's section 3).

use crate::{bail, Context};
use colorproxy_nn::pretrain::{read_metrics, PretrainRun};
use colorproxy_nn::run_dir::RunPaths;
use colorproxy_nn::PretrainConfig;

use crate::request::PretrainRequest;
use crate::session::{exit_interrupted, Session};

/// Resolves the config: preset or file, then command-line overrides.
pub fn resolve_config(a: &PretrainRequest) -> crate::Result<PretrainConfig> {
    let mut cfg = match (&a.preset, &a.config) {
        (Some(p), None) => PretrainConfig::preset(p)?,
        (None, Some(f)) => PretrainConfig::from_toml(
            &std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
        )
        .with_context(|| format!("{}: invalid config", f.display()))?,
        (None, None) => PretrainConfig::preset("cpu-small")?,
        (Some(_), Some(_)) => bail!("give --preset or --config, not both"),
    };
    if let Some(n) = a.iterations {
        // The schedule moves with the run length (drops and snapshots keep their fraction); on
        // --resume the saved schedule is kept.
        if !a.resume {
            cfg = cfg.with_iterations(n);
        } else {
            cfg.iterations = n;
        }
    }
    if let Some(s) = a.seed {
        cfg.seed = s;
    }
    if let Some(w) = a.workers {
        cfg.data.workers = w;
    }
    if let Some(t) = a.threads {
        cfg.threads = t;
    }
    cfg.validate()?;
    Ok(cfg)
}

/// Runs a colorization pretraining: the resolved config on the data, rank 0 reporting progress and
/// writing the loss curve. An interrupted run exits with 130/143 after its checkpoint.
pub fn run(a: PretrainRequest) -> crate::Result<()> {
    let cfg = resolve_config(&a)?;
    let session = Session::start(a.device.as_deref())?;
    let pb = session.bar(cfg.iterations, "pretrain");
    let ranks = session
        .dist
        .as_ref()
        .map(|pg| {
            let per_rank = cfg.data.batch_size / pg.size().max(1);
            format!(" x {} ranks ({}; {per_rank} images per rank and step)", pg.size(), pg.backend())
        })
        .unwrap_or_default();
    session.say(
        &pb,
        &format!(
            "pretrain {} (width {}), {} iterations of batch {} at {}x{}, on {:?}{ranks} -> {}",
            cfg.model.arch,
            cfg.model.width,
            cfg.iterations,
            cfg.data.batch_size,
            cfg.data.augment.crop,
            cfg.data.augment.crop,
            session.device,
            a.out.display()
        ),
    );
    session.say(&pb, &format!("schedule: {}", cfg.schedule_summary()));
    let mut observer = session.observer(&pb);
    let summary = PretrainRun {
        config: cfg,
        data_dir: a.data.clone(),
        out: a.out.clone(),
        resume: a.resume,
        force: a.force,
        device: session.device,
        interrupt: session.interrupt.clone(),
        observer: observer.as_mut(),
        dist: session.dist.as_ref(),
    }
    .run()?;
    pb.finish_and_clear();
    if session.other_rank_done(summary.interrupted) {
        return Ok(());
    }
    let paths = RunPaths::new(&a.out);
    let metrics = read_metrics(&paths.metrics())?;
    crate::report::loss_curve(&metrics, &a.out.join("loss.png"))?;
    let first = metrics.first().map(|m| m.loss).unwrap_or(f64::NAN);
    let last = metrics.last().map(|m| m.loss).unwrap_or(f64::NAN);
    println!(
        "{} at iteration {} after {:.1}s: loss {first:.4} (first log) -> {last:.4} (last), {} images skipped; {}",
        if summary.interrupted { "interrupted" } else { "done" },
        summary.iterations_done,
        summary.seconds,
        summary.skipped_images,
        paths.last_weights().display()
    );
    if summary.interrupted {
        eprintln!("continue with the same command and --resume");
        exit_interrupted();
    }
    Ok(())
}
