//! All constants of the colour targets, with the authors' defaults.
use serde::{Deserialize, Serialize};

use crate::ColorError;

/// Constants of the colour targets and loss weights.
///
/// Defaults are those of the authors' Caffe code: 32 hue and 32 chroma bins, a 7x7 box window,
/// hue loss weight 5 (times the centre chroma), chroma loss weight 1 (times
/// `min(1, 3 gray, 3 (1 - gray))`), network input `gray - 0.4488`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TargetConfig {
    /// Number of hue bins over [0, 1).
    pub hue_bins: usize,
    /// Number of chroma bins over [0, 1].
    pub chroma_bins: usize,
    /// Side of the square box window (odd), in pixels.
    pub window: usize,
    /// Hue loss weight; the per-point hue weight is this times the chroma at the centre pixel.
    pub hue_loss_weight: f32,
    /// Chroma loss weight; the per-point weight is this times `min(1, s g, s (1 - g))`.
    pub chroma_loss_weight: f32,
    /// The slope `s` of the chroma weight ramp near black and white (3 in the authors' code).
    pub chroma_weight_slope: f32,
    /// Subtracted from the gray value `(R+G+B)/3` to centre the network input.
    pub gray_mean: f32,
    /// CIE a\*, b\* are divided by this for the regression targets (Zhang et al. use 110).
    pub lab_ab_scale: f32,
}

impl Default for TargetConfig {
    fn default() -> Self {
        Self {
            hue_bins: 32,
            chroma_bins: 32,
            window: 7,
            hue_loss_weight: 5.0,
            chroma_loss_weight: 1.0,
            chroma_weight_slope: 3.0,
            gray_mean: 0.4488,
            lab_ab_scale: 110.0,
        }
    }
}

impl TargetConfig {
    /// Checks the values make sense (bins >= 2, odd window >= 1, positive scales).
    pub fn validate(&self) -> Result<(), ColorError> {
        if !(2..=4096).contains(&self.hue_bins) || !(2..=4096).contains(&self.chroma_bins) {
            return Err(ColorError::BadConfig(format!(
                "hue_bins and chroma_bins must be in [2, 4096], got {} and {}",
                self.hue_bins, self.chroma_bins
            )));
        }
        if self.window == 0 || self.window.is_multiple_of(2) || self.window > 255 {
            return Err(ColorError::BadConfig(format!("window must be odd and >= 1, got {}", self.window)));
        }
        if self.lab_ab_scale <= 0.0 || !self.lab_ab_scale.is_finite() {
            return Err(ColorError::BadConfig("lab_ab_scale must be positive".into()));
        }
        Ok(())
    }

    /// The per-point chroma loss weight for a gray value `g` in [0, 1].
    pub fn chroma_weight(&self, gray: f32) -> f32 {
        let s = self.chroma_weight_slope;
        self.chroma_loss_weight * 1f32.min(s * gray).min(s * (1.0 - gray)).max(0.0)
    }

    /// The per-point hue loss weight for the centre pixel's chroma `c` in [0, 1].
    pub fn hue_weight(&self, chroma: f32) -> f32 {
        self.hue_loss_weight * chroma
    }
}
