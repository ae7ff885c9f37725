//! Weights into a backbone: a checkpoint's tensors copied by name with torchvision's shapes
//! converted ([`copy_backbone`]), and the network input of images ([`network_input`]).
use std::collections::BTreeMap;
use std::path::Path;

use colorproxy_data::RgbImage8;
use tch::nn::VarStore;
use tch::{Device, Tensor};

use crate::model::ToDev;
use crate::NnError;

/// What [`copy_backbone`] found in the file.
#[derive(Debug, Clone, Copy)]
pub struct Loaded {
    /// The file had the parameter-free BN statistics (`bn.*`) of a colorproxy pretraining run;
    /// without them (torchvision or supervised weights) there is no BN to absorb.
    pub bn_statistics: bool,
}

/// Copies the backbone's tensors (every variable except `head.*` and `fov.*`) from `file`,
/// converting torchvision's shapes: `Linear` fc6/fc7 -> convolutions, RGB conv1 on gray input
/// (filters summed) and gray conv1 on RGB input (divided by 3).
pub fn copy_backbone(
    vs: &mut VarStore,
    file: &BTreeMap<String, Tensor>,
    path: &Path,
) -> Result<Loaded, NnError> {
    let ferr = |m: String| NnError::File { path: path.to_owned(), msg: m };
    let mut bn_statistics = false;
    tch::no_grad(|| {
        for (name, mut var) in vs.variables() {
            if name.starts_with("head.") || name.starts_with("fov.") {
                continue;
            }
            let Some(src) = file.get(&name) else {
                if name.starts_with("bn.") {
                    continue; // torchvision and supervised weights have no parameter-free BN
                }
                return Err(ferr(format!("has no tensor {name:?} (same architecture and width?)")));
            };
            bn_statistics |= name.starts_with("bn.");
            let want = var.size();
            let mut t = src.to_kind(var.kind());
            if t.size() != want && t.numel() == var.numel() {
                t = t.reshape(&want); // torchvision Linear fc6/fc7 -> convolution
            } else if t.size() != want && t.dim() == 4 && want.len() == 4 && t.size()[0] == want[0] {
                t = match (t.size()[1], want[1]) {
                    (1, 3) => t.repeat([1, 3, 1, 1]) / 3.0, // lift gray conv1 to RGB
                    (3, 1) => t.sum_dim_intlist([1i64].as_slice(), true, t.kind()), // RGB filters on gray input
                    _ => t,
                };
            }
            if t.size() != want {
                return Err(ferr(format!(
                    "tensor {name:?} has shape {:?}, the network expects {want:?}",
                    src.size()
                )));
            }
            crate::checkpoint::check_finite(path, &name, &t)?;
            var.copy_(&t);
        }
        Ok(())
    })?;
    Ok(Loaded { bn_statistics })
}

/// The network input for images `[H, W, 3]` 8-bit: gray `(R+G+B)/765 - mean` (`channels` 1) or
/// each channel `/255 - mean` (`channels` 3). Returns `[B, channels, H, W]` on `device`.
pub fn network_input(imgs: &[&RgbImage8], channels: i64, mean: f32, device: Device) -> Tensor {
    let (w, h) = (imgs[0].width as i64, imgs[0].height as i64);
    let mut v = Vec::with_capacity(imgs.len() * (channels * h * w) as usize);
    for img in imgs {
        if channels == 3 {
            for ch in 0..3 {
                v.extend(img.data.chunks_exact(3).map(|p| p[ch] as f32 / 255.0 - mean));
            }
        } else {
            v.extend(
                img.data.chunks_exact(3).map(|p| (p[0] as f32 + p[1] as f32 + p[2] as f32) / 765.0 - mean),
            );
        }
    }
    Tensor::from_slice(&v).reshape([imgs.len() as i64, channels, h, w]).to_dev(device)
}

/// The torchvision architecture whose state dict has these tensor names (none for colorproxy's
/// own checkpoints, which have `bn.*` or `head.*` tensors).
pub fn detect_arch(names: &[String]) -> Option<&'static str> {
    let has = |n: &str| names.iter().any(|k| k == n);
    if names.iter().any(|k| k.starts_with("bn.") || k.starts_with("head.")) {
        return None;
    }
    if has("features.28.weight") && has("classifier.0.weight") {
        return Some("vgg16");
    }
    if has("features.10.weight") && has("classifier.1.weight") {
        return Some("alexnet");
    }
    if !has("layer4.0.conv1.weight") {
        return None;
    }
    let blocks = (0..).take_while(|i| has(&format!("layer3.{i}.conv1.weight"))).count();
    match (blocks, has("layer1.0.conv3.weight")) {
        (2, false) => Some("resnet18"),
        (6, true) => Some("resnet50"),
        (36, true) => Some("resnet152"),
        _ => None,
    }
}
