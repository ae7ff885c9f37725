//! One fine-tuning, three ways to start it: `colorproxy demo` (its segmentation and classification
//! runs; the demo is itself a recipe of the experiment runner), `colorproxy finetune` with the
//! same preset, init, seed, cap and settings, and a recipe of the user's with the same (from the
//! demo's checkpoint as a weights file, and from the recipe's own pretraining, planned before it
//! has run). The resolved configs are the same and the trained weights bit-identical.
mod common;

use std::path::{Path, PathBuf};

use common::{bin, text};

fn tensors(ck: &Path) -> Vec<(String, tch::Tensor)> {
    let mut t = tch::Tensor::read_safetensors(ck).unwrap();
    t.sort_by(|a, b| a.0.cmp(&b.0));
    t
}

fn assert_same_weights(a: &Path, b: &Path) {
    let (ta, tb) = (tensors(a), tensors(b));
    assert_eq!(ta.len(), tb.len(), "{} vs {}", a.display(), b.display());
    for ((na, xa), (nb, xb)) in ta.iter().zip(&tb) {
        assert_eq!(na, nb);
        assert!(xa.equal(xb), "{na} differs: {} vs {}", a.display(), b.display());
    }
}

/// A value of a run's saved config (`key = value` at the top level).
fn config_value(run: &Path, key: &str) -> String {
    let text = std::fs::read_to_string(run.join("config.toml")).unwrap();
    let t: toml::Table = toml::from_str(&text).unwrap();
    t[key].to_string()
}

/// The demo's settings of a task's fine-tuning as `--set` pairs (what its docs say it uses).
fn demo_settings(task: &str, threads: &str) -> Vec<String> {
    let crop = if task == "seg" { 96 } else { 80 };
    vec![format!("crop={crop}"), "test_short_side=96.0".into(), format!("threads={threads}")]
}

#[test]
fn finetune_recipe_and_demo_give_the_same_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let demo = tmp.path().join("demo");
    let o = bin().args(["demo", "--quick", "--seed", "0", "--out"]).arg(&demo).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let voc = demo.join("data/voc");
    let ck = demo.join("pretrain/checkpoints/last.safetensors");
    // The demo's quick cap (15) and its libtorch threads (half the cores), read from its runs.
    let threads = config_value(&demo.join("seg-colorization"), "threads");
    let runs: [(&str, &str, PathBuf); 3] = [
        ("seg", "colorization", demo.join("seg-colorization")),
        ("seg", "random", demo.join("seg-random")),
        ("cls", "colorization", demo.join("cls-colorization")),
    ];

    // 1. `colorproxy finetune` with the same inputs.
    for (task, init, demo_run) in &runs {
        let out = tmp.path().join(format!("cli-{task}-{init}"));
        let init_arg = if *init == "random" { "random".to_string() } else { ck.display().to_string() };
        let mut c = bin();
        c.args(["finetune", task, "--preset", &format!("{task}-cpu"), "--init", &init_arg]);
        c.args(["--seed", "0", "--max-iterations", "15", "--data"]).arg(&voc).arg("--out").arg(&out);
        for s in demo_settings(task, &threads) {
            c.args(["--set", &s]);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
        assert_same_weights(
            &demo_run.join("checkpoints/last.safetensors"),
            &out.join("checkpoints/last.safetensors"),
        );
    }

    // 2. A recipe with the same inputs: the demo's checkpoint given as a weights file, and the
    // recipe's own pretraining with the demo's (cpu-small, 20 iterations, seed 0), planned before
    // its checkpoint exists.
    let mut recipe = format!(
        "title = \"same runs\"\nseeds = [0]\n[data.voc]\npath = {voc:?}\n[data.ck]\npath = {ck:?}\n\
         [data.unl]\npath = {unl:?}\n[[pretrain]]\nname = \"color\"\npreset = \"cpu-small\"\ndata = \"unl\"\n\
         iterations = 20\n",
        voc = voc.display().to_string(),
        ck = ck.display().to_string(),
        unl = demo.join("data/unlabelled").display().to_string(),
    );
    for task in ["seg", "cls"] {
        let inits = if task == "seg" {
            "[\"random\", \"weights:ck\", \"color\"]"
        } else {
            "[\"weights:ck\", \"color\"]"
        };
        let set: Vec<String> =
            demo_settings(task, &threads).iter().map(|kv| kv.replacen('=', " = ", 1)).collect();
        recipe.push_str(&format!(
            "[[finetune]]\nname = \"{task}\"\ntask = \"{task}\"\npreset = \"{task}-cpu\"\ndata = \"voc\"\n\
             init = {inits}\nmax_iterations = 15\nset = {{ {} }}\n",
            set.join(", ")
        ));
    }
    let file = tmp.path().join("same.toml");
    std::fs::write(&file, recipe).unwrap();
    let out = tmp.path().join("recipe");
    let o = bin().args(["experiment", "run"]).arg(&file).arg("--out").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let from_pretraining =
        [("seg", "color", demo.join("seg-colorization")), ("cls", "color", demo.join("cls-colorization"))];
    for (task, init, demo_run) in runs.iter().chain(&from_pretraining) {
        let shown = match *init {
            "random" => "random",
            "color" => "color",
            _ => "weights-ck",
        };
        let prefix = format!("finetune-{task}-{shown}-seed0-");
        let dir = std::fs::read_dir(out.join("runs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&prefix))
            .unwrap_or_else(|| panic!("no run {prefix}* in {}", out.display()));
        assert_same_weights(
            &demo_run.join("checkpoints/last.safetensors"),
            &dir.join("checkpoints/last.safetensors"),
        );
    }
}
