//! `colorproxy experiment run RECIPE.toml --out DIR`: the paper's comparisons as one command.
//! A recipe ([`recipe`]) lists data sets, pretrainings and fine-tunings (x seeds); every run is
//! a folder under DIR/runs keyed by its resolved config. A run with `done.json` is finished and
//! reused; a folder without it is resumed from its checkpoint (or started over when it has
//! none), so rerunning after a crash repeats nothing. Then [`output`] writes results.csv,
//! tables.md, report.html and the sweep plots from the finished runs.
pub mod claim;
pub mod output;
mod plan;
mod queue;
pub mod recipe;
mod runner;

pub use runner::{status, Status, DONE};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::{bail, Context};

use crate::request::{ExperimentRequest, GenerateRequest};
use plan::{DataSets, FinetunePlan, Plan};
use recipe::Recipe;

/// Which runs `--only NAME` needs (indices into the plan), with the pretrainings they start from.
fn selected(
    r: &Recipe,
    plan: &Plan,
    only: Option<&str>,
) -> crate::Result<(BTreeSet<usize>, BTreeSet<usize>)> {
    let mut ft: BTreeSet<usize> = BTreeSet::new();
    let mut pre: BTreeSet<usize> = BTreeSet::new();
    let Some(name) = only else {
        return Ok(((0..plan.pretrain.len()).collect(), unique(plan, (0..plan.finetune.len()).collect())));
    };
    let all_ft = |pred: &dyn Fn(&FinetunePlan) -> bool| -> BTreeSet<usize> {
        plan.finetune.iter().enumerate().filter(|(_, f)| pred(f)).map(|(i, _)| i).collect()
    };
    if let Some(t) = r.table.iter().find(|t| t.name == name && !t.row.is_empty()) {
        let cells: Vec<(&str, &str)> = t.row.iter().flat_map(|row| row.runs()).flatten().collect();
        ft = all_ft(&|f| cells.iter().any(|&(n, i)| f.name == n && f.init == i));
    } else if let Some(t) = r.table.iter().find(|t| t.name == name) {
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

pub fn run(a: ExperimentRequest) -> crate::Result<()> {
    let text =
        std::fs::read_to_string(&a.recipe).with_context(|| format!("reading {}", a.recipe.display()))?;
    let recipe_dir = a.recipe.parent().map(Path::to_path_buf).unwrap_or_default();
    let recipe_dir = if recipe_dir.as_os_str().is_empty() { PathBuf::from(".") } else { recipe_dir };
    run_text(&text, &a.recipe.display().to_string(), recipe_dir, &a)
}

/// Runs a recipe given as text (`origin` names it in errors; relative paths are relative to
/// `recipe_dir`), then writes its tables: what `run` does with a file, and how other commands run
/// theirs (Table 6's `analyse frozen`).
pub fn run_text(text: &str, origin: &str, recipe_dir: PathBuf, a: &ExperimentRequest) -> crate::Result<()> {
    let t0 = Instant::now();
    let Some(done) = execute(text, origin, recipe_dir, a)? else { return Ok(()) };
    let _claim = claim::wait_for(&a.out.join("tables"), "writing the tables")
        .with_context(|| format!("claiming {}", a.out.display()))?;
    let md = output::write(&done.recipe, &done.plan, &a.out, t0.elapsed().as_secs_f64())?;
    println!("{md}\nwrote {}/{{results.csv,tables.md,report.html}}", a.out.display());
    Ok(())
}

/// A recipe's runs once [`execute`] has run them: where each run's folder is.
pub struct Finished {
    recipe: Recipe,
    plan: Plan,
    /// Runs left to other processes (held by them), unfinished when this one ended.
    pub elsewhere: usize,
}

impl Finished {
    /// The folder of the pretraining `name`.
    pub fn pretraining(&self, name: &str) -> Option<&Path> {
        self.plan.pretrain.iter().find(|p| p.name == name).map(|p| p.dir.as_path())
    }

    /// The folder of fine-tuning `name` from `init` with `seed`.
    pub fn finetuning(&self, name: &str, init: &str, seed: u64) -> Option<&Path> {
        let f = self.plan.finetune.iter().find(|f| f.name == name && f.init == init && f.seed == seed);
        f.map(|f| f.dir.as_path())
    }
}

/// Plans a recipe given as text and runs what it (or `--only`) selects, with `a.workers` runs
/// side by side; `None` after a dry run (which prints the plan and the paper's skeletons).
pub fn execute(
    text: &str,
    origin: &str,
    recipe_dir: PathBuf,
    a: &ExperimentRequest,
) -> crate::Result<Option<Finished>> {
    let r = Recipe::parse(text, origin)?;
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
    let r = r.with_epochs(&sets)?;
    let runs = a.out.join("runs");
    let plan = r.plan(&sets, &runs)?;
    let (pre, ft) = selected(&r, &plan, a.only.as_deref())?;
    colorproxy_nn::parse_device(a.device.as_deref())?;
    let generated = needed_generated(&r, &sets, &plan, &pre, &ft)?;
    if a.dry_run {
        dry_run(&r, &plan, &pre, &ft, &generated);
        return Ok(None);
    }
    std::fs::create_dir_all(&runs).with_context(|| format!("creating {}", runs.display()))?;
    std::fs::write(a.out.join("recipe.toml"), text).context("copying the recipe")?;
    for name in &generated {
        // Once, whichever of the processes running this recipe side by side gets there first.
        let dir = sets.out.join("data").join(name);
        let _claim = claim::wait_for(&dir, &format!("generating data set {name}"))
            .with_context(|| format!("claiming {}", dir.display()))?;
        if !dir.join(".generated").is_file() {
            generate(&r, &sets, name)?;
        }
    }
    let elsewhere = queue::Queue::new(&plan, &pre, &ft, &a.device, a.workers).run()?;
    if elsewhere > 0 {
        eprintln!(
            "{elsewhere} run(s) held by other processes: the tables below show what is finished now; \
             run the recipe again when they end (it reruns nothing finished)"
        );
    }
    Ok(Some(Finished { recipe: r, plan, elsewhere }))
}

/// The generated data sets the selected runs read and that are not generated yet.
fn needed_generated(
    r: &Recipe,
    sets: &DataSets,
    plan: &Plan,
    pre: &BTreeSet<usize>,
    ft: &BTreeSet<usize>,
) -> crate::Result<Vec<String>> {
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

fn generate(r: &Recipe, sets: &DataSets, name: &str) -> crate::Result<()> {
    let g = r.data[name].generate.clone().context("generate")?;
    let dir = sets.out.join("data").join(name);
    eprintln!("generating data set {name} -> {}", dir.display());
    crate::demo::generate(GenerateRequest {
        out: dir.clone(),
        images: g.images,
        seed: g.seed,
        classes: g.classes,
        per_class_train: g.per_class_train,
        per_class_val: g.per_class_val,
        voc_train: g.voc_train,
        voc_val: g.voc_val,
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
    let held = |dir: &Path| claim::holder(dir).map(|h| format!(" (running: {h})")).unwrap_or_default();
    let (mut done, mut todo) = (0, 0);
    for &i in pre {
        let p = &plan.pretrain[i];
        let s = status(&p.dir);
        if s == Status::Done {
            done += 1
        } else {
            todo += 1
        }
        println!("  {} pretrain {} ({:?}) {}{}", show(s), p.name, p.kind, p.dir.display(), held(&p.dir));
        if let plan::Config::Color(c) = &p.config {
            // What it costs: total batch, length in images and epochs of ImageNet, time on one H100.
            if let Ok(cost) = colorproxy_nn::cost::pretrain_cost(c) {
                let images = c.iterations as f64 * (c.data.batch_size * c.world_size.max(1)) as f64;
                println!(
                    "            {} iterations x {} images = {:.2} epochs of ImageNet; {:.1} GFLOPs/image; \
                     est. {:.2} h on one H100 at {} TFLOP/s",
                    c.iterations,
                    c.data.batch_size * c.world_size.max(1),
                    images / colorproxy_nn::cost::IMAGENET_TRAIN_IMAGES as f64,
                    cost.train_flops_per_image / 1e9,
                    cost.run_flops(c) / (crate::cost::H100_TFLOPS * 1e12) / 3600.0,
                    crate::cost::H100_TFLOPS
                );
            }
        }
    }
    for &i in ft {
        let f = &plan.finetune[i];
        let s = status(&f.dir);
        if s == Status::Done {
            done += 1
        } else {
            todo += 1
        }
        println!(
            "  {} finetune {} from {} seed {} {}{}",
            show(s),
            f.name,
            f.init,
            f.seed,
            f.dir.display(),
            held(&f.dir)
        );
    }
    println!("{done} done, {todo} to run");
    print!("{}", skeletons(r, plan));
}

/// The paper-shaped tables and the sweeps with the paper's values: each table in the paper's
/// shape with its published value in every cell, then the runs behind each cell.
fn skeletons(r: &Recipe, plan: &Plan) -> String {
    let mut out = String::new();
    let runs_of = |f: &str, i: &str| {
        let v: Vec<&FinetunePlan> = plan.finetune.iter().filter(|p| p.name == f && p.init == i).collect();
        let done = v.iter().filter(|p| status(&p.dir) == Status::Done).count();
        let seeds = v.iter().map(|p| p.seed.to_string()).collect::<Vec<_>>().join(", ");
        format!("fine-tuning {f} from {i}, seeds {seeds} ({done} of {} done)", v.len())
    };
    let paper = |v: f64| if v.is_nan() { "-".to_string() } else { format!("{v:.1}") };
    for t in r.table.iter().filter(|t| t.row.iter().any(|row| !row.paper.is_empty())) {
        out.push_str(&format!(
            "\n{} (the paper's values)\n\n|  | {} |\n|{}\n",
            t.title,
            t.columns.join(" | "),
            "---|".repeat(t.columns.len() + 1)
        ));
        for row in &t.row {
            let cells: Vec<String> = (0..t.columns.len())
                .map(|c| row.paper.get(c).map_or("-".to_string(), |&v| paper(v)))
                .collect();
            out.push_str(&format!("| {} | {} |\n", row.label, cells.join(" | ")));
        }
        out.push_str("\nplanned runs:\n");
        for row in &t.row {
            for (c, (col, run)) in t.columns.iter().zip(row.runs()).enumerate() {
                let what = match run {
                    Some((f, i)) => runs_of(f, i),
                    None => format!(
                        "no run{}",
                        if row.note.is_empty() { String::new() } else { format!(" ({})", row.note) }
                    ),
                };
                let v = row.paper.get(c).map_or("-".to_string(), |&v| paper(v));
                out.push_str(&format!("  {} / {col}: paper {v} <- {what}\n", row.label));
            }
        }
    }
    for s in r.sweep.iter().filter(|s| !s.paper.is_empty()) {
        out.push_str(&format!("\n{} (the paper's values)\n", s.title));
        for (init, v) in &s.paper {
            out.push_str(&format!("  {init}: paper {} <- {}\n", paper(*v), runs_of(&s.finetune, init)));
        }
    }
    out
}
