//! `colorproxy analyse frozen`: the paper's Table 6, which layers must be fine-tuned, as a recipe
//! of the experiment runner. For each row (nothing: only the new head and +FoV train; the top
//! layers; the upper half; everything), each initialisation and each seed, a fine-tuning run with
//! the rest of the backbone frozen (`freeze_until`), evaluated on the evaluation split; the
//! runner's tables (mean, standard deviation, 95% interval, every seed; OUT/tables.md,
//! report.html, results.csv) and OUT/recipe.toml, the recipe it ran. Runs are folders under
//! OUT/runs: a finished one is reused, an interrupted one resumed.
use std::path::{Path, PathBuf};

use crate::request::{ExperimentRequest, FinetuneRequest, FrozenRequest};
use crate::{bail, Context};

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

/// The `finetune` request of a cell (to resolve the init's network).
fn finetune_args(a: &FrozenRequest, init: &str) -> FinetuneRequest {
    FinetuneRequest {
        init: init.to_string(),
        preset: a.preset.clone(),
        config: a.config.clone(),
        train_split: a.train_split.clone(),
        eval_split: a.eval_split.clone(),
        max_iterations: a.max_iterations,
        device: a.device.clone(),
        ..FinetuneRequest::new(a.task, &a.data, Path::new(""))
    }
}

/// A TOML string.
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn absolute(p: &Path) -> crate::Result<String> {
    Ok(std::path::absolute(p).with_context(|| format!("{}", p.display()))?.display().to_string())
}

/// The recipe of the table: one fine-tuning per row (`set = { freeze_until = LAYER }`), every
/// init (checkpoints as `weights:` data sets), every seed; a table of rows x inits.
fn recipe(a: &FrozenRequest, arch: &str, rows: &[(&str, Option<&str>)]) -> crate::Result<String> {
    let task = crate::task_name(a.task);
    let seeds = a.seeds.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ");
    let mut t = format!(
        "title = {}\nseeds = [{seeds}]\n\n[data.data]\npath = {}\n",
        q(&format!("Which layers must be fine-tuned? ({arch}, Table 6)")),
        q(&absolute(&a.data)?)
    );
    let mut refs = Vec::new();
    for (i, init) in a.inits.iter().enumerate() {
        if init == "random" {
            refs.push("random".to_string());
        } else {
            t.push_str(&format!("\n[data.init{i}]\npath = {}\n", q(&absolute(Path::new(init))?)));
            refs.push(format!("weights:init{i}"));
        }
    }
    let base = match (&a.preset, &a.config) {
        (_, Some(c)) => format!("config = {}", q(&absolute(c)?)),
        (Some(p), None) => format!("preset = {}", q(p)),
        (None, None) => {
            let first = a.inits.iter().find(|i| *i != "random").unwrap_or(&a.inits[0]);
            format!("preset = {}", q(&crate::finetune::default_preset(a.task, first, true)))
        }
    };
    let inits = refs.iter().map(|r| q(r)).collect::<Vec<_>>().join(", ");
    let name = |freeze: Option<&str>| freeze.map(|f| format!("frozen-{f}")).unwrap_or_else(|| "all".into());
    for (_, freeze) in rows {
        t.push_str(&format!(
            "\n[[finetune]]\nname = {}\ntask = \"{task}\"\n{base}\ndata = \"data\"\ninit = [{inits}]\ntrain_split = {}\neval_split = {}\n",
            q(&name(*freeze)),
            q(&a.train_split),
            q(&a.eval_split)
        ));
        if let Some(n) = a.max_iterations {
            t.push_str(&format!("max_iterations = {n}\n"));
        }
        if let Some(f) = freeze {
            t.push_str(&format!("set = {{ freeze_until = {} }}\n", q(f)));
        }
    }
    let labels = a.inits.iter().map(|i| q(&init_label(i))).collect::<Vec<_>>().join(", ");
    t.push_str(&format!(
        "\n[[table]]\nname = \"table6\"\ntitle = {}\ncolumns = [{labels}]\n",
        q(&format!("Layers fine-tuned ({arch})"))
    ));
    for (label, freeze) in rows {
        let cells = refs.iter().map(|r| q(&format!("{}:{r}", name(*freeze)))).collect::<Vec<_>>().join(", ");
        t.push_str(&format!("\n[[table.row]]\nlabel = {}\ncells = [{cells}]\n", q(label)));
    }
    Ok(t)
}

pub fn run(a: FrozenRequest) -> crate::Result<()> {
    if a.seeds.is_empty() || a.inits.is_empty() {
        bail!("give at least one --init and one --seeds value");
    }
    let archs = a
        .inits
        .iter()
        .map(|i| {
            let m = crate::finetune::resolve(&finetune_args(&a, i))?.model;
            Ok((m.arch.clone(), format!("{} (width {}, fc {})", m.arch, m.width, m.fc_channels)))
        })
        .collect::<crate::Result<Vec<(String, String)>>>()?;
    if archs.iter().any(|x| x.1 != archs[0].1) {
        let all: Vec<&str> = archs.iter().map(|x| x.1.as_str()).collect();
        bail!("the initialisations are different networks ({}): one table needs one", all.join(", "));
    }
    let arch = archs[0].0.clone();
    let text = recipe(&a, &arch, &rows(&arch))?;
    let req = ExperimentRequest {
        recipe: a.out.join("recipe.toml"),
        out: a.out.clone(),
        only: None,
        dry_run: false,
        data: vec![],
        device: a.device.clone(),
        workers: 1,
    };
    crate::experiment::run_text(&text, "analyse frozen", PathBuf::from("/"), &req)
}
