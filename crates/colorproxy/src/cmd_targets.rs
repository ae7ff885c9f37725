//! `colorproxy targets`: the colour targets of one image at given points.
use anyhow::Context;
use colorproxy_color::{PointTarget, TargetConfig};
use image::{Rgb, RgbImage};
use serde::Serialize;

use crate::cli::{parse_point, TargetsArgs};
use colorproxy_run::draw;

#[derive(Serialize)]
struct PointJson<'a> {
    y: usize,
    x: usize,
    gray: f32,
    hue_hist: &'a [f32],
    chroma_hist: &'a [f32],
    hue_weight: f32,
    chroma_weight: f32,
    lab_ab: [f32; 2],
}

pub fn run(a: TargetsArgs) -> anyhow::Result<()> {
    let cfg: TargetConfig = match &a.config {
        Some(p) => {
            toml::from_str(&std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
                .with_context(|| format!("{}: invalid target config", p.display()))?
        }
        None => TargetConfig::default(),
    };
    if let Some(p) = &a.config {
        cfg.validate().map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
    }
    let points = a.points.iter().map(|s| parse_point(s)).collect::<anyhow::Result<Vec<_>>>()?;
    let img = colorproxy_run::images::decode_any_size(&a.image)?;
    let targets = colorproxy_run::images::point_targets(&img, &points, cfg, &a.image.display().to_string())?;
    if let Some(out) = &a.png {
        picture(&img, &targets).save(out).with_context(|| format!("writing {}", out.display()))?;
    }
    if a.json {
        let pts: Vec<PointJson> = targets
            .iter()
            .map(|t| PointJson {
                y: t.y,
                x: t.x,
                gray: t.gray,
                hue_hist: &t.hue_hist,
                chroma_hist: &t.chroma_hist,
                hue_weight: t.hue_weight,
                chroma_weight: t.chroma_weight,
                lab_ab: t.lab_ab,
            })
            .collect();
        println!("{}", serde_json::json!({ "points": pts }));
    } else {
        for t in &targets {
            let top = |h: &[f32]| {
                h.iter().enumerate().fold((0, 0f32), |m, (k, &v)| if v > m.1 { (k, v) } else { m })
            };
            let (hk, hv) = top(&t.hue_hist);
            let (ck, cv) = top(&t.chroma_hist);
            println!(
                "({}, {}): gray {:.3}, top hue bin {hk} ({:.2}), top chroma bin {ck} ({:.2}), weights hue {:.3} chroma {:.3}, Lab ab ({:.1}, {:.1})",
                t.y, t.x, t.gray, hv, cv, t.hue_weight, t.chroma_weight, t.lab_ab[0], t.lab_ab[1]
            );
        }
    }
    Ok(())
}

/// Marker colours for the points (cycled).
const MARKERS: [[u8; 3]; 6] =
    [[255, 255, 0], [0, 255, 255], [255, 0, 255], [255, 128, 0], [0, 255, 0], [255, 255, 255]];

/// Image | gray input, each point marked; below, per point: marker colour, hue histogram (bars in
/// the bin's hue), chroma histogram (bars from gray to saturated).
fn picture(img: &colorproxy_data::RgbImage8, targets: &[PointTarget]) -> RgbImage {
    let scale = (320.0 / img.width.max(img.height) as f32).clamp(0.25, 1.0);
    let (w, h) = (((img.width as f32 * scale) as u32).max(1), ((img.height as f32 * scale) as u32).max(1));
    let src =
        RgbImage::from_raw(img.width as u32, img.height as u32, img.data.clone()).expect("size matches");
    let gray = RgbImage::from_fn(src.width(), src.height(), |x, y| {
        let p = src.get_pixel(x, y);
        let g = ((p[0] as u32 + p[1] as u32 + p[2] as u32) / 3) as u8;
        Rgb([g, g, g])
    });
    let row_h = 56u32;
    let width = (2 * w + 30).max(420);
    let height = h + 20 + row_h * targets.len() as u32 + 10;
    let mut canvas = RgbImage::from_pixel(width, height, Rgb([24, 24, 24]));
    draw::blit_scaled(&mut canvas, &src, 10, 10, w, h);
    draw::blit_scaled(&mut canvas, &gray, w + 20, 10, w, h);
    for (i, t) in targets.iter().enumerate() {
        let c = MARKERS[i % MARKERS.len()];
        let (px, py) = ((t.x as f32 * scale) as i64, (t.y as f32 * scale) as i64);
        draw::marker(&mut canvas, 10 + px, 10 + py, c);
        draw::marker(&mut canvas, (w + 20) as i64 + px, 10 + py, c);
        let y = (h + 20 + row_h * i as u32) as i64;
        draw::fill_rect(&mut canvas, 10, y + 16, 14, 14, c);
        let nb = t.hue_hist.len();
        draw::bars(&mut canvas, 34, y, 6, row_h as i64 - 10, &t.hue_hist, |k| {
            draw::hue_rgb((k as f32 + 0.5) / nb as f32)
        });
        let nc = t.chroma_hist.len();
        draw::bars(&mut canvas, 34 + 6 * nb as i64 + 16, y, 6, row_h as i64 - 10, &t.chroma_hist, |k| {
            let s = (k as f32 + 0.5) / nc as f32;
            [(128.0 + 127.0 * s) as u8, (128.0 - 128.0 * s) as u8, (128.0 - 128.0 * s) as u8]
        });
    }
    canvas
}
