//! Transfer (the paper's section 4): fine-tuning a pretrained backbone for VOC multi-label
//! classification and semantic segmentation, with the paper's protocol.
//!
//! - Initialisation: random (Xavier), a colorization checkpoint, or a supervised checkpoint with
//!   torchvision names (fc6/fc7 given as `Linear` are reshaped to convolutions; RGB conv1 filters
//!   are summed for gray input).
//! - After loading, the parameter-free BN is absorbed into the convolutions (`absorb_bn`).
//! - `color`: conv1 lifted to RGB by replicating the gray filter over 3 channels, divided by 3.
//! - Classification: fc7 -> global average pool -> fc 20, sigmoid cross-entropy that ignores
//!   "difficult" labels (VOC); or, on single-label class folders (ImageNet-style), fc to the
//!   number of classes with softmax cross-entropy, scored by top-1/top-5 accuracy. Segmentation: the hypercolumn plus the +FoV blocks (2x2 max-pool ->
//!   3x3 conv 1024 -> ReLU, twice), sparse training at points, fc hidden -> ReLU -> dropout ->
//!   classes, cross-entropy ignoring 255; dense inference at full resolution.
//! - `freeze_until`: only layers above it are trained (the paper's Table 6).
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use colorproxy_data::metrics::{ap_report, top_k_accuracy, ConfusionMatrix, VOID};
use colorproxy_data::transfer_data::{random_view, ten_crops, ViewSpec};
use colorproxy_data::voc::{split_held_out, ImageFolder, VocClassification, VocSegmentation};
use colorproxy_data::{decode_file, DecodeLimits, RgbImage8, Rng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tch::nn::{self, Init};
use tch::{Device, Kind, Tensor};

use crate::backbone::{Backbone, Conv, Tap};
use crate::checkpoint::{self, read_tensors};
use crate::config::{ModelConfig, OptimConfig, VGG16_LAYERS};
use crate::early_stop::{Decision, EarlyStopConfig, EarlyStopping, FoundSchedule};
use crate::head::Fc;
use crate::hypercolumn::SparseHypercolumn;
use crate::model::ToDev;
use crate::optim::Sgd;
use crate::pretrain::{RunPaths, TrainObserver};
use crate::NnError;

/// The downstream task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Cls,
    Seg,
}

/// Everything a fine-tuning run needs; saved as RUN_DIR/config.toml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferConfig {
    pub task: Task,
    /// `random` or the path of a checkpoint (colorization or supervised safetensors).
    pub init: String,
    /// The backbone (must match the checkpoint's architecture and widths).
    pub model: ModelConfig,
    /// Lift conv1 to RGB and feed colour images.
    pub color: bool,
    pub absorb_bn: bool,
    /// Rescale every layer to unit activation variance on a sample of training images (after BN
    /// absorption).
    #[serde(default)]
    pub rebalance: bool,
    /// Pad convolutions with the ReLU of the previous layer's bias instead of zeros (the
    /// paper's footnote 3; off by default).
    #[serde(default)]
    pub pad_with_bias: bool,
    /// Train only the layers above this one (e.g. `fc7`: only the new head and +FoV blocks).
    pub freeze_until: Option<String>,
    /// Shorter side of training images before the random scale (0: keep).
    pub short_side: f64,
    pub scale_min: f64,
    pub scale_max: f64,
    pub crop: usize,
    pub batch_size: usize,
    /// Segmentation: points per image and their border.
    pub points: usize,
    pub border: usize,
    /// Segmentation: hypercolumn layers (VGG layers plus `fov1`, `fov2`).
    pub hypercolumn: Vec<String>,
    /// Segmentation: add the +FoV blocks.
    pub fov: bool,
    pub fov_channels: i64,
    pub head_hidden: i64,
    pub head_init_std: f64,
    pub dropout: f64,
    pub optim: OptimConfig,
    /// Clip the gradient norm to this (0: off; the classification code uses 10).
    pub grad_clip: f64,
    pub early_stop: EarlyStopConfig,
    /// Fraction of the training split held out for early stopping.
    pub held_out: f64,
    /// Classification test: shorter side before the 10 crops.
    pub test_short_side: f64,
    /// Segmentation test: images larger than this (longer side) are downscaled for inference
    /// and the prediction upsampled back (0: always full resolution).
    pub test_max_side: usize,
    pub seed: u64,
    pub threads: usize,
    pub log_every: usize,
    /// Write `checkpoints/last.*` every this many iterations (and at the end; 0: only at the end).
    #[serde(default)]
    pub checkpoint_every: usize,
    /// Single-label classification: the class names (the training split's class folders, set
    /// by the run). Empty: VOC's 20 multi-label classes.
    #[serde(default)]
    pub classes: Vec<String>,
}

impl TransferConfig {
    /// The paper's protocol for a task.
    pub fn paper(task: Task) -> Self {
        let mut model = ModelConfig { fc_channels: 4096, ..ModelConfig::default() };
        model.hypercolumn = vec![];
        let mut layers: Vec<String> = VGG16_LAYERS.iter().map(|s| s.to_string()).collect();
        layers.extend(["fov1".to_string(), "fov2".to_string()]);
        let (crop, batch, lr) = match task {
            Task::Cls => (224, 16, 1e-3),
            Task::Seg => (448, 10, 1e-3),
        };
        Self {
            task,
            init: "random".into(),
            model,
            color: false,
            absorb_bn: true,
            rebalance: false,
            pad_with_bias: false,
            freeze_until: None,
            short_side: if task == Task::Cls { 256.0 } else { 0.0 },
            scale_min: if task == Task::Cls { 0.5 } else { 1.0 },
            scale_max: if task == Task::Cls { 2.0 } else { 1.0 },
            crop,
            batch_size: batch,
            points: 128,
            border: 32,
            hypercolumn: layers,
            fov: true,
            fov_channels: 1024,
            head_hidden: 1024,
            head_init_std: 1e-4,
            dropout: 0.5,
            optim: OptimConfig {
                lr,
                weight_decay: if task == Task::Cls { 1e-6 } else { 5e-4 },
                bias_lr_mult: 1.0,
                ..OptimConfig::default()
            },
            grad_clip: if task == Task::Cls { 10.0 } else { 0.0 },
            early_stop: EarlyStopConfig {
                eval_every: 500,
                window: 10,
                min_stage_iterations: 10_000,
                max_iterations: if task == Task::Cls { 80_000 } else { 40_000 },
                ..EarlyStopConfig::default()
            },
            held_out: 0.1,
            test_short_side: 256.0,
            test_max_side: 0,
            seed: 0,
            threads: 0,
            log_every: 20,
            checkpoint_every: 1000,
            classes: vec![],
        }
    }

    /// The same protocol at CPU scale (the cpu-small backbone: 1/8 width, 128-wide fc).
    pub fn cpu(task: Task) -> Self {
        let mut c = Self::paper(task);
        c.model.width = 0.125;
        c.model.fc_channels = 128;
        c.fov_channels = 128;
        c.head_hidden = 128;
        c.head_init_std = 1e-2;
        // Segmentation's sparse head tolerates 1e-2; classification's global-pooled fc7 (unit
        // variance after BN absorption or rebalancing) diverges there and keeps the paper's 1e-3.
        if task == Task::Seg {
            c.optim.lr = 1e-2;
        }
        c.batch_size = 8;
        c.points = 64;
        c.border = 4;
        match task {
            Task::Cls => {
                c.short_side = 96.0;
                c.crop = 64;
                c.test_short_side = 72.0;
            }
            Task::Seg => {
                c.short_side = 96.0;
                c.crop = 96;
                c.test_max_side = 160;
            }
        }
        c.early_stop = EarlyStopConfig {
            eval_every: 20,
            window: 3,
            min_stage_iterations: 120,
            max_iterations: 600,
            ..c.early_stop
        };
        c.log_every = 10;
        c.checkpoint_every = 100;
        c
    }

    /// A preset by name: `cls-paper`, `seg-paper`, `cls-cpu`, `seg-cpu`.
    pub fn preset(name: &str) -> Result<Self, NnError> {
        Ok(match name {
            "cls-paper" => Self::paper(Task::Cls),
            "seg-paper" => Self::paper(Task::Seg),
            "cls-cpu" => Self::cpu(Task::Cls),
            "seg-cpu" => Self::cpu(Task::Seg),
            o => {
                return Err(NnError::UnknownPreset(o.into(), "cls-paper, seg-paper, cls-cpu, seg-cpu".into()))
            }
        })
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }

    pub fn from_toml(text: &str) -> Result<Self, NnError> {
        toml::from_str(text).map_err(|e| NnError::Config(e.to_string()))
    }

    /// Adapts the default segmentation hypercolumn (all VGG-16 layers plus +FoV) to the
    /// backbone's architecture: every layer of AlexNet or ResNet plus +FoV. A custom list is kept.
    pub fn for_arch(mut self) -> Self {
        let mut vgg: Vec<String> = VGG16_LAYERS.iter().map(|s| s.to_string()).collect();
        vgg.extend(["fov1".to_string(), "fov2".to_string()]);
        if self.hypercolumn == vgg && self.model.arch != "vgg16" {
            let layers: &[&str] = match self.model.arch.as_str() {
                "alexnet" => &["data", "conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"],
                _ => &["conv1", "layer1", "layer2", "layer3", "layer4"],
            };
            self.hypercolumn = layers.iter().map(|s| s.to_string()).collect();
            if self.fov {
                self.hypercolumn.extend(["fov1".to_string(), "fov2".to_string()]);
            }
        }
        self
    }

    /// Number of network outputs: 20 (VOC classification), the class folders (single-label) or
    /// 21 (segmentation, with background).
    pub fn classes(&self) -> i64 {
        match self.task {
            Task::Cls if self.single_label() => self.classes.len() as i64,
            Task::Cls => 20,
            Task::Seg => 21,
        }
    }

    /// Single-label (softmax) classification rather than VOC multi-label.
    pub fn single_label(&self) -> bool {
        self.task == Task::Cls && !self.classes.is_empty()
    }
}

/// The +FoV blocks on top of fc7.
pub struct FovBlocks {
    pub conv8: Conv,
    pub conv9: Conv,
}

impl FovBlocks {
    /// `top`: the backbone's last layer (fc7; layer4 for ResNet).
    fn forward(&self, top: &Tensor) -> Vec<Tap> {
        let h = top.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], true);
        let f1 = self.conv8.forward(&h).relu();
        let h = f1.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], true);
        let f2 = self.conv9.forward(&h).relu();
        vec![Tap { name: "fov1", features: f1, scale: 64 }, Tap { name: "fov2", features: f2, scale: 128 }]
    }
}

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
        if !matches!(backbone, Backbone::Vgg16(_)) && (cfg.rebalance || cfg.pad_with_bias) {
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
                                backbone.layer_names().join(", "),
                                if fov.is_some() { ", fov1, fov2" } else { "; +FoV off" }
                            ))
                        })?,
                    };
                }
                let fc1 = Fc::new(vs.root() / "head" / "fc1", cin, cfg.head_hidden, Init::Const(0.0));
                let out = Fc::new(vs.root() / "head" / "fc2", cfg.head_hidden, 21, Init::Const(0.0));
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

    /// Loads the backbone from a checkpoint (converting shapes where needed), then absorbs BN if
    /// configured. Head and +FoV keep their fresh initialisation.
    pub fn load_backbone(&mut self, path: &Path) -> Result<(), NnError> {
        let file: BTreeMap<String, Tensor> = read_tensors(path)?.into_iter().collect();
        let ferr = |m: String| NnError::File { path: path.to_owned(), msg: m };
        tch::no_grad(|| {
            for (name, mut var) in self.vs.variables() {
                if name.starts_with("head.") || name.starts_with("fov.") {
                    continue;
                }
                let Some(src) = file.get(&name) else {
                    if name.starts_with("bn.") {
                        continue; // a supervised checkpoint has no parameter-free BN statistics
                    }
                    return Err(ferr(format!("has no tensor {name:?} (same architecture and width?)")));
                };
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
                var.copy_(&t);
            }
            Ok(())
        })?;
        Ok(())
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
        logits.reshape([1, h4, w4, 21]).permute([0, 3, 1, 2]).upsample_bilinear2d(
            [s[2], s[3]],
            false,
            None,
            None,
        )
    }

    /// The network input for images `[H, W, 3]` 8-bit: gray `(R+G+B)/3 - mean` or, with `color`,
    /// each channel minus the mean. Returns `[B, C, H, W]` on the device.
    pub fn input(&self, imgs: &[&RgbImage8], gray_mean: f32) -> Tensor {
        let (w, h) = (imgs[0].width as i64, imgs[0].height as i64);
        let c = if self.config.color { 3 } else { 1 };
        let mut v = Vec::with_capacity(imgs.len() * (c * h * w) as usize);
        for img in imgs {
            if self.config.color {
                for ch in 0..3 {
                    v.extend(img.data.chunks_exact(3).map(|p| p[ch] as f32 / 255.0 - gray_mean));
                }
            } else {
                v.extend(
                    img.data
                        .chunks_exact(3)
                        .map(|p| (p[0] as f32 + p[1] as f32 + p[2] as f32) / 765.0 - gray_mean),
                );
            }
        }
        Tensor::from_slice(&v).reshape([imgs.len() as i64, c, h, w]).to_dev(self.vs.device())
    }
}

/// The gray mean of the network input (the authors' 0.4488; 114.451/255 for segmentation).
pub const GRAY_MEAN: f32 = 0.4488;

/// A labelled transfer set: VOC sets are decoded once into memory; single-label class folders
/// (which can be ImageNet-sized) keep file paths and decode images when used.
pub struct LabelledSet {
    pub ids: Vec<String>,
    /// Decoded images (VOC sets); empty when `files` is used.
    pub images: Vec<RgbImage8>,
    /// Image files decoded on use (single-label folders); empty for VOC sets.
    pub files: Vec<PathBuf>,
    /// Segmentation: class-index masks `[H * W]` (255 = void).
    pub masks: Vec<Vec<u8>>,
    /// VOC classification: per class +1 / -1 / 0 (difficult).
    pub labels: Vec<Vec<i8>>,
    /// Single-label classification: the class index of each image.
    pub targets: Vec<usize>,
    /// Single-label classification: class names (folder names, sorted); empty for VOC.
    pub class_names: Vec<String>,
    /// What to do with a file that fails to decode when it is used.
    pub on_bad: OnBad,
    /// Malformed samples skipped (at load time, or files that failed to decode on use).
    pub skipped: AtomicUsize,
    /// Files known not to decode (not tried again).
    bad: std::sync::Mutex<std::collections::BTreeSet<usize>>,
}

impl LabelledSet {
    fn empty(on_bad: OnBad) -> Self {
        Self {
            ids: vec![],
            images: vec![],
            files: vec![],
            masks: vec![],
            labels: vec![],
            targets: vec![],
            class_names: vec![],
            on_bad,
            skipped: AtomicUsize::new(0),
            bad: Default::default(),
        }
    }

    /// Image `i`, or `None` when it fails to decode and the set skips bad files (each bad file
    /// counted once in `skipped` and not decoded again).
    fn usable_image(&self, i: usize) -> Result<Option<Cow<'_, RgbImage8>>, NnError> {
        let known_bad = || self.bad.lock().map(|b| b.contains(&i)).unwrap_or(false);
        if self.on_bad == OnBad::Skip && known_bad() {
            return Ok(None);
        }
        match self.image(i) {
            Ok(img) => Ok(Some(img)),
            Err(_) if self.on_bad == OnBad::Skip => {
                if self.bad.lock().map(|mut b| b.insert(i)).unwrap_or(false) {
                    self.skipped.fetch_add(1, Ordering::Relaxed);
                }
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Image `i`, decoded now if the set keeps files.
    pub fn image(&self, i: usize) -> Result<Cow<'_, RgbImage8>, NnError> {
        if let Some(img) = self.images.get(i) {
            return Ok(Cow::Borrowed(img));
        }
        let path = &self.files[i];
        let limits = DecodeLimits { min_side: 1, ..DecodeLimits::default() };
        decode_file(path, &limits)
            .map(Cow::Owned)
            .map_err(|e| NnError::File { path: path.clone(), msg: e.to_string() })
    }

    /// Renumbers single-label targets to `classes` (a trained network's class order), matching
    /// class folders by name; a folder the network does not know is an error.
    pub fn align_classes(&mut self, classes: &[String]) -> Result<(), NnError> {
        if classes.is_empty() != self.class_names.is_empty() {
            return Err(NnError::Config(if classes.is_empty() {
                "the network is a VOC (multi-label) classifier; the data are single-label class folders"
                    .into()
            } else {
                "the network is a single-label classifier of class folders; the data are a VOC devkit".into()
            }));
        }
        if self.class_names.as_slice() == classes {
            return Ok(());
        }
        let map: Vec<usize> = self
            .class_names
            .iter()
            .map(|n| {
                classes.iter().position(|c| c == n).ok_or_else(|| {
                    NnError::Config(format!(
                        "class folder {n:?} is not one of the network's {} classes",
                        classes.len()
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        for t in &mut self.targets {
            *t = map[*t];
        }
        self.class_names = classes.to_vec();
        Ok(())
    }
}

/// Whether bad samples stop the run or are skipped (and counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBad {
    Skip,
    Stop,
}

/// Loads a split for `task`. Segmentation: a VOC devkit (`ImageSets/Segmentation/<split>.txt`).
/// Classification: a VOC devkit (`ImageSets/Main` present) or single-label class folders
/// `root/<split>/<class>/**/<image>` (torchvision's `ImageFolder` layout). VOC images are decoded
/// once (VOC sets fit in memory); class-folder images are decoded when used.
pub fn load_split(
    task: Task,
    root: &Path,
    split: &str,
    on_bad: OnBad,
    log: &mut dyn FnMut(&str),
) -> Result<LabelledSet, NnError> {
    let mut set = LabelledSet::empty(on_bad);
    match task {
        Task::Seg => {
            let voc = VocSegmentation::open(root, split)?;
            let loaded: Vec<_> = (0..voc.ids.len()).into_par_iter().map(|i| voc.load(i)).collect();
            for (i, r) in loaded.into_iter().enumerate() {
                match r {
                    Ok((img, mask)) => {
                        set.ids.push(voc.ids[i].clone());
                        set.images.push(img);
                        set.masks.push(mask);
                    }
                    Err(e) if on_bad == OnBad::Skip => {
                        set.skipped.fetch_add(1, Ordering::Relaxed);
                        log(&format!("skipped: {e}"))
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Task::Cls if !root.join("ImageSets/Main").is_dir() => {
            let dir = root.join(split);
            if !dir.is_dir() {
                return Err(NnError::Config(format!(
                    "{}: neither a VOC devkit (no ImageSets/Main) nor class folders ({} is not a folder)",
                    root.display(),
                    dir.display()
                )));
            }
            let folders = ImageFolder::open(&dir)?;
            for (path, c) in folders.files {
                let id = path.strip_prefix(&dir).unwrap_or(&path).to_string_lossy().into_owned();
                set.ids.push(id);
                set.files.push(path);
                set.targets.push(c);
            }
            set.class_names = folders.classes;
            log(&format!(
                "{}: {} images in {} class folders",
                dir.display(),
                set.len(),
                set.class_names.len()
            ));
        }
        Task::Cls => {
            let voc = VocClassification::open(root, split)?;
            let limits = DecodeLimits { min_side: 1, ..DecodeLimits::default() };
            let loaded: Vec<_> = (0..voc.ids.len())
                .into_par_iter()
                .map(|i| decode_file(&voc.image_path(i), &limits))
                .collect();
            for (i, r) in loaded.into_iter().enumerate() {
                match r {
                    Ok(img) => {
                        set.ids.push(voc.ids[i].clone());
                        set.images.push(img);
                        set.labels.push(voc.labels[i].clone());
                    }
                    Err(e) if on_bad == OnBad::Skip => {
                        set.skipped.fetch_add(1, Ordering::Relaxed);
                        log(&format!("skipped {}: {e}", voc.image_path(i).display()))
                    }
                    Err(e) => {
                        return Err(NnError::File { path: voc.image_path(i), msg: e.to_string() });
                    }
                }
            }
        }
    }
    let skipped = set.skipped.load(Ordering::Relaxed);
    if skipped > 0 {
        log(&format!("{split}: skipped {skipped} malformed samples, kept {}", set.len()));
    }
    if set.is_empty() {
        return Err(NnError::Config(format!("{}: split {split:?} has no usable images", root.display())));
    }
    Ok(set)
}

/// Evaluation result: the metric, its value and per-class values.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EvalResult {
    /// `miou` or `map`.
    pub metric: String,
    pub value: f64,
    pub per_class: BTreeMap<String, Option<f64>>,
    /// Extra figures: pixel accuracy, mAP VOC07 11-point.
    pub extra: BTreeMap<String, f64>,
}

/// Dense segmentation of one image at full resolution (or downscaled to `test_max_side` and
/// the logits upsampled back): class indices `[H * W]`.
pub fn segment(net: &TransferNet, img: &RgbImage8) -> Vec<u8> {
    use colorproxy_data::transfer_data::resize_image;
    let max = net.config.test_max_side;
    let (w, h) = (img.width, img.height);
    let work = if max > 0 && w.max(h) > max {
        let s = max as f64 / w.max(h) as f64;
        resize_image(img, ((w as f64 * s).round() as usize).max(1), ((h as f64 * s).round() as usize).max(1))
    } else {
        img.clone()
    };
    tch::no_grad(|| {
        let x = net.input(&[&work], GRAY_MEAN);
        let (ph, pw) = (work.height as i64, work.width as i64);
        let (padh, padw) = ((32 - ph % 32) % 32, (32 - pw % 32) % 32);
        let x = x.replication_pad2d([0, padw, 0, padh]);
        let logits = net.seg_logits_dense(&x).narrow(2, 0, ph).narrow(3, 0, pw);
        let logits = if (work.width, work.height) != (w, h) {
            logits.upsample_bilinear2d([h as i64, w as i64], false, None, None)
        } else {
            logits
        };
        let pred = logits.argmax(1, false).to_kind(Kind::Uint8).to_device(Device::Cpu).flatten(0, -1);
        Vec::<u8>::try_from(pred).expect("u8 tensor")
    })
}

/// 10-crop classification scores of one image, averaged over the crops: `[classes]`
/// (sigmoid probabilities for VOC, softmax for single-label).
pub fn classify(net: &TransferNet, img: &RgbImage8) -> Vec<f32> {
    let cfg = &net.config;
    let crops = ten_crops(img, cfg.test_short_side, cfg.crop);
    tch::no_grad(|| {
        let refs: Vec<&RgbImage8> = crops.iter().collect();
        let x = net.input(&refs, GRAY_MEAN);
        let logits = net.cls_logits(&x, false, 0);
        let probs = if cfg.single_label() { logits.softmax(1, Kind::Float) } else { logits.sigmoid() };
        let p = probs.mean_dim([0i64].as_slice(), false, Kind::Float);
        Vec::<f32>::try_from(p.to_device(Device::Cpu)).expect("float tensor")
    })
}

/// Scores a subset of a labelled set; `save` receives each image's index and its segmentation
/// prediction (empty for classification) as it is done.
pub fn evaluate(
    net: &TransferNet,
    set: &LabelledSet,
    subset: &[usize],
    save: &mut dyn FnMut(usize, &[u8]),
) -> Result<EvalResult, NnError> {
    if net.config.single_label() {
        return evaluate_single_label(net, set, subset, save);
    }
    match net.config.task {
        Task::Seg => {
            let mut cm = ConfusionMatrix::new(21);
            for &i in subset {
                let pred = segment(net, &set.images[i]);
                save(i, &pred);
                cm.add(&set.masks[i], &pred).map_err(|m| NnError::Config(format!("{}: {m}", set.ids[i])))?;
            }
            let r = cm.report();
            let mut names = vec!["background".to_string()];
            names.extend(colorproxy_data::voc::VOC_CLASSES.iter().map(|s| s.to_string()));
            Ok(EvalResult {
                metric: "miou".into(),
                value: r.miou,
                per_class: names.into_iter().zip(r.per_class_iou).collect(),
                extra: BTreeMap::from([("pixel_accuracy".into(), r.pixel_accuracy)]),
            })
        }
        Task::Cls => {
            let scores: Vec<Vec<f32>> = subset
                .iter()
                .map(|&i| {
                    let s = classify(net, &set.images[i]);
                    save(i, &[]);
                    s
                })
                .collect();
            let labels: Vec<Vec<i8>> = subset.iter().map(|&i| set.labels[i].clone()).collect();
            let names: Vec<String> =
                colorproxy_data::voc::VOC_CLASSES.iter().map(|s| s.to_string()).collect();
            let r = ap_report(&scores, &labels, &names);
            Ok(EvalResult {
                metric: "map".into(),
                value: r.map,
                per_class: r.per_class.into_iter().collect(),
                extra: BTreeMap::from([("map_voc07_11point".into(), r.map_voc07)]),
            })
        }
    }
}

/// Single-label scoring: top-1 (the value) and top-5 accuracy of the 10-crop softmax, and each
/// class's top-1 accuracy (recall) as `per_class`.
fn evaluate_single_label(
    net: &TransferNet,
    set: &LabelledSet,
    subset: &[usize],
    save: &mut dyn FnMut(usize, &[u8]),
) -> Result<EvalResult, NnError> {
    let (mut scores, mut targets) = (Vec::new(), Vec::new());
    for &i in subset {
        if let Some(img) = set.usable_image(i)? {
            scores.push(classify(net, &img));
            targets.push(set.targets[i]);
        }
        save(i, &[]);
    }
    let names = &net.config.classes;
    let per_class = names
        .iter()
        .enumerate()
        .map(|(c, n)| {
            let (s, t): (Vec<Vec<f32>>, Vec<usize>) =
                scores.iter().zip(&targets).filter(|(_, &t)| t == c).map(|(s, &t)| (s.clone(), t)).unzip();
            (n.clone(), (!t.is_empty()).then(|| top_k_accuracy(&s, &t, 1)))
        })
        .collect();
    Ok(EvalResult {
        metric: "top1".into(),
        value: top_k_accuracy(&scores, &targets, 1),
        per_class,
        extra: BTreeMap::from([
            ("top5".into(), top_k_accuracy(&scores, &targets, 5)),
            ("images".into(), scores.len() as f64),
        ]),
    })
}

/// Options of a fine-tuning run that are not part of the saved config.
pub struct FinetuneRun<'a> {
    pub config: TransferConfig,
    pub data: PathBuf,
    pub train_split: String,
    pub out: PathBuf,
    pub device: Device,
    /// Retrain on 100% of the training split with this schedule (from a previous run).
    pub fixed_schedule: Option<FoundSchedule>,
    pub on_bad: OnBad,
    /// Continue from `out/checkpoints/last.*` to the same result as an uninterrupted run.
    pub resume: bool,
    /// Set (e.g. by Ctrl-C) to checkpoint and stop after the current iteration.
    pub interrupt: Arc<AtomicBool>,
    pub observer: &'a mut dyn TrainObserver,
}

/// How the run ended.
pub struct FinetuneSummary {
    pub iterations: usize,
    pub schedule: FoundSchedule,
    pub best_held_out: Option<f64>,
    /// The run's resolved config (with the class names of a single-label set).
    pub config: TransferConfig,
    /// Stopped by `interrupt` before the schedule's end (resume with `resume`).
    pub interrupted: bool,
    /// Training images that failed to decode and were skipped.
    pub skipped: usize,
}

/// Fine-tuning state saved beside the weights (`checkpoints/last.state.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FinetuneState {
    /// Iterations completed.
    iteration: usize,
    /// Learning-rate drops so far.
    drops: Vec<usize>,
    best: Option<f64>,
    early_stopping: EarlyStopping,
    skipped: usize,
    /// Early stopping said stop: the run is complete.
    finished: bool,
    /// Loss sum and count of the current logging window.
    window: (f64, usize),
}

/// One training batch: views `[crop, crop, 3]`, their masks, points `[B * P * 2]` (y, x) and
/// labels (VOC multi-label) or class indices (single-label).
struct TrainBatch {
    views: Vec<RgbImage8>,
    masks: Vec<Vec<u8>>,
    points: Vec<i64>,
    labels: Vec<Vec<i8>>,
    targets: Vec<i64>,
}

/// Image `idx[pos]`, or with `OnBad::Skip` the next one in `idx` that decodes (each failure
/// counted in `set.skipped`): `(set index, image)`.
fn train_image<'a>(
    set: &'a LabelledSet,
    idx: &[usize],
    pos: usize,
) -> Result<(usize, Cow<'a, RgbImage8>), NnError> {
    for k in 0..idx.len().min(64) {
        let i = idx[(pos + k) % idx.len()];
        if let Some(img) = set.usable_image(i)? {
            return Ok((i, img));
        }
    }
    Err(NnError::Config(format!("{} consecutive training images failed to decode", idx.len().min(64))))
}

fn build_batch(
    cfg: &TransferConfig,
    set: &LabelledSet,
    idx: &[usize],
    it: usize,
) -> Result<TrainBatch, NnError> {
    let spec = ViewSpec {
        short_side: cfg.short_side,
        scale_min: cfg.scale_min,
        scale_max: cfg.scale_max,
        crop: cfg.crop,
        mirror: true,
    };
    let views: Vec<_> = (0..cfg.batch_size)
        .into_par_iter()
        .map(|slot| {
            let mut rng = Rng::derive(cfg.seed, &[0x7A, it as u64, slot as u64]);
            let (i, img) = train_image(set, idx, rng.below(idx.len() as u64) as usize)?;
            let mask = set.masks.get(i).map(|m| m.as_slice());
            let (img, m) = random_view(&img, mask, &spec, &mut rng);
            let span = (cfg.crop - 2 * cfg.border.min(cfg.crop / 2 - 1)) as u64;
            let b = cfg.border.min(cfg.crop / 2 - 1);
            let pts: Vec<i64> = (0..cfg.points)
                .flat_map(|_| [b as i64 + rng.below(span) as i64, b as i64 + rng.below(span) as i64])
                .collect();
            let target = set.targets.get(i).map(|&t| t as i64).unwrap_or(-1);
            Ok((img, m.unwrap_or_default(), pts, set.labels.get(i).cloned().unwrap_or_default(), target))
        })
        .collect::<Result<_, NnError>>()?;
    let mut out =
        TrainBatch { views: vec![], masks: vec![], points: vec![], labels: vec![], targets: vec![] };
    for (a, b, c, d, t) in views {
        out.views.push(a);
        out.masks.push(b);
        out.points.extend(c);
        out.labels.push(d);
        out.targets.push(t);
    }
    Ok(out)
}

/// The loss of one training batch.
fn batch_loss(
    net: &TransferNet,
    cfg: &TransferConfig,
    set: &LabelledSet,
    idx: &[usize],
    it: usize,
) -> Result<Tensor, NnError> {
    let TrainBatch { views: imgs, masks, points: pts, labels, targets: classes } =
        build_batch(cfg, set, idx, it)?;
    let refs: Vec<&RgbImage8> = imgs.iter().collect();
    let x = net.input(&refs, GRAY_MEAN);
    let dev = net.vs.device();
    let key = crate::init::dropout_key(cfg.seed, it as u64, 1);
    Ok(match cfg.task {
        Task::Seg => {
            let b = imgs.len() as i64;
            let p = cfg.points as i64;
            let points = Tensor::from_slice(&pts).reshape([b, p, 2]);
            let targets: Vec<i64> = (0..imgs.len())
                .flat_map(|k| {
                    let m = &masks[k];
                    let pts = &pts;
                    (0..cfg.points).map(move |j| {
                        let (y, xx) = (
                            pts[(k * cfg.points + j) * 2] as usize,
                            pts[(k * cfg.points + j) * 2 + 1] as usize,
                        );
                        let v = m[y * cfg.crop + xx];
                        if v == VOID {
                            -100
                        } else {
                            v as i64
                        }
                    })
                })
                .collect();
            let logits = net.seg_logits_sparse(&x, &points.to_kind(Kind::Float).to_dev(dev), true, key);
            let t = Tensor::from_slice(&targets).to_dev(dev);
            // Mean over non-void points; a batch of only void points gives 0.
            let valid = t.ne(-100).sum(Kind::Float).clamp_min(1.0);
            logits.cross_entropy_loss::<Tensor>(&t, None, tch::Reduction::Sum, -100, 0.0) / valid
        }
        Task::Cls if cfg.single_label() => {
            let t = Tensor::from_slice(&classes).to_dev(dev);
            net.cls_logits(&x, true, key).cross_entropy_for_logits(&t)
        }
        Task::Cls => {
            let l: Vec<f32> = labels.iter().flatten().map(|&v| if v > 0 { 1.0 } else { 0.0 }).collect();
            let m: Vec<f32> = labels.iter().flatten().map(|&v| if v != 0 { 1.0 } else { 0.0 }).collect();
            let n = labels.len() as i64;
            let target = Tensor::from_slice(&l).reshape([n, 20]).to_dev(dev);
            let mask = Tensor::from_slice(&m).reshape([n, 20]).to_dev(dev);
            let logits = net.cls_logits(&x, true, key);
            let per =
                logits.binary_cross_entropy_with_logits::<Tensor>(&target, None, None, tch::Reduction::None);
            (per * &mask).sum(Kind::Float) / mask.sum(Kind::Float).clamp_min(1.0)
        }
    })
}

fn clip_grad_norm(params: &BTreeMap<String, Tensor>, max: f64) {
    if max <= 0.0 {
        return;
    }
    tch::no_grad(|| {
        let total: f64 = params
            .values()
            .filter(|t| t.grad().defined())
            .map(|t| t.grad().square().sum(Kind::Double).double_value(&[]))
            .sum();
        let norm = total.sqrt();
        if norm > max {
            for t in params.values() {
                let mut g = t.grad();
                if g.defined() {
                    let _ = g.g_mul_scalar_(max / norm);
                }
            }
        }
    });
}

impl FinetuneRun<'_> {
    pub fn run(self) -> Result<FinetuneSummary, NnError> {
        let mut cfg = self.config.clone();
        let paths = RunPaths::new(&self.out);
        let ferr = |p: PathBuf, e: std::io::Error| NnError::File { path: p, msg: e.to_string() };
        std::fs::create_dir_all(paths.checkpoints()).map_err(|e| ferr(paths.checkpoints(), e))?;
        if cfg.threads > 0 {
            tch::set_num_threads(cfg.threads as i32);
        }
        let obs = self.observer;
        let set = load_split(cfg.task, &self.data, &self.train_split, self.on_bad, &mut |m| obs.message(m))?;
        if cfg.task == Task::Cls {
            cfg.classes = set.class_names.clone();
        }
        if self.resume {
            if !paths.last_state().is_file() {
                return Err(NnError::File {
                    path: paths.last_state(),
                    msg: "no checkpoint to resume from".into(),
                });
            }
            let text = std::fs::read_to_string(paths.config()).map_err(|e| ferr(paths.config(), e))?;
            let saved = TransferConfig::from_toml(&text)?;
            let same =
                |c: &TransferConfig| TransferConfig { early_stop: EarlyStopConfig::default(), ..c.clone() };
            if same(&saved) != same(&cfg) {
                return Err(NnError::Config(format!(
                    "resuming with a config that differs from {} (only the early-stopping limits may change)",
                    paths.config().display()
                )));
            }
        }
        std::fs::write(paths.config(), cfg.to_toml()).map_err(|e| ferr(paths.config(), e))?;
        let mut net = TransferNet::new(&cfg, self.device)?;
        if cfg.init != "random" {
            net.load_backbone(Path::new(&cfg.init))?;
        }
        if cfg.absorb_bn {
            net.absorb_bn();
        }
        if cfg.pad_with_bias {
            net.set_pad_with_bias(true);
        }
        if cfg.rebalance {
            let sample: Vec<RgbImage8> = (0..set.len().min(32))
                .map(|i| set.image(i).map(Cow::into_owned))
                .collect::<Result<_, _>>()?;
            let dev = net.rebalance(&sample);
            obs.message(&format!(
                "rebalanced {} layers to unit variance (largest std deviation from 1 before: {:.3})",
                dev.len(),
                dev.iter().cloned().fold(0.0, f64::max)
            ));
        }
        let params = net.trainable()?;
        let mut sgd =
            Sgd::new(params.iter().map(|(k, v)| (k.clone(), v.shallow_clone())).collect(), cfg.optim.clone());
        let mut state = FinetuneState {
            iteration: 0,
            drops: self.fixed_schedule.as_ref().map(|s| s.drops.clone()).unwrap_or_default(),
            best: None,
            early_stopping: EarlyStopping::new(cfg.early_stop.clone()),
            skipped: 0,
            finished: false,
            window: (0.0, 0),
        };
        if self.resume {
            state =
                checkpoint::load_resumable(&paths, &mut net.vs, &mut sgd, |s: &FinetuneState| s.iteration)?;
            state.early_stopping.config = cfg.early_stop.clone();
            crate::pretrain::truncate_metrics(&paths.metrics(), state.iteration)?;
            set.skipped.store(state.skipped, Ordering::Relaxed);
            obs.message(&format!("resuming at iteration {}", state.iteration));
        } else {
            // A fresh run: nothing of an earlier run in this folder may be resumed or reported.
            for p in [paths.metrics(), paths.last_state(), paths.last_optim(), paths.last_weights()] {
                let _ = std::fs::remove_file(p);
            }
        }
        let all: Vec<usize> = (0..set.len()).collect();
        let (train_idx, held_idx) = match &self.fixed_schedule {
            Some(_) => (all.clone(), vec![]),
            // No held-out part: early stopping scores the training images themselves.
            None if cfg.held_out <= 0.0 => (all.clone(), all.clone()),
            None => {
                let (t, h) = split_held_out(&set.ids, cfg.held_out, cfg.seed);
                if h.is_empty() {
                    // Tiny sets: score on the training images themselves.
                    (t.clone(), t)
                } else {
                    (t, h)
                }
            }
        };
        let max_iters = match &self.fixed_schedule {
            Some(s) => s.stop,
            None => cfg.early_stop.max_iterations,
        };
        let mut metrics_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(paths.metrics())
            .map_err(|e| ferr(paths.metrics(), e))?;
        obs.start(state.iteration, max_iters);
        let t0 = std::time::Instant::now();
        let start = state.iteration;
        let mut interrupted = false;
        while state.iteration < max_iters && !state.finished {
            if self.interrupt.load(Ordering::Relaxed) {
                interrupted = true;
                break;
            }
            let it = state.iteration;
            let lr =
                cfg.optim.lr * cfg.optim.gamma.powi(state.drops.iter().filter(|&&d| it >= d).count() as i32);
            sgd.zero_grad();
            let loss = batch_loss(&net, &cfg, &set, &train_idx, it)?;
            let lv = loss.double_value(&[]);
            if !lv.is_finite() {
                return Err(NnError::NonFiniteLoss { iteration: it, value: lv });
            }
            loss.backward();
            clip_grad_norm(&params, cfg.grad_clip);
            sgd.step(lr);
            state.iteration += 1;
            let it = state.iteration;
            state.window.0 += lv;
            state.window.1 += 1;
            let ips = (cfg.batch_size * (it - start)) as f64 / t0.elapsed().as_secs_f64().max(1e-9);
            obs.step(it, lv, ips);
            let mut score = None;
            if self.fixed_schedule.is_none() && it.is_multiple_of(cfg.early_stop.eval_every) {
                let r = evaluate(&net, &set, &held_idx, &mut |_, _| {})?;
                score = Some(r.value);
                state.best = Some(state.best.map_or(r.value, |b: f64| b.max(r.value)));
                match state.early_stopping.observe(it, r.value) {
                    Decision::Continue => {}
                    Decision::DropLr => {
                        state.drops.push(it);
                        obs.message(&format!(
                            "held-out {} plateaued: learning rate x0.1 at iteration {it}",
                            r.metric
                        ));
                    }
                    Decision::Stop => {
                        obs.message(&format!(
                            "held-out {} plateaued again: stopping at iteration {it}",
                            r.metric
                        ));
                        state.finished = true;
                    }
                }
            }
            if it.is_multiple_of(cfg.log_every) || score.is_some() {
                let line = serde_json::json!({
                    "iteration": it, "loss": state.window.0 / state.window.1.max(1) as f64, "lr": lr,
                    "held_out_score": score, "images_per_s": ips,
                });
                use std::io::Write;
                writeln!(metrics_file, "{line}").map_err(|e| ferr(paths.metrics(), e))?;
                state.window = (0.0, 0);
            }
            if cfg.checkpoint_every > 0 && it.is_multiple_of(cfg.checkpoint_every) {
                state.skipped = set.skipped.load(Ordering::Relaxed);
                checkpoint::save_resumable(&paths, &net.vs, &sgd, state.iteration, &state)?;
            }
        }
        state.skipped = set.skipped.load(Ordering::Relaxed);
        checkpoint::save_resumable(&paths, &net.vs, &sgd, state.iteration, &state)?;
        let schedule = match &self.fixed_schedule {
            Some(s) => s.clone(),
            None => FoundSchedule {
                drops: state.drops.clone(),
                stop: state.iteration,
                windows: state.early_stopping.found.windows.clone(),
            },
        };
        if !interrupted {
            checkpoint::write_json(&self.out.join("schedule.json"), &schedule)?;
        }
        Ok(FinetuneSummary {
            iterations: state.iteration,
            schedule,
            best_held_out: state.best,
            config: cfg,
            interrupted,
            skipped: state.skipped,
        })
    }
}

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
