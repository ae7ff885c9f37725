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
    assert_eq!(html.matches("<tr>").count(), 3);
    for png in ["loss.png", "colorization.png"] {
        let img = image::open(out.join(png)).unwrap();
        assert!(img.width() > 50 && img.height() > 50);
    }
    // The data went through the VOC loaders: lists and masks exist.
    assert!(out.join("data/voc/ImageSets/Segmentation/val.txt").is_file());
    assert!(out.join("data/voc/ImageSets/Main/aeroplane_train.txt").is_file());
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
