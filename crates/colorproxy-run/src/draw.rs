//! Minimal raster drawing for pictures where colour carries the meaning (the `targets` command's
//! histograms, markers, image grids); plots with text are in the report module.
use image::{Rgb, RgbImage};

/// Fills the rectangle `[x, x + w) x [y, y + h)`, clipped to the canvas.
pub fn fill_rect(img: &mut RgbImage, x: i64, y: i64, w: i64, h: i64, c: [u8; 3]) {
    let (cw, ch) = (img.width() as i64, img.height() as i64);
    for yy in y.max(0)..(y + h).min(ch) {
        for xx in x.max(0)..(x + w).min(cw) {
            img.put_pixel(xx as u32, yy as u32, Rgb(c));
        }
    }
}

/// A cross marker with a black outline, centred at `(x, y)`.
pub fn marker(img: &mut RgbImage, x: i64, y: i64, c: [u8; 3]) {
    fill_rect(img, x - 5, y - 2, 11, 5, [0, 0, 0]);
    fill_rect(img, x - 2, y - 5, 5, 11, [0, 0, 0]);
    fill_rect(img, x - 4, y - 1, 9, 3, c);
    fill_rect(img, x - 1, y - 4, 3, 9, c);
}

/// Copies `src` into `dst` at `(x, y)`, scaled by nearest neighbour to `w x h`.
pub fn blit_scaled(dst: &mut RgbImage, src: &RgbImage, x: u32, y: u32, w: u32, h: u32) {
    for yy in 0..h {
        for xx in 0..w {
            let sx = (xx as u64 * src.width() as u64 / w as u64) as u32;
            let sy = (yy as u64 * src.height() as u64 / h as u64) as u32;
            if x + xx < dst.width() && y + yy < dst.height() {
                dst.put_pixel(x + xx, y + yy, *src.get_pixel(sx, sy));
            }
        }
    }
}

/// Fully saturated RGB of a hue in [0, 1).
pub fn hue_rgb(h: f32) -> [u8; 3] {
    let h6 = (h.rem_euclid(1.0)) * 6.0;
    let x = 1.0 - (h6 % 2.0 - 1.0).abs();
    let (r, g, b) = match h6 as u32 {
        0 => (1.0, x, 0.0),
        1 => (x, 1.0, 0.0),
        2 => (0.0, 1.0, x),
        3 => (0.0, x, 1.0),
        4 => (x, 0.0, 1.0),
        _ => (1.0, 0.0, x),
    };
    [(r * 255.0) as u8, (g * 255.0) as u8, (b * 255.0) as u8]
}

/// A bar chart of `values` (bars scaled so the largest fills `h`), one colour per bar.
pub fn bars(
    img: &mut RgbImage,
    x: i64,
    y: i64,
    bar_w: i64,
    h: i64,
    values: &[f32],
    colour: impl Fn(usize) -> [u8; 3],
) {
    fill_rect(img, x, y, bar_w * values.len() as i64, h, [40, 40, 40]);
    let max = values.iter().cloned().fold(1e-12f32, f32::max);
    for (k, v) in values.iter().enumerate() {
        let bh = ((v / max) * h as f32).round() as i64;
        fill_rect(img, x + k as i64 * bar_w, y + h - bh, bar_w - 1, bh, colour(k));
    }
}
