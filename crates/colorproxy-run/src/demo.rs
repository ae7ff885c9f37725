//! `colorproxy demo`: the paper's main result end to end on built-in data, in minutes on a CPU.
//!
//! generate scenes -> pretrain a colorizer (cpu-small) -> fine-tune segmentation and
//! classification from random init and from the colorization checkpoint (the paper's
//! early-stopping protocol; the two runs of a task side by side) -> evaluate on the validation
//! split (400 scenes) -> report.md, report.html,
//! results.json, loss curve, fine-tuning curves, segmentation examples and colorization samples.
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use crate::Context;
use colorproxy_data::synth;
use colorproxy_nn::colorize::{gray_rgb, ColorizeOptions, Colorizer};
use colorproxy_nn::pretrain::{read_metrics, PretrainRun};
use colorproxy_nn::run_dir::RunPaths;
use colorproxy_nn::transfer::{
    evaluate, load_finetuned, load_split, EvalResult, FinetuneRun, OnBad, Task, TransferConfig,
};
use colorproxy_nn::PretrainConfig;
use image::RgbImage;

use crate::progress::{self, BarObserver, PrefixedBarObserver};
use crate::report::html::{Cell, Page};
use crate::report::run::{seg_examples, seg_legend, Legend};
use crate::request::{DemoRequest, GenerateRequest};
use crate::RunError;
use indicatif::MultiProgress;

/// Image side of the generated scenes.
const SIDE: usize = 96;

/// Sizes of a demo run.
struct Plan {
    unlabelled: usize,
    train: usize,
    val: usize,
    pretrain_iterations: usize,
    /// Segmentation's fine-tuning schedule.
    seg: Schedule,
    /// Classification's.
    cls: Schedule,
    /// libtorch threads of each fine-tuning run (the two runs of a task train side by side).
    threads: usize,
    /// Where every network runs (`--device`).
    device: tch::Device,
}

/// A demo fine-tuning's cap on iterations and held-out scoring.
#[derive(Clone, Copy)]
struct Schedule {
    /// Cap on iterations; the preset's stages (at least 1,000 of 1,500) keep their fraction.
    max: usize,
    /// A held-out score every this many iterations (`None`: the preset's 20 scaled with the cap).
    eval_every: Option<usize>,
}

impl Plan {
    fn schedule(&self, task: Task) -> Schedule {
        if task == Task::Seg {
            self.seg
        } else {
            self.cls
        }
    }
}

pub fn generate(a: GenerateRequest) -> crate::Result<()> {
    let n = a.images;
    synth::write_unlabelled(&a.out.join("unlabelled"), a.seed, 0, n, SIDE)?;
    let train = a.voc_train.unwrap_or((n / 4).max(2));
    let val = a.voc_val.unwrap_or((n / 10).max(1));
    synth::write_voc(&a.out.join("voc"), a.seed, 1_000_000, train, val, SIDE)?;
    let (ftrain, fval) = ((n / 20).max(2), (n / 80).max(1));
    let (ftrain, fval) = (a.per_class_train.unwrap_or(ftrain), a.per_class_val.unwrap_or(fval));
    synth::write_image_folders(&a.out.join("folders"), a.seed, ftrain, fval, a.classes, SIDE)?;
    println!(
        "wrote {n} unlabelled scenes to {}, a VOC-style set ({train} train, {val} val) to {} and \
         single-label class folders ({} classes, {ftrain} train, {fval} val per class) to {}{}",
        a.out.join("unlabelled").display(),
        a.out.join("voc").display(),
        a.classes,
        a.out.join("folders").display(),
        if a.classes > 5 { " (with shape-buckets.txt, each class's shape)" } else { "" }
    );
    Ok(())
}

/// The fine-tuning config of a demo run: the `seg-cpu` / `cls-cpu` preset (the protocol measured
/// on real photographs) at the scenes' size: segmentation on the whole 96-px scene, classification
/// on crops of 80 with the 10-crop test at 96 (as `experiments/demo/cls.toml`). The presets' cap
/// of 1,500 iterations per run would take the demo to about 8 minutes on 2 cores: the demo caps
/// segmentation at 400 (held-out score every 8) and classification at 1,200 (every 16), the
/// early-stopping stages keeping their fraction of the cap (at least 267 and 800); `--quick`: 15.
///
/// Resolved as `colorproxy finetune` resolves its flags ([`crate::finetune::resolve`]): the same
/// preset, init, seed, cap and settings given there (`--set crop=96 ...`) train the same weights.
fn transfer_config(
    task: Task,
    init: &str,
    plan: &Plan,
    seed: u64,
    voc: &Path,
) -> crate::Result<TransferConfig> {
    let schedule = plan.schedule(task);
    let mut r = crate::request::FinetuneRequest::new(task, voc, Path::new(""));
    r.init = init.to_string();
    r.preset = Some(if task == Task::Seg { "seg-cpu" } else { "cls-cpu" }.into());
    r.seed = Some(seed);
    r.max_iterations = Some(schedule.max);
    let crop = if task == Task::Seg { SIDE } else { 80 };
    r.set = vec![
        format!("crop={crop}"),
        format!("test_short_side={:.1}", SIDE as f64),
        format!("threads={}", plan.threads),
    ];
    if let Some(n) = schedule.eval_every {
        r.set.push(format!("early_stop.eval_every={n}"));
    }
    crate::finetune::resolve(&r)
}

pub fn run(a: DemoRequest) -> crate::Result<()> {
    let t0 = Instant::now();
    let out = a.out.clone();
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    // The demo is sized for CPUs: it runs on the CPU unless --device says otherwise.
    let device = colorproxy_nn::parse_device(Some(a.device.as_deref().unwrap_or("cpu")))?;
    println!("device: {}", crate::session::device_name(device));
    let plan = if a.quick {
        Plan {
            unlabelled: 64,
            train: 24,
            val: 12,
            pretrain_iterations: 20,
            seg: Schedule { max: 15, eval_every: None },
            cls: Schedule { max: 15, eval_every: None },
            threads: pair_threads(),
            device,
        }
    } else {
        Plan {
            unlabelled: 2000,
            train: 300,
            val: 400,
            pretrain_iterations: 1200,
            seg: Schedule { max: 400, eval_every: Some(8) },
            cls: Schedule { max: 1200, eval_every: Some(16) },
            threads: pair_threads(),
            device,
        }
    };
    let data = out.join("data");
    println!(
        "[1/5] generating {} unlabelled scenes and a labelled set ({} train / {} val)",
        plan.unlabelled, plan.train, plan.val
    );
    synth::write_unlabelled(&data.join("unlabelled"), a.seed, 0, plan.unlabelled, SIDE)?;
    synth::write_voc(&data.join("voc"), a.seed, 1_000_000, plan.train, plan.val, SIDE)?;

    println!("[2/5] pretraining a colorizer (cpu-small, {} iterations)", plan.pretrain_iterations);
    let mut pc = PretrainConfig::preset("cpu-small")?;
    pc.seed = a.seed;
    pc.iterations = plan.pretrain_iterations;
    pc.optim.lr_drops = vec![plan.pretrain_iterations * 3 / 4];
    pc.snapshots = vec![];
    pc.checkpoint_every = plan.pretrain_iterations;
    let pre = out.join("pretrain");
    let pb = progress::bar(pc.iterations as u64, "pretrain");
    let t_pre = Instant::now();
    PretrainRun {
        config: pc,
        data_dir: data.join("unlabelled"),
        out: pre.clone(),
        resume: colorproxy_nn::run_dir::Resume::No,
        force: true,
        device: plan.device,
        interrupt: Arc::new(AtomicBool::new(false)),
        observer: &mut BarObserver(pb.clone()),
        dist: None,
    }
    .run()?;
    pb.finish_and_clear();
    let pretrain_seconds = t_pre.elapsed().as_secs_f64();
    println!("    pretraining: {pretrain_seconds:.0} s");
    let metrics = read_metrics(&RunPaths::new(&pre).metrics())?;
    crate::report::loss_curve(&metrics, &out.join("loss.png"))?;
    let ck = RunPaths::new(&pre).last_weights();

    println!("[3/5] fine-tuning segmentation and classification from random init and from colorization");
    let voc = data.join("voc");
    let mut runs = Vec::new();
    let inits = ["random".to_string(), ck.to_string_lossy().into_owned()];
    for task in [Task::Seg, Task::Cls] {
        runs.extend(finetune_pair(&out, &voc, task, &inits, &plan, a.seed)?);
    }

    println!("[4/5] colorizing validation scenes");
    let pcfg = PretrainConfig::of_checkpoint(&ck, None)?;
    let pretrain_toml = pcfg.to_toml();
    let opts = ColorizeOptions::for_config(&pcfg);
    let col = Colorizer::load(&ck, pcfg, plan.device, opts)?;
    let set = load_split(Task::Seg, &voc, "val", OnBad::Stop, &mut |_| {})?;
    let im = |d: Vec<u8>| RgbImage::from_raw(SIDE as u32, SIDE as u32, d).expect("size");
    let rows: Vec<Vec<RgbImage>> = set
        .images
        .iter()
        .take(EXAMPLES)
        .map(|img| vec![im(gray_rgb(img)), im(col.colorize(img).rgb), im(img.data.clone())])
        .collect();
    let canvas = crate::report::image_grid(&rows, SIDE as u32);
    canvas.save(out.join("colorization.png")).context("writing colorization.png")?;
    // Segmentation examples: image | ground truth | from random | from colorization.
    let seg: Vec<&DemoRun> = runs.iter().filter(|r| r.task == Task::Seg).collect();
    let shown = seg.iter().map(|r| r.examples.len()).min().unwrap_or(0);
    let preds: Vec<Vec<Vec<u8>>> =
        (0..shown).map(|k| seg.iter().map(|r| r.examples[k].clone()).collect()).collect();
    let images: Vec<usize> = (0..preds.len()).collect();
    let shown = seg_examples(&set, &images, &preds, &out.join("segmentation.png"))?;

    println!("[5/5] writing the report");
    let seconds = t0.elapsed().as_secs_f64();
    let legend = seg_legend(&set.class_names, &shown);
    let report = DemoReport {
        seed: a.seed,
        plan: &plan,
        runs: &runs,
        seconds,
        pretrain_seconds,
        pretrain_toml,
        legend,
    };
    let table = report.write(&out)?;
    println!("\n{table}\n{:.0} s; report: {}", seconds, out.join("report.html").display());
    Ok(())
}

/// The initialisations compared.
const INITS: [&str; 2] = ["random", "colorization"];

/// Segmentation examples in the report.
const EXAMPLES: usize = 4;

/// One fine-tuning run of the demo and its validation results.
struct DemoRun {
    task: Task,
    init: &'static str,
    result: EvalResult,
    iterations: usize,
    /// Wall time of fine-tuning and evaluating, in seconds.
    seconds: f64,
    config: String,
    /// Predictions on the first validation images (segmentation).
    examples: Vec<Vec<u8>>,
}

/// libtorch threads of each of the two side-by-side runs: half the machine's cores, at least 1.
/// A fine-tuning step of these small networks gains little from a second thread (on 2 cores, two
/// 1-thread runs side by side take about half the time of the same runs one after the other).
fn pair_threads() -> usize {
    (std::thread::available_parallelism().map_or(1, |n| n.get()) / 2).max(1)
}

/// Fine-tunes `task` from random init and from the colorization checkpoint side by side (one OS
/// thread each, [`Plan::threads`] libtorch threads each) and evaluates both. Each run is what it
/// would be alone: initialisation, data order and dropout come from the seed, not from a shared
/// generator.
fn finetune_pair(
    out: &Path,
    voc: &Path,
    task: Task,
    inits: &[String; 2],
    plan: &Plan,
    seed: u64,
) -> crate::Result<Vec<DemoRun>> {
    let bars = progress::multi();
    let setting = Setting { out, voc, plan, seed, bars: &bars };
    std::thread::scope(|scope| {
        let handles: Vec<_> = INITS
            .iter()
            .zip(inits)
            .map(|(label, init)| {
                let setting = &setting;
                scope.spawn(move || finetune_and_evaluate(setting, task, label, init))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(RunError::msg(format!("a {task:?} fine-tuning thread panicked"))))
            })
            .collect()
    })
}

/// What the runs of a pair share: the demo's folder, the labelled set, the plan, the seed, the bars.
struct Setting<'a> {
    out: &'a Path,
    voc: &'a Path,
    plan: &'a Plan,
    seed: u64,
    bars: &'a MultiProgress,
}

/// Fine-tunes `task` from `init` into `OUT/{seg,cls}-{label}` and evaluates it on the validation
/// split (results.md, curves.png in the run folder).
fn finetune_and_evaluate(
    setting: &Setting,
    task: Task,
    label: &'static str,
    init: &str,
) -> crate::Result<DemoRun> {
    let Setting { out, voc, plan, seed, bars } = *setting;
    let t0 = Instant::now();
    let cfg = transfer_config(task, init, plan, seed, voc)?;
    let run_dir = out.join(format!("{}-{label}", if task == Task::Seg { "seg" } else { "cls" }));
    let pb = bars.add(progress::bar(cfg.early_stop.max_iterations as u64, &format!("{task:?} {label}")));
    let s = FinetuneRun {
        config: cfg.clone(),
        data: voc.to_owned(),
        train_split: "train".into(),
        out: run_dir.clone(),
        device: plan.device,
        fixed_schedule: None,
        on_bad: OnBad::Stop,
        resume: colorproxy_nn::run_dir::Resume::No,
        force: true,
        interrupt: Arc::new(AtomicBool::new(false)),
        observer: &mut PrefixedBarObserver {
            inner: BarObserver(pb.clone()),
            prefix: format!("{task:?} from {label}: "),
        },
        dist: None,
    }
    .run()?;
    pb.finish_and_clear();
    let net = load_finetuned(&RunPaths::new(&run_dir).last_weights(), cfg.clone(), plan.device)?;
    let set = load_split(task, voc, "val", OnBad::Stop, &mut |_| {})?;
    let idx: Vec<usize> = (0..set.images.len()).collect();
    let mut examples = Vec::new();
    let r = evaluate(&net, &set, &idx, &mut |i, pred| {
        if i < EXAMPLES && !pred.is_empty() {
            examples.push((i, pred.to_vec()));
        }
    })?;
    examples.sort_by_key(|e| e.0);
    let examples = examples.into_iter().map(|e| e.1).collect();
    crate::report::write_results(&run_dir, &r, &format!("{task:?} from {label}"))?;
    crate::report::finetune_curves(&run_dir, r.reference.as_ref().map(|(n, v)| (*v, n.clone())))?;
    let seconds = t0.elapsed().as_secs_f64();
    let line = format!(
        "    {task:?} from {label}: {} {:.4} ({} iterations, {seconds:.0} s)",
        r.metric, r.value, s.iterations
    );
    if bars.is_hidden() {
        println!("{line}");
    } else {
        let _ = bars.println(line);
    }
    let (iterations, config) = (s.iterations, cfg.to_toml());
    Ok(DemoRun { task, init: label, result: r, iterations, seconds, config, examples })
}

/// What the demo's report shows.
struct DemoReport<'a> {
    seed: u64,
    plan: &'a Plan,
    runs: &'a [DemoRun],
    /// Wall time of the whole demo and of its pretraining, in seconds.
    seconds: f64,
    pretrain_seconds: f64,
    pretrain_toml: String,
    /// The segmentation examples' legend.
    legend: Legend,
}

impl DemoReport<'_> {
    fn run(&self, task: Task, init: &str) -> Option<&DemoRun> {
        self.runs.iter().find(|r| r.task == task && r.init == init)
    }

    fn score(&self, task: Task, init: &str) -> f64 {
        self.run(task, init).map(|r| r.result.value).unwrap_or(f64::NAN)
    }

    fn reference(&self, task: Task) -> f64 {
        self.runs
            .iter()
            .find(|r| r.task == task)
            .and_then(|r| r.result.reference.as_ref())
            .map(|r| r.1)
            .unwrap_or(f64::NAN)
    }

    /// Writes results.json, report.md and report.html to `out`; returns the Markdown table.
    fn write(&self, out: &Path) -> crate::Result<String> {
        let json = serde_json::json!({
            "seg": {"random": self.score(Task::Seg, "random"), "colorization": self.score(Task::Seg, "colorization")},
            "cls": {"random": self.score(Task::Cls, "random"), "colorization": self.score(Task::Cls, "colorization")},
            "reference": {
                "seg": self.run(Task::Seg, "random").and_then(|r| r.result.reference.as_ref()).map(|r| serde_json::json!({"name": r.0, "value": r.1})),
                "cls": self.run(Task::Cls, "random").and_then(|r| r.result.reference.as_ref()).map(|r| serde_json::json!({"name": r.0, "value": r.1})),
            },
            "seconds": self.seconds,
            "pretrain_seconds": self.pretrain_seconds,
            "seed": self.seed,
            "iterations": self.runs.iter().map(|r| serde_json::json!({"task": format!("{:?}", r.task).to_lowercase(), "init": r.init, "iterations": r.iterations, "seconds": r.seconds})).collect::<Vec<_>>(),
        });
        std::fs::write(out.join("results.json"), serde_json::to_string_pretty(&json)?)?;
        let table = format!(
            "| initialisation | segmentation (mIoU) | classification (mAP) |\n|---|---|---|\n| random | {:.3} | {:.3} |\n| colorization | {:.3} | {:.3} |\n| reference (majority class / constant scorer) | {:.3} | {:.3} |\n",
            self.score(Task::Seg, "random"),
            self.score(Task::Cls, "random"),
            self.score(Task::Seg, "colorization"),
            self.score(Task::Cls, "colorization"),
            self.reference(Task::Seg),
            self.reference(Task::Cls)
        );
        let md = format!(
            "# colorproxy demo (seed {seed})\n\n{intro}\n\n{table}\n## Pretraining loss\n\n![loss](loss.png)\n\n## Segmentation (image | ground truth | from random | from colorization)\n\n![segmentation](segmentation.png)\n\n## Colorization (gray | colorized | original)\n\n![colorization](colorization.png)\n",
            seed = self.seed,
            intro = self.intro(),
        );
        std::fs::write(out.join("report.md"), &md)?;
        self.html().write(&out.join("report.html"))?;
        Ok(table)
    }

    fn intro(&self) -> String {
        let p = self.plan;
        format!(
            "Colorization pretraining on {} generated scenes ({} iterations, {:.0} s), then fine-tuning on {} \
             labelled scenes with the paper's early-stopping protocol (at most {} iterations for segmentation, {} \
             for classification), evaluated on {} validation scenes. Seed {}; wall time {:.0} s in all.",
            p.unlabelled,
            p.pretrain_iterations,
            self.pretrain_seconds,
            p.train,
            p.seg.max,
            p.cls.max,
            p.val,
            self.seed,
            self.seconds
        )
    }

    fn html(&self) -> Page {
        let mut page = Page::new(&format!("colorproxy demo (seed {})", self.seed));
        page.p(&self.intro());
        page.h2("Scores on the validation scenes");
        let mut rows: Vec<Vec<Cell>> = INITS
            .iter()
            .map(|i| {
                let its = |t| {
                    self.run(t, i)
                        .map(|r| format!("{} ({:.0} s)", r.iterations, r.seconds))
                        .unwrap_or_default()
                };
                vec![
                    Cell::from(*i),
                    self.score(Task::Seg, i).into(),
                    self.score(Task::Cls, i).into(),
                    Cell::from(format!("{} / {}", its(Task::Seg), its(Task::Cls))),
                ]
            })
            .collect();
        rows.push(vec![
            Cell::from("reference (learned nothing: majority class / constant scorer)"),
            self.reference(Task::Seg).into(),
            self.reference(Task::Cls).into(),
            Cell::from(""),
        ]);
        page.table(
            &[
                "initialisation",
                "segmentation (mIoU)",
                "classification (mAP)",
                "fine-tuning iterations, wall time (seg / cls)",
            ],
            rows,
        );
        page.h2("Per class (classes absent from the validation scenes left out)");
        let classes: Vec<&String> = self
            .runs
            .iter()
            .flat_map(|r| r.result.per_class.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let rows = classes
            .iter()
            .filter(|c| self.runs.iter().any(|r| r.result.per_class.get(**c).copied().flatten().is_some()))
            .map(|c| {
                let mut row = vec![Cell::from(c.as_str())];
                for t in [Task::Seg, Task::Cls] {
                    for i in INITS {
                        row.push(Cell::Score(
                            self.run(t, i).and_then(|r| r.result.per_class.get(*c).copied().flatten()),
                        ));
                    }
                }
                row
            })
            .collect();
        page.table(
            &["class", "seg IoU, random", "seg IoU, colorization", "cls AP, random", "cls AP, colorization"],
            rows,
        );
        page.h2("Segmentation examples (image | ground truth | from random | from colorization)");
        page.legend(&self.legend);
        page.img("segmentation.png", "segmentation examples");
        page.h2("Fine-tuning curves (training loss, held-out score, learning-rate drops, reference)");
        let figures: Vec<(String, String)> = self
            .runs
            .iter()
            .map(|r| {
                let t = if r.task == Task::Seg { "seg" } else { "cls" };
                (format!("{t}-{}/curves.png", r.init), format!("{t} from {}", r.init))
            })
            .collect();
        page.figures(&figures);
        page.h2("Colorization (gray | colorized | original)");
        page.img("colorization.png", "colorization samples");
        page.h2("Pretraining loss");
        page.img("loss.png", "pretraining loss");
        page.h2("Configs");
        page.details("pretraining", &self.pretrain_toml, true);
        for t in [Task::Seg, Task::Cls] {
            if let Some(r) = self.run(t, "colorization") {
                page.details(
                    &format!("{t:?} fine-tuning (init: the pretraining checkpoint or random)"),
                    &r.config,
                    false,
                );
            }
        }
        page
    }
}
