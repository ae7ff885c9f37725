//! The fine-tuning config ([`TransferConfig`], saved as RUN_DIR/config.toml) and its presets,
//! which live in `presets/{cls,seg}-{paper,cpu}.toml`.
use serde::{Deserialize, Serialize};

use colorproxy_data::label_space::LabelSpace;

use super::Task;
use crate::config::{ModelConfig, OptimConfig};
use crate::early_stop::EarlyStopConfig;
use crate::NnError;

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
    /// Images per step and process; each step trains on `world_size x batch_size` images.
    pub batch_size: usize,
    /// Processes of the run (set when it starts: 1, or the data-parallel job's world size).
    #[serde(default = "one")]
    pub world_size: usize,
    /// `world_size x batch_size`, set when the run starts (for the record).
    #[serde(default)]
    pub total_batch: usize,
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
    /// Classification test crops: 10 (4 corners and the centre, mirrored; the softmax or sigmoid
    /// averaged) or 1 (the centre crop alone: the paper's ImNt columns, "single centre crop").
    /// Written to a config only when not 10, so configs (and run keys) from before it stay.
    #[serde(default = "default_test_crops", skip_serializing_if = "is_ten_crops")]
    pub test_crops: usize,
    /// Segmentation test: images larger than this (longer side) are downscaled for inference
    /// and the prediction upsampled back (0: always full resolution).
    pub test_max_side: usize,
    pub seed: u64,
    /// libtorch intra-op threads (0: libtorch's default).
    pub threads: usize,
    /// Worker threads building batches (0: all cores); results do not depend on it.
    #[serde(default)]
    pub workers: usize,
    pub log_every: usize,
    /// Write `checkpoints/last.*` every this many iterations (and at the end; 0: only at the end).
    #[serde(default)]
    pub checkpoint_every: usize,
    /// The object classes (set by the run from the training data or `--classes`): a VOC set's
    /// class list without background, or the class folders. Empty: VOC's 20.
    #[serde(default)]
    pub classes: Vec<String>,
    /// Single-label classification of class folders (softmax) rather than VOC multi-label.
    #[serde(default)]
    pub single_label: bool,
    /// Supervised pretraining on class folders: a label-space variant of the training split
    /// (Table 4: fewer images per class, label noise, buckets); absent: the full label space.
    #[serde(default, skip_serializing_if = "LabelSpace::is_identity")]
    pub label_space: LabelSpace,
}

fn one() -> usize {
    1
}

/// The fine-tuning presets shipped in `presets/`, compiled into the binary.
pub const TRANSFER_PRESETS: [(&str, &str); 5] = [
    ("cls-paper", include_str!("../../../../presets/cls-paper.toml")),
    ("seg-paper", include_str!("../../../../presets/seg-paper.toml")),
    ("cls-cpu", include_str!("../../../../presets/cls-cpu.toml")),
    ("seg-cpu", include_str!("../../../../presets/seg-cpu.toml")),
    ("sup-cpu", include_str!("../../../../presets/sup-cpu.toml")),
];

impl TransferConfig {
    /// A preset by name: `cls-paper`, `seg-paper`, `cls-cpu`, `seg-cpu`, `sup-cpu` (supervised
    /// pretraining on class folders).
    pub fn preset(name: &str) -> Result<Self, NnError> {
        let text = crate::config::preset_text(&TRANSFER_PRESETS, name)?;
        Self::from_toml(text).map_err(|e| NnError::Config(format!("preset {name}: {e}")))
    }

    /// The paper's protocol for a task (`cls-paper`, `seg-paper`).
    pub fn paper(task: Task) -> Self {
        Self::preset(if task == Task::Cls { "cls-paper" } else { "seg-paper" })
            .expect("built-in preset parses")
    }

    /// The same protocol at CPU scale (`cls-cpu`, `seg-cpu`: the cpu-small backbone).
    pub fn cpu(task: Task) -> Self {
        Self::preset(if task == Task::Cls { "cls-cpu" } else { "seg-cpu" }).expect("built-in preset parses")
    }

    /// The config with at most `n` iterations and the early-stopping protocol scaled with it:
    /// `eval_every` and `min_stage_iterations` keep their fraction of the cap.
    pub fn with_max_iterations(mut self, n: usize) -> Self {
        let old = self.early_stop.max_iterations.max(1) as f64;
        let scale = |v: usize| ((v as f64 * n as f64 / old).round() as usize).max(1);
        self.early_stop.eval_every = scale(self.early_stop.eval_every);
        self.early_stop.min_stage_iterations = scale(self.early_stop.min_stage_iterations);
        self.early_stop.max_iterations = n;
        self
    }

    /// Starts from `init` (`random` or a checkpoint). A checkpoint fixes the backbone's
    /// architecture and widths: a colorization run's config, a fine-tuned or supervised run's
    /// config, or a torchvision state dict (standard widths). Unreadable checkpoints keep the
    /// config's backbone (loading them reports the problem).
    pub fn with_init(mut self, init: &str) -> Result<Self, NnError> {
        self.init = init.to_string();
        if init == "random" {
            return Ok(self);
        }
        let ck = std::path::Path::new(init);
        let model = if let Ok(pc) = crate::PretrainConfig::of_checkpoint(ck, None) {
            Some(pc.model)
        } else if let Some(tc) = crate::run_dir::config_of_checkpoint(ck, None)
            .ok()
            .and_then(|(_, text)| TransferConfig::from_toml(&text).ok())
        {
            // A fine-tuned or supervised network (e.g. from `pretrain-supervised`).
            Some(tc.model)
        } else if crate::run_dir::config_of_checkpoint(ck, None).is_err() {
            // A torchvision state dict (e.g. from `colorproxy export`): standard widths.
            let names: Vec<String> =
                crate::checkpoint::read_tensors(ck)?.into_iter().map(|(n, _)| n).collect();
            crate::weights::detect_arch(&names).map(|arch| ModelConfig {
                arch: arch.into(),
                width: 1.0,
                fc_channels: 4096,
                ..self.model.clone()
            })
        } else {
            None
        };
        if let Some(m) = model {
            self.model.arch = m.arch;
            self.model.width = m.width;
            self.model.fc_channels = m.fc_channels;
        }
        Ok(self)
    }

    /// Whether the backbone is rescaled to unit activation variance by default (`rebalance`).
    ///
    /// The paper rebalances networks that were not trained with BN and are not balanced in scale
    /// across layers: a random init, and imported weights (a torchvision state dict, no colorproxy
    /// config beside it, e.g. the ImageNet VGG-16), for architectures where it helps (VGG-16).
    /// colorproxy's own pretrainings are trained with BN (absorbed before fine-tuning): balanced.
    pub fn rebalance_by_default(&self) -> Result<bool, NnError> {
        let imported = self.init != "random"
            && crate::run_dir::config_of_checkpoint(std::path::Path::new(&self.init), None).is_err();
        Ok((self.init == "random" || imported) && crate::backbone::arch::arch(&self.model.arch)?.rebalance)
    }

    /// The early-stopping schedule in words.
    pub fn schedule_summary(&self) -> String {
        let e = &self.early_stop;
        format!(
            "lr {}, held-out score every {} iterations in windows of {}, x{} at a plateau after at least {} iterations per stage, stop at plateau {} or {} iterations",
            self.optim.lr, e.eval_every, e.window, self.optim.gamma, e.min_stage_iterations, e.max_drops, e.max_iterations
        )
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }

    pub fn from_toml(text: &str) -> Result<Self, NnError> {
        if text.trim().is_empty() {
            return Err(NnError::Config(
                "the config is empty (start from a preset: presets/{cls,seg}-*.toml, or pass --preset)"
                    .into(),
            ));
        }
        let cfg: Self = toml::from_str(text).map_err(|e| NnError::Config(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Rejects values no run can use: a non-positive or non-finite learning rate, empty
    /// batches, crops beyond any image, a held-out fraction outside [0, 1).
    pub fn validate(&self) -> Result<(), NnError> {
        self.optim.validate()?;
        let bad = |m: String| Err(NnError::Config(m));
        if self.test_crops != 1 && self.test_crops != 10 {
            return bad(format!(
                "test_crops must be 10 (corners and centre, mirrored) or 1 (the centre crop), got {}",
                self.test_crops
            ));
        }
        if self.batch_size == 0 || self.batch_size > 65_536 || self.crop == 0 || self.crop > 8192 {
            return bad(format!(
                "batch_size {} and crop {} must be in [1, 65536] and [1, 8192]",
                self.batch_size, self.crop
            ));
        }
        if self.task == Task::Seg && (self.points == 0 || self.points > 1 << 20) {
            return bad(format!("points must be in [1, 2^20], got {}", self.points));
        }
        if !(0.0..1.0).contains(&self.held_out) || !(0.0..1.0).contains(&self.dropout) {
            return bad("held_out and dropout must be in [0, 1)".into());
        }
        if !(self.scale_min > 0.0 && self.scale_min <= self.scale_max && self.scale_max.is_finite()) {
            return bad(format!(
                "need 0 < scale_min <= scale_max, got {} and {}",
                self.scale_min, self.scale_max
            ));
        }
        if self.early_stop.eval_every == 0 || self.early_stop.window == 0 || self.log_every == 0 {
            return bad("early_stop.eval_every, early_stop.window and log_every must be positive".into());
        }
        let size_ok = |v: i64| (1..=65_536).contains(&v);
        if !size_ok(self.head_hidden) || (self.fov && !size_ok(self.fov_channels)) {
            return bad(format!(
                "head_hidden ({}) and fov_channels ({}) must be in [1, 65536]",
                self.head_hidden, self.fov_channels
            ));
        }
        if self.world_size == 0 {
            return bad("world_size must be positive".into());
        }
        self.model.validate()
    }

    /// The batch of one step over the whole job: `world_size x batch_size`.
    pub fn job_batch(&self) -> usize {
        self.batch_size * self.world_size
    }

    /// Records a run of `world_size` processes: the total batch and the learning rate of the batch
    /// rule; returns the rule's line when it changed the learning rate.
    pub fn for_world_size(&mut self, world_size: usize) -> Option<String> {
        self.world_size = world_size.max(1);
        self.total_batch = self.job_batch();
        self.optim.apply_batch_rule(self.total_batch)
    }

    /// Adapts the default segmentation hypercolumn (all VGG-16 layers plus +FoV) to the
    /// backbone's architecture (its default in [`crate::backbone::arch`]). A custom list is kept.
    pub fn for_arch(mut self) -> Self {
        let with_fov = |layers: &[&str]| {
            let mut v: Vec<String> = layers.iter().map(|s| s.to_string()).collect();
            v.extend(["fov1".to_string(), "fov2".to_string()]);
            v
        };
        let Ok(spec) = crate::backbone::arch::arch(&self.model.arch) else {
            return self; // an unknown arch is reported when the network is built
        };
        let vgg = with_fov(crate::backbone::arch::arch("vgg16").expect("vgg16").transfer_hypercolumn);
        if self.hypercolumn == vgg && self.model.arch != "vgg16" {
            self.hypercolumn = spec.transfer_hypercolumn.iter().map(|s| s.to_string()).collect();
            if self.fov {
                self.hypercolumn.extend(["fov1".to_string(), "fov2".to_string()]);
            }
        }
        self
    }

    /// Number of network outputs: the K classes for classification, K + 1 (with background)
    /// for segmentation (K = 20, VOC's, when no class list is set).
    pub fn classes(&self) -> i64 {
        let k = if self.classes.is_empty() { 20 } else { self.classes.len() as i64 };
        match self.task {
            Task::Cls => k,
            Task::Seg => k + 1,
        }
    }

    /// The class names the outputs stand for (background first for segmentation).
    pub fn output_names(&self) -> Vec<String> {
        let objects: Vec<String> = if self.classes.is_empty() {
            colorproxy_data::voc::VOC_CLASSES.map(String::from).to_vec()
        } else {
            self.classes.clone()
        };
        match self.task {
            Task::Cls => objects,
            Task::Seg => std::iter::once("background".to_string()).chain(objects).collect(),
        }
    }

    /// Single-label (softmax) classification rather than VOC multi-label.
    pub fn single_label(&self) -> bool {
        self.task == Task::Cls && self.single_label
    }
}

fn default_test_crops() -> usize {
    10
}

fn is_ten_crops(n: &usize) -> bool {
    *n == 10
}
