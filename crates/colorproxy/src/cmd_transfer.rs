//! `colorproxy finetune cls|seg` and `colorproxy eval cls|seg`.
use std::path::Path;
use std::sync::atomic::Ordering;

use anyhow::{bail, Context};
use colorproxy_nn::early_stop;
use colorproxy_nn::parse_device;
use colorproxy_nn::run_dir::{config_of_checkpoint, RunPaths};
use colorproxy_nn::transfer::{
    evaluate, load_finetuned, load_split_with, EvalResult, FinetuneRun, LabelledSet, OnBad, Task,
    TransferConfig, TransferNet,
};

use crate::cli::{EvalArgs, FinetuneArgs, TaskArg};
use crate::progress;
use crate::report::run::{seg_examples, seg_legend, write_run_report, Legend, RunReport};

fn task(t: TaskArg) -> Task {
    match t {
        TaskArg::Cls => Task::Cls,
        TaskArg::Seg => Task::Seg,
    }
}

/// The architecture of a torchvision state dict without a run config (None: not one).
fn torchvision_arch(ck: &Path) -> anyhow::Result<Option<&'static str>> {
    if config_of_checkpoint(ck, None).is_ok() {
        return Ok(None);
    }
    let names: Vec<String> =
        colorproxy_nn::checkpoint::read_tensors(ck)?.into_iter().map(|(n, _)| n).collect();
    Ok(colorproxy_nn::torchvision::detect_arch(&names))
}

/// Resolves the fine-tuning config: preset, the init checkpoint's backbone, flags.
pub fn resolve(a: &FinetuneArgs) -> anyhow::Result<TransferConfig> {
    let t = task(a.task);
    let name =
        a.preset.clone().unwrap_or_else(|| format!("{}-cpu", if t == Task::Cls { "cls" } else { "seg" }));
    let mut cfg = match &a.config {
        Some(f) => TransferConfig::from_toml(
            &std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
        )
        .with_context(|| format!("{}: invalid fine-tuning config", f.display()))?,
        None => TransferConfig::preset(&name)?,
    };
    if cfg.task != t {
        bail!("preset {name} is for the other task");
    }
    cfg.init = a.init.clone();
    if a.init != "random" {
        let ck = Path::new(&a.init);
        if !ck.is_file() {
            bail!("--init {}: no such checkpoint (or use --init random)", ck.display());
        }
        // A colorization checkpoint's run config fixes the backbone's widths.
        if let Ok(pc) = colorproxy_nn::PretrainConfig::of_checkpoint(ck, None) {
            cfg.model.arch = pc.model.arch;
            cfg.model.width = pc.model.width;
            cfg.model.fc_channels = pc.model.fc_channels;
        } else if let Some(tc) =
            config_of_checkpoint(ck, None).ok().and_then(|(_, text)| TransferConfig::from_toml(&text).ok())
        {
            // A fine-tuned or supervised network (e.g. from `pretrain-supervised`): its backbone.
            cfg.model.arch = tc.model.arch;
            cfg.model.width = tc.model.width;
            cfg.model.fc_channels = tc.model.fc_channels;
        } else if let Some(arch) = torchvision_arch(ck)? {
            // A torchvision state dict (e.g. from `colorproxy export`): standard widths.
            cfg.model.arch = arch.into();
            cfg.model.width = 1.0;
            cfg.model.fc_channels = 4096;
        }
    }
    let mut cfg = cfg.for_arch();
    cfg.freeze_until = a.freeze_until.clone();
    cfg.color = a.color;
    // The paper's random baseline: data-dependent rescaling of a BN-free backbone.
    let rebalance_default =
        cfg.init == "random" && colorproxy_nn::backbone::arch::arch(&cfg.model.arch)?.rebalance;
    cfg.rebalance = (cfg.rebalance || a.rebalance || rebalance_default) && !a.no_rebalance;
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
    cfg.validate()?;
    Ok(cfg)
}

pub fn finetune(a: FinetuneArgs) -> anyhow::Result<()> {
    let cfg = resolve(&a)?;
    finetune_resolved(a, cfg)
}

/// `colorproxy pretrain-supervised`: supervised pretraining on class folders (the paper's
/// ImageNet baseline at any scale) in a label-space variant (Table 4); a fine-tuning run of
/// single-label classification from random init whose checkpoint is an `--init` for transfer.
pub fn supervised(a: crate::cli::SupervisedArgs) -> anyhow::Result<()> {
    let args = FinetuneArgs {
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
        ..FinetuneArgs::new(TaskArg::Cls, &a.data, &a.out)
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
pub fn finetune_resolved(a: FinetuneArgs, cfg: TransferConfig) -> anyhow::Result<()> {
    let t0 = std::time::Instant::now();
    let mut cfg = cfg;
    let (dist, device) = crate::cmd_pretrain::process_group(parse_device(a.device.as_deref())?)?;
    let rank0 = dist.as_ref().is_none_or(|pg| pg.rank() == 0);
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
    let pb = match rank0 {
        true => progress::bar(cfg.early_stop.max_iterations as u64, "finetune"),
        false => indicatif::ProgressBar::hidden(),
    };
    if rank0 {
        pb.println(format!(
            "finetune {:?} from {} on {} ({}), {:?}{} -> {}",
            cfg.task,
            cfg.init,
            a.data.display(),
            a.train_split,
            device,
            dist.as_ref().map(|pg| format!(" x {} ranks ({})", pg.size(), pg.backend())).unwrap_or_default(),
            out.display()
        ));
        pb.println(format!("schedule: {}", cfg.schedule_summary()));
        if !cfg.label_space.is_identity() {
            pb.println(format!("label space: {}", cfg.label_space.describe()));
        }
    }
    let mut obs = crate::progress::BarObserver(pb.clone());
    let mut silent = colorproxy_nn::run_dir::Silent;
    let observer: &mut dyn colorproxy_nn::run_dir::TrainObserver = if rank0 { &mut obs } else { &mut silent };
    let interrupt = progress::interrupt_flag();
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
        interrupt,
        observer,
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
    if summary.skipped > 0 {
        println!("{} malformed training samples were skipped", summary.skipped);
    }
    if summary.interrupted {
        println!(
            "interrupted at iteration {}; checkpoint in {}; continue with the same command and --resume",
            summary.iterations,
            RunPaths::new(&out).checkpoints().display()
        );
        std::process::exit(progress::interrupt_exit_code());
    }
    crate::report::finetune_curves(&out, None)?;
    let seconds = t0.elapsed().as_secs_f64();
    println!(
        "{} iterations; learning-rate drops at {:?}; best held-out score {}",
        summary.iterations,
        summary.schedule.drops,
        summary.best_held_out.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into())
    );
    final_evaluation(&a, &out, &summary.config, device, on_bad, seconds)
}

/// The evaluation split's score of a finished run, when the data has that split, and the run's
/// report.html.
fn final_evaluation(
    a: &FinetuneArgs,
    out: &Path,
    cfg: &TransferConfig,
    device: tch::Device,
    on_bad: OnBad,
    seconds: f64,
) -> anyhow::Result<()> {
    let net = load_finetuned(&RunPaths::new(out).last_weights(), cfg.clone(), device)?;
    let summary = format!(
        "{:?} fine-tuning of {} from {} on {} ({} split).",
        cfg.task,
        cfg.model.arch,
        cfg.init,
        a.data.display(),
        a.train_split
    );
    let mut report = RunReport {
        title: format!("{:?} fine-tuning: {}", cfg.task, out.display()),
        summary,
        result: None,
        config: cfg.to_toml(),
        seconds,
        curves: Some("curves.png"),
        examples: None,
    };
    let ls = &cfg.label_space;
    if ls.random_buckets.is_some() || ls.buckets_file.is_some() {
        println!(
            "no final evaluation: the network predicts buckets ({}), the {} split has the original classes",
            ls.describe(),
            a.eval_split
        );
        return write_run_report(&out.join("report.html"), &report);
    }
    let set = match load_aligned(cfg, &a.data, &a.eval_split, on_bad) {
        Ok(set) => set,
        Err(e) => {
            eprintln!("no final evaluation: {e}");
            return write_run_report(&out.join("report.html"), &report);
        }
    };
    let (r, examples) = evaluate_with_examples(&net, &set, out, &mut |_, _| {})?;
    let title = format!("{:?} fine-tuning from {}, {} split", cfg.task, cfg.init, a.eval_split);
    crate::report::write_results(out, &r, &title)?;
    report.summary.push_str(&format!(" Evaluated on the {} split ({} images).", a.eval_split, set.len()));
    report.result = Some(&r);
    report.examples = examples;
    write_run_report(&out.join("report.html"), &report)?;
    println!(
        "{} split: {} {:.4} ({} images); {}",
        a.eval_split,
        r.metric,
        r.value,
        set.len(),
        out.join("report.html").display()
    );
    Ok(())
}

/// Segmentation examples in a report (the first images of the split).
const EXAMPLES: usize = 4;

/// The examples picture of a report and its legend.
type Examples = Option<(&'static str, Legend)>;

/// Evaluates on the whole set; for segmentation also writes `dir/examples.png` (image | ground
/// truth | prediction for the first images) and returns its legend. `each` sees every prediction.
fn evaluate_with_examples(
    net: &TransferNet,
    set: &LabelledSet,
    dir: &Path,
    each: &mut dyn FnMut(usize, &[u8]),
) -> anyhow::Result<(EvalResult, Examples)> {
    let idx: Vec<usize> = (0..set.len()).collect();
    let mut examples: Vec<(usize, Vec<Vec<u8>>)> = Vec::new();
    let r = evaluate(net, set, &idx, &mut |i, pred| {
        if !pred.is_empty() && examples.len() < EXAMPLES {
            examples.push((i, vec![pred.to_vec()]));
        }
        each(i, pred);
    })?;
    let mut legend = None;
    if !examples.is_empty() {
        examples.sort_by_key(|e| e.0);
        let (images, preds): (Vec<usize>, Vec<_>) = examples.into_iter().unzip();
        let shown = seg_examples(set, &images, &preds, &dir.join("examples.png"))?;
        legend = Some(("examples.png", seg_legend(&set.class_names, &shown)));
    }
    Ok((r, legend))
}

/// An evaluation split read with the network's classes and matched to them.
fn load_aligned(
    cfg: &TransferConfig,
    data: &Path,
    split: &str,
    on_bad: OnBad,
) -> anyhow::Result<LabelledSet> {
    let classes = (!cfg.classes.is_empty()).then_some(&cfg.classes[..]);
    let mut set = load_split_with(cfg.task, data, split, classes, on_bad, &mut |m| eprintln!("{m}"))?;
    if set.single_label != cfg.single_label() {
        bail!(if cfg.single_label() {
            "the network is a single-label classifier of class folders; the data are a VOC devkit"
        } else {
            "the network is a VOC (multi-label) classifier or a segmenter; the data are single-label class folders"
        });
    }
    set.align_classes(&cfg.classes)?;
    Ok(set)
}

pub fn eval(a: EvalArgs) -> anyhow::Result<()> {
    let t0 = std::time::Instant::now();
    let (cfg_path, text) = config_of_checkpoint(&a.checkpoint, a.config.as_deref())?;
    let cfg = TransferConfig::from_toml(&text)
        .with_context(|| format!("{}: not a fine-tuning config", cfg_path.display()))?;
    if cfg.task != task(a.task) {
        bail!("{} is a {:?} network", a.checkpoint.display(), cfg.task);
    }
    if a.save_predictions.is_some() && cfg.task == Task::Cls {
        bail!("--save-predictions writes segmentation masks; {} is a classifier", a.checkpoint.display());
    }
    let device = parse_device(a.device.as_deref())?;
    let net = load_finetuned(&a.checkpoint, cfg.clone(), device)?;
    let on_bad = if a.skip_bad { OnBad::Skip } else { OnBad::Stop };
    let set = load_aligned(&cfg, &a.data, &a.split, on_bad)?;
    if let Some(d) = &a.save_predictions {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    if let Some(d) = &a.report {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let pb = progress::bar(set.len() as u64, "eval");
    let mut save_err = None;
    let mut each = |i: usize, pred: &[u8]| {
        pb.inc(1);
        // (Segmentation only: classification passes an empty prediction.)
        if let (Some(d), Some(img), false) = (&a.save_predictions, set.images.get(i), pred.is_empty()) {
            let p = d.join(format!("{}.png", set.ids[i]));
            if let Err(e) = colorproxy_data::voc::write_class_png(&p, img.width, img.height, pred) {
                save_err = Some(e.to_string());
            }
        }
    };
    let (r, examples) = match &a.report {
        Some(d) => evaluate_with_examples(&net, &set, d, &mut each)?,
        None => (evaluate(&net, &set, &(0..set.len()).collect::<Vec<_>>(), &mut each)?, None),
    };
    pb.finish_and_clear();
    if let Some(d) = &a.report {
        let title = format!("{:?} evaluation of {}, {} split", cfg.task, a.checkpoint.display(), a.split);
        crate::report::write_results(d, &r, &title)?;
        let report = RunReport {
            title,
            summary: format!(
                "{} ({}) evaluated on {} ({} split, {} images).",
                a.checkpoint.display(),
                cfg.model.arch,
                a.data.display(),
                a.split,
                set.len()
            ),
            result: Some(&r),
            config: text.clone(),
            seconds: t0.elapsed().as_secs_f64(),
            curves: None,
            examples,
        };
        write_run_report(&d.join("report.html"), &report)?;
    }
    let skipped = set.skipped.load(Ordering::Relaxed);
    if skipped > 0 {
        eprintln!("{skipped} malformed samples were skipped");
    }
    if let Some(e) = save_err {
        bail!("writing predictions: {e}");
    }
    if a.json {
        println!(
            "{}",
            serde_json::json!({"metric": r.metric, "value": r.value, "per_class": r.per_class, "extra": r.extra, "reference": r.reference})
        );
    } else {
        println!("{} split, {} images: {} {:.4}", a.split, set.len(), r.metric, r.value);
    }
    Ok(())
}
