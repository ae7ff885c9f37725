//! `colorproxy demo`: the paper's main result end to end on built-in data, in minutes on a CPU.
//!
//! generate scenes -> a recipe run by the experiment runner (two runs side by side; run folders
//! in OUT/runs, linked as OUT/pretrain, OUT/seg-random, ...): pretrain a colorizer (cpu-small),
//! fine-tune segmentation and classification from random init and from the colorization
//! checkpoint (the paper's early-stopping protocol), evaluate on the validation split (400
//! scenes) -> report.md, report.html, results.json, loss curve, fine-tuning curves,
//! segmentation examples and colorization samples. Rerunning with the same --out reuses
//! finished runs and resumes an interrupted one.
use std::path::Path;
use std::time::Instant;

use crate::Context;
use colorproxy_data::synth;
use colorproxy_nn::colorize::{gray_rgb, ColorizeOptions, Colorizer};
use colorproxy_nn::pretrain::read_metrics;
use colorproxy_nn::run_dir::RunPaths;
use colorproxy_nn::transfer::{
    evaluate, load_finetuned, load_split, EvalResult, OnBad, Task, TransferConfig,
};
use colorproxy_nn::PretrainConfig;
use image::RgbImage;

use crate::report::html::{Cell, Page};
use crate::report::run::{seg_examples, seg_legend, Legend};
use crate::request::{DemoRequest, ExperimentRequest, GenerateRequest};
use crate::{task_name, RunError};

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
    /// libtorch threads of each fine-tuning run (two runs train side by side).
    threads: usize,
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

/// The demo as a recipe of the experiment runner ([`crate::experiment`]): the scenes in
/// `data` (unlabelled / voc), one colorization pretraining (cpu-small, the learning rate x0.1 at
/// 3/4, seed `seed`), and segmentation and classification fine-tuned from random init and from
/// it with the `seg-cpu` / `cls-cpu` preset at the scenes' size: segmentation on the whole
/// 96-px scene, classification on crops of 80 with the 10-crop test at 96 (as
/// `experiments/demo/cls.toml`). The presets' cap of 1,500 iterations per run would take the demo
/// to about 8 minutes on 2 cores: the demo caps segmentation at 400 (held-out score every 8) and
/// classification at 1,200 (every 16), the early-stopping stages keeping their fraction of the
/// cap (at least 267 and 800); `--quick`: 15. Each fine-tuning resolves as `colorproxy finetune`
/// resolves its flags ([`crate::finetune::resolve_from`]): the same preset, init, seed, cap and
/// settings given there (`--set crop=96 ...`) train the same weights. Written to OUT/recipe.toml:
/// `colorproxy experiment run OUT/recipe.toml --out OUT` reruns (or resumes) it.
fn recipe(plan: &Plan, seed: u64, data: &Path) -> crate::Result<String> {
    let q = |p: &Path| toml::Value::String(p.display().to_string()).to_string();
    let data = std::path::absolute(data).with_context(|| format!("{}", data.display()))?;
    let n = plan.pretrain_iterations;
    let mut t = format!(
        "title = \"colorproxy demo (seed {seed})\"\nseeds = [{seed}]\n\n\
         [data.unlabelled]\nabout = \"generated scenes, unlabelled\"\npath = {}\n\n\
         [data.voc]\nabout = \"generated scenes, VOC layout\"\npath = {}\n\n\
         [[pretrain]]\nname = \"colorization\"\npreset = \"cpu-small\"\ndata = \"unlabelled\"\n\
         iterations = {n}\nlr_drops = [{}]\nseed = {seed}\nset = {{ snapshots = [], checkpoint_every = {n} }}\n",
        q(&data.join("unlabelled")),
        q(&data.join("voc")),
        n * 3 / 4,
    );
    for task in [Task::Seg, Task::Cls] {
        let schedule = plan.schedule(task);
        let name = task_name(task);
        let crop = if task == Task::Seg { SIDE } else { 80 };
        let mut set =
            format!("crop = {crop}, test_short_side = {:.1}, threads = {}", SIDE as f64, plan.threads);
        if let Some(k) = schedule.eval_every {
            set.push_str(&format!(", \"early_stop.eval_every\" = {k}"));
        }
        t.push_str(&format!(
            "\n[[finetune]]\nname = \"{name}\"\ntask = \"{name}\"\npreset = \"{name}-cpu\"\ndata = \"voc\"\n\
             init = [\"random\", \"colorization\"]\nmax_iterations = {}\nset = {{ {set} }}\n",
            schedule.max
        ));
    }
    t.push_str(
        "\n[[table]]\nname = \"demo\"\ntitle = \"The demo: initialisation x task\"\ncolumns = [\"seg\", \"cls\"]\n",
    );
    Ok(t)
}

/// Writes the demo's scenes to `data` (unlabelled/, voc/) unless the same are there already.
fn write_scenes(data: &Path, plan: &Plan, seed: u64) -> crate::Result<()> {
    let what = serde_json::json!({"seed": seed, "unlabelled": plan.unlabelled, "train": plan.train,
        "val": plan.val, "side": SIDE});
    let marker = data.join(".generated");
    if std::fs::read_to_string(&marker).ok().and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        == Some(what.clone())
    {
        println!("    the scenes of an earlier run with this seed: reused");
        return Ok(());
    }
    let _ = std::fs::remove_file(&marker);
    synth::write_unlabelled(&data.join("unlabelled"), seed, 0, plan.unlabelled, SIDE)?;
    synth::write_voc(&data.join("voc"), seed, 1_000_000, plan.train, plan.val, SIDE)?;
    std::fs::write(&marker, what.to_string()).with_context(|| format!("writing {}", marker.display()))
}

pub fn run(a: DemoRequest) -> crate::Result<()> {
    let t0 = Instant::now();
    let out = a.out.clone();
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    // The demo is sized for CPUs: it runs on the CPU unless --device says otherwise.
    let device_arg = a.device.clone().unwrap_or_else(|| "cpu".into());
    let device = colorproxy_nn::parse_device(Some(&device_arg))?;
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
        }
    };
    // OUT/pretrain, OUT/seg-random, ... are links to run folders: a folder of an earlier demo
    // (before it was a recipe of the runner) in their place is not overwritten.
    for name in ["pretrain", "seg-random", "seg-colorization", "cls-random", "cls-colorization"] {
        let at = out.join(name);
        if std::fs::symlink_metadata(&at).is_ok_and(|m| !m.file_type().is_symlink()) {
            crate::bail!(
                "{}: a run folder of an earlier version of the demo; the demo now keeps its runs \
                 in OUT/runs and links them there. Use a new --out (or move that folder away)",
                at.display()
            );
        }
    }
    let data = out.join("data");
    println!(
        "[1/4] generating {} unlabelled scenes and a labelled set ({} train / {} val)",
        plan.unlabelled, plan.train, plan.val
    );
    write_scenes(&data, &plan, a.seed)?;

    println!(
        "[2/4] pretraining a colorizer (cpu-small, {} iterations); fine-tuning segmentation and \
         classification from random init and from colorization, two runs side by side",
        plan.pretrain_iterations
    );
    let text = recipe(&plan, a.seed, &data)?;
    // The pretraining first, alone on libtorch's default threads; then the fine-tunings two side
    // by side, one thread each.
    let req = ExperimentRequest {
        recipe: out.join("recipe.toml"),
        out: out.clone(),
        only: Some("colorization".into()),
        dry_run: false,
        data: vec![],
        device: Some(device_arg),
        workers: 1,
    };
    crate::experiment::execute(&text, "the demo's recipe", out.clone(), &req)?;
    let req = ExperimentRequest { only: None, workers: 2, ..req };
    let done = crate::experiment::execute(&text, "the demo's recipe", out.clone(), &req)?
        .context("the demo's recipe ran nothing")?;
    if done.elsewhere > 0 {
        crate::bail!(
            "{} of the demo's runs are held by another process (see the messages above, RUN.claim \
             under {}): rerun the demo when it ends",
            done.elsewhere,
            out.join("runs").display()
        );
    }
    let pre = done.pretraining("colorization").context("the demo's pretraining")?.to_path_buf();
    link(&out, "pretrain", &pre)?;
    let metrics = read_metrics(&RunPaths::new(&pre).metrics())?;
    crate::report::loss_curve(&metrics, &out.join("loss.png"))?;
    let pretrain_seconds = done_seconds(&pre);
    let ck = RunPaths::new(&pre).last_weights();
    let voc = data.join("voc");
    let mut runs = Vec::new();
    for task in [Task::Seg, Task::Cls] {
        for (label, init) in INITS.iter().zip(["random", "colorization"]) {
            let dir = done.finetuning(task_name(task), init, a.seed).context("a demo fine-tuning")?;
            let run = DemoRun::read(dir, task, label, &voc, device)?;
            println!(
                "    {task:?} from {label}: {} {:.4} ({} iterations, {:.0} s)",
                run.result.metric, run.result.value, run.iterations, run.seconds
            );
            link(&out, &format!("{}-{label}", task_name(task)), dir)?;
            runs.push(run);
        }
    }

    println!("[3/4] colorizing validation scenes");
    let pcfg = PretrainConfig::of_checkpoint(&ck, None)?;
    let pretrain_toml = pcfg.to_toml();
    let opts = ColorizeOptions::for_config(&pcfg);
    let col = Colorizer::load(&ck, pcfg, device, opts)?;
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

    println!("[4/4] writing the report");
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

/// `OUT/NAME`, a relative link to the run folder `run` (under OUT/runs): the demo's runs under
/// the names of its report (pretrain, seg-random, ...).
fn link(out: &Path, name: &str, run: &Path) -> crate::Result<()> {
    let at = out.join(name);
    let target = run.strip_prefix(out).unwrap_or(run);
    if let Ok(m) = std::fs::symlink_metadata(&at) {
        if m.file_type().is_symlink() {
            std::fs::remove_file(&at).with_context(|| format!("replacing {}", at.display()))?;
        } else {
            crate::bail!("{}: exists and is not the demo's link to a run folder", at.display());
        }
    }
    std::os::unix::fs::symlink(target, &at).with_context(|| format!("linking {}", at.display()))
}

/// libtorch threads of each of the two side-by-side runs: half the machine's cores, at least 1.
/// A fine-tuning step of these small networks gains little from a second thread (on 2 cores, two
/// 1-thread runs side by side take about half the time of the same runs one after the other).
/// Each run is what it would be alone: initialisation, data order and dropout come from the seed.
fn pair_threads() -> usize {
    (std::thread::available_parallelism().map_or(1, |n| n.get()) / 2).max(1)
}

/// The wall time a finished run took (its `done.json`), in seconds.
fn done_seconds(dir: &Path) -> f64 {
    std::fs::read_to_string(dir.join(crate::experiment::DONE))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["seconds"].as_f64())
        .unwrap_or(f64::NAN)
}

/// The initialisations compared.
const INITS: [&str; 2] = ["random", "colorization"];

/// Segmentation examples in the report.
const EXAMPLES: usize = 4;

/// One fine-tuning run of the demo and its validation results.
struct DemoRun {
    task: Task,
    init: &'static str,
    /// Where it ran, relative to the demo's folder (`runs/finetune-...`).
    dir: String,
    result: EvalResult,
    iterations: usize,
    /// Wall time of fine-tuning and evaluating, in seconds.
    seconds: f64,
    config: String,
    /// Predictions on the first validation images (segmentation).
    examples: Vec<Vec<u8>>,
}

impl DemoRun {
    /// A finished run of the runner: its scores (results.json), length and time (done.json),
    /// config, and for segmentation its predictions on the first validation scenes.
    fn read(
        dir: &Path,
        task: Task,
        init: &'static str,
        voc: &Path,
        device: tch::Device,
    ) -> crate::Result<Self> {
        let read = |f: &str| {
            std::fs::read_to_string(dir.join(f)).with_context(|| format!("reading {}/{f}", dir.display()))
        };
        let result: EvalResult = serde_json::from_str(&read("results.json")?)?;
        let done: serde_json::Value = serde_json::from_str(&read(crate::experiment::DONE)?)?;
        let config = read("config.toml")?;
        let mut examples = Vec::new();
        if task == Task::Seg {
            let cfg = TransferConfig::from_toml(&config)
                .map_err(|e| RunError::msg(format!("{}: {e}", dir.display())))?;
            let net = load_finetuned(&RunPaths::new(dir).last_weights(), cfg, device)?;
            let set = load_split(task, voc, "val", OnBad::Stop, &mut |_| {})?;
            let idx: Vec<usize> = (0..EXAMPLES.min(set.images.len())).collect();
            let mut shown = Vec::new();
            evaluate(&net, &set, &idx, &mut |i, pred| shown.push((i, pred.to_vec())))?;
            shown.sort_by_key(|e| e.0);
            examples = shown.into_iter().map(|e| e.1).collect();
        }
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(DemoRun {
            task,
            init,
            dir: format!("runs/{name}"),
            result,
            iterations: done["iterations"].as_u64().unwrap_or(0) as usize,
            seconds: done["seconds"].as_f64().unwrap_or(f64::NAN),
            config,
            examples,
        })
    }
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
            .map(|r| (format!("{}/curves.png", r.dir), format!("{} from {}", task_name(r.task), r.init)))
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
