//! Robust image decoding: every bad input becomes a named [`SkipReason`], never a panic.
//!
//! Handled: unreadable / empty / non-image / truncated / corrupt files, decompression bombs
//! (dimension and allocation limits checked before decoding), EXIF orientation (applied), CMYK
//! JPEG (converted by the decoder), 16-bit channels (scaled to 8 bits), alpha (composited on
//! white), grayscale (replicated to RGB), images below a minimum side.
use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageError, ImageReader};
use serde::{Deserialize, Serialize};

/// An 8-bit sRGB image, `[height, width, 3]` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct RgbImage8 {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl RgbImage8 {
    /// Mean bicone chroma (`max - min`, in [0, 1]) over a grid of at most ~4096 pixels.
    pub fn mean_chroma(&self) -> f32 {
        let n = self.width * self.height;
        if n == 0 {
            return 0.0;
        }
        let step = (n / 4096).max(1);
        let (mut sum, mut cnt) = (0u64, 0u64);
        for i in (0..n).step_by(step) {
            let p = &self.data[i * 3..i * 3 + 3];
            sum += (p[0].max(p[1]).max(p[2]) - p[0].min(p[1]).min(p[2])) as u64;
            cnt += 1;
        }
        sum as f32 / cnt as f32 / 255.0
    }
}

/// Limits applied before and while decoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecodeLimits {
    /// Skip images whose shorter side is below this many pixels.
    pub min_side: u32,
    /// Skip images wider or taller than this (decompression-bomb guard).
    pub max_side: u32,
    /// Skip images whose decoded buffer would exceed this many bytes.
    pub max_alloc_bytes: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self { min_side: 32, max_side: 20_000, max_alloc_bytes: 512 << 20 }
    }
}

/// Why an image was skipped. `kind()` is the stable name used in counts and reports.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SkipReason {
    #[error("cannot read file: {0}")]
    Unreadable(String),
    #[error("empty file")]
    Empty,
    #[error("not an image (unknown format)")]
    NotAnImage,
    #[error("unsupported image: {0}")]
    Unsupported(String),
    #[error("corrupt or truncated image: {0}")]
    Corrupt(String),
    #[error("too large (decompression-bomb guard): {0}")]
    TooLarge(String),
    #[error("too small: {width}x{height}, shorter side below {min_side}")]
    TooSmall { width: u32, height: u32, min_side: u32 },
    #[error("achromatic (mean chroma {mean_chroma:.4} below {threshold})")]
    Achromatic { mean_chroma: f32, threshold: f32 },
}

impl SkipReason {
    /// A short stable name: `unreadable`, `empty`, `not-an-image`, `unsupported`, `corrupt`,
    /// `too-large`, `too-small`, `achromatic`.
    pub fn kind(&self) -> &'static str {
        match self {
            SkipReason::Unreadable(_) => "unreadable",
            SkipReason::Empty => "empty",
            SkipReason::NotAnImage => "not-an-image",
            SkipReason::Unsupported(_) => "unsupported",
            SkipReason::Corrupt(_) => "corrupt",
            SkipReason::TooLarge(_) => "too-large",
            SkipReason::TooSmall { .. } => "too-small",
            SkipReason::Achromatic { .. } => "achromatic",
        }
    }
}

fn classify(e: ImageError) -> SkipReason {
    match e {
        ImageError::Limits(l) => SkipReason::TooLarge(l.to_string()),
        ImageError::Unsupported(u) => match u.kind() {
            image::error::UnsupportedErrorKind::Format(image::error::ImageFormatHint::Unknown) => {
                SkipReason::NotAnImage
            }
            _ => SkipReason::Unsupported(u.to_string()),
        },
        ImageError::IoError(io) => SkipReason::Corrupt(io.to_string()),
        other => SkipReason::Corrupt(other.to_string()),
    }
}

/// Decodes bytes into 8-bit sRGB, applying EXIF orientation and the limits.
pub fn decode_bytes(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage8, SkipReason> {
    if bytes.is_empty() {
        return Err(SkipReason::Empty);
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| SkipReason::Unreadable(e.to_string()))?;
    let format = reader.format();
    if format.is_none() {
        return Err(SkipReason::NotAnImage);
    }
    let mut lim = image::Limits::default();
    lim.max_image_width = Some(limits.max_side);
    lim.max_image_height = Some(limits.max_side);
    lim.max_alloc = Some(limits.max_alloc_bytes);
    reader.limits(lim);
    let mut decoder = reader.into_decoder().map_err(classify)?;
    use image::ImageDecoder;
    let (w, h) = decoder.dimensions();
    if w.min(h) < limits.min_side {
        return Err(SkipReason::TooSmall { width: w, height: h, min_side: limits.min_side });
    }
    let bytes_needed = decoder.total_bytes();
    if bytes_needed > limits.max_alloc_bytes {
        return Err(SkipReason::TooLarge(format!(
            "{w}x{h} needs {bytes_needed} bytes, limit {}",
            limits.max_alloc_bytes
        )));
    }
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = if format == Some(image::ImageFormat::Jpeg) {
        drop(decoder);
        decode_jpeg_strict(bytes, limits)?
    } else {
        DynamicImage::from_decoder(decoder).map_err(classify)?
    };
    img.apply_orientation(orientation);
    Ok(to_rgb8(img))
}

/// Converts any decoded image to 8-bit RGB; alpha is composited on white.
/// JPEG pixels through zune-jpeg (the decoder `image` uses) in strict mode: truncated data,
/// garbage in the entropy-coded segment or a missing end marker are errors instead of rows
/// padded with gray. Same colour handling as `image` (RGB, RGBA, gray, gray + alpha kept; CMYK
/// and YCCK converted to RGB), so intact files decode to the same pixels.
fn decode_jpeg_strict(bytes: &[u8], limits: &DecodeLimits) -> Result<DynamicImage, SkipReason> {
    use zune_core::colorspace::ColorSpace;
    let corrupt = |e: zune_jpeg::errors::DecodeErrors| SkipReason::Corrupt(format!("{e:?}"));
    let opts = zune_core::options::DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(limits.max_side as usize)
        .set_max_height(limits.max_side as usize);
    let mut d = zune_jpeg::JpegDecoder::new_with_options(zune_core::bytestream::ZCursor::new(bytes), opts);
    d.decode_headers().map_err(corrupt)?;
    let cs = match d.input_colorspace() {
        Some(c @ (ColorSpace::RGB | ColorSpace::RGBA | ColorSpace::Luma | ColorSpace::LumaA)) => c,
        _ => ColorSpace::RGB,
    };
    d.set_options(d.options().jpeg_set_out_colorspace(cs));
    let (w, h) = d.dimensions().ok_or_else(|| SkipReason::Corrupt("no dimensions".into()))?;
    let px = d.decode().map_err(corrupt)?;
    let (w, h) = (w as u32, h as u32);
    let n = px.len();
    let short = || SkipReason::Corrupt(format!("decoded {n} bytes for {w}x{h}"));
    Ok(match cs {
        ColorSpace::RGBA => DynamicImage::ImageRgba8(image::RgbaImage::from_raw(w, h, px).ok_or_else(short)?),
        ColorSpace::Luma => DynamicImage::ImageLuma8(image::GrayImage::from_raw(w, h, px).ok_or_else(short)?),
        ColorSpace::LumaA => {
            DynamicImage::ImageLumaA8(image::GrayAlphaImage::from_raw(w, h, px).ok_or_else(short)?)
        }
        _ => DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, px).ok_or_else(short)?),
    })
}

fn to_rgb8(img: DynamicImage) -> RgbImage8 {
    let (width, height) = (img.width() as usize, img.height() as usize);
    let data = if img.color().has_alpha() {
        let rgba = img.to_rgba8();
        let mut out = Vec::with_capacity(width * height * 3);
        for p in rgba.pixels() {
            let a = p[3] as u32;
            for c in 0..3 {
                // Rounded (c * a + 255 * (255 - a)) / 255.
                out.push(((p[c] as u32 * a + 255 * (255 - a) + 127) / 255) as u8);
            }
        }
        out
    } else {
        match img {
            DynamicImage::ImageRgb8(b) => b.into_raw(),
            other => other.to_rgb8().into_raw(),
        }
    };
    RgbImage8 { width, height, data }
}

/// Reads and decodes a file (see [`decode_bytes`]).
pub fn decode_file(path: &Path, limits: &DecodeLimits) -> Result<RgbImage8, SkipReason> {
    let bytes = std::fs::read(path).map_err(|e| SkipReason::Unreadable(e.to_string()))?;
    decode_bytes(&bytes, limits)
}
