//! The shortened demo (same code path, fewer images and iterations) writes a complete report.
use std::process::Command;

#[test]
fn quick_demo_writes_a_complete_report_and_results() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let st = Command::new(env!("CARGO_BIN_EXE_colorproxy"))
        .args(["demo", "--quick", "--seed", "3", "--out"])
        .arg(&out)
        .env("CI", "1")
        .status()
        .unwrap();
    assert!(st.success());
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    for task in ["seg", "cls"] {
        for init in ["random", "colorization"] {
            let x = v[task][init].as_f64().unwrap_or(f64::NAN);
            assert!((0.0..=1.0).contains(&x), "{task} {init}: {x}");
        }
    }
    assert!(v["seconds"].as_f64().unwrap() > 0.0);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| random |") && md.contains("| colorization |") && md.contains("loss.png"));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.starts_with("<!doctype html>") && html.trim_end().ends_with("</html>"));
    // The parts of the report: scores with the reference row, per class, examples, curves of
    // the four runs, colorization, loss, configs.
    for init in ["random", "colorization"] {
        for task in ["seg", "cls"] {
            let v = v[task][init].as_f64().unwrap();
            assert!(html.contains(&format!("{v:.3}<span class=\"bar\"")), "{task} {init} score");
            // OUT/seg-random etc. link to the runner's run folders, which the report shows.
            let run = std::fs::read_link(out.join(format!("{task}-{init}"))).unwrap();
            assert!(run.starts_with("runs") && out.join(&run).join("done.json").is_file(), "{run:?}");
            assert!(
                html.contains(&format!("{}/curves.png", run.display()))
                    && out.join(&run).join("curves.png").is_file()
            );
        }
    }
    let reference = v["reference"]["seg"]["value"].as_f64().unwrap();
    assert!(html.contains(&format!("<tr class=\"ref\"><td>reference (learned nothing: majority class / constant scorer)</td><td>{reference:.3}")));
    for part in ["Per class", "segmentation.png", "colorization.png", "loss.png", "[model]", "wall time"] {
        assert!(html.contains(part), "report.html lacks {part}");
    }
    for png in ["loss.png", "colorization.png"] {
        let img = image::open(out.join(png)).unwrap();
        assert!(img.width() > 50 && img.height() > 50);
    }
    // Segmentation examples: image | ground truth | from random | from colorization, 4 rows.
    let seg = image::open(out.join("segmentation.png")).unwrap();
    assert_eq!((seg.width(), seg.height()), (4 * 164, 4 * 164));
    // The data went through the VOC loaders: lists and masks exist.
    assert!(out.join("data/voc/ImageSets/Segmentation/val.txt").is_file());
    assert!(out.join("data/voc/ImageSets/Main/aeroplane_train.txt").is_file());
    // The demo is a recipe of the experiment runner: its recipe, five finished runs, the
    // pretraining linked as OUT/pretrain. Run again into the same folder, it trains nothing
    // (every run is reused) and reports the same scores.
    let recipe = std::fs::read_to_string(out.join("recipe.toml")).unwrap();
    assert!(recipe.contains("[[pretrain]]") && recipe.contains("seeds = [3]"), "{recipe}");
    let done = std::fs::read_dir(out.join("runs"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().join("done.json").is_file())
        .count();
    assert_eq!(done, 5);
    assert!(std::fs::read_link(out.join("pretrain"))
        .unwrap()
        .to_string_lossy()
        .starts_with("runs/pretrain-colorization-"));
    let again = Command::new(env!("CARGO_BIN_EXE_colorproxy"))
        .args(["demo", "--quick", "--seed", "3", "--out"])
        .arg(&out)
        .env("CI", "1")
        .output()
        .unwrap();
    assert!(again.status.success());
    let log = String::from_utf8_lossy(&again.stderr);
    let started = log.lines().filter(|l| l.starts_with('[') && l.contains("] ")).count();
    assert!(started >= 5 && log.matches("finished earlier: reused").count() == started, "{log}");
    let w: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    for task in ["seg", "cls"] {
        assert_eq!(v[task], w[task], "{task}: the rerun's scores");
    }
    // The two runs of a task train side by side: each gets the weights it gets alone. Rerun the
    // classification from colorization alone with `finetune` and its saved config.
    let alone = tmp.path().join("alone");
    let st = Command::new(env!("CARGO_BIN_EXE_colorproxy"))
        .args(["finetune", "cls", "--config"])
        .arg(out.join("cls-colorization/config.toml"))
        .arg("--init")
        .arg(out.join("pretrain/checkpoints/last.safetensors"))
        .arg("--data")
        .arg(out.join("data/voc"))
        .arg("--out")
        .arg(&alone)
        .env("CI", "1")
        .status()
        .unwrap();
    assert!(st.success());
    let read = |p: std::path::PathBuf| tch::Tensor::read_safetensors(p).unwrap();
    let (a, b) = (
        read(alone.join("checkpoints/last.safetensors")),
        read(out.join("cls-colorization/checkpoints/last.safetensors")),
    );
    assert_eq!(a.len(), b.len());
    let b: std::collections::HashMap<String, tch::Tensor> = b.into_iter().collect();
    for (name, ta) in &a {
        let tb = b.get(name).unwrap_or_else(|| panic!("{name} missing from the side-by-side run"));
        assert!(ta.equal(tb), "{name} differs between the side-by-side run and the run alone");
    }
}

#[test]
fn bad_input_gets_a_clear_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("broken.jpg");
    std::fs::write(&bad, b"not a jpeg").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_colorproxy"))
        .args(["targets", "--point", "1,1", "--image"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.jpg") && err.contains("not an image"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_colorproxy"))
        .args(["targets", "--point", "1;1", "--image"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected Y,X"));
}

#[test]
fn a_demo_folder_of_the_earlier_layout_is_not_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    std::fs::create_dir_all(out.join("seg-random/checkpoints")).unwrap();
    std::fs::write(out.join("seg-random/checkpoints/last.safetensors"), b"earlier work").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_colorproxy"))
        .args(["demo", "--quick", "--out"])
        .arg(&out)
        .env("CI", "1")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("seg-random") && err.contains("new --out"), "{err}");
    // Stopped before any work: nothing generated, the earlier run untouched.
    assert!(!out.join("data").exists() && !out.join("runs").exists());
    assert_eq!(std::fs::read(out.join("seg-random/checkpoints/last.safetensors")).unwrap(), b"earlier work");
}
