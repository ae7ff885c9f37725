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

/// The process group of a data-parallel run (launched by torchrun, Slurm or `colorproxy
/// launch`), and the device of this rank: `cuda:LOCAL_RANK` when the run is on a GPU.
pub fn process_group(
    device: tch::Device,
) -> anyhow::Result<(Option<colorproxy_dist::ProcessGroup>, tch::Device)> {
    let Some(env) = colorproxy_dist::DistEnv::from_env()? else { return Ok((None, device)) };
    let (backend, device, cuda) = match device {
        tch::Device::Cuda(_) => ("nccl", tch::Device::Cuda(env.local_rank), Some(env.local_rank)),
        d => ("gloo", d, None),
    };
    let pg = colorproxy_dist::ProcessGroup::new(backend, &env, env.timeout, cuda)
        .with_context(|| format!("joining the {}-rank job ({backend})", env.world_size))?;
    Ok((Some(pg), device))
}

pub fn run(a: PretrainArgs) -> anyhow::Result<()> {
    let cfg = resolve_config(&a)?;
    let (dist, device) = process_group(parse_device(a.device.as_deref())?)?;
    let rank0 = dist.as_ref().is_none_or(|pg| pg.rank() == 0);
    let interrupt = progress::interrupt_flag();
    let pb = if rank0 {
        progress::bar(cfg.iterations as u64, "pretrain")
    } else {
        indicatif::ProgressBar::hidden()
    };
    if rank0 {
        pb.println(format!(
            "pretrain {} (width {}), {} iterations of batch {} at {}x{}, on {:?}{} -> {}",
            cfg.model.arch,
            cfg.model.width,
            cfg.iterations,
            cfg.data.batch_size,
            cfg.data.augment.crop,
            cfg.data.augment.crop,
            device,
            dist.as_ref()
                .map(|pg| format!(
                    " x {} ranks ({}; {} images per rank and step)",
                    pg.size(),
                    pg.backend(),
                    cfg.data.batch_size / pg.size().max(1)
                ))
                .unwrap_or_default(),
            a.out.display()
        ));
        pb.println(format!("schedule: {}", cfg.schedule_summary()));
    }
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
        dist: dist.as_ref(),
    }
    .run()?;
    pb.finish_and_clear();
    if !rank0 {
        if summary.interrupted {
            std::process::exit(progress::interrupt_exit_code());
        }
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
        std::process::exit(progress::interrupt_exit_code());
    }
    Ok(())
}
