//! `colorproxy experiment run`: a tiny recipe runs every run once, its tables are the spread of
//! the per-seed scores, a run killed with SIGKILL midway is finished by a rerun without repeating
//! a finished run and gives the same tables as an uninterrupted run, two processes side by side
//! share the runs (each trained once), as do two workers of one process; supervised pretraining in a
//! label-space variant; the 20-class generator and its bucket map.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_colorproxy"));
    c.env("CI", "1");
    c
}

/// A recipe of 2 colorization pretrainings (one with snapshots for a sweep), a supervised one
/// on 8 generated classes (random buckets), and segmentation fine-tuning from random, both and
/// the snapshots, 2 seeds.
const RECIPE: &str = r#"
title = "tiny"
seeds = [0, 1]

[data.scenes]
generate = { images = 48, seed = 3, classes = 8, per_class_train = 6, per_class_val = 2 }

[[pretrain]]
name = "color"
preset = "cpu-small"
data = ["scenes/unlabelled", "scenes/voc@train"]
iterations = 24
set = { checkpoint_every = 4, "data.batch_size" = 4 }

[[pretrain]]
name = "sup"
kind = "supervised"
preset = "cls-cpu"
data = "scenes/folders"
iterations = 6
set = { "label_space.random_buckets" = 3, crop = 48, short_side = 48.0, test_short_side = 48.0 }

[[finetune]]
name = "seg"
task = "seg"
preset = "seg-cpu"
data = "scenes/voc"
init = ["random", "color", "sup"]
max_iterations = 8
set = { short_side = 64.0, crop = 64, test_short_side = 64.0, test_max_side = 0, checkpoint_every = 2, threads = 1 }

[[table]]
name = "t1"
title = "Table 1 (tiny)"
columns = ["seg"]

[[sweep]]
name = "fig4"
title = "Fig. 4 (tiny)"
finetune = "seg"
pretrain = ["color"]
at = [12, 24]
"#;

fn write_recipe(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("tiny.toml");
    std::fs::write(&p, RECIPE).unwrap();
    p
}

/// Runs the recipe from its own folder with relative paths, as users do
/// (`experiment run experiments/x.toml --out runs/x`).
fn run(recipe: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let dir = recipe.parent().unwrap();
    let o = bin()
        .current_dir(dir)
        .args(["experiment", "run"])
        .arg(recipe.file_name().unwrap())
        .arg("--out")
        .arg(out.strip_prefix(dir).unwrap())
        .args(extra)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The finished runs: folder name -> contents of done.json and its modification time.
fn finished(out: &Path) -> std::collections::BTreeMap<String, (String, std::time::SystemTime)> {
    let mut m = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(out.join("runs")).unwrap() {
        let d = e.unwrap().path();
        let f = d.join("done.json");
        if f.is_file() {
            let name = d.file_name().unwrap().to_string_lossy().into_owned();
            m.insert(
                name,
                (std::fs::read_to_string(&f).unwrap(), std::fs::metadata(&f).unwrap().modified().unwrap()),
            );
        }
    }
    m
}

/// results.csv without the wall times (the only rows that differ between runs).
fn results(out: &Path) -> Vec<String> {
    std::fs::read_to_string(out.join("results.csv"))
        .unwrap()
        .lines()
        .filter(|l| !l.contains(",seconds,"))
        .map(String::from)
        .collect()
}

/// tables.md from its first table on (the intro states wall times).
fn tables(out: &Path) -> String {
    let md = std::fs::read_to_string(out.join("tables.md")).unwrap();
    md[md.find("## ").unwrap()..].to_string()
}

#[test]
fn a_recipe_killed_midway_finishes_on_rerun_without_repeating_a_run_and_gives_the_same_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_recipe(tmp.path());
    // Uninterrupted.
    let a = tmp.path().join("a");
    run(&recipe, &a, &[]);
    let done_a = finished(&a);
    // 2 pretrainings; fine-tunings: (random, color = color@24, sup, color@12) x 2 seeds.
    assert_eq!(done_a.len(), 2 + 4 * 2, "{:?}", done_a.keys().collect::<Vec<_>>());
    let csv = results(&a);
    let score = |init: &str, seed: u64| -> f64 {
        let l = csv
            .iter()
            .find(|l| l.contains(&format!(",seg,{init},{seed},miou,")))
            .unwrap_or_else(|| panic!("no row for {init} seed {seed}: {csv:?}"));
        l.rsplit(',').next().unwrap().parse().unwrap()
    };
    // The table's cell is the mean, sample std and t-interval of the per-seed scores.
    let md = tables(&a);
    for init in ["random", "color", "sup"] {
        let (x, y) = (score(init, 0), score(init, 1));
        let mean = (x + y) / 2.0;
        let std = (x - y).abs() / 2f64.sqrt();
        let half = 12.706 * std / 2f64.sqrt();
        let cell = format!("{mean:.3} ± {std:.3} [{:.3}, {:.3}] ({x:.3} / {y:.3})", mean - half, mean + half);
        assert!(md.contains(&format!("| {init} | {cell} |")), "{init}: {cell} not in\n{md}");
    }
    // The last snapshot is the final weights: the same run, listed once in results.csv.
    assert!(!csv.iter().any(|l| l.contains(",color@24,")), "{csv:?}");
    let row = |label: &str| {
        md.lines()
            .find(|l| l.starts_with(&format!("| {label} |")))
            .map(|l| l.split(" | ").nth(1).unwrap().to_string())
    };
    assert_eq!(row("color, iteration 24"), row("color"));
    assert!(md.contains("| color, iteration 12 |") && a.join("sweep-fig4.png").is_file());
    // The supervised pretraining trained on 3 random buckets of the 8 classes.
    let sup = std::fs::read_dir(a.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("pretrain-sup-"));
    let cfg = std::fs::read_to_string(sup.unwrap().join("config.toml")).unwrap();
    assert!(cfg.contains("classes = [\n    \"bucket-0\",\n    \"bucket-1\",\n    \"bucket-2\",\n]"), "{cfg}");
    assert!(cfg.contains("[label_space]") && cfg.contains("random_buckets = 3"), "{cfg}");

    // Killed (SIGKILL) once the first fine-tuning has finished, then rerun.
    let b = tmp.path().join("b");
    let mut child = bin()
        .args(["experiment", "run"])
        .arg(&recipe)
        .arg("--out")
        .arg(&b)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let killed_midway = loop {
        let f = if b.join("runs").is_dir() { finished(&b) } else { Default::default() };
        if f.keys().any(|k| k.starts_with("finetune-")) {
            child.kill().unwrap(); // SIGKILL
            break true;
        }
        if let Some(s) = child.try_wait().unwrap() {
            assert!(s.success());
            break false;
        }
        assert!(t0.elapsed() < Duration::from_secs(600), "the recipe did not progress");
        std::thread::sleep(Duration::from_millis(20));
    };
    child.wait().unwrap();
    assert!(killed_midway, "the recipe finished before it could be killed");
    let before = finished(&b);
    assert!(before.len() < done_a.len(), "killed after every run had finished");
    let o = run(&recipe, &b, &["--dry-run"]);
    let listing = String::from_utf8_lossy(&o.stdout);
    assert!(
        listing.contains(&format!("{} done, {} to run", before.len(), done_a.len() - before.len())),
        "{listing}"
    );
    run(&recipe, &b, &[]);
    let after = finished(&b);
    for (name, (text, stamp)) in &before {
        assert_eq!(&after[name], &(text.clone(), *stamp), "finished run {name} was repeated");
    }
    assert_eq!(after.keys().collect::<Vec<_>>(), done_a.keys().collect::<Vec<_>>());
    assert_eq!(results(&b), csv, "an interrupted recipe gives other results");
    assert_eq!(tables(&b), md);
    // A third run repeats nothing.
    run(&recipe, &b, &[]);
    assert_eq!(finished(&b), after);

    // Two processes running the recipe side by side into one folder share its runs: each run is
    // trained by exactly one of them, and the results are the single process's.
    let c = tmp.path().join("c");
    let spawn = || {
        bin()
            .args(["experiment", "run"])
            .arg(&recipe)
            .arg("--out")
            .arg(&c)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (p, q) = (spawn(), spawn());
    let ran = |child: std::process::Child| -> usize {
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{err}");
        let headers = err.lines().filter(|l| l.starts_with('[') && l.contains("] ")).count();
        let skipped = err
            .lines()
            .filter(|l| {
                l.starts_with("    held by ")
                    || l.starts_with("    finished earlier")
                    || l.starts_with("    its pretraining is still running")
            })
            .count();
        headers - skipped
    };
    let (by_p, by_q) = (ran(p), ran(q));
    assert_eq!(by_p + by_q, done_a.len(), "runs trained twice or not at all: {by_p} + {by_q}");
    assert!(by_p > 0 && by_q > 0, "one process did everything: {by_p} + {by_q}");
    run(&recipe, &c, &[]);
    assert_eq!(results(&c), csv, "side-by-side processes give other results");
    assert_eq!(tables(&c), md);
    let claims: Vec<_> = std::fs::read_dir(c.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "claim"))
        .collect();
    assert!(claims.is_empty(), "claims left behind: {claims:?}");

    // Two workers in one process (`--workers 2`): the fine-tunings (one libtorch thread each)
    // train side by side, the pretraining (libtorch's default threads) alone; each run once,
    // the single process's results.
    let d = tmp.path().join("d");
    let o = run(&recipe, &d, &["--workers", "2"]);
    let err = String::from_utf8_lossy(&o.stderr);
    let headers = err.lines().filter(|l| l.starts_with('[') && l.contains("] ")).count();
    assert_eq!(headers, done_a.len(), "each run taken once by one worker:\n{err}");
    assert!(!err.contains("held by"), "workers of one process do not collide:\n{err}");
    assert_eq!(results(&d), csv, "workers side by side give other results");
    assert_eq!(tables(&d), md);
}

#[test]
fn recipe_errors_name_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = |edit: &dyn Fn(&str) -> String, want: &str| {
        let p = tmp.path().join("bad.toml");
        std::fs::write(&p, edit(RECIPE)).unwrap();
        let o = bin()
            .args(["experiment", "run"])
            .arg(&p)
            .arg("--out")
            .arg(tmp.path().join("o"))
            .arg("--dry-run")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(want), "want {want:?}, got {err}");
    };
    bad(
        &|r| r.replace(r#"init = ["random", "color", "sup"]"#, r#"init = ["random", "colour"]"#),
        "init \"colour\" is not `random` or a pretraining",
    );
    bad(
        &|r| r.replace(r#"columns = ["seg"]"#, r#"columns = ["cls"]"#),
        "column \"cls\" is not a fine-tuning",
    );
    bad(&|r| r.replace("at = [12, 24]", "at = [0, 24]"), "`at` lists pretraining iterations from 1");
    bad(&|r| r.replace("max_iterations = 8", "max_iteration = 8"), "unknown field `max_iteration`");
    bad(&|r| r.replace("\"data.batch_size\" = 4", "\"data.batch_sise\" = 4"), "batch_sise");
    bad(
        &|r| {
            r.replace(
                "generate = { images = 48, seed = 3, classes = 8, per_class_train = 6, per_class_val = 2 }",
                "about = \"a VOC devkit\"",
            )
        },
        "give it with --data scenes=PATH",
    );
    // --only with an unknown name.
    let p = tmp.path().join("ok.toml");
    std::fs::write(&p, RECIPE).unwrap();
    let o = bin()
        .args(["experiment", "run"])
        .arg(&p)
        .arg("--out")
        .arg(tmp.path().join("o"))
        .args(["--dry-run", "--only", "t9"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("--only \"t9\": not a table"));
    // --only a pretraining lists just it.
    let o = bin()
        .args(["experiment", "run"])
        .arg(&p)
        .arg("--out")
        .arg(tmp.path().join("o"))
        .args(["--dry-run", "--only", "sup"])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("pretrain sup") && !s.contains("finetune") && s.contains("0 done, 1 to run"), "{s}");
}

#[test]
fn twenty_generated_classes_come_with_their_shape_buckets() {
    let tmp = tempfile::tempdir().unwrap();
    let o = bin()
        .args([
            "data",
            "generate",
            "--images",
            "8",
            "--classes",
            "20",
            "--per-class-train",
            "2",
            "--per-class-val",
            "1",
            "--out",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let classes: Vec<String> = {
        let mut v: Vec<String> = std::fs::read_dir(tmp.path().join("folders/train"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(classes.len(), 20);
    assert!(classes.contains(&"ring-flat-striped".to_string()) && classes.contains(&"disc".to_string()));
    for c in &classes {
        assert_eq!(std::fs::read_dir(tmp.path().join("folders/train").join(c)).unwrap().count(), 2, "{c}");
        assert_eq!(std::fs::read_dir(tmp.path().join("folders/val").join(c)).unwrap().count(), 1, "{c}");
    }
    let (map, names) = colorproxy_data::label_space::buckets_from_file(
        &tmp.path().join("folders/shape-buckets.txt"),
        &classes,
    )
    .unwrap();
    assert_eq!(names, ["cross", "disc", "ring", "square", "triangle"]);
    for (c, b) in classes.iter().zip(&map) {
        assert!(c.starts_with(&names[*b]), "{c} -> {}", names[*b]);
    }
    let o = bin()
        .args(["data", "generate", "--images", "8", "--classes", "21", "--out"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("21 classes: the generator makes 2 to 20"));
}

#[test]
fn supervised_pretraining_applies_its_label_space_and_transfers() {
    let tmp = tempfile::tempdir().unwrap();
    colorproxy_data::synth::write_image_folders(&tmp.path().join("f"), 2, 10, 2, 8, 48).unwrap();
    let sup = tmp.path().join("sup");
    let o = bin()
        .args([
            "pretrain-supervised",
            "--per-class",
            "4",
            "--label-noise",
            "0.25",
            "--max-iterations",
            "4",
            "--data",
        ])
        .arg(tmp.path().join("f"))
        .arg("--out")
        .arg(&sup)
        .output()
        .unwrap();
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{out}\n{err}");
    // 8 classes x 4 images = 32 kept, round(0.25 x 32) = 8 noisy labels.
    assert!(err.contains("-> 32 images, 8 labels, 8 noisy labels"), "{err}");
    assert!(out.contains("val split: top1"), "{out}");
    let cfg = std::fs::read_to_string(sup.join("config.toml")).unwrap();
    assert!(cfg.contains("per_class = 4") && cfg.contains("label_noise = 0.25"), "{cfg}");
    // Its checkpoint initialises segmentation fine-tuning (the backbone's widths from its config).
    let voc = tmp.path().join("voc");
    colorproxy_data::synth::write_voc(&voc, 4, 0, 8, 2, 48).unwrap();
    let o = bin()
        .args(["finetune", "seg", "--max-iterations", "2", "--data"])
        .arg(&voc)
        .arg("--init")
        .arg(sup.join("checkpoints/last.safetensors"))
        .arg("--out")
        .arg(tmp.path().join("seg"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A mapping file with a class the data lacks is an error naming it.
    std::fs::write(tmp.path().join("map.txt"), "disc round\nsquare edgy\nspoon round\n").unwrap();
    let o = bin()
        .args(["pretrain-supervised", "--max-iterations", "2", "--data"])
        .arg(tmp.path().join("f"))
        .arg("--buckets")
        .arg(tmp.path().join("map.txt"))
        .arg("--out")
        .arg(tmp.path().join("sup2"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("map.txt") && err.contains("unknown class \"spoon\""),
        "{err}"
    );
    // A VOC devkit is not single-label.
    let o = bin()
        .args(["pretrain-supervised", "--per-class", "2", "--max-iterations", "2", "--data"])
        .arg(&voc)
        .arg("--out")
        .arg(tmp.path().join("sup3"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("need single-label class folders"));
}

/// `retrain_full`: after early stopping, the run is retrained on 100% of the training split with
/// the schedule found (RUN/full), and the table shows the retrained network's score.
#[test]
fn retrain_full_scores_the_network_retrained_with_the_found_schedule() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = tmp.path().join("full.toml");
    std::fs::write(
        &recipe,
        r#"
title = "retrain"
seeds = [0]
[data.scenes]
generate = { images = 48, seed = 3 }
[[finetune]]
name = "seg"
task = "seg"
preset = "seg-cpu"
data = "scenes/voc"
init = ["random"]
max_iterations = 6
retrain_full = true
set = { short_side = 64.0, crop = 64, test_short_side = 64.0, test_max_side = 0 }
[[table]]
name = "t"
title = "t"
columns = ["seg"]
"#,
    )
    .unwrap();
    let out = tmp.path().join("out");
    let o = run(&recipe, &out, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dir =
        std::fs::read_dir(out.join("runs")).unwrap().map(|e| e.unwrap().path()).find(|p| p.is_dir()).unwrap();
    let done: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("done.json")).unwrap()).unwrap();
    let full: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("full/results.json")).unwrap()).unwrap();
    let early: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(done["value"], full["value"]);
    assert_eq!(done["early_stopping_value"], early["value"]);
    // The retrain ran the schedule early stopping found, on every training image (no held-out part).
    let cfg = std::fs::read_to_string(dir.join("full/config.toml")).unwrap();
    assert!(cfg.contains("held_out = 0.0"), "{cfg}");
    assert!(tables(&out).contains(&format!("{:.3}", full["value"].as_f64().unwrap())));
}
