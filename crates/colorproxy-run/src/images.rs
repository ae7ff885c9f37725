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
