//! Minimal raster drawing for the pictures the commands write (no fonts: colour carries meaning).
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

/// One plotted series: points `(x, y)`, colour and legend label.
pub struct Series {
    pub points: Vec<(f64, f64)>,
    pub colour: [u8; 3],
    pub label: String,
}

/// Formats an axis value compactly.
fn tick(v: f64) -> String {
    let a = v.abs();
    if a >= 10_000.0 {
        format!("{:.0}K", v / 1000.0)
    } else if a >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// A line plot of several series on a white canvas: grid, axis ticks, x label and a legend.
pub fn line_plot(series: &[Series], x_label: &str, width: u32, height: u32) -> RgbImage {
    let mut img = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in series.iter().flat_map(|s| s.points.iter()) {
        if y.is_finite() {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    if x0 > x1 || y0 > y1 {
        return img;
    }
    if x0 == x1 {
        x1 = x0 + 1.0;
    }
    if y0 == y1 {
        y1 = y0 + 1.0;
    }
    let (ml, mr, mt, mb) = (56i64, 16i64, 16i64, 40i64);
    let (pw, ph) = (width as i64 - ml - mr, height as i64 - mt - mb);
    let grey = [225, 225, 225];
    for i in 0..=4 {
        let gy = mt + ph * i / 4;
        fill_rect(&mut img, ml, gy, pw, 1, grey);
        let yv = y1 - (y1 - y0) * i as f64 / 4.0;
        let label = tick(yv);
        crate::font::text(
            &mut img,
            ml - 6 - crate::font::text_width(&label, 1) as i64,
            gy - 3,
            &label,
            1,
            [60, 60, 60],
        );
        let gx = ml + pw * i / 4;
        fill_rect(&mut img, gx, mt, 1, ph, grey);
        let xv = x0 + (x1 - x0) * i as f64 / 4.0;
        let label = tick(xv);
        crate::font::text(
            &mut img,
            gx - crate::font::text_width(&label, 1) as i64 / 2,
            mt + ph + 6,
            &label,
            1,
            [60, 60, 60],
        );
    }
    fill_rect(&mut img, ml, mt + ph, pw, 1, [0, 0, 0]);
    fill_rect(&mut img, ml, mt, 1, ph, [0, 0, 0]);
    let xl = crate::font::text_width(x_label, 1) as i64;
    crate::font::text(&mut img, ml + pw / 2 - xl / 2, mt + ph + 22, x_label, 1, [0, 0, 0]);
    let map = |(x, y): (f64, f64)| {
        (ml as f64 + (x - x0) / (x1 - x0) * pw as f64, mt as f64 + (1.0 - (y - y0) / (y1 - y0)) * ph as f64)
    };
    for s in series {
        for w in s.points.windows(2) {
            if !(w[0].1.is_finite() && w[1].1.is_finite()) {
                continue;
            }
            let (a, b) = (map(w[0]), map(w[1]));
            let n = ((b.0 - a.0).abs().max((b.1 - a.1).abs()).ceil() as i64).max(1);
            for i in 0..=n {
                let t = i as f64 / n as f64;
                let (x, y) = (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
                fill_rect(&mut img, x as i64, y as i64, 2, 2, s.colour);
            }
        }
    }
    // Legend, top right.
    let mut ly = mt + 6;
    for s in series {
        let w = crate::font::text_width(&s.label, 1) as i64;
        let lx = ml + pw - w - 24;
        fill_rect(&mut img, lx, ly + 2, 14, 4, s.colour);
        crate::font::text(&mut img, lx + 18, ly, &s.label, 1, [0, 0, 0]);
        ly += 12;
    }
    img
}
