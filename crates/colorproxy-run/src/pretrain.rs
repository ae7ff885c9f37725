//! `colorproxy pretrain`: colorization pretraining (the paper's section 3).

use crate::{bail, Context};
use colorproxy_nn::pretrain::{read_metrics, PretrainRun};
use colorproxy_nn::run_dir::RunPaths;
use colorproxy_nn::PretrainConfig;

use crate::request::PretrainRequest;
use crate::session::{interrupted_error, Session};

/// Resolves the config: preset or file, then the command line (`--iterations`, `--batch-size`,
/// `--lr`, `--workers`, `--threads`, `--seed`, then every `--set`), then the job's world size and
/// the batch rule. The same command gives the same config, so it resumes its own run; on resume
/// the saved learning-rate drops and snapshots are kept (only `--iterations` may change).
pub fn resolve_config(a: &PretrainRequest) -> crate::Result<PretrainConfig> {
    resolve_config_for(a, crate::session::world_size()?)
}

/// [`resolve_config`] for a job of `world_size` processes given explicitly (the Python package's
/// loader, `colorproxy data batches`) instead of read from the environment.
pub fn resolve_config_for(a: &PretrainRequest, world_size: usize) -> crate::Result<PretrainConfig> {
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
        // The schedule moves with the run length (drops and snapshots keep their fraction).
        cfg = cfg.with_iterations(n);
    }
    if let Some(s) = a.seed {
        cfg.seed = s;
    }
    if let Some(b) = a.batch_size {
        cfg.data.batch_size = b;
    }
    if let Some(lr) = a.lr {
        // The learning rate as typed: the batch rule is off for it.
        (cfg.optim.lr, cfg.optim.lr_scaling) = (lr, colorproxy_nn::config::LrScaling::None);
    }
    if let Some(w) = a.workers {
        cfg.data.workers = w;
    }
    if let Some(t) = a.threads {
        cfg.threads = t;
    }
    if let Some(c) = crate::overrides::resolve(&cfg.to_toml(), &a.set, PretrainConfig::from_toml)? {
        cfg = c;
    }
    if a.resume.requested() {
        keep_saved_length(&mut cfg, a)?;
    }
    cfg.for_world_size(world_size);
    cfg.validate()?;
    cfg.optim.check_lr_bound()?;
    Ok(cfg)
}

/// A resumed run keeps its saved length, learning-rate drops and snapshots: `config.toml` keeps
/// describing the weights. `--iterations` may extend the run, not cut it below the iterations it
/// has done (an error naming both numbers).
fn keep_saved_length(cfg: &mut PretrainConfig, a: &PretrainRequest) -> crate::Result<()> {
    let paths = RunPaths::new(&a.out);
    let Ok(text) = std::fs::read_to_string(paths.config()) else { return Ok(()) };
    let Ok(saved) = PretrainConfig::from_toml(&text) else { return Ok(()) };
    let done = colorproxy_nn::run_dir::generations(&paths).first().map_or(0, |g| g.0);
    // A length given with --set counts as given.
    let set_length = a.set.iter().any(|s| s.trim_start().starts_with("iterations"));
    match a.iterations.or(set_length.then_some(cfg.iterations)) {
        None => cfg.iterations = saved.iterations,
        Some(n) if n < done => bail!(
            "--iterations {n} is shorter than the {done} iterations the run in {} has done; \
             give --iterations {done} or more, or leave it out to keep the run's {}",
            a.out.display(),
            saved.iterations
        ),
        Some(_) => {}
    }
    (cfg.optim.lr_drops, cfg.snapshots) = (saved.optim.lr_drops, saved.snapshots);
    Ok(())
}

/// Runs a colorization pretraining: the resolved config on the data, rank 0 reporting progress and
/// writing the loss curve; returns what was done (`None` for a dry run). An interrupted run
/// returns [`crate::RunError::Interrupted`] after its checkpoint.
pub fn run(a: PretrainRequest) -> crate::Result<Option<colorproxy_nn::pretrain::PretrainSummary>> {
    let cfg = resolve_config(&a)?;
    if colorproxy_dist::DistEnv::from_env()?.is_none_or(|e| e.rank == 0) {
        cfg.schedule_warnings().iter().for_each(|w| eprintln!("{w}"));
    }
    if a.dry_run {
        let device = colorproxy_nn::parse_device(a.device.as_deref())?;
        crate::cost::pretrain_plan(&cfg, &a.data, device)?;
        return Ok(None);
    }
    let session = Session::start(a.device.as_deref())?;
    let pb = session.bar(cfg.iterations, "pretrain");
    session.say(
        &pb,
        &format!(
            "pretrain {} (width {}), {} iterations of {} images ({} per process x {} process(es){}) at {}x{}, on {} -> {}",
            cfg.model.arch,
            cfg.model.width,
            cfg.iterations,
            cfg.total_batch,
            cfg.data.batch_size,
            cfg.world_size,
            session.backend_note(),
            cfg.data.augment.crop,
            cfg.data.augment.crop,
            session.device_name(),
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
    if session.other_rank_done(summary.interrupted)? {
        return Ok(Some(summary));
    }
    let paths = RunPaths::new(&a.out);
    let metrics = read_metrics(&paths.metrics())?;
    crate::report::loss_curve(&metrics, &a.out.join("loss.png"))?;
    let loss = match (metrics.first(), metrics.last()) {
        (Some(f), Some(l)) => format!("loss {:.4} (first log) -> {:.4} (last)", f.loss, l.loss),
        _ => "no loss logged yet".to_string(),
    };
    if summary.trained == 0 && !summary.interrupted {
        println!(
            "done at iteration {}: the run had already finished, nothing was trained ({loss}; --iterations N \
             with --resume extends it); {}",
            summary.iterations_done,
            paths.last_weights().display()
        );
        return Ok(Some(summary));
    }
    println!(
        "{} at iteration {} after {:.1}s: {loss}, {} images skipped; {}",
        if summary.interrupted { "interrupted" } else { "done" },
        summary.iterations_done,
        summary.seconds,
        summary.skipped_images,
        paths.last_weights().display()
    );
    if summary.interrupted {
        eprintln!("continue with the same command and --resume (or --resume auto)");
        return Err(interrupted_error());
    }
    Ok(Some(summary))
}
