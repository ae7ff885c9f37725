//! `colorproxy pretrain`: colorization pretraining (the paper's section 3).

use anyhow::Context;
use colorproxy_nn::pretrain::{read_metrics, PretrainRun};
use colorproxy_nn::run_dir::RunPaths;
use colorproxy_nn::{parse_device, PretrainConfig};

use crate::cli::PretrainArgs;
use crate::progress;

/// Resolves the config: preset or file, then command-line overrides.
pub fn resolve_config(a: &PretrainArgs) -> anyhow::Result<PretrainConfig> {
    let mut cfg = match (&a.preset, &a.config) {
        (Some(p), None) => PretrainConfig::preset(p)?,
        (None, Some(f)) => PretrainConfig::from_toml(
            &std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
        )
        .with_context(|| format!("{}: invalid config", f.display()))?,
        (None, None) => PretrainConfig::preset("cpu-small")?,
        (Some(_), Some(_)) => anyhow::bail!("give --preset or --config, not both"),
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

pub fn run(a: PretrainArgs) -> anyhow::Result<()> {
    let cfg = resolve_config(&a)?;
    let device = parse_device(a.device.as_deref())?;
    let interrupt = progress::interrupt_flag();
    let pb = progress::bar(cfg.iterations as u64, "pretrain");
    pb.println(format!(
        "pretrain {} (width {}), {} iterations of batch {} at {}x{}, on {:?} -> {}",
        cfg.model.arch,
        cfg.model.width,
        cfg.iterations,
        cfg.data.batch_size,
        cfg.data.augment.crop,
        cfg.data.augment.crop,
        device,
        a.out.display()
    ));
    pb.println(format!("schedule: {}", cfg.schedule_summary()));
    let mut obs = crate::progress::BarObserver(pb.clone());
    let summary = PretrainRun {
        config: cfg,
        data_dir: a.data.clone(),
        out: a.out.clone(),
        resume: a.resume,
        force: a.force,
        device,
        interrupt,
        observer: &mut obs,
    }
    .run()?;
    pb.finish_and_clear();
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
        std::process::exit(progress::interrupt_exit_code());
    }
    Ok(())
}
