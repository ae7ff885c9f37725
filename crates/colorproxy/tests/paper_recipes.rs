//! The paper recipes' dry runs: every table in the paper's shape with the paper's published value
//! in every cell, checked against the paper's text (../shared/paper, when it is beside the
//! checkout): each row's values appear, in order, on one line of the paper's tables. The runs
//! behind the cells are planned with placeholder data paths (nothing is read).
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The recipe's dry run with every data set given as a placeholder path.
fn dry_run(recipe: &str) -> String {
    let path = root().join("experiments").join(recipe);
    let text = std::fs::read_to_string(&path).unwrap();
    let r: toml::Table = toml::from_str(&text).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_colorproxy"));
    cmd.args(["experiment", "run"]).arg(&path).arg("--out").arg(tmp.path().join("out")).arg("--dry-run");
    for name in r
        .get("data")
        .and_then(|d| d.as_table())
        .map(|d| d.keys().cloned().collect::<Vec<String>>())
        .unwrap_or_default()
    {
        cmd.arg("--data").arg(format!("{name}=/nonexistent/{name}"));
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{recipe}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

/// The paper-value rows of the dry run's skeletons: (label, values; None for `-`).
fn skeleton_rows(out: &str) -> Vec<(String, Vec<Option<f64>>)> {
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in out.lines() {
        if line.ends_with("(the paper's values)") {
            in_table = true;
            continue;
        }
        if line.starts_with("planned runs:") {
            in_table = false;
        }
        if !in_table || !line.starts_with("| ") || line.starts_with("|  |") || line.starts_with("|---") {
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let values =
            cells[1..].iter().map(|c| if *c == "-" { None } else { Some(c.parse::<f64>().unwrap()) });
        rows.push((cells[0].to_string(), values.collect()));
    }
    rows
}

/// The numbers of a line of the paper's text (`*9.9` -> 9.9).
fn numbers(line: &str) -> Vec<f64> {
    line.split_whitespace()
        .filter_map(|w| w.trim_start_matches('*').trim_end_matches('%').parse().ok())
        .collect()
}

fn paper_text() -> Option<String> {
    std::fs::read_to_string(root().join("../shared/paper/larsson2017-colorization-proxy.txt")).ok()
}

/// Whether `values` appear consecutively among the numbers of one line of the paper.
fn on_one_line(paper: &str, values: &[f64]) -> bool {
    paper.lines().any(|l| numbers(l).windows(values.len()).any(|w| w == values))
}

#[test]
fn every_paper_table_prints_the_papers_values_in_its_shape() {
    // (recipe, rows of its table(s) in the paper, columns of each row)
    let expected = [
        ("table1-paper.toml", 5, 2),
        ("table2-paper.toml", 3, 1),
        ("table3-paper.toml", 6, 4),
        ("table4-paper.toml", 13, 1),
        ("table5-paper.toml", 2, 2),
        ("table6-paper.toml", 4, 3),
    ];
    let paper = paper_text();
    for (recipe, n_rows, n_cols) in expected {
        let out = dry_run(recipe);
        let rows = skeleton_rows(&out);
        assert_eq!(rows.len(), n_rows, "{recipe}: {out}");
        for (label, values) in &rows {
            assert_eq!(values.len(), n_cols, "{recipe}, {label}");
            let given: Vec<f64> = values.iter().flatten().copied().collect();
            assert!(!given.is_empty(), "{recipe}, {label}: no paper value");
            if let Some(p) = &paper {
                assert!(
                    on_one_line(p, &given),
                    "{recipe}, {label}: {given:?} is not a row of the paper's tables"
                );
            }
            // Every cell with a value has its runs planned, or says why it has none.
            let planned = out.lines().filter(|l| l.starts_with(&format!("  {label} / "))).count();
            assert_eq!(planned, n_cols, "{recipe}, {label}: {out}");
        }
        assert!(!out.contains("(0 of 0 done)"), "{recipe}: a cell names runs that are not planned: {out}");
    }
    // Fig. 4: the values its text states, at the epochs it states them.
    let out = dry_run("fig4-paper.toml");
    for want in ["random: paper 35.1", "paper 52.9", "paper 49.1", "paper 56"] {
        assert!(out.contains(want), "fig4: {want}: {out}");
    }
    if let Some(p) = &paper {
        for v in ["49.1%", "52.9%", "56.0%"] {
            assert!(p.contains(v), "the paper's text states {v}");
        }
    }
}

#[test]
fn epochs_become_iterations_of_the_papers_batch() {
    // 3 epochs of the paper's 3.7M images (ImageNet's 1,281,167 and Places205's 2,448,873
    // training images, section 3.1) at batch 8, the drop after 2 epochs.
    let out = dry_run("table2-paper.toml");
    let per_epoch: f64 = (1_281_167.0 + 2_448_873.0) / 8.0;
    let three = (3.0 * per_epoch).round(); // 1,398,765
    assert_eq!(three, 1_398_765.0);
    assert!(out.contains(&format!("{three} iterations x 8 images = ")), "{out}");
    // Fig. 4's snapshots at 0.2 ... 3 epochs are fine-tuned (one run per seed each).
    let out = dry_run("fig4-paper.toml");
    let at_02 = (0.2 * per_epoch).round();
    assert!(out.contains(&format!("from dropped@{at_02} seed 0")), "{out}");
    assert!(out.contains(&format!("from never-dropped@{} seed 2", (3.0 * per_epoch).round())), "{out}");
    // Table 1's ResNet-152: 35 epochs (its best model, on 224 inputs).
    let out = dry_run("table1-paper.toml");
    assert!(out.contains(&format!("{} iterations x 8 images", (35.0 * per_epoch).round())), "{out}");
}
