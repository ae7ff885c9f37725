//! The paper's augmentation: random rescale of the shorter side, random square crop, random
//! mirror. Only the cropped region is resampled (same result as resizing the whole image and then
//! cropping, at a fraction of the cost).
use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use serde::{Deserialize, Serialize};

use crate::decode::RgbImage8;
use crate::rng::Rng;
use crate::DataError;

/// Augmentation parameters (paper: shorter side uniform in [352, 600], crop 352, mirror).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentConfig {
    /// Output crop side `S`, in pixels.
    pub crop: u32,
    /// The shorter side is rescaled to a uniform integer in `[short_side_min, short_side_max]`.
    pub short_side_min: u32,
    pub short_side_max: u32,
    /// Mirror horizontally with probability 1/2.
    pub mirror: bool,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self { crop: 352, short_side_min: 352, short_side_max: 600, mirror: true }
    }
}

impl AugmentConfig {
    pub fn validate(&self) -> Result<(), DataError> {
        if self.crop > 8192 || self.short_side_max > 20_000 {
            return Err(DataError::BadConfig(format!(
                "crop {} or short_side_max {} is beyond any image this pipeline decodes (crop <= 8192, sides <= 20000)",
                self.crop, self.short_side_max
            )));
        }
        if self.crop == 0 || self.short_side_min < self.crop || self.short_side_max < self.short_side_min {
            return Err(DataError::BadConfig(format!(
                "augment needs 0 < crop <= short_side_min <= short_side_max, got crop {} and [{}, {}]",
                self.crop, self.short_side_min, self.short_side_max
            )));
        }
        Ok(())
    }
}

/// An augmented crop: 8-bit sRGB `[crop, crop, 3]`.
#[derive(Debug, Clone)]
pub struct Augmented {
    pub side: usize,
    pub rgb: Vec<u8>,
}

/// Rescales `img` so its shorter side is a random `s`, crops a random `crop x crop` square and
/// mirrors it at random. Bilinear (triangle) filtering with antialiasing, as Pillow's BILINEAR.
pub fn augment(img: &RgbImage8, cfg: &AugmentConfig, rng: &mut Rng, resizer: &mut Resizer) -> Augmented {
    let s = rng.range_inclusive(cfg.short_side_min as u64, cfg.short_side_max as u64) as f64;
    let (w, h) = (img.width as f64, img.height as f64);
    let scale = s / w.min(h);
    let (rw, rh) = ((w * scale).round().max(cfg.crop as f64), (h * scale).round().max(cfg.crop as f64));
    let crop = cfg.crop as f64;
    let cx = rng.below((rw - crop) as u64 + 1) as f64;
    let cy = rng.below((rh - crop) as u64 + 1) as f64;
    let mirror = cfg.mirror && rng.coin();
    // The crop in source coordinates.
    let (sx, sy) = (w / rw, h / rh);
    let src = ImageRef::new(img.width as u32, img.height as u32, &img.data, PixelType::U8x3)
        .expect("buffer size matches dimensions");
    let mut dst = Image::new(cfg.crop, cfg.crop, PixelType::U8x3);
    let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)).crop(
        cx * sx,
        cy * sy,
        (crop * sx).min(w - cx * sx),
        (crop * sy).min(h - cy * sy),
    );
    resizer.resize(&src, &mut dst, &opts).expect("pixel types match");
    let mut rgb = dst.into_vec();
    if mirror {
        let side = cfg.crop as usize;
        for row in rgb.chunks_exact_mut(side * 3) {
            for x in 0..side / 2 {
                for c in 0..3 {
                    row.swap(x * 3 + c, (side - 1 - x) * 3 + c);
                }
            }
        }
    }
    Augmented { side: cfg.crop as usize, rgb }
}
