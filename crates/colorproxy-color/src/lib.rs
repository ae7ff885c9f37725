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
//!
//! # Example: the colour targets at two points
//!
//! A 16x16 image, red on the left half and gray on the right; the targets at a red and a gray
//! point (the same values `colorproxy targets --point Y,X` prints):
//!
//! ```
//! use colorproxy_color::{HueChromaTargets, RgbView, TargetConfig};
//!
//! let (h, w) = (16, 16);
//! let mut rgb = vec![0f32; h * w * 3];
//! for y in 0..h {
//!     for x in 0..w {
//!         let px = if x < 8 { [0.9, 0.1, 0.1] } else { [0.5, 0.5, 0.5] };
//!         rgb[(y * w + x) * 3..][..3].copy_from_slice(&px);
//!     }
//! }
//! let targets = HueChromaTargets::new(TargetConfig::default())?;
//! let t = targets.compute(RgbView::new(&rgb, h, w)?, &[(8, 2), (8, 13)])?;
//! // Each histogram sums to 1.
//! assert!((t[0].hue_hist.iter().sum::<f32>() - 1.0).abs() < 1e-5);
//! // Red has chroma 0.8: its hue counts in the loss; gray has none, so its hue weight is 0.
//! assert!(t[0].hue_weight > 0.0 && t[1].hue_weight == 0.0);
//! // Gray is (R+G+B)/3.
//! assert!((t[0].gray - 1.1 / 3.0).abs() < 1e-6);
//! # Ok::<(), colorproxy_color::ColorError>(())
//! ```

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
