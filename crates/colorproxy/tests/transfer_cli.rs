//! `finetune seg` and `eval seg --json --save-predictions` end to end on a generated VOC-style set:
//! the printed mIoU equals the mIoU recomputed from the saved prediction PNGs and the ground-truth
//! masks, and the PNGs are class indices with the VOC palette at each image's size; the reports
//! (`eval --report`, the run's report.html) show the score, reference row and examples.
use std::process::Command;

use colorproxy_data::metrics::ConfusionMatrix;
use colorproxy_data::palette::voc_colour;
use colorproxy_data::synth::write_voc;
use colorproxy_data::voc::read_mask;

#[test]
fn eval_json_matches_the_saved_prediction_masks() {
    let tmp = tempfile::tempdir().unwrap();
    let voc = tmp.path().join("voc");
    write_voc(&voc, 4, 0, 6, 3, 64).unwrap();
    let run = tmp.path().join("run");
    let bin = env!("CARGO_BIN_EXE_colorproxy");
    let o = Command::new(bin)
        .args(["finetune", "seg", "--init", "random", "--max-iterations", "30", "--data"])
        .arg(&voc)
        .arg("--out")
        .arg(&run)
        .env("CI", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    // Without --preset the command says which it took.
    assert!(
        err.contains("preset: seg-cpu (a random init; --preset seg-paper for the paper's protocol)"),
        "{err}"
    );
    let curves = image::open(run.join("curves.png")).unwrap();
    assert_eq!((curves.width(), curves.height()), (640, 600));
    let preds = tmp.path().join("preds");
    let out = Command::new(bin)
        .args(["eval", "seg", "--split", "val", "--json", "--checkpoint"])
        .arg(run.join("checkpoints/last.safetensors"))
        .arg("--data")
        .arg(&voc)
        .arg("--save-predictions")
        .arg(&preds)
        .arg("--report")
        .arg(tmp.path().join("report"))
        .env("CI", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["metric"], "miou");
    assert_eq!(v["per_class"].as_object().unwrap().len(), 21);
    let ids = std::fs::read_to_string(voc.join("ImageSets/Segmentation/val.txt")).unwrap();
    let mut cm = ConfusionMatrix::new(21);
    for id in ids.lines() {
        let p = preds.join(format!("{id}.png"));
        let (w, h, pred) = read_mask(&p).unwrap();
        let (gw, gh, gt) = read_mask(&voc.join(format!("SegmentationClass/{id}.png"))).unwrap();
        assert_eq!((w, h), (gw, gh), "{id}: prediction size");
        assert!(pred.iter().all(|&c| c < 21));
        cm.add(&gt, &pred).unwrap();
        // Palette PNG: viewers see the VOC colours of the indices.
        let rgb = image::open(&p).unwrap().to_rgb8();
        for (k, px) in rgb.pixels().enumerate().step_by(97) {
            assert_eq!(px.0, voc_colour(pred[k]), "{id} pixel {k}");
        }
    }
    let miou = cm.report().miou;
    assert!((v["value"].as_f64().unwrap() - miou).abs() < 1e-12, "json {} vs recomputed {miou}", v["value"]);
    let first = ids.lines().next().unwrap();
    check_report(&tmp.path().join("report"), &voc, &preds, first, &v);
    // The fine-tuning run's own report: the same parts plus its curves.
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("curves.png") && html.contains("reference: majority-class mIoU"), "{html}");
}

/// report.html shows the score, the reference row and per-class scores, and examples.png shows,
/// for the first validation image, image | ground truth | prediction in the VOC colours (void
/// white), each scaled to 160x160.
fn check_report(
    dir: &std::path::Path,
    voc: &std::path::Path,
    preds: &std::path::Path,
    id: &str,
    v: &serde_json::Value,
) {
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains(&format!("{:.3}", v["value"].as_f64().unwrap())), "score missing");
    let (name, value) = (v["reference"][0].as_str().unwrap(), v["reference"][1].as_f64().unwrap());
    assert!(html.contains(&format!("reference: {name}</td><td>{value:.3}")), "reference row missing");
    assert!(
        html.contains("<td>background</td>")
            && html.contains("examples.png")
            && html.contains("task = &quot;seg&quot;")
    );
    let grid = image::open(dir.join("examples.png")).unwrap().to_rgb8();
    let (_, _, gt) = read_mask(&voc.join(format!("SegmentationClass/{id}.png"))).unwrap();
    let (w, _, pred) = read_mask(&preds.join(format!("{id}.png"))).unwrap();
    let cell = 160u32;
    for (col, mask) in [(1u32, &gt), (2, &pred)] {
        for yy in (0..cell).step_by(13) {
            for xx in (0..cell).step_by(11) {
                let (sx, sy) = ((xx as usize * w) / cell as usize, (yy as usize * w) / cell as usize);
                let c = mask[sy * w + sx];
                let want = if c == 255 { [255, 255, 255] } else { voc_colour(c) };
                assert_eq!(grid.get_pixel(col * (cell + 4) + xx, yy).0, want, "column {col} at {xx},{yy}");
            }
        }
    }
}
