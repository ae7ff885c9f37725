//! `colorproxy export` (a torchvision state dict) and `colorproxy features` (layer activations).
use std::path::Path;

use anyhow::{bail, Context};
use colorproxy_data::decode::{decode_file, DecodeLimits};
use colorproxy_data::source::ImageSource;
use colorproxy_data::transfer_data::{crop_pad, resize_image, short_side_size, CropWindow, PAD_GRAY};
use colorproxy_data::RgbImage8;
use colorproxy_nn::checkpoint::{write_atomic, write_tensors};
use colorproxy_nn::parse_device;
use colorproxy_nn::torchvision::{export_torchvision, load_network, network_input, ExportOptions};
use colorproxy_nn::transfer::GRAY_MEAN;
use tch::Device;

use crate::cli::{ExportArgs, ExportFormat, FeaturesArgs};
use crate::progress;

fn refuse_overwrite(out: &Path, force: bool) -> anyhow::Result<()> {
    if out.exists() && !force {
        bail!("{} exists (pass --force to replace it)", out.display());
    }
    Ok(())
}

pub fn export(a: ExportArgs) -> anyhow::Result<()> {
    refuse_overwrite(&a.out, a.force)?;
    let ExportFormat::Torchvision = a.format;
    let mut net = load_network(&a.checkpoint, a.config.as_deref(), None, Device::Cpu)?;
    let arch = net.model.arch.clone();
    let ex = export_torchvision(&mut net, ExportOptions { rgb: a.rgb, seed: a.seed })
        .with_context(|| format!("exporting {}", a.checkpoint.display()))?;
    write_tensors(&a.out, &ex.tensors)?;
    println!(
        "wrote {} ({} tensors): torchvision.models.{arch}(num_classes={}), conv1 with {} input channel{}",
        a.out.display(),
        ex.tensors.len(),
        ex.num_classes,
        ex.in_channels,
        if ex.in_channels == 1 { "" } else { "s" }
    );
    for n in &ex.notes {
        println!("note: {n}");
    }
    println!(
        "input: colorproxy's, not ImageNet's normalisation: gray (R+G+B)/765 - {GRAY_MEAN} in [0, 1] units{}",
        if ex.in_channels == 3 { ", the same value in all three channels" } else { "" }
    );
    Ok(())
}

/// `--size` of the image commands: a multiple of 32 (the backbones' stride), at least 32.
pub fn check_size(size: usize) -> anyhow::Result<()> {
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
    mut f: impl FnMut(usize, &Path, RgbImage8) -> anyhow::Result<()>,
) -> anyhow::Result<(usize, usize)> {
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

pub fn features(a: FeaturesArgs) -> anyhow::Result<()> {
    refuse_overwrite(&a.out, a.force)?;
    let device = parse_device(a.device.as_deref())?;
    let net = load_network(&a.checkpoint, a.config.as_deref(), a.arch.as_deref(), device)?;
    let (mut inputs, mut outs, mut names) = (Vec::new(), Vec::new(), Vec::new());
    let limit = a.limit.unwrap_or(usize::MAX);
    let (_, skipped) = for_each_centre_crop(&a.data, limit, a.size, "features", |_, path, crop| {
        let x = network_input(&[&crop], net.in_channels(), GRAY_MEAN, device);
        outs.push(net.features(&x, &a.layers)?);
        inputs.push(x.to_device(Device::Cpu));
        names.push(path.display().to_string());
        Ok(())
    })?;
    let mut tensors = vec![("input".to_string(), tch::Tensor::cat(&inputs, 0))];
    for (k, layer) in a.layers.iter().enumerate() {
        let per_image: Vec<_> = outs.iter().map(|o| o[k].1.to_device(Device::Cpu)).collect();
        tensors.push((layer.clone(), tch::Tensor::cat(&per_image, 0)));
    }
    write_tensors(&a.out, &tensors)?;
    let list = a.out.with_extension("txt");
    write_atomic(&list, (names.join("\n") + "\n").as_bytes())?;
    println!(
        "wrote {} ({} images{}; {}) and the image list {}",
        a.out.display(),
        names.len(),
        if skipped > 0 { format!(", {skipped} skipped") } else { String::new() },
        tensors.iter().map(|(n, t)| format!("{n} {:?}", t.size())).collect::<Vec<_>>().join(", "),
        list.display()
    );
    Ok(())
}
