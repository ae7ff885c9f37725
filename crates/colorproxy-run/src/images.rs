//! Centre crops of an image folder for the analyses and `features`: decoded one by one with a
//! progress bar, undecodable files named, counted and skipped.
use std::path::Path;

use colorproxy_data::decode::{decode_file, DecodeLimits};
use colorproxy_data::source::ImageSource;
use colorproxy_data::transfer_data::{crop_pad, resize_image, short_side_size, CropWindow, PAD_GRAY};
use colorproxy_data::RgbImage8;

use crate::{bail, progress};

/// `--size` of the image commands: a multiple of 32 (the backbones' stride), at least 32.
pub fn check_size(size: usize) -> crate::Result<()> {
    if size < 32 || !size.is_multiple_of(32) {
        bail!("--size {size}: expected a multiple of 32 (at least 32)");
    }
    Ok(())
}

/// The images of `data` (a folder or a file list; at most `limit`, sorted), decoded and
/// centre-cropped to `size` one by one with a progress bar; files that do not decode are named on
/// stderr, counted and skipped. Calls `f(index among the usable images, path, crop)`; returns the
/// number of usable and of skipped images.
pub fn for_each_centre_crop(
    data: &Path,
    limit: usize,
    size: usize,
    what: &str,
    mut f: impl FnMut(usize, &Path, RgbImage8) -> crate::Result<()>,
) -> crate::Result<(usize, usize)> {
    check_size(size)?;
    let source = ImageSource::open(data)?;
    let files: Vec<_> = source.files.iter().take(limit).collect();
    if files.is_empty() {
        bail!("{}: no images", data.display());
    }
    let pb = progress::bar(files.len() as u64, what);
    let (mut used, mut skipped) = (0usize, 0usize);
    for path in files {
        pb.inc(1);
        match decode_file(path, &DecodeLimits::default()) {
            Ok(img) => {
                f(used, path, centre_crop(&img, size))?;
                used += 1;
            }
            Err(e) => {
                progress::note(&pb, &format!("skipped {}: {e}", path.display()));
                skipped += 1;
            }
        }
    }
    pb.finish_and_clear();
    if used == 0 {
        bail!("{}: none of the images could be decoded", data.display());
    }
    Ok((used, skipped))
}

/// The centre `size` x `size` crop after scaling the shorter side to `size`.
pub fn centre_crop(img: &RgbImage8, size: usize) -> RgbImage8 {
    let (w, h) = short_side_size(img.width, img.height, size as f64);
    let im = resize_image(img, w, h);
    let (x0, y0) = ((w as i64 - size as i64) / 2, (h as i64 - size as i64) / 2);
    let data = crop_pad(&im.data, w, h, 3, CropWindow { x0, y0, side: size, mirror: false }, PAD_GRAY);
    RgbImage8 { width: size, height: size, data }
}

/// The colour targets of `img` at `points` (`(y, x)` pixels; each inside the image, else an error
/// naming `what`): what `colorproxy targets` prints and the Python package's `targets` returns.
pub fn point_targets(
    img: &RgbImage8,
    points: &[(usize, usize)],
    cfg: colorproxy_color::TargetConfig,
    what: &str,
) -> crate::Result<Vec<colorproxy_color::PointTarget>> {
    for &(y, x) in points {
        if y >= img.height || x >= img.width {
            bail!("point {y},{x} is outside {what} ({}x{} pixels, height x width)", img.height, img.width);
        }
    }
    let expected = img.height * img.width * 3;
    if img.data.len() != expected {
        bail!(
            "{what}: {} bytes for {}x{} RGB pixels ({expected} expected)",
            img.data.len(),
            img.height,
            img.width
        );
    }
    let rgb: Vec<f32> = img.data.iter().map(|&v| v as f32 / 255.0).collect();
    let view = colorproxy_color::RgbView::new(&rgb, img.height, img.width)?;
    Ok(colorproxy_color::HueChromaTargets::new(cfg)?.compute(view, points)?)
}

/// An image file decoded for [`point_targets`] (any size of at least 1 pixel).
pub fn decode_any_size(path: &Path) -> crate::Result<RgbImage8> {
    let limits = DecodeLimits { min_side: 1, ..DecodeLimits::default() };
    decode_file(path, &limits).map_err(|e| crate::RunError::msg(format!("{}: {e}", path.display())))
}
