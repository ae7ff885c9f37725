//! `colorproxy experiment run RECIPE.toml --out DIR`: the paper's comparisons as one command.
//! A recipe ([`recipe`]) lists data sets, pretrainings and fine-tunings (x seeds); every run is
//! a folder under DIR/runs keyed by its resolved config. A run with `done.json` is finished and
//! reused; a folder without it is resumed from its checkpoint (or started over when it has
//! none), so rerunning after a crash repeats nothing. Then [`output`] writes results.csv,
//! tables.md, report.html and the sweep plots from the finished runs.
pub mod output;
pub mod recipe;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use colorproxy_nn::checkpoint::generations;
use colorproxy_nn::pretrain::PretrainRun;
use colorproxy_nn::run_dir::RunPaths;

use crate::cli::{ExperimentArgs, FinetuneArgs, GenerateArgs, TaskArg};
use crate::progress;
use recipe::{Config, DataSets, FinetunePlan, Plan, PretrainData, PretrainPlan, Recipe};

/// A finished run's record (`RUN/done.json`).
pub const DONE: &str = "done.json";

/// Writes `value` as JSON to `path` atomically (a temporary file renamed over it).
pub fn write_json_atomic(path: &Path, value: &serde_json::Value) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(value)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

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

/// Which runs `--only NAME` needs (indices into the plan), with the pretrainings they start from.
fn selected(
    r: &Recipe,
    plan: &Plan,
    only: Option<&str>,
) -> anyhow::Result<(BTreeSet<usize>, BTreeSet<usize>)> {
    let mut ft: BTreeSet<usize> = BTreeSet::new();
    let mut pre: BTreeSet<usize> = BTreeSet::new();
    let Some(name) = only else {
        return Ok(((0..plan.pretrain.len()).collect(), unique(plan, (0..plan.finetune.len()).collect())));
    };
    let all_ft = |pred: &dyn Fn(&FinetunePlan) -> bool| -> BTreeSet<usize> {
        plan.finetune.iter().enumerate().filter(|(_, f)| pred(f)).map(|(i, _)| i).collect()
    };
    if let Some(t) = r.table.iter().find(|t| t.name == name) {
        let rows = t.rows.clone();
        ft = all_ft(&|f| {
            t.columns.contains(&f.name)
                && rows.as_ref().is_none_or(|rs| rs.contains(&f.init))
                && r.finetune.iter().any(|s| s.name == f.name && s.init.contains(&f.init))
        });
    } else if let Some(s) = r.sweep.iter().find(|s| s.name == name) {
        ft = all_ft(&|f| {
            f.name == s.finetune
                && (f.init == "random"
                    || s.pretrain
                        .iter()
                        .any(|p| s.at.iter().any(|a| f.init == format!("{p}@{a}")) || f.init == *p))
        });
        pre.extend(
            plan.pretrain.iter().enumerate().filter(|(_, p)| s.pretrain.contains(&p.name)).map(|(i, _)| i),
        );
    } else if let Some(k) = plan.pretrain.iter().position(|p| p.name == name) {
        pre.insert(k);
    } else if r.finetune.iter().any(|f| f.name == name) {
        ft = all_ft(&|f| f.name == name);
    } else {
        bail!("--only {name:?}: not a table, sweep, pretraining or fine-tuning of the recipe");
    }
    pre.extend(ft.iter().filter_map(|&i| plan.finetune[i].from.map(|f| f.0)));
    Ok((pre, unique(plan, ft)))
}

/// The runs once each: a sweep's last snapshot is the pretraining's final weights, the same run
/// (and folder) as fine-tuning from the pretraining itself.
fn unique(plan: &Plan, ft: BTreeSet<usize>) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    ft.into_iter().filter(|&i| seen.insert(plan.finetune[i].dir.clone())).collect()
}

pub fn run(a: ExperimentArgs) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let r = Recipe::read(&a.recipe)?;
    let recipe_dir = a.recipe.parent().map(Path::to_path_buf).unwrap_or_default();
    let recipe_dir = if recipe_dir.as_os_str().is_empty() { PathBuf::from(".") } else { recipe_dir };
    let mut given = std::collections::BTreeMap::new();
    for d in &a.data {
        let (n, p) = d.split_once('=').with_context(|| format!("--data {d:?}: expected NAME=PATH"))?;
        if !r.data.contains_key(n) {
            bail!(
                "--data {n}: the recipe has no data set {n:?} (it has: {})",
                r.data.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        given.insert(n.to_string(), PathBuf::from(p));
    }
    let sets = DataSets { recipe_dir, out: a.out.clone(), given };
    let runs = a.out.join("runs");
    let plan = r.plan(&sets, &runs)?;
    let (pre, ft) = selected(&r, &plan, a.only.as_deref())?;
    colorproxy_nn::parse_device(a.device.as_deref())?;
    let generated = needed_generated(&r, &sets, &plan, &pre, &ft)?;
    if a.dry_run {
        dry_run(&r, &plan, &pre, &ft, &generated);
        return Ok(());
    }
    std::fs::create_dir_all(&runs).with_context(|| format!("creating {}", runs.display()))?;
    std::fs::write(a.out.join("recipe.toml"), std::fs::read(&a.recipe)?).context("copying the recipe")?;
    for name in &generated {
        generate(&r, &sets, name)?;
    }
    let total = pre.len() + ft.len();
    let mut k = 0;
    for &i in &pre {
        k += 1;
        let p = &plan.pretrain[i];
        eprintln!("[{k}/{total}] pretraining {} ({:?}) -> {}", p.name, p.kind, p.dir.display());
        run_pretrain(p, &a.device)?;
    }
    for &i in &ft {
        k += 1;
        let f = &plan.finetune[i];
        eprintln!(
            "[{k}/{total}] fine-tuning {} from {}, seed {} -> {}",
            f.name,
            f.init,
            f.seed,
            f.dir.display()
        );
        run_finetune(f, &plan, &a.device)?;
    }
    let md = output::write(&r, &plan, &a.out, t0.elapsed().as_secs_f64())?;
    println!("{md}\nwrote {}/{{results.csv,tables.md,report.html}}", a.out.display());
    Ok(())
}

/// The generated data sets the selected runs read and that are not generated yet.
fn needed_generated(
    r: &Recipe,
    sets: &DataSets,
    plan: &Plan,
    pre: &BTreeSet<usize>,
    ft: &BTreeSet<usize>,
) -> anyhow::Result<Vec<String>> {
    let mut names = BTreeSet::new();
    let base = |spec: &str| spec.split(['/', '@']).next().unwrap_or(spec).to_string();
    for &i in pre {
        let spec = r.pretrain.iter().find(|s| s.name == plan.pretrain[i].name).context("pretraining")?;
        names.extend(spec.data.items().iter().map(|d| base(d)));
    }
    for &i in ft {
        let spec = r.finetune.iter().find(|s| s.name == plan.finetune[i].name).context("fine-tuning")?;
        names.insert(base(&spec.data));
    }
    Ok(names
        .into_iter()
        .filter(|n| {
            r.data.get(n).is_some_and(|d| d.generate.is_some() && d.path.is_none())
                && !sets.given.contains_key(n)
                && !sets.out.join("data").join(n).join(".generated").is_file()
        })
        .collect())
}

fn generate(r: &Recipe, sets: &DataSets, name: &str) -> anyhow::Result<()> {
    let g = r.data[name].generate.clone().context("generate")?;
    let dir = sets.out.join("data").join(name);
    eprintln!("generating data set {name} -> {}", dir.display());
    crate::cmd_demo::generate(GenerateArgs {
        out: dir.clone(),
        images: g.images,
        seed: g.seed,
        classes: g.classes,
        per_class_train: g.per_class_train,
        per_class_val: g.per_class_val,
    })?;
    std::fs::write(dir.join(".generated"), serde_json::to_string(&g)?).context("marking the data generated")
}

fn dry_run(r: &Recipe, plan: &Plan, pre: &BTreeSet<usize>, ft: &BTreeSet<usize>, generated: &[String]) {
    println!("recipe: {}", r.title);
    for g in generated {
        println!("  generate  data set {g}");
    }
    let show = |s: Status| match s {
        Status::Done => "done     ".to_string(),
        Status::Partial(it) => format!("resume@{it:<4}"),
        Status::Todo => "to run   ".to_string(),
    };
    let (mut done, mut todo) = (0, 0);
    for &i in pre {
        let p = &plan.pretrain[i];
        let s = status(&p.dir);
        if s == Status::Done {
            done += 1
        } else {
            todo += 1
        }
        println!("  {} pretrain {} ({:?}) {}", show(s), p.name, p.kind, p.dir.display());
    }
    for &i in ft {
        let f = &plan.finetune[i];
        let s = status(&f.dir);
        if s == Status::Done {
            done += 1
        } else {
            todo += 1
        }
        println!("  {} finetune {} from {} seed {} {}", show(s), f.name, f.init, f.seed, f.dir.display());
    }
    println!("{done} done, {todo} to run");
}

/// Resume flags for a run folder: (resume, force).
fn start_mode(dir: &Path) -> (bool, bool) {
    let resume = !generations(&RunPaths::new(dir)).is_empty();
    (resume, !resume && dir.exists())
}

fn write_pool(list: &Path, sources: &[(PathBuf, Option<String>)]) -> anyhow::Result<()> {
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

fn run_pretrain(p: &PretrainPlan, device_arg: &Option<String>) -> anyhow::Result<()> {
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
            let pb = progress::bar(c.iterations as u64, &p.name);
            let interrupt = progress::interrupt_flag();
            let s = PretrainRun {
                config: (**c).clone(),
                data_dir: p.data.path().to_path_buf(),
                out: p.dir.clone(),
                resume,
                force,
                device,
                interrupt: interrupt.clone(),
                observer: &mut crate::progress::BarObserver(pb.clone()),
                dist: None,
            }
            .run()?;
            pb.finish_and_clear();
            if s.interrupted {
                eprintln!("interrupted; rerun the same command to continue");
                std::process::exit(progress::interrupt_exit_code());
            }
            let metrics = colorproxy_nn::pretrain::read_metrics(&RunPaths::new(&p.dir).metrics())?;
            crate::report::loss_curve(&metrics, &p.dir.join("loss.png"))?;
            serde_json::json!({"kind": "colorization", "iterations": s.iterations_done,
                "final_loss": s.final_loss, "seconds": t0.elapsed().as_secs_f64(), "key": p.key})
        }
        Config::Supervised(c) => {
            let mut args = finetune_args(TaskArg::Cls, p.data.path(), &p.dir, "train", "val", resume, force);
            args.device = device_arg.clone();
            crate::cmd_transfer::finetune_resolved(args, (**c).clone())?;
            let mut v = read_results(&p.dir).unwrap_or(serde_json::json!({}));
            v["kind"] = "supervised".into();
            v["seconds"] = t0.elapsed().as_secs_f64().into();
            v["key"] = p.key.clone().into();
            v
        }
    };
    write_json_atomic(&p.dir.join(DONE), &done)
}

fn read_results(dir: &Path) -> anyhow::Result<serde_json::Value> {
    let p = dir.join("results.json");
    Ok(serde_json::from_str(
        &std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?,
    )?)
}

fn finetune_args(
    task: TaskArg,
    data: &Path,
    out: &Path,
    train: &str,
    eval: &str,
    resume: bool,
    force: bool,
) -> FinetuneArgs {
    FinetuneArgs {
        resume,
        force,
        train_split: train.into(),
        eval_split: eval.into(),
        ..FinetuneArgs::new(task, data, out)
    }
}

fn run_finetune(f: &FinetunePlan, plan: &Plan, device: &Option<String>) -> anyhow::Result<()> {
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
    let (resume, force) = start_mode(&f.dir);
    let task = if f.task == colorproxy_nn::transfer::Task::Seg { TaskArg::Seg } else { TaskArg::Cls };
    let mut args = finetune_args(task, &f.data, &f.dir, &f.train_split, &f.eval_split, resume, force);
    args.device = device.clone();
    crate::cmd_transfer::finetune_resolved(args, cfg)?;
    let mut v = read_results(&f.dir)?;
    let schedule = colorproxy_nn::early_stop::read_schedule(&f.dir).ok();
    v["iterations"] = schedule.map(|s| s.stop).into();
    v["seconds"] = t0.elapsed().as_secs_f64().into();
    v["key"] = f.key.clone().into();
    write_json_atomic(&f.dir.join(DONE), &v)
}
