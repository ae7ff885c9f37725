//! The Table 6 runner: every row x initialisation x seed runs once with the right layers frozen,
//! the table's means and standard deviations are those of the per-seed scores, and a rerun
//! repeats nothing.
use std::process::Command;

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
    let t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("table.json")).unwrap()).unwrap();
    let rows = t["rows"].as_array().unwrap();
    let frozen: Vec<Option<&str>> = rows.iter().map(|r| r["freeze_until"].as_str()).collect();
    assert_eq!(frozen, [Some("fc7"), Some("conv5_3"), Some("conv3_3"), None]);
    let mut stamps = Vec::new();
    for (r, f) in rows.iter().zip(&frozen) {
        let cell = &r["inits"][0];
        let v: Vec<f64> = cell["values"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        assert_eq!(v.len(), 2);
        let mean = (v[0] + v[1]) / 2.0;
        let std = ((v[0] - mean).powi(2) + (v[1] - mean).powi(2)).sqrt(); // n - 1 = 1
        assert!((cell["mean"].as_f64().unwrap() - mean).abs() < 1e-12);
        assert!((cell["std"].as_f64().unwrap() - std).abs() < 1e-12);
        for seed in [0, 1] {
            let dir = out.join(format!("runs/{}__random__seed{seed}", f.unwrap_or("none")));
            let cfg = std::fs::read_to_string(dir.join("config.toml")).unwrap();
            match f {
                Some(layer) => assert!(cfg.contains(&format!("freeze_until = \"{layer}\"")), "{cfg}"),
                None => assert!(!cfg.contains("freeze_until"), "{cfg}"),
            }
            assert!(cfg.contains(&format!("seed = {seed}")));
            let results = std::fs::read_to_string(dir.join("results.json")).unwrap();
            let r: serde_json::Value = serde_json::from_str(&results).unwrap();
            assert_eq!(r["value"].as_f64().unwrap(), v[seed], "table value of seed {seed}");
            stamps.push(std::fs::metadata(dir.join("results.json")).unwrap().modified().unwrap());
        }
    }
    let md = std::fs::read_to_string(out.join("table.md")).unwrap();
    assert!(md.contains("| nothing (head only) |") && md.contains("seeds 0, 1"));
    // A rerun reuses every finished run.
    run();
    let again: Vec<_> = frozen
        .iter()
        .flat_map(|f| {
            let out = &out;
            [0, 1].map(move |seed| {
                let dir = out.join(format!("runs/{}__random__seed{seed}", f.unwrap_or("none")));
                std::fs::metadata(dir.join("results.json")).unwrap().modified().unwrap()
            })
        })
        .collect();
    assert_eq!(stamps, again);
}
