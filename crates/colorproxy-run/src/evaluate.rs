//! Evaluation of fine-tuned networks: the final score of a fine-tuning run with its report, and
//! `colorproxy eval` (mAP or mIoU, per class, predictions, report).
use std::path::Path;
use std::sync::atomic::Ordering;

use colorproxy_nn::parse_device;
use colorproxy_nn::run_dir::{config_of_checkpoint, RunPaths};
use colorproxy_nn::transfer::{
    evaluate, load_finetuned, load_split_with, EvalResult, LabelledSet, OnBad, Task, TransferConfig,
    TransferNet,
};

use crate::progress;
use crate::report::run::{seg_examples, seg_legend, write_run_report, Legend, RunReport};
use crate::request::{EvalRequest, FinetuneRequest};
use crate::{bail, Context};

/// The evaluation split's score of a finished run, when the data has that split, and the run's
/// report.html.
pub(crate) fn final_evaluation(
    a: &FinetuneRequest,
    out: &Path,
    cfg: &TransferConfig,
    device: tch::Device,
    on_bad: OnBad,
    seconds: f64,
) -> crate::Result<()> {
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
) -> crate::Result<(EvalResult, Examples)> {
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
fn load_aligned(cfg: &TransferConfig, data: &Path, split: &str, on_bad: OnBad) -> crate::Result<LabelledSet> {
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

pub fn eval(a: EvalRequest) -> crate::Result<()> {
    let t0 = std::time::Instant::now();
    let (cfg_path, text) = config_of_checkpoint(&a.checkpoint, a.config.as_deref())?;
    if colorproxy_nn::run_dir::RunKind::of_config(&text) == colorproxy_nn::run_dir::RunKind::Pretrain {
        bail!(
            "{}: a colorization pretraining checkpoint ({} is a pretraining config); eval scores a \
             fine-tuned network: fine-tune it first (colorproxy finetune {} --init {} ...)",
            a.checkpoint.display(),
            cfg_path.display(),
            crate::task_name(a.task),
            a.checkpoint.display()
        );
    }
    let cfg = TransferConfig::from_toml(&text)
        .with_context(|| format!("{}: not a fine-tuning config", cfg_path.display()))?;
    if cfg.task != a.task {
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
