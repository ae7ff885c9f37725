//! The fine-tuning network: backbone (+ the +FoV blocks) + the task's head, its initialisation
//! from a checkpoint and its input.
use std::collections::BTreeMap;
use std::path::Path;

use colorproxy_data::RgbImage8;
use tch::nn::{self, Init};
use tch::{Device, Kind, Tensor};

use super::config::TransferConfig;
use super::fov::FovBlocks;
use super::Task;
use crate::backbone::{Backbone, Conv, Tap};
use crate::checkpoint::{self, read_tensors};
use crate::config::ModelConfig;
use crate::head::Fc;
use crate::hypercolumn::SparseHypercolumn;
use crate::weights::{copy_backbone, network_input, Loaded};
use crate::NnError;

/// The fine-tuning network.
pub struct TransferNet {
    pub vs: nn::VarStore,
    pub backbone: Backbone,
    pub fov: Option<FovBlocks>,
    pub hypercolumn: SparseHypercolumn,
    pub fc1: Option<Fc>,
    pub out: Fc,
    pub config: TransferConfig,
    /// The backbone's last layer, which the classification head and +FoV read.
    pub top: &'static str,
}

impl TransferNet {
    pub fn new(cfg: &TransferConfig, device: Device) -> Result<Self, NnError> {
        let mut mc = cfg.model.clone();
        mc.in_channels = if cfg.color { 3 } else { 1 };
        mc.dropout = cfg.dropout;
        let vs = nn::VarStore::new(device);
        let backbone = Backbone::new(&vs.root(), &mc)?;
        if !backbone.spec().rebalance && (cfg.rebalance || cfg.pad_with_bias) {
            return Err(NnError::Config("rebalance and pad_with_bias are implemented for vgg16".into()));
        }
        let specs = backbone.tap_specs();
        let (top, fc, _) = *specs.last().expect("a backbone has taps");
        let fov = (cfg.task == Task::Seg && cfg.fov).then(|| FovBlocks {
            conv8: Conv::new(vs.root() / "fov" / "conv8", fc, cfg.fov_channels, 3, 1, 1, true),
            conv9: Conv::new(vs.root() / "fov" / "conv9", cfg.fov_channels, cfg.fov_channels, 3, 1, 1, true),
        });
        let (fc1, out, layers) = match cfg.task {
            Task::Cls => {
                let out = Fc::new(vs.root() / "head" / "fc", fc, cfg.classes(), Init::Const(0.0));
                (None, out, vec![top.to_string()])
            }
            Task::Seg => {
                let mut cin = 0;
                for l in &cfg.hypercolumn {
                    cin += match l.as_str() {
                        "fov1" | "fov2" if fov.is_some() => cfg.fov_channels,
                        _ => specs.iter().find(|s| s.0 == l).map(|s| s.1).ok_or_else(|| {
                            NnError::Config(format!(
                                "hypercolumn layer {l:?} is not a layer of {} ({}{})",
                                cfg.model.arch,
                                specs.iter().map(|s| s.0).collect::<Vec<_>>().join(", "),
                                if fov.is_some() { ", fov1, fov2" } else { "; +FoV off" }
                            ))
                        })?,
                    };
                }
                let fc1 = Fc::new(vs.root() / "head" / "fc1", cin, cfg.head_hidden, Init::Const(0.0));
                let out =
                    Fc::new(vs.root() / "head" / "fc2", cfg.head_hidden, cfg.classes(), Init::Const(0.0));
                (Some(fc1), out, cfg.hypercolumn.clone())
            }
        };
        let mut backbone = backbone;
        let frozen = cfg.freeze_until.as_deref().and_then(|l| backbone.layer_position(l)).unwrap_or(0);
        if let Backbone::ResNet(r) = &mut backbone {
            // Frozen ResNet layers keep their BN statistics (eval-mode BN).
            r.frozen = frozen;
        }
        let mc_init = ModelConfig { head_init_std: cfg.head_init_std, ..mc };
        crate::init::initialize(&vs, &mc_init, cfg.seed);
        Ok(Self {
            vs,
            backbone,
            fov,
            hypercolumn: SparseHypercolumn::new(layers),
            fc1,
            out,
            config: cfg.clone(),
            top,
        })
    }

    /// Loads the backbone from a checkpoint or a torchvision state dict (converting shapes where
    /// needed; see [`crate::weights::copy_backbone`]). Head and +FoV keep their fresh
    /// initialisation.
    pub fn load_backbone(&mut self, path: &Path) -> Result<Loaded, NnError> {
        let file: BTreeMap<String, Tensor> = read_tensors(path)?.into_iter().collect();
        copy_backbone(&mut self.vs, &file, path)
    }

    /// Absorbs the parameter-free BN (VGG-16, AlexNet; ResNet keeps its BN).
    pub fn absorb_bn(&mut self) {
        self.backbone.absorb_bn();
    }

    /// Turns the pad-with-bias edge fix on or off.
    pub fn set_pad_with_bias(&mut self, on: bool) {
        if let Backbone::Vgg16(v) = &mut self.backbone {
            v.pad_with_bias = on;
        }
    }

    /// Unit-variance rebalancing on images (centre crops of `crop` after scaling the shorter side
    /// to `short_side`); see [`crate::backbone::Vgg16::rebalance`].
    pub fn rebalance(&mut self, imgs: &[RgbImage8]) -> Vec<f64> {
        use colorproxy_data::transfer_data::{crop_pad, resize_image, short_side_size, CropWindow, PAD_GRAY};
        let cfg = &self.config;
        let views: Vec<RgbImage8> = imgs
            .iter()
            .map(|img| {
                let short =
                    if cfg.short_side > 0.0 { cfg.short_side } else { img.width.min(img.height) as f64 };
                let (w, h) = short_side_size(img.width, img.height, short);
                let im = resize_image(img, w, h);
                let (x0, y0) = ((w as i64 - cfg.crop as i64) / 2, (h as i64 - cfg.crop as i64) / 2);
                let data = crop_pad(
                    &im.data,
                    w,
                    h,
                    3,
                    CropWindow { x0, y0, side: cfg.crop, mirror: false },
                    PAD_GRAY,
                );
                RgbImage8 { width: cfg.crop, height: cfg.crop, data }
            })
            .collect();
        let refs: Vec<&RgbImage8> = views.iter().collect();
        let x = self.input(&refs, GRAY_MEAN);
        match &mut self.backbone {
            Backbone::Vgg16(v) => v.rebalance(&x),
            _ => Vec::new(),
        }
    }

    /// Trainable parameters after `freeze_until`.
    pub fn trainable(&self) -> Result<BTreeMap<String, Tensor>, NnError> {
        let limit = match &self.config.freeze_until {
            None => 0,
            Some(l) => self.backbone.layer_position(l).ok_or_else(|| {
                NnError::Config(format!(
                    "--freeze-until {l:?}: expected one of {}",
                    self.backbone.layer_names().join(", ")
                ))
            })?,
        };
        let mut out = BTreeMap::new();
        for (name, t) in self.vs.variables() {
            if !t.requires_grad() {
                continue;
            }
            let frozen = self.backbone.layer_of(&name).map(|k| k <= limit).unwrap_or(false);
            if !frozen {
                out.insert(name, t);
            }
        }
        Ok(out)
    }

    fn taps(&self, x: &Tensor, train: bool, key: u64) -> Vec<Tap> {
        let mut taps = self.backbone.forward_taps(x, train, key);
        if let Some(f) = &self.fov {
            let top = taps.iter().find(|t| t.name == self.top).expect("top tap").features.shallow_clone();
            taps.extend(f.forward(&top));
        }
        taps
    }

    /// Classification logits `[B, classes]`.
    pub fn cls_logits(&self, x: &Tensor, train: bool, key: u64) -> Tensor {
        let taps = self.taps(x, train, key);
        let top = &taps.iter().find(|t| t.name == self.top).expect("top tap").features;
        self.out.forward(&top.mean_dim([2i64, 3].as_slice(), false, Kind::Float))
    }

    fn seg_head(&self, hc: &Tensor, train: bool, key: u64) -> Tensor {
        let fc1 = self.fc1.as_ref().expect("segmentation head");
        let h = crate::init::keyed_dropout(&fc1.forward(hc).relu(), self.config.dropout, key ^ 0x5E, train);
        self.out.forward(&h)
    }

    /// Segmentation logits at points: `[B * P, 21]`.
    pub fn seg_logits_sparse(&self, x: &Tensor, points: &Tensor, train: bool, key: u64) -> Tensor {
        let taps = self.taps(x, train, key);
        let hc = self.hypercolumn.forward(&taps, points);
        self.seg_head(&hc, train, key)
    }

    /// Dense segmentation logits at the input's resolution, `[1, 21, H, W]`, for an input
    /// `[1, C, H, W]` with H, W multiples of 32: the hypercolumn at 1/4 resolution, the head as
    /// 1x1 convolutions, bilinear x4 upsampling.
    pub fn seg_logits_dense(&self, x: &Tensor) -> Tensor {
        let s = x.size();
        let (h4, w4) = (s[2] / 4, s[3] / 4);
        let taps = self.taps(x, false, 0);
        let hc = self.hypercolumn.dense_quarter(&taps, (s[2], s[3]));
        let c = hc.size()[1];
        let logits = self.seg_head(&hc.permute([0, 2, 3, 1]).reshape([-1, c]), false, 0);
        logits.reshape([1, h4, w4, self.config.classes()]).permute([0, 3, 1, 2]).upsample_bilinear2d(
            [s[2], s[3]],
            false,
            None,
            None,
        )
    }

    /// The network input for images `[H, W, 3]` 8-bit (see [`network_input`]): `[B, C, H, W]`
    /// on the device.
    pub fn input(&self, imgs: &[&RgbImage8], gray_mean: f32) -> Tensor {
        network_input(imgs, if self.config.color { 3 } else { 1 }, gray_mean, self.vs.device())
    }
}

/// The gray mean of the network input (the authors' 0.4488; 114.451/255 for segmentation).
pub const GRAY_MEAN: f32 = 0.4488;

/// Loads a fine-tuned network from its weights and the run's config.toml.
pub fn load_finetuned(
    weights: &Path,
    config: TransferConfig,
    device: Device,
) -> Result<TransferNet, NnError> {
    let mut cfg = config;
    // The saved weights already have BN absorbed and the trained head.
    cfg.init = "random".into();
    let mut net = TransferNet::new(&cfg, device)?;
    net.backbone.set_use_bn(!cfg.absorb_bn);
    net.set_pad_with_bias(cfg.pad_with_bias);
    checkpoint::load_weights(&mut net.vs, weights)?;
    Ok(net)
}
