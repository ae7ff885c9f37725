//! `colorproxy analyse frozen`: the paper's Table 6, which layers must be fine-tuned. For each
//! row (nothing: only the new head and +FoV train; the top layers; the upper half; everything),
//! each initialisation and each seed, a fine-tuning run with the rest of the backbone frozen
//! (`--freeze-until`), evaluated on the evaluation split; a table of means, standard deviations
//! and every seed. Runs are folders under OUT/runs: a finished one is reused, an interrupted one
//! resumed, so rerunning the command repeats nothing.
use std::path::Path;

use crate::{bail, Context};

use crate::report::html::{Cell, Page};
use crate::request::{FinetuneRequest, FrozenRequest, Resume};

/// The rows of Table 6 for an architecture: (label, last frozen layer; `None`: nothing frozen).
fn rows(arch: &str) -> Vec<(&'static str, Option<&'static str>)> {
    match arch {
        "vgg16" => vec![
            ("nothing (head only)", Some("fc7")),
            ("fc6-fc7", Some("conv5_3")),
            ("conv4_1 and up", Some("conv3_3")),
            ("everything", None),
        ],
        "alexnet" => vec![
            ("nothing (head only)", Some("fc7")),
            ("fc6-fc7", Some("conv5")),
            ("conv3 and up", Some("conv2")),
            ("everything", None),
        ],
        _ => vec![
            ("nothing (head only)", Some("layer4")),
            ("layer4", Some("layer3")),
            ("layer3 and up", Some("layer2")),
            ("everything", None),
        ],
    }
}

/// A short name of an initialisation: `random`, or the checkpoint's run folder name.
fn init_label(init: &str) -> String {
    if init == "random" {
        return "random".into();
    }
    let p = Path::new(init);
    let run = p.parent().and_then(|d| d.parent()).and_then(|d| d.file_name());
    run.or_else(|| p.file_stem()).map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| init.into())
}

/// Mean and sample standard deviation (see [`colorproxy_data::spread`]).
fn mean_std(v: &[f64]) -> (f64, f64) {
    let s = colorproxy_data::spread::spread(v);
    (s.mean, s.std)
}

/// The `finetune` arguments of one run of the table (resumed if its folder holds a checkpoint,
/// started over if it holds only an unfinished start).
fn finetune_args(
    a: &FrozenRequest,
    init: &str,
    freeze: Option<&str>,
    seed: u64,
    dir: &Path,
) -> FinetuneRequest {
    let resume = !colorproxy_nn::run_dir::generations(&colorproxy_nn::run_dir::RunPaths::new(dir)).is_empty();
    FinetuneRequest {
        init: init.to_string(),
        preset: a.preset.clone(),
        config: a.config.clone(),
        freeze_until: freeze.map(str::to_string),
        resume: if resume { Resume::Yes } else { Resume::No },
        force: !resume && dir.exists(),
        train_split: a.train_split.clone(),
        eval_split: a.eval_split.clone(),
        max_iterations: a.max_iterations,
        seed: Some(seed),
        device: a.device.clone(),
        ..FinetuneRequest::new(a.task, &a.data, dir)
    }
}

/// One fine-tuning run of the table (reused when finished); its score on the evaluation split.
fn run_one(a: &FrozenRequest, init: &str, freeze: Option<&str>, seed: u64, dir: &Path) -> crate::Result<f64> {
    let results = dir.join("results.json");
    if !(results.is_file() && dir.join("schedule.json").is_file()) {
        crate::finetune::finetune(finetune_args(a, init, freeze, seed, dir))
            .with_context(|| format!("run {}", dir.display()))?;
    }
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&results).with_context(|| format!("reading {}", results.display()))?,
    )?;
    v["value"].as_f64().with_context(|| format!("{}: no value", results.display()))
}

pub fn run(a: FrozenRequest) -> crate::Result<()> {
    if a.seeds.is_empty() || a.inits.is_empty() {
        bail!("give at least one --init and one --seeds value");
    }
    let archs = a
        .inits
        .iter()
        .map(|i| {
            let m = crate::finetune::resolve(&finetune_args(&a, i, None, 0, Path::new("")))?.model;
            Ok((m.arch.clone(), format!("{} (width {}, fc {})", m.arch, m.width, m.fc_channels)))
        })
        .collect::<crate::Result<Vec<(String, String)>>>()?;
    if archs.iter().any(|x| x.1 != archs[0].1) {
        let all: Vec<&str> = archs.iter().map(|x| x.1.as_str()).collect();
        bail!("the initialisations are different networks ({}): one table needs one", all.join(", "));
    }
    let arch = archs[0].0.clone();
    let rows = rows(&arch);
    let runs = a.out.join("runs");
    std::fs::create_dir_all(&runs).with_context(|| format!("creating {}", runs.display()))?;
    // scores[row][init] = per seed.
    let mut scores: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); a.inits.len()]; rows.len()];
    let total = rows.len() * a.inits.len() * a.seeds.len();
    let mut k = 0;
    for (r, (label, freeze)) in rows.iter().enumerate() {
        for (i, init) in a.inits.iter().enumerate() {
            for &seed in &a.seeds {
                k += 1;
                let name = format!("{}__{}__seed{seed}", freeze.unwrap_or("none"), init_label(init));
                eprintln!("[{k}/{total}] {label}, init {}, seed {seed}", init_label(init));
                scores[r][i].push(run_one(&a, init, *freeze, seed, &runs.join(name))?);
            }
        }
    }
    write_table(&a, &arch, &rows, &scores)
}

fn write_table(
    a: &FrozenRequest,
    arch: &str,
    rows: &[(&str, Option<&str>)],
    scores: &[Vec<Vec<f64>>],
) -> crate::Result<()> {
    let labels: Vec<String> = a.inits.iter().map(|i| init_label(i)).collect();
    let seeds = a.seeds.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ");
    let mut md = format!(
        "| layers fine-tuned ({arch}) | {} |\n|---|{}\n",
        labels.join(" | "),
        "---|".repeat(labels.len())
    );
    let mut html_rows = Vec::new();
    let mut json_rows = Vec::new();
    for ((label, freeze), row) in rows.iter().zip(scores) {
        let cells: Vec<String> = row
            .iter()
            .map(|v| {
                let (m, s) = mean_std(v);
                let each = v.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>().join(" / ");
                format!("{m:.3} ± {s:.3} ({each})")
            })
            .collect();
        md.push_str(&format!("| {label} | {} |\n", cells.join(" | ")));
        let mut h = vec![Cell::from(*label)];
        h.extend(cells.iter().map(|c| Cell::from(c.as_str())));
        html_rows.push(h);
        json_rows.push(serde_json::json!({
            "row": label, "freeze_until": freeze,
            "inits": labels.iter().zip(row).map(|(l, v)| {
                let s = colorproxy_data::spread::spread(v);
                serde_json::json!({"init": l, "seeds": a.seeds, "values": v, "mean": s.mean, "std": s.std, "ci95": s.ci95})
            }).collect::<Vec<_>>(),
        }));
    }
    md.push_str(&format!("\nMean ± sample standard deviation over seeds {seeds} (each seed in brackets).\n"));
    std::fs::write(a.out.join("table.md"), &md).context("writing table.md")?;
    let json = serde_json::json!({"arch": arch, "task": format!("{:?}", a.task).to_lowercase(), "data": a.data,
        "inits": a.inits, "seeds": a.seeds, "max_iterations": a.max_iterations, "rows": json_rows});
    std::fs::write(a.out.join("table.json"), serde_json::to_string_pretty(&json)?)
        .context("writing table.json")?;
    let mut page = Page::new(&format!("Which layers must be fine-tuned? ({arch}, Table 6)"));
    page.p(&format!(
        "{:?} fine-tuning on {}, evaluated on the {} split; the rest of the backbone frozen. Mean ± standard deviation over seeds {seeds}.",
        a.task,
        a.data.display(),
        a.eval_split
    ));
    let mut header = vec!["layers fine-tuned"];
    header.extend(labels.iter().map(String::as_str));
    page.table(&header, html_rows);
    page.write(&a.out.join("table.html"))?;
    println!("{md}\nwrote {}/table.{{md,json,html}}", a.out.display());
    Ok(())
}
