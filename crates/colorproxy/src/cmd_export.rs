//! `colorproxy export` (a torchvision state dict) and `colorproxy features` (layer activations).
use std::path::Path;

use anyhow::{bail, Context};
use colorproxy_nn::checkpoint::{write_atomic, write_tensors};
use colorproxy_nn::parse_device;
use colorproxy_nn::torchvision::{export_torchvision, load_network, network_input, ExportOptions};
use colorproxy_nn::transfer::GRAY_MEAN;
use tch::Device;

use crate::cli::{ExportArgs, ExportFormat, FeaturesArgs};
use colorproxy_run::images::for_each_centre_crop;

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

pub fn features(a: FeaturesArgs) -> anyhow::Result<()> {
    refuse_overwrite(&a.out, a.force)?;
    let device = parse_device(a.device.device.as_deref())?;
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
