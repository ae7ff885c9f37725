//! From predicted hue and chroma histograms back to colour (the authors' colorizer).
//!
//! Chroma: the median of the chroma histogram (mode and expectation as options). Hue: the circular
//! mean `angle(sum_k p_k e^{i 2 pi h_k})`, with chromatic fading (chroma multiplied by
//! `clip(|mean_k p_k e^{i 2 pi h_k}|, 0, 0.03) / 0.03`, the mean over the bins) on by default.
//! Then `V = L + C/2`, `S = 2C / (2L + C)`, HSV -> RGB, and finally the RGB is shifted so its
//! channel mean equals the input gray: lightness never changes. Where the shift would leave
//! [0, 1], the colour is pulled towards the gray just enough (which keeps the mean).
use serde::{Deserialize, Serialize};

use crate::hsv::bin_center;

/// How chroma is read off its histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ChromaEstimate {
    #[default]
    Median,
    Mode,
    Expectation,
}

/// Options of the conversion.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReconstructOptions {
    pub chroma: ChromaEstimate,
    /// Reduce chroma where the hue distribution is spread out.
    pub chromatic_fading: bool,
    /// The fading saturates at this circular-mean magnitude (authors: 0.03).
    pub fading_threshold: f32,
}

impl Default for ReconstructOptions {
    fn default() -> Self {
        Self { chroma: ChromaEstimate::Median, chromatic_fading: true, fading_threshold: 0.03 }
    }
}

/// Chroma in [0, 1] from a chroma histogram.
pub fn chroma_from_hist(p: &[f32], how: ChromaEstimate) -> f32 {
    let n = p.len();
    match how {
        ChromaEstimate::Median => {
            let total: f32 = p.iter().sum();
            let mut acc = 0.0;
            for (k, v) in p.iter().enumerate() {
                acc += v;
                if acc >= 0.5 * total {
                    return bin_center(k, n);
                }
            }
            bin_center(n - 1, n)
        }
        ChromaEstimate::Mode => {
            let k = p.iter().enumerate().fold((0, f32::MIN), |m, (k, &v)| if v > m.1 { (k, v) } else { m }).0;
            bin_center(k, n)
        }
        ChromaEstimate::Expectation => {
            let total: f32 = p.iter().sum::<f32>().max(1e-12);
            p.iter().enumerate().map(|(k, v)| v * bin_center(k, n)).sum::<f32>() / total
        }
    }
}

/// Circular mean hue in [0, 1) and the magnitude of the mean resultant `|mean_k p_k e^{i2pi h_k}|`.
pub fn hue_from_hist(p: &[f32]) -> (f32, f32) {
    let n = p.len();
    let (mut re, mut im) = (0f64, 0f64);
    for (k, &v) in p.iter().enumerate() {
        let a = std::f64::consts::TAU * bin_center(k, n) as f64;
        re += v as f64 * a.cos();
        im += v as f64 * a.sin();
    }
    let hue = (im.atan2(re) / std::f64::consts::TAU).rem_euclid(1.0) as f32;
    let mag = ((re * re + im * im).sqrt() / n as f64) as f32;
    (if hue >= 1.0 { 0.0 } else { hue }, mag)
}

/// Hue, chroma and lightness `l` (the gray, in [0, 1]) to RGB whose channel mean is `l`.
///
/// The authors' `V = L + C/2`, `S = 2C / (2L + C)` make `V * S = C`, and HSV -> RGB gives
/// `V - C * pattern(h)`; the final shift to mean `l` removes `V`. So this computes
/// `C * pattern(h)` shifted to mean `l` directly, without clipping `S` to 1 where `C > V` (which
/// would change the chroma). If a channel then leaves [0, 1], the colour is pulled towards the
/// gray just enough, which keeps the mean.
pub fn hcl_to_rgb(hue: f32, chroma: f32, l: f32) -> [f32; 3] {
    let c = chroma.max(0.0);
    let h6 = hue.rem_euclid(1.0) * 6.0;
    let f = h6 - h6.floor();
    let pattern = match (h6.floor() as i32).rem_euclid(6) {
        0 => [1.0, f, 0.0],
        1 => [1.0 - f, 1.0, 0.0],
        2 => [0.0, 1.0, f],
        3 => [0.0, 1.0 - f, 1.0],
        4 => [f, 0.0, 1.0],
        _ => [1.0, 0.0, 1.0 - f],
    };
    let rgb = pattern.map(|p| c * p);
    let shift = l - (rgb[0] + rgb[1] + rgb[2]) / 3.0;
    let mut out = rgb.map(|x| x + shift);
    let mut t = 1f32;
    for x in out {
        if x > 1.0 {
            t = t.min((1.0 - l) / (x - l));
        } else if x < 0.0 {
            t = t.min(l / (l - x));
        }
    }
    if t < 1.0 {
        out = out.map(|x| l + t.max(0.0) * (x - l));
    }
    out
}

/// One pixel's colour from its predicted histograms and gray `l`.
pub fn pixel_from_hists(hue_p: &[f32], chroma_p: &[f32], l: f32, opts: &ReconstructOptions) -> [f32; 3] {
    let mut c = chroma_from_hist(chroma_p, opts.chroma);
    let (h, mag) = hue_from_hist(hue_p);
    if opts.chromatic_fading {
        c *= mag.clamp(0.0, opts.fading_threshold) / opts.fading_threshold;
    }
    hcl_to_rgb(h, c, l)
}
