//! What the commands write for people to read: results tables (JSON, Markdown), curves (plots with
//! real text, [`plot`]) and picture grids. Pretraining, fine-tuning, evaluation and the demo all
//! report through here.
pub mod html;
pub mod plot;
pub mod run;

use std::path::Path;

use crate::Context;
use colorproxy_nn::early_stop::{schedule_path, FoundSchedule};
use colorproxy_nn::pretrain::Metrics;
use colorproxy_nn::run_dir::RunPaths;
use colorproxy_nn::transfer::EvalResult;
use image::RgbImage;
use plot::{LineChart, Series};

const BLUE: (u8, u8, u8) = (30, 90, 200);
const ORANGE: (u8, u8, u8) = (240, 140, 20);
const GREEN: (u8, u8, u8) = (40, 160, 60);
const RED: (u8, u8, u8) = (200, 60, 40);

/// An evaluation's results as `results.json` and a Markdown table `results.md` in `dir`.
pub fn write_results(dir: &Path, r: &EvalResult, title: &str) -> crate::Result<()> {
    let json = dir.join("results.json");
    std::fs::write(&json, serde_json::to_string_pretty(r)?)
        .with_context(|| format!("writing {}", json.display()))?;
    let mut md = format!("# {title}\n\n| metric | value |\n|---|---|\n| {} | {:.4} |\n", r.metric, r.value);
    if let Some((name, v)) = &r.reference {
        md.push_str(&format!("| reference: {name} | {v:.4} |\n"));
    }
    for (k, v) in &r.extra {
        md.push_str(&format!("| {k} | {v:.4} |\n"));
    }
    md.push_str("\n| class | value |\n|---|---|\n");
    for (k, v) in &r.per_class {
        md.push_str(&format!("| {k} | {} |\n", v.map(|x| format!("{x:.4}")).unwrap_or_else(|| "-".into())));
    }
    let p = dir.join("results.md");
    std::fs::write(&p, md).with_context(|| format!("writing {}", p.display()))?;
    Ok(())
}

/// The pretraining loss curve (loss; hue and chroma KL for the histogram loss), PNG + SVG.
pub fn loss_curve(metrics: &[Metrics], out: &Path) -> crate::Result<()> {
    let s = |label: &str, c, f: fn(&Metrics) -> f64| {
        Series::new(label, c, metrics.iter().map(|m| (m.iteration as f64, f(m))).collect())
    };
    let mut series = vec![s("loss", BLUE, |m| m.loss)];
    if metrics.iter().any(|m| m.hue_kl > 0.0) {
        series.push(s("hue KL", ORANGE, |m| m.hue_kl));
        series.push(s("chroma KL", GREEN, |m| m.chroma_kl));
    }
    // Learning-rate drops: where the logged rate falls.
    let markers = metrics.windows(2).filter(|w| w[1].lr < w[0].lr).map(|w| w[0].iteration as f64).collect();
    let chart = LineChart {
        title: "colorization pretraining".into(),
        x_label: "iteration".into(),
        y_label: "loss".into(),
        series,
        markers,
        marker_label: "learning rate x0.1".into(),
        reference: None,
    };
    plot::write_charts(&[chart], 720, 380, out)
}

/// `RUN_DIR/curves.png` (+ `.svg`) of a fine-tuning run: the training loss (top) and the held-out
/// score (bottom) against the iteration, learning-rate drops marked, from `metrics.jsonl` and
/// `schedule.json`. `reference`: a reference score to draw (e.g. the majority-class mIoU).
pub fn finetune_curves(dir: &Path, reference: Option<(f64, String)>) -> crate::Result<()> {
    let path = RunPaths::new(dir).metrics();
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let rows: Vec<serde_json::Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let points = |key: &str| -> Vec<(f64, f64)> {
        rows.iter().filter_map(|r| Some((r.get("iteration")?.as_f64()?, r.get(key)?.as_f64()?))).collect()
    };
    let drops: Vec<f64> = std::fs::read_to_string(schedule_path(dir))
        .ok()
        .and_then(|t| serde_json::from_str::<FoundSchedule>(&t).ok())
        .map(|s| s.drops.iter().map(|&d| d as f64).collect())
        .unwrap_or_default();
    let chart = |title: &str, y: &str, series, reference| LineChart {
        title: title.into(),
        x_label: "iteration".into(),
        y_label: y.into(),
        series: vec![series],
        markers: drops.clone(),
        marker_label: "learning rate x0.1".into(),
        reference,
    };
    let charts = [
        chart("fine-tuning loss", "loss", Series::new("training loss", BLUE, points("loss")), None),
        chart(
            "held-out score (early stopping)",
            "score",
            Series::new("held-out score", RED, points("held_out_score")),
            reference,
        ),
    ];
    plot::write_charts(&charts, 640, 300, &dir.join("curves.png"))
}

/// Pictures side by side in rows: `rows[r][c]`, each scaled to `cell x cell` pixels, 4-pixel
/// white gaps.
pub fn image_grid(rows: &[Vec<RgbImage>], cell: u32) -> RgbImage {
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0) as u32;
    let (w, h) = (cols * (cell + 4), rows.len() as u32 * (cell + 4));
    let mut canvas = RgbImage::from_pixel(w.max(1), h.max(1), image::Rgb([255, 255, 255]));
    for (r, row) in rows.iter().enumerate() {
        for (c, img) in row.iter().enumerate() {
            crate::draw::blit_scaled(
                &mut canvas,
                img,
                c as u32 * (cell + 4),
                r as u32 * (cell + 4),
                cell,
                cell,
            );
        }
    }
    canvas
}
