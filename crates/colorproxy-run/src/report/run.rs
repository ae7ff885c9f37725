//! The report of a fine-tuning or evaluation run (`report.html` beside it): scores with the
//! reference row, per-class scores, the fine-tuning curves, segmentation examples (image | ground
//! truth | prediction), the config and the wall time.
use std::collections::BTreeSet;
use std::path::Path;

use crate::Context;
use colorproxy_data::palette::voc_colour;
use colorproxy_data::LabelledSet;
use colorproxy_nn::transfer::EvalResult;
use image::RgbImage;

use super::html::{Cell, Page};

/// Side of one picture in the example grids (pixels).
pub const EXAMPLE_CELL: u32 = 160;

/// A class-index mask `[H * W]` in the VOC colours; void (255) white.
pub fn mask_rgb(mask: &[u8], w: usize, h: usize) -> RgbImage {
    let data = mask.iter().flat_map(|&c| if c == 255 { [255, 255, 255] } else { voc_colour(c) }).collect();
    RgbImage::from_raw(w as u32, h as u32, data).expect("mask size")
}

/// The legend of [`mask_rgb`] for the class indices `shown` (0 background, 255 void), named
/// from the set's classes.
pub fn seg_legend(class_names: &[String], shown: &BTreeSet<u8>) -> Legend {
    shown
        .iter()
        .map(|&c| match c {
            0 => (voc_colour(0), "background".to_string()),
            255 => ([255, 255, 255], "void / not scored".to_string()),
            c => (
                voc_colour(c),
                class_names.get(c as usize - 1).cloned().unwrap_or_else(|| format!("class {c}")),
            ),
        })
        .collect()
}

/// Segmentation examples as one PNG: per image a row `image | ground truth | prediction...`
/// (`preds[k]` holds, for `images[k]`, one mask per network). Returns the class indices shown.
pub fn seg_examples(
    set: &LabelledSet,
    images: &[usize],
    preds: &[Vec<Vec<u8>>],
    out: &Path,
) -> crate::Result<BTreeSet<u8>> {
    let mut shown = BTreeSet::new();
    for m in set
        .masks
        .iter()
        .enumerate()
        .filter(|(i, _)| images.contains(i))
        .map(|(_, m)| m)
        .chain(preds.iter().flatten())
    {
        shown.extend(m.iter().copied());
    }
    let mut rows = Vec::new();
    for (&i, p) in images.iter().zip(preds) {
        let img = set.image(i)?;
        let (w, h) = (img.width, img.height);
        let mut row = vec![RgbImage::from_raw(w as u32, h as u32, img.data.clone()).expect("image size")];
        if let Some(m) = set.masks.get(i) {
            row.push(mask_rgb(m, w, h));
        }
        row.extend(p.iter().map(|m| mask_rgb(m, w, h)));
        rows.push(row);
    }
    super::image_grid(&rows, EXAMPLE_CELL).save(out).with_context(|| format!("writing {}", out.display()))?;
    Ok(shown)
}

/// The scores table: the metric, the reference row, the extra figures.
pub fn score_rows(r: &EvalResult) -> Vec<Vec<Cell>> {
    let mut rows = vec![vec![Cell::from(r.metric.as_str()), Cell::from(r.value)]];
    if let Some((name, v)) = &r.reference {
        rows.push(vec![Cell::from(format!("reference: {name}")), Cell::from(*v)]);
    }
    for (k, v) in &r.extra {
        rows.push(vec![Cell::from(k.as_str()), Cell::from(*v)]);
    }
    rows
}

/// A segmentation legend: colour and name of each class shown.
pub type Legend = Vec<([u8; 3], String)>;

/// A run's report.
pub struct RunReport<'a> {
    pub title: String,
    /// What was run, in a sentence or two.
    pub summary: String,
    pub result: Option<&'a EvalResult>,
    /// The run's resolved config (TOML).
    pub config: String,
    pub seconds: f64,
    /// The fine-tuning curves (PNG beside the page), if any.
    pub curves: Option<&'a str>,
    /// Segmentation examples (PNG beside the page) and the legend (see [`seg_legend`]).
    pub examples: Option<(&'a str, Legend)>,
}

/// Writes `path` (report.html).
pub fn write_run_report(path: &Path, r: &RunReport) -> crate::Result<()> {
    let mut page = Page::new(&r.title);
    page.p(&format!("{} Wall time {:.0} s.", r.summary, r.seconds));
    if let Some(res) = r.result {
        page.h2("Scores");
        page.table(&["", "value"], score_rows(res));
        page.h2("Per class (classes absent from the split left out)");
        let rows = res
            .per_class
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(k, v)| vec![Cell::from(k.as_str()), Cell::Score(*v)])
            .collect();
        let per_class = match res.metric.as_str() {
            "miou" => "IoU",
            "map" => "AP",
            m => m,
        };
        page.table(&["class", per_class], rows);
    }
    if let Some(c) = r.curves {
        page.h2("Fine-tuning curves (training loss, held-out score, learning-rate drops)");
        page.img(c, "fine-tuning curves");
    }
    if let Some((file, legend)) = &r.examples {
        page.h2("Segmentation examples (image | ground truth | prediction)");
        page.legend(legend);
        page.img(file, "segmentation examples");
    }
    page.h2("Config");
    page.details("config.toml", &r.config, true);
    page.write(path)
}
