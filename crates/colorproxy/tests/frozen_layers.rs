//! The Table 6 runner (`analyse frozen`, a recipe of the experiment runner): every row x
//! initialisation x seed runs once with the right layers frozen, the table's means and standard
//! deviations are those of the per-seed scores, and a rerun repeats nothing.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The run folder of fine-tuning `name` from random init with `seed`.
fn run_dir(out: &Path, name: &str, seed: u64) -> PathBuf {
    let prefix = format!("finetune-{name}-random-seed{seed}-");
    std::fs::read_dir(out.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&prefix))
        .unwrap_or_else(|| panic!("no run {prefix}*"))
}

#[test]
fn the_frozen_layer_table_runs_each_cell_once_and_summarises_the_seeds() {
    let tmp = tempfile::tempdir().unwrap();
    let voc = tmp.path().join("voc");
    colorproxy_data::synth::write_voc(&voc, 4, 0, 12, 4, 64).unwrap();
    let out = tmp.path().join("table");
    let run = || {
        let o = Command::new(env!("CARGO_BIN_EXE_colorproxy"))
            .args(["analyse", "frozen", "seg", "--init", "random", "--seeds", "0,1", "--max-iterations", "4"])
            .arg("--data")
            .arg(&voc)
            .arg("--out")
            .arg(&out)
            .env("CI", "1")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    run();
    let rows = [
        ("nothing (head only)", "frozen-fc7", Some("fc7")),
        ("fc6-fc7", "frozen-conv5_3", Some("conv5_3")),
        ("conv4_1 and up", "frozen-conv3_3", Some("conv3_3")),
        ("everything", "all", None),
    ];
    let md = std::fs::read_to_string(out.join("tables.md")).unwrap();
    let mut stamps = BTreeMap::new();
    for (label, name, freeze) in rows {
        let mut v = Vec::new();
        for seed in [0, 1] {
            let dir = run_dir(&out, name, seed);
            let cfg = std::fs::read_to_string(dir.join("config.toml")).unwrap();
            match freeze {
                Some(layer) => assert!(cfg.contains(&format!("freeze_until = \"{layer}\"")), "{cfg}"),
                None => assert!(!cfg.contains("freeze_until"), "{cfg}"),
            }
            assert!(cfg.contains(&format!("seed = {seed}")));
            let r: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
            v.push(r["value"].as_f64().unwrap());
            stamps.insert(dir.clone(), std::fs::metadata(dir.join("done.json")).unwrap().modified().unwrap());
        }
        // The row's cell: the mean and sample standard deviation (n - 1 = 1) of the two seeds.
        let mean = (v[0] + v[1]) / 2.0;
        let std = ((v[0] - mean).powi(2) + (v[1] - mean).powi(2)).sqrt();
        let line =
            md.lines().find(|l| l.starts_with(&format!("| {label} |"))).unwrap_or_else(|| panic!("{md}"));
        assert!(line.contains(&format!("{mean:.3} ± {std:.3}")), "{line}");
        assert!(line.contains(&format!("({:.3} / {:.3})", v[0], v[1])), "{line}");
    }
    // The recipe it ran is beside the tables.
    assert!(std::fs::read_to_string(out.join("recipe.toml")).unwrap().contains("freeze_until = \"conv5_3\""));
    // A rerun reuses every finished run.
    run();
    for (dir, t) in stamps {
        assert_eq!(std::fs::metadata(dir.join("done.json")).unwrap().modified().unwrap(), t);
    }
}
