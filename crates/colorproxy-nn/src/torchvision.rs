//! Weights that PyTorch users can load: export a colorproxy backbone as a state dict that
//! `torchvision.models.<arch>()` loads with `load_state_dict(strict=True)`, and read such state
//! dicts (or any colorproxy checkpoint) back as a backbone.
//!
//! What export changes, so that a stock torchvision model computes colorproxy's features:
//! - the parameter-free BN of VGG-16 and AlexNet is absorbed into the convolutions
//!   ([`crate::bn_absorb`]); ResNet keeps its standard BN (plus torchvision's
//!   `num_batches_tracked` counters, written as 0);
//! - fc6 and fc7, convolutions in colorproxy, go back to torchvision's `Linear` shapes
//!   (`[4096, 512, 7, 7]` -> `[4096, 25088]`); at a 224x224 input, torchvision's fc6 equals
//!   colorproxy's fc6 at the centre of its 7x7 map (6x6 for AlexNet);
//! - with `rgb`, the gray conv1 `[C, 1, k, k]` is lifted to `[C, 3, k, k]`, each channel the gray
//!   filter divided by 3, so a gray image given as three equal channels gives the same features;
//! - the classifier's last layer (`classifier.6`, ResNet's `fc`) comes from a fine-tuned
//!   classification head when its input matches (then `num_classes` is the head's), otherwise it
//!   gets torchvision's own initialisation for 1000 classes.
//!
//! The network input is colorproxy's, not ImageNet's normalisation: gray `(R+G+B)/765 - 0.4488`
//! (see [`network_input`]).
use std::collections::BTreeMap;
use std::path::Path;

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::backbone::{Backbone, Family};
use crate::checkpoint::read_tensors;
use crate::config::{ModelConfig, PretrainConfig};
use crate::model::ToDev;
use crate::run_dir::config_of_checkpoint;
use crate::transfer::{load_finetuned, Task, TransferConfig};
pub use crate::weights::{copy_backbone, detect_arch, network_input, Loaded};
use crate::NnError;

/// Where a [`Network`]'s weights came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A colorization pretraining run (its config.toml is a pretraining config).
    Pretrained,
    /// A fine-tuning run.
    Finetuned(Task),
    /// A torchvision state dict (no colorproxy config).
    Torchvision,
}

/// A backbone with its weights, in eval mode, ready to export or to compute features.
pub struct Network {
    pub vs: VarStore,
    pub backbone: Backbone,
    pub model: ModelConfig,
    /// A fine-tuned classification head: weight `[K, C]`, bias `[K]` on the top layer's pooled
    /// features.
    pub classifier: Option<(Tensor, Tensor)>,
    pub origin: Origin,
}

/// Loads a network from a colorproxy checkpoint (its run config found beside it, or `config`) or,
/// with `arch`, from a torchvision state dict of that architecture.
pub fn load_network(
    ck: &Path,
    config: Option<&Path>,
    arch: Option<&str>,
    device: Device,
) -> Result<Network, NnError> {
    if let Some(arch) = arch {
        return load_torchvision(ck, arch, device);
    }
    let (cfg_path, text) = match config_of_checkpoint(ck, config) {
        Ok(found) => found,
        Err(e) => {
            // No run config: a torchvision state dict, if its names say which architecture.
            let names: Vec<String> = read_tensors(ck)?.into_iter().map(|(n, _)| n).collect();
            return match detect_arch(&names) {
                Some(arch) if config.is_none() => load_torchvision(ck, arch, device),
                _ => Err(e),
            };
        }
    };
    if let Ok(cfg) = TransferConfig::from_toml(&text) {
        let task = cfg.task;
        let net = load_finetuned(ck, cfg, device)?;
        let classifier = (task == Task::Cls).then(|| (net.out.weight.detach(), net.out.bias.detach()));
        return Ok(Network {
            vs: net.vs,
            backbone: net.backbone,
            model: net.config.model.clone(),
            classifier,
            origin: Origin::Finetuned(task),
        });
    }
    let cfg = PretrainConfig::from_toml(&text).map_err(|e| NnError::File {
        path: cfg_path.clone(),
        msg: format!("neither a fine-tuning nor a pretraining config: {e}"),
    })?;
    let mut vs = VarStore::new(device);
    let backbone = Backbone::new(&vs.root(), &cfg.model)?;
    let file: BTreeMap<String, Tensor> = read_tensors(ck)?.into_iter().collect();
    copy_backbone(&mut vs, &file, ck)?;
    Ok(Network { vs, backbone, model: cfg.model, classifier: None, origin: Origin::Pretrained })
}

/// The network a colorization pretraining starts from: the architecture of the checkpoint's run
/// config (a pretraining's) with the initial weights of `seed`, untrained: the random baseline
/// of probes and feature analyses.
pub fn untrained_network(
    ck: &Path,
    config: Option<&Path>,
    seed: u64,
    device: Device,
) -> Result<Network, NnError> {
    let (cfg_path, text) = config_of_checkpoint(ck, config)?;
    let cfg = PretrainConfig::from_toml(&text).map_err(|e| NnError::File {
        path: cfg_path.clone(),
        msg: format!("not a colorization pretraining's config (an untrained network is built from one): {e}"),
    })?;
    let net = crate::model::ColorizationNet::new(
        &cfg.model,
        cfg.targets.hue_bins as i64,
        cfg.targets.chroma_bins as i64,
        device,
        seed,
    )?;
    Ok(Network {
        vs: net.vs,
        backbone: net.backbone,
        model: cfg.model,
        classifier: None,
        origin: Origin::Pretrained,
    })
}

/// A torchvision state dict as a gray-input backbone of standard width (3-channel conv1 filters
/// summed, which is exact for gray images given as three equal channels).
fn load_torchvision(ck: &Path, arch: &str, device: Device) -> Result<Network, NnError> {
    let model = ModelConfig {
        arch: arch.to_string(),
        width: 1.0,
        fc_channels: 4096,
        hypercolumn: Vec::new(),
        in_channels: 1,
        ..ModelConfig::default()
    };
    let mut vs = VarStore::new(device);
    let mut backbone = Backbone::new(&vs.root(), &model)?;
    let file: BTreeMap<String, Tensor> = read_tensors(ck)?.into_iter().collect();
    let loaded = copy_backbone(&mut vs, &file, ck)?;
    if loaded.bn_statistics {
        return Err(NnError::File {
            path: ck.to_owned(),
            msg: "has colorproxy BN statistics (bn.*): load it with its run config, not --arch".into(),
        });
    }
    backbone.set_use_bn(false);
    let head = match backbone.spec().family {
        Family::ResNet { .. } => "fc",
        _ => "classifier.6",
    };
    let classifier = file
        .get(&format!("{head}.weight"))
        .zip(file.get(&format!("{head}.bias")))
        .map(|(w, b)| (w.to_kind(Kind::Float).to_dev(device), b.to_kind(Kind::Float).to_dev(device)));
    Ok(Network { vs, backbone, model, classifier, origin: Origin::Torchvision })
}

/// Export options.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExportOptions {
    /// Lift a gray conv1 to 3 input channels (each the gray filter / 3).
    pub rgb: bool,
    /// Seed of torchvision's initialisation of the last classifier layer when there is no
    /// fine-tuned one.
    pub seed: u64,
}

/// A torchvision state dict: the tensors (on the CPU) and what the user should know.
pub struct Export {
    pub tensors: Vec<(String, Tensor)>,
    /// The classifier's output count (`num_classes` of the torchvision constructor).
    pub num_classes: i64,
    /// conv1's input channels (1 unless exported with `rgb` or trained on colour).
    pub in_channels: i64,
    pub notes: Vec<String>,
}

/// The torchvision parameter names of the last classifier layer and of the first convolution.
fn head_and_conv1(family: Family) -> (&'static str, &'static str) {
    match family {
        Family::ResNet { .. } => ("fc", "conv1.weight"),
        _ => ("classifier.6", "features.0.weight"),
    }
}

/// The state dict that `torchvision.models.<arch>(num_classes=K)` loads with `strict=True` (for
/// a gray conv1, after replacing the first convolution by a 1-channel one). Absorbs the
/// parameter-free BN first. Refuses non-standard widths.
pub fn export_torchvision(net: &mut Network, opts: ExportOptions) -> Result<Export, NnError> {
    let spec = net.backbone.spec();
    let resnet = matches!(spec.family, Family::ResNet { .. });
    if net.model.width != 1.0 || (!resnet && net.model.fc_channels != 4096) {
        return Err(NnError::Config(format!(
            "a stock torchvision {} has the standard widths (width 1.0{}); this network has width {}{}, \
             which cannot be loaded into it. The CPU presets are narrow: pretrain a full-width network \
             with --set model.width=1.0{} (any preset, any device), or read this one's features with \
             `colorproxy features`",
            spec.name,
            if resnet { "" } else { ", fc6/fc7 of 4096" },
            net.model.width,
            if resnet { String::new() } else { format!(" and fc6/fc7 of {}", net.model.fc_channels) },
            if resnet { "" } else { " --set model.fc_channels=4096" },
        )));
    }
    if net.backbone.uses_bn() {
        net.backbone.absorb_bn();
    }
    let (head, conv1) = head_and_conv1(spec.family);
    let mut notes = Vec::new();
    let mut tensors = Vec::new();
    let mut in_channels = net.model.in_channels;
    for (name, t) in crate::checkpoint::named_variables(&net.vs) {
        if name.starts_with("bn.") || name.starts_with("head.") || name.starts_with("fov.") {
            continue;
        }
        let mut t = t.detach().to_device(Device::Cpu);
        if name.starts_with("classifier.") && t.dim() == 4 {
            t = t.reshape([t.size()[0], -1]); // fc6/fc7 convolutions -> Linear
        }
        if name == conv1 && opts.rgb && t.size()[1] == 1 {
            t = t.repeat([1, 3, 1, 1]) / 3.0;
            in_channels = 3;
        }
        if let Some(stem) = name.strip_suffix(".running_mean") {
            tensors.push((format!("{stem}.num_batches_tracked"), Tensor::from(0i64)));
        }
        tensors.push((name, t.contiguous()));
    }
    if in_channels == 1 {
        notes.push(format!(
            "conv1 ({conv1}) has 1 input channel (gray): replace the model's first convolution by a \
             1-channel one before load_state_dict, or export with --rgb"
        ));
    }
    let features = spec_top_channels(&net.backbone);
    let num_classes = match &net.classifier {
        Some((w, b)) if w.size() == [w.size()[0], features] => {
            notes.push(format!(
                "{head}: the fine-tuned classifier ({} classes; torchvision.models.{}(num_classes={}))",
                w.size()[0],
                spec.name,
                w.size()[0]
            ));
            tensors.push((format!("{head}.weight"), w.detach().to_device(Device::Cpu).contiguous()));
            tensors.push((format!("{head}.bias"), b.detach().to_device(Device::Cpu).contiguous()));
            w.size()[0]
        }
        _ => {
            let (w, b) = torchvision_head_init(spec.family, features, 1000, opts.seed);
            notes.push(format!(
                "{head}: no fine-tuned classifier in this checkpoint; left at torchvision's initialisation \
                 for 1000 classes (seed {})",
                opts.seed
            ));
            tensors.push((format!("{head}.weight"), w));
            tensors.push((format!("{head}.bias"), b));
            1000
        }
    };
    Ok(Export { tensors, num_classes, in_channels, notes })
}

/// Channels of the backbone's top layer (the classifier's input).
fn spec_top_channels(b: &Backbone) -> i64 {
    b.tap_specs().last().map(|s| s.1).unwrap_or(0)
}

/// torchvision's initialisation of the last classifier layer `[classes, features]`: VGG
/// `normal(0, 0.01)` and zero bias; AlexNet and ResNet PyTorch's `Linear` default, uniform in
/// `±1/sqrt(features)` for weight and bias.
fn torchvision_head_init(family: Family, features: i64, classes: i64, seed: u64) -> (Tensor, Tensor) {
    tch::manual_seed(seed as i64);
    let opts = (Kind::Float, Device::Cpu);
    match family {
        Family::Vgg16 => (Tensor::randn([classes, features], opts) * 0.01, Tensor::zeros([classes], opts)),
        _ => {
            let bound = 1.0 / (features as f64).sqrt();
            let u = |shape: &[i64]| Tensor::empty(shape, opts).uniform_(-bound, bound);
            (u(&[classes, features]), u(&[classes]))
        }
    }
}

impl Network {
    /// The backbone's named layer outputs (after ReLU) for `x` `[B, C, H, W]`, in eval mode.
    pub fn features(&self, x: &Tensor, layers: &[String]) -> Result<Vec<(String, Tensor)>, NnError> {
        let taps = tch::no_grad(|| self.backbone.forward_taps(x, false, 0));
        layers
            .iter()
            .map(|l| {
                taps.iter().find(|t| t.name == l).map(|t| (l.clone(), t.features.shallow_clone())).ok_or_else(
                    || {
                        NnError::Config(format!(
                            "layer {l:?} is not a layer of {} ({})",
                            self.model.arch,
                            taps.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
                        ))
                    },
                )
            })
            .collect()
    }

    /// conv1's input channels.
    pub fn in_channels(&self) -> i64 {
        self.vs
            .variables()
            .iter()
            .find(|(n, _)| n.as_str() == "features.0.weight" || n.as_str() == "conv1.weight")
            .map(|(_, t)| t.size()[1])
            .unwrap_or(1)
    }
}
