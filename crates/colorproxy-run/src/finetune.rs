//! Fine-tuning (`colorproxy finetune cls|seg`, and supervised pretraining, which is a fine-tuning
//! of single-label classification from random init): the request resolved into a config, the
//! run, its final evaluation.
use std::path::Path;

use colorproxy_nn::early_stop;
use colorproxy_nn::run_dir::RunPaths;
use colorproxy_nn::transfer::{FinetuneRun, OnBad, Task, TransferConfig};

use crate::request::{FinetuneRequest, SupervisedRequest};
use crate::session::{interrupted_error, Session};
use crate::{bail, Context};

/// What a fine-tuning starts from, for its config: whose architecture and widths it takes.
pub(crate) enum InitModel<'a> {
    /// `init` is `random` or a checkpoint on disk: read from it (its run config beside it, or a
    /// torchvision state dict's names).
    Read,
    /// A recipe's pretraining that has not run yet (planning, a dry run): its model config. Not
    /// rebalanced by default (colorproxy's pretrainings are BN-trained and absorbed).
    Planned(&'a colorproxy_nn::config::ModelConfig),
    /// A weights file that is not there yet (a dry run with a placeholder path): the config's
    /// own backbone.
    Unread,
}

/// Resolves the fine-tuning config: the preset (or config file) with every `--set` override, the
/// init checkpoint's backbone, flags, the seed, the cap, then the overrides again. Applied first,
/// what follows from an override follows (`model.arch=alexnet`: AlexNet's hypercolumn, its
/// rebalancing default); applied last, no later step changes it (the cap scales the preset's
/// `early_stop.eval_every`, not one given). `colorproxy finetune`, the recipe runner and the demo
/// all resolve through it: the same inputs train the same weights, however a run is started
/// (tested).
pub fn resolve(a: &FinetuneRequest) -> crate::Result<TransferConfig> {
    let t = a.task;
    let name = match &a.preset {
        Some(p) => p.clone(),
        None => default_preset(t, &a.init, a.config.is_none()),
    };
    let cfg = match &a.config {
        Some(f) => TransferConfig::from_toml(
            &std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
        )
        .with_context(|| format!("{}: invalid fine-tuning config", f.display()))?,
        None => TransferConfig::preset(&name)?,
    };
    if cfg.task != t {
        bail!("preset {name} is for the other task");
    }
    if a.init != "random" && !Path::new(&a.init).is_file() {
        bail!("--init {}: no such checkpoint (or use --init random)", a.init);
    }
    resolve_from(cfg, a, InitModel::Read)
}

/// [`resolve`] from a base config already read (the preset or config file).
pub(crate) fn resolve_from(
    cfg: TransferConfig,
    a: &FinetuneRequest,
    init: InitModel,
) -> crate::Result<TransferConfig> {
    let overridden = |cfg: TransferConfig| -> crate::Result<TransferConfig> {
        Ok(crate::overrides::resolve(&cfg.to_toml(), &a.set, TransferConfig::from_toml)?.unwrap_or(cfg))
    };
    let cfg = overridden(cfg)?;
    let mut cfg = match init {
        InitModel::Read => cfg.with_init(&a.init)?,
        InitModel::Planned(m) => {
            // Its checkpoint is the init when the run starts (the run key names the pretraining).
            let mut c = cfg;
            (c.model.arch, c.model.width, c.model.fc_channels) = (m.arch.clone(), m.width, m.fc_channels);
            c
        }
        InitModel::Unread => TransferConfig { init: a.init.clone(), ..cfg },
    }
    .for_arch();
    colorproxy_nn::backbone::arch::arch(&cfg.model.arch)?;
    // Flags add to what the config file says.
    if a.freeze_until.is_some() {
        cfg.freeze_until = a.freeze_until.clone();
    }
    cfg.color = cfg.color || a.color;
    let by_default = match init {
        InitModel::Planned(_) => false,
        _ => cfg.rebalance_by_default()?,
    };
    cfg.rebalance = (cfg.rebalance || a.rebalance || by_default) && !a.no_rebalance;
    if let Some(f) = &a.classes {
        cfg.classes = colorproxy_data::voc::class_list(&a.data, Some(f), &a.train_split)?.0;
    }
    cfg.pad_with_bias = cfg.pad_with_bias || a.pad_with_bias;
    if let Some(s) = a.seed {
        cfg.seed = s;
    }
    if let Some(n) = a.max_iterations {
        // The early-stopping protocol scales with the cap (see TransferConfig::with_max_iterations).
        cfg = cfg.with_max_iterations(n);
    }
    if let Some(b) = a.batch_size {
        cfg.batch_size = b;
    }
    if let Some(lr) = a.lr {
        // The learning rate as typed: the batch rule is off for it.
        (cfg.optim.lr, cfg.optim.lr_scaling) = (lr, colorproxy_nn::config::LrScaling::None);
    }
    if let Some(w) = a.workers {
        cfg.workers = w;
    }
    let mut cfg = overridden(cfg)?;
    cfg.for_world_size(crate::session::world_size()?);
    cfg.validate()?;
    cfg.optim.check_lr_bound()?;
    Ok(cfg)
}

/// The fine-tuning preset for an init without `--preset`: the paper's protocol (`<task>-paper`)
/// for a full-width backbone (a paper-scale or GPU pretraining, a torchvision network), the CPU
/// protocol (`<task>-cpu`) for a narrow one or random init; said on stderr when `say`.
pub fn default_preset(task: Task, init: &str, say: bool) -> String {
    let t = crate::task_name(task);
    let full = (init != "random")
        .then(|| TransferConfig::preset(&format!("{t}-cpu")).ok()?.with_init(init).ok())
        .flatten()
        .map(|c| (c.model.width >= 1.0, c.model.arch));
    match full {
        Some((true, arch)) => {
            if say {
                eprintln!("preset: {t}-paper (the init is a full-width {arch}; --preset {t}-cpu for the CPU protocol)");
            }
            format!("{t}-paper")
        }
        other => {
            if say {
                let why = match other {
                    Some((_, arch)) => format!("the init is a narrow {arch}"),
                    None => "a random init".to_string(),
                };
                eprintln!("preset: {t}-cpu ({why}; --preset {t}-paper for the paper's protocol)");
            }
            format!("{t}-cpu")
        }
    }
}

pub fn finetune(a: FinetuneRequest) -> crate::Result<()> {
    let cfg = resolve(&a)?;
    finetune_resolved(a, cfg)
}

/// `colorproxy pretrain-supervised`: supervised pretraining on class folders (the paper's
/// ImageNet baseline at any scale) in a label-space variant (Table 4); a fine-tuning run of
/// single-label classification from random init whose checkpoint is an `--init` for transfer.
pub fn supervised(a: SupervisedRequest) -> crate::Result<()> {
    let args = FinetuneRequest {
        preset: a.config.is_none().then(|| a.preset.clone()),
        config: a.config,
        resume: a.resume,
        force: a.force,
        train_split: a.train_split,
        eval_split: a.eval_split,
        skip_bad: a.skip_bad,
        max_iterations: a.max_iterations,
        seed: a.seed,
        device: a.device,
        batch_size: a.batch_size,
        lr: a.lr,
        workers: a.workers,
        set: a.set,
        ..FinetuneRequest::new(Task::Cls, &a.data, &a.out)
    };
    let mut cfg = resolve(&args)?;
    cfg.label_space = colorproxy_data::label_space::LabelSpace {
        per_class: a.per_class,
        label_noise: a.label_noise,
        random_buckets: a.random_buckets,
        buckets_file: a.buckets,
        seed: cfg.seed,
    };
    finetune_resolved(args, cfg)
}

/// Fine-tunes with a resolved config (see [`resolve`]).
pub fn finetune_resolved(a: FinetuneRequest, cfg: TransferConfig) -> crate::Result<()> {
    let t0 = std::time::Instant::now();
    let mut cfg = cfg;
    let session = Session::start(a.device.as_deref())?;
    let device = session.device;
    let on_bad = if a.skip_bad { OnBad::Skip } else { OnBad::Stop };
    // --retrain-full: the early-stopping run's schedule, on 100% of the training split, in RUN_DIR/full.
    let fixed = if a.retrain_full { Some(early_stop::read_schedule(&a.out)?) } else { None };
    let param_free_bn = colorproxy_nn::backbone::arch::arch(&cfg.model.arch)?.param_free_bn;
    if cfg.init == "random" && !cfg.rebalance && param_free_bn {
        eprintln!(
            "note: a randomly initialised {} has no BN after absorption and is not rescaled \
             (--no-rebalance, or no rebalancing for this architecture); deep layers may barely train",
            cfg.model.arch
        );
    }
    let out = if fixed.is_some() { early_stop::retrain_full_dir(&a.out) } else { a.out.clone() };
    if fixed.is_some() {
        cfg = TransferConfig { held_out: 0.0, ..cfg };
    }
    let pb = session.bar(cfg.early_stop.max_iterations, "finetune");
    session.say(
        &pb,
        &format!(
            "finetune {:?} from {} on {} ({}), {} images per step ({} per process x {} process(es){}), on {} -> {}",
            cfg.task,
            cfg.init,
            a.data.display(),
            a.train_split,
            cfg.job_batch(),
            cfg.batch_size,
            cfg.world_size,
            session.backend_note(),
            session.device_name(),
            out.display()
        ),
    );
    session.say(&pb, &format!("schedule: {}", cfg.schedule_summary()));
    if !cfg.label_space.is_identity() {
        session.say(&pb, &format!("label space: {}", cfg.label_space.describe()));
    }
    let mut observer = session.observer(&pb);
    let summary = FinetuneRun {
        config: cfg.clone(),
        data: a.data.clone(),
        train_split: a.train_split.clone(),
        out: out.clone(),
        device,
        fixed_schedule: fixed,
        on_bad,
        resume: a.resume,
        force: a.force,
        interrupt: session.interrupt.clone(),
        observer: observer.as_mut(),
        dist: session.dist.as_ref(),
    }
    .run()?;
    pb.finish_and_clear();
    if session.other_rank_done(summary.interrupted)? {
        return Ok(());
    }
    if summary.skipped > 0 {
        println!("{} malformed training samples were skipped", summary.skipped);
    }
    if summary.interrupted {
        println!(
            "interrupted at iteration {}; checkpoint in {}; continue with the same command and --resume",
            summary.iterations,
            RunPaths::new(&out).checkpoints().display()
        );
        return Err(interrupted_error());
    }
    crate::report::finetune_curves(&out, None)?;
    let seconds = t0.elapsed().as_secs_f64();
    println!(
        "{} iterations; learning-rate drops at {:?}; best held-out score {}",
        summary.iterations,
        summary.schedule.drops,
        summary.best_held_out.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into())
    );
    crate::evaluate::final_evaluation(&a, &out, &summary.config, device, on_bad, seconds)
}
