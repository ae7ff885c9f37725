//! [`HueChromaTargets`]: the per-point colour targets of the paper's histogram loss.
//!
//! For each sampled point `(y, x)`: the normalised 32-bin hue and chroma histograms of the 7x7 box
//! window centred on it (clipped at the image border; uniform if empty), the two loss weights,
//! the gray value and the CIE (a\*, b\*) at the point. The histograms come from summed-area tables
//! built once per image over the bounding box of all windows, so each point costs O(bins).

use crate::config::TargetConfig;
use crate::hsv::{bin_index, hue_chroma};
use crate::lab::srgb_to_lab;
use crate::ColorError;

/// A borrowed sRGB image: `data` is `[height, width, 3]` row-major, channels in [0, 1].
#[derive(Debug, Clone, Copy)]
pub struct RgbView<'a> {
    pub data: &'a [f32],
    pub height: usize,
    pub width: usize,
}

impl<'a> RgbView<'a> {
    /// Wraps a buffer, checking its length.
    pub fn new(data: &'a [f32], height: usize, width: usize) -> Result<Self, ColorError> {
        let expected = height * width * 3;
        if data.len() != expected {
            return Err(ColorError::BadBuffer { got: data.len(), expected, height, width });
        }
        Ok(Self { data, height, width })
    }

    /// The pixel at `(y, x)` as `[r, g, b]`.
    #[inline]
    pub fn pixel(&self, y: usize, x: usize) -> [f32; 3] {
        let i = (y * self.width + x) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }
}

/// The colour targets at one point.
#[derive(Debug, Clone, PartialEq)]
pub struct PointTarget {
    pub y: usize,
    pub x: usize,
    /// `(R+G+B)/3` at the point, in [0, 1] (not centred).
    pub gray: f32,
    /// Normalised hue histogram of the window, `hue_bins` values summing to 1.
    pub hue_hist: Vec<f32>,
    /// Normalised chroma histogram of the window, `chroma_bins` values summing to 1.
    pub chroma_hist: Vec<f32>,
    /// `hue_loss_weight * chroma(centre)`.
    pub hue_weight: f32,
    /// `chroma_loss_weight * min(1, 3 gray, 3 (1 - gray))`.
    pub chroma_weight: f32,
    /// CIE (a\*, b\*) at the point, unnormalised.
    pub lab_ab: [f32; 2],
}

/// Computes [`PointTarget`]s for the points of one image.
#[derive(Debug, Clone)]
pub struct HueChromaTargets {
    config: TargetConfig,
}

/// Summed-area tables of the one-hot bin indicators over a rectangle of the image.
///
/// `table[((y + 1) * (w + 1) + (x + 1)) * bins + k]` counts pixels of bin `k` in rows
/// `y0..=y0+y`, columns `x0..=x0+x` of the rectangle.
struct BinSat {
    y0: usize,
    x0: usize,
    w: usize,
    bins: usize,
    table: Vec<u32>,
}

impl BinSat {
    fn build(bins_of: &[u8], img_w: usize, y0: usize, y1: usize, x0: usize, x1: usize, bins: usize) -> Self {
        let (h, w) = (y1 - y0, x1 - x0);
        let stride = (w + 1) * bins;
        let mut table = vec![0u32; (h + 1) * stride];
        let mut row = vec![0u32; bins];
        for y in 0..h {
            row.iter_mut().for_each(|v| *v = 0);
            let src = &bins_of[(y0 + y) * img_w + x0..(y0 + y) * img_w + x1];
            let (prev, cur) = table.split_at_mut((y + 1) * stride);
            let prev = &prev[y * stride..];
            for (x, &k) in src.iter().enumerate() {
                row[k as usize] += 1;
                let o = (x + 1) * bins;
                for ((c, p), r) in cur[o..o + bins].iter_mut().zip(&prev[o..o + bins]).zip(&row) {
                    *c = p + r;
                }
            }
        }
        Self { y0, x0, w, bins, table }
    }

    /// Adds the counts of rows `ya..yb`, columns `xa..xb` (image coordinates, half-open) to `out`.
    fn window(&self, ya: usize, yb: usize, xa: usize, xb: usize, out: &mut [f32]) {
        let s = (self.w + 1) * self.bins;
        let (ya, yb, xa, xb) = (ya - self.y0, yb - self.y0, xa - self.x0, xb - self.x0);
        let a = &self.table[ya * s + xa * self.bins..][..self.bins];
        let b = &self.table[ya * s + xb * self.bins..][..self.bins];
        let c = &self.table[yb * s + xa * self.bins..][..self.bins];
        let d = &self.table[yb * s + xb * self.bins..][..self.bins];
        for k in 0..self.bins {
            out[k] = (d[k] + a[k] - b[k] - c[k]) as f32;
        }
    }
}

fn normalise(hist: &mut [f32]) {
    let total: f32 = hist.iter().sum();
    if total > 0.0 {
        hist.iter_mut().for_each(|v| *v /= total);
    } else {
        let u = 1.0 / hist.len() as f32;
        hist.iter_mut().for_each(|v| *v = u);
    }
}

impl HueChromaTargets {
    /// Creates the target computer; fails on an invalid config.
    pub fn new(config: TargetConfig) -> Result<Self, ColorError> {
        config.validate()?;
        Ok(Self { config })
    }

    /// The config in use.
    pub fn config(&self) -> &TargetConfig {
        &self.config
    }

    /// Targets at `points` (`(y, x)` pairs, each inside the image).
    pub fn compute(
        &self,
        img: RgbView<'_>,
        points: &[(usize, usize)],
    ) -> Result<Vec<PointTarget>, ColorError> {
        let cfg = &self.config;
        let (h, w) = (img.height, img.width);
        for &(y, x) in points {
            if y >= h || x >= w {
                return Err(ColorError::PointOutside { y: y as i64, x: x as i64, height: h, width: w });
            }
        }
        if points.is_empty() {
            return Ok(Vec::new());
        }
        let r = cfg.window / 2;
        // Bounding box of all (clipped) windows, half-open.
        let y0 = points.iter().map(|p| p.0.saturating_sub(r)).min().unwrap_or(0);
        let y1 = points.iter().map(|p| (p.0 + r + 1).min(h)).max().unwrap_or(h);
        let x0 = points.iter().map(|p| p.1.saturating_sub(r)).min().unwrap_or(0);
        let x1 = points.iter().map(|p| (p.1 + r + 1).min(w)).max().unwrap_or(w);

        // Bin indices of every pixel in the box (stored at image coordinates; u8 as bins <= 256).
        let mut hue_bin = vec![0u8; h * w];
        let mut chroma_bin = vec![0u8; h * w];
        for y in y0..y1 {
            for x in x0..x1 {
                let [pr, pg, pb] = img.pixel(y, x);
                let (hu, c) = hue_chroma(pr, pg, pb);
                hue_bin[y * w + x] = bin_index(hu, cfg.hue_bins) as u8;
                chroma_bin[y * w + x] = bin_index(c, cfg.chroma_bins) as u8;
            }
        }
        let hue_sat = BinSat::build(&hue_bin, w, y0, y1, x0, x1, cfg.hue_bins);
        let chroma_sat = BinSat::build(&chroma_bin, w, y0, y1, x0, x1, cfg.chroma_bins);

        let mut out = Vec::with_capacity(points.len());
        for &(y, x) in points {
            let (ya, yb) = (y.saturating_sub(r), (y + r + 1).min(h));
            let (xa, xb) = (x.saturating_sub(r), (x + r + 1).min(w));
            let mut hue_hist = vec![0f32; cfg.hue_bins];
            let mut chroma_hist = vec![0f32; cfg.chroma_bins];
            hue_sat.window(ya, yb, xa, xb, &mut hue_hist);
            chroma_sat.window(ya, yb, xa, xb, &mut chroma_hist);
            normalise(&mut hue_hist);
            normalise(&mut chroma_hist);
            let [pr, pg, pb] = img.pixel(y, x);
            let gray = (pr + pg + pb) / 3.0;
            let (_, c) = hue_chroma(pr, pg, pb);
            let lab = srgb_to_lab(pr, pg, pb);
            out.push(PointTarget {
                y,
                x,
                gray,
                hue_hist,
                chroma_hist,
                hue_weight: cfg.hue_weight(c),
                chroma_weight: cfg.chroma_weight(gray),
                lab_ab: [lab.a, lab.b],
            });
        }
        Ok(out)
    }
}
