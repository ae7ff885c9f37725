//! Augmentation of labelled images for the transfer tasks: resize (image bilinear, mask nearest),
//! random crop with padding (image: the mean gray, mask: void), mirror; and the 10-crop test views.
use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use crate::decode::RgbImage8;
use crate::metrics::VOID;
use crate::rng::Rng;

/// Resizes an image to `w x h` (bilinear with antialiasing).
pub fn resize_image(img: &RgbImage8, w: usize, h: usize) -> RgbImage8 {
    if (w, h) == (img.width, img.height) {
        return img.clone();
    }
    let src =
        ImageRef::new(img.width as u32, img.height as u32, &img.data, PixelType::U8x3).expect("size matches");
    let mut dst = Image::new(w as u32, h as u32, PixelType::U8x3);
    Resizer::new()
        .resize(
            &src,
            &mut dst,
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)),
        )
        .expect("pixel types match");
    RgbImage8 { width: w, height: h, data: dst.into_vec() }
}

/// Resizes a label mask to `w x h` by nearest neighbour (pixel centres).
pub fn resize_mask(mask: &[u8], mw: usize, mh: usize, w: usize, h: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        let sy = (((y as f64 + 0.5) * mh as f64 / h as f64) as usize).min(mh - 1);
        for x in 0..w {
            let sx = (((x as f64 + 0.5) * mw as f64 / w as f64) as usize).min(mw - 1);
            out.push(mask[sy * mw + sx]);
        }
    }
    out
}

/// The size with the shorter side scaled to `short` (aspect kept).
pub fn short_side_size(w: usize, h: usize, short: f64) -> (usize, usize) {
    let s = short / w.min(h) as f64;
    (((w as f64 * s).round() as usize).max(1), ((h as f64 * s).round() as usize).max(1))
}

/// A square window of `side` pixels at `(x0, y0)`, optionally mirrored.
#[derive(Debug, Clone, Copy)]
pub struct CropWindow {
    pub x0: i64,
    pub y0: i64,
    pub side: usize,
    pub mirror: bool,
}

/// The window's pixels (where it extends past the image: `fill`). Works on `[H, W, C]` buffers of
/// any channel count.
pub fn crop_pad<T: Copy>(data: &[T], w: usize, h: usize, c: usize, win: CropWindow, fill: T) -> Vec<T> {
    let CropWindow { x0, y0, side: crop, mirror } = win;
    let mut out = Vec::with_capacity(crop * crop * c);
    for y in 0..crop as i64 {
        for xo in 0..crop as i64 {
            let x = if mirror { crop as i64 - 1 - xo } else { xo };
            let (sx, sy) = (x0 + x, y0 + y);
            if sx >= 0 && sy >= 0 && (sx as usize) < w && (sy as usize) < h {
                let i = (sy as usize * w + sx as usize) * c;
                out.extend_from_slice(&data[i..i + c]);
            } else {
                out.extend(std::iter::repeat_n(fill, c));
            }
        }
    }
    out
}

/// A random training view of an image (and its mask): shorter side scaled to
/// `short_side * U[scale_min, scale_max]` (no resize if `short_side` is 0 and the scales are 1),
/// random `crop` window (padded where the image is smaller), random mirror.
pub struct ViewSpec {
    pub short_side: f64,
    pub scale_min: f64,
    pub scale_max: f64,
    pub crop: usize,
    pub mirror: bool,
}

/// The mean gray used to pad images (0.4488 x 255).
pub const PAD_GRAY: u8 = 114;

pub fn random_view(
    img: &RgbImage8,
    mask: Option<&[u8]>,
    spec: &ViewSpec,
    rng: &mut Rng,
) -> (RgbImage8, Option<Vec<u8>>) {
    let scale = spec.scale_min + (spec.scale_max - spec.scale_min) * rng.uniform();
    let base = if spec.short_side > 0.0 { spec.short_side } else { img.width.min(img.height) as f64 };
    let (w, h) = short_side_size(img.width, img.height, base * scale);
    let im = resize_image(img, w, h);
    let m = mask.map(|m| resize_mask(m, img.width, img.height, w, h));
    let x0 = if w > spec.crop {
        rng.below((w - spec.crop + 1) as u64) as i64
    } else {
        -(rng.below((spec.crop - w + 1) as u64) as i64)
    };
    let y0 = if h > spec.crop {
        rng.below((h - spec.crop + 1) as u64) as i64
    } else {
        -(rng.below((spec.crop - h + 1) as u64) as i64)
    };
    let mirror = spec.mirror && rng.coin();
    let data = crop_pad(&im.data, w, h, 3, CropWindow { x0, y0, side: spec.crop, mirror }, PAD_GRAY);
    let mask = m.map(|m| crop_pad(&m, w, h, 1, CropWindow { x0, y0, side: spec.crop, mirror }, VOID));
    (RgbImage8 { width: spec.crop, height: spec.crop, data }, mask)
}

/// The standard 10-crop test views: the shorter side scaled to `short_side`, 4 corner crops and
/// the centre crop of side `crop`, each also mirrored.
pub fn ten_crops(img: &RgbImage8, short_side: f64, crop: usize) -> Vec<RgbImage8> {
    let (w, h) = short_side_size(img.width, img.height, short_side);
    let im = resize_image(img, w, h);
    let (mx, my) = (w as i64 - crop as i64, h as i64 - crop as i64);
    let corners = [(0, 0), (mx, 0), (0, my), (mx, my), (mx / 2, my / 2)];
    let mut out = Vec::with_capacity(10);
    for mirror in [false, true] {
        for &(x0, y0) in &corners {
            let data = crop_pad(&im.data, w, h, 3, CropWindow { x0, y0, side: crop, mirror }, PAD_GRAY);
            out.push(RgbImage8 { width: crop, height: crop, data });
        }
    }
    out
}
