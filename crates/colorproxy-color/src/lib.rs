//! Colour science and the colorization targets of Larsson et al. (CVPR 2017), as defined in the
//! authors' released Caffe code (see `../shared/paper/implementation-notes.md`).
//!
//! Images here are gamma-encoded sRGB with channels scaled to [0, 1], stored row-major and
//! interleaved (`[H, W, 3]`).
//!
//! - [`hsv`]: bicone hue and chroma (HSV hue, `max - min`), the quantities the histograms bin.
//! - [`lab`]: sRGB -> CIE L\*a\*b\* (D65) for the regression alternative.
//! - [`targets`]: [`HueChromaTargets`], 7x7-window histograms at sampled points via summed-area
//!   tables, with the per-point loss weights.
//! - [`config`]: [`TargetConfig`], every constant in one place.

pub mod config;
pub mod hsv;
pub mod lab;
pub mod reconstruct;
pub mod targets;

pub use config::TargetConfig;
pub use hsv::{bin_index, hue_chroma};
pub use lab::{srgb_to_lab, Lab};
pub use targets::{HueChromaTargets, PointTarget, RgbView};

/// Errors of the colour crate.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ColorError {
    #[error("point (y={y}, x={x}) lies outside the {height}x{width} image")]
    PointOutside { y: i64, x: i64, height: usize, width: usize },
    #[error("image buffer holds {got} values, expected {expected} for {height}x{width}x3")]
    BadBuffer { got: usize, expected: usize, height: usize, width: usize },
    #[error("invalid target config: {0}")]
    BadConfig(String),
}
