//! Configs as data: serde structs with documented defaults, loaded from TOML presets and saved
//! next to every run's outputs.
use colorproxy_color::TargetConfig;
use colorproxy_data::PipelineConfig;
use serde::{Deserialize, Serialize};

use crate::NnError;

/// Which colour loss the head is trained with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ColorLoss {
    /// Hue and chroma histograms, weighted KL (the paper's default).
    Histogram,
    /// L\*a\*b\* regression of (a\*, b\*) / `lab_ab_scale`, squared error.
    LabRegression,
}

/// Network architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// `vgg16`, `alexnet`, `resnet18`, `resnet50` or `resnet152`.
    pub arch: String,
    /// Channel multiplier of every convolution (1.0: the paper's widths).
    pub width: f64,
    /// Channels of fc6 and fc7 (VGG): 1024 or 4096 in the paper.
    pub fc_channels: i64,
    /// Hypercolumn layers (VGG: any of data, conv1_1 ... conv5_3, fc6, fc7). Empty for ResNet:
    /// the head then reads the top block at the points, as the paper trains its ResNet colorizer.
    pub hypercolumn: Vec<String>,
    /// Hidden width of the head (paper: 1024).
    pub head_hidden: i64,
    /// Std of the Gaussian init of the head's hidden layer (authors: 1e-4).
    pub head_init_std: f64,
    /// Dropout after fc6, fc7 and the head's hidden layer while pretraining.
    pub dropout: f64,
    /// Momentum of the BN running statistics (PyTorch convention).
    pub bn_momentum: f64,
    pub loss: ColorLoss,
    /// Multiplier of the regression loss, so both losses have similar gradient magnitude at
    /// initialisation (see `loss::lab_regression`).
    pub lab_loss_weight: f64,
    /// Run the VGG convolutions in bfloat16 (off by default; float32 is the reference).
    pub conv_bf16: bool,
    /// Input channels: 1 (gray, the default) or 3 (colour input after lifting conv1 to RGB).
    pub in_channels: i64,
}

pub const VGG16_LAYERS: [&str; 16] = [
    "data", "conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv4_1",
    "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3", "fc6", "fc7",
];

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            arch: "vgg16".into(),
            width: 1.0,
            fc_channels: 4096,
            hypercolumn: VGG16_LAYERS.iter().map(|s| s.to_string()).collect(),
            head_hidden: 1024,
            head_init_std: 1e-4,
            dropout: 0.5,
            bn_momentum: 0.1,
            loss: ColorLoss::Histogram,
            lab_loss_weight: 10.0,
            conv_bf16: false,
            in_channels: 1,
        }
    }
}

/// SGD and the step schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    pub lr: f64,
    pub momentum: f64,
    /// Weight decay on weights (not biases).
    pub weight_decay: f64,
    /// Biases use `bias_lr_mult * lr` and no decay (paper: 2x).
    pub bias_lr_mult: f64,
    /// Iterations at which the learning rate is multiplied by `gamma`.
    pub lr_drops: Vec<usize>,
    pub gamma: f64,
    /// The total batch (images per step over all processes) that `lr` is stated for, e.g. the
    /// paper's batch on the paper's GPU count. 0: `lr` is used as given whatever the total batch.
    pub reference_batch: usize,
    /// How the learning rate follows the total batch when it differs from `reference_batch`:
    /// `linear` (lr x total / reference, Goyal et al. 2017) or `none`.
    pub lr_scaling: LrScaling,
    /// The multiplier applied to `lr` (and so to the whole schedule), set when the run starts
    /// from the rule above; saved in config.toml for the record, recomputed on every start.
    pub lr_scale: f64,
}

/// How the learning rate follows the total batch ([`OptimConfig::lr_scaling`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LrScaling {
    /// lr x total batch / reference batch (Goyal et al. 2017, "Accurate, Large Minibatch SGD").
    #[default]
    Linear,
    /// The learning rate as given.
    None,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            momentum: 0.9,
            weight_decay: 5e-4,
            bias_lr_mult: 2.0,
            lr_drops: vec![],
            gamma: 0.1,
            reference_batch: 0,
            lr_scaling: LrScaling::Linear,
            lr_scale: 1.0,
        }
    }
}

/// The largest base learning rate the command line and config files accept (`--lr 1e308` is a
/// typo, not a setting); the library takes any positive value (tests make runs diverge).
pub const MAX_LR: f64 = 10.0;

impl OptimConfig {
    /// The bound of a learning rate given by a user (the command line, a config file, Python):
    /// `(0, MAX_LR]`; [`Self::validate`] alone takes any positive value.
    pub fn check_lr_bound(&self) -> Result<(), NnError> {
        if self.lr > MAX_LR {
            return Err(NnError::Config(format!(
                "optim.lr must be in (0, {MAX_LR}] (SGD diverges far below the top), got {}",
                self.lr
            )));
        }
        Ok(())
    }

    /// The learning rate, momentum, decay and gamma must be finite, the rate positive.
    pub fn validate(&self) -> Result<(), NnError> {
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(NnError::Config(format!(
                "optim.lr must be in (0, {MAX_LR}] (SGD diverges far below the top), got {}",
                self.lr
            )));
        }
        if !ok(self.momentum) || self.momentum >= 1.0 || !ok(self.weight_decay) || !ok(self.bias_lr_mult) {
            return Err(NnError::Config(
                "optim.momentum must be in [0, 1); weight_decay and bias_lr_mult non-negative and finite"
                    .into(),
            ));
        }
        if !(self.gamma.is_finite() && self.gamma > 0.0 && self.gamma <= 1.0) {
            return Err(NnError::Config(format!("optim.gamma must be in (0, 1], got {}", self.gamma)));
        }
        if !(self.lr_scale.is_finite() && self.lr_scale > 0.0) {
            return Err(NnError::Config(format!("optim.lr_scale must be positive, got {}", self.lr_scale)));
        }
        Ok(())
    }

    /// The learning rate at `iteration` (0-based) of the step schedule, with the batch rule's
    /// multiplier `lr_scale`.
    pub fn lr_at(&self, iteration: usize) -> f64 {
        crate::schedule::step_lr(self.scaled_lr(), self.gamma, &self.lr_drops, iteration)
    }

    /// The base learning rate the run uses: `lr x lr_scale`.
    pub fn scaled_lr(&self) -> f64 {
        self.lr * self.lr_scale
    }

    /// The multiplier of the batch rule for a run of `total_batch` images per step.
    pub fn scale_for(&self, total_batch: usize) -> f64 {
        match self.lr_scaling {
            LrScaling::Linear if self.reference_batch > 0 => total_batch as f64 / self.reference_batch as f64,
            _ => 1.0,
        }
    }

    /// Sets `lr_scale` for a run of `total_batch` images per step; returns a line saying what was
    /// applied (None when the learning rate is used as given).
    pub fn apply_batch_rule(&mut self, total_batch: usize) -> Option<String> {
        self.lr_scale = self.scale_for(total_batch);
        (self.lr_scale != 1.0).then(|| {
            format!(
                "learning rate {} x {} / {} (linear scaling rule, total batch / reference batch) = {:.6}; \
                 --set optim.lr_scaling=none keeps {}",
                self.lr,
                total_batch,
                self.reference_batch,
                self.scaled_lr(),
                self.lr
            )
        })
    }
}

/// Everything a pretraining run needs, saved as RUN_DIR/config.toml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PretrainConfig {
    /// Total iterations (batches).
    pub iterations: usize,
    pub seed: u64,
    /// Write RUN_DIR/checkpoints/last.* every this many iterations (and at the end).
    pub checkpoint_every: usize,
    /// Keep `RUN_DIR/checkpoints/iter-<N>.safetensors` at these iterations.
    pub snapshots: Vec<usize>,
    /// Average and log metrics every this many iterations.
    pub log_every: usize,
    /// libtorch intra-op threads (0: libtorch's default).
    pub threads: usize,
    /// Data-parallel runs: normalise with the batch statistics of all ranks (all-reduced in the
    /// forward and backward passes), so a run equals the 1-process run with the global batch.
    /// Off: each rank's sub-batch statistics, as the authors' multi-GPU Caffe.
    pub sync_bn: bool,
    /// Processes of the run (set when it starts: 1, or the data-parallel job's world size).
    /// `data.batch_size` is per process; each step trains on `world_size x batch_size` images.
    pub world_size: usize,
    /// `world_size x data.batch_size`, set when the run starts (for the record).
    pub total_batch: usize,
    pub model: ModelConfig,
    pub optim: OptimConfig,
    pub data: PipelineConfig,
    pub targets: TargetConfig,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self {
            iterations: 2_000_000,
            seed: 0,
            checkpoint_every: 1000,
            snapshots: vec![],
            log_every: 20,
            threads: 0,
            sync_bn: false,
            world_size: 1,
            total_batch: 0,
            model: ModelConfig::default(),
            optim: OptimConfig { lr_drops: vec![1_000_000, 1_500_000, 1_750_000], ..OptimConfig::default() },
            data: PipelineConfig::default(),
            targets: TargetConfig::default(),
        }
    }
}

/// The presets shipped in `presets/`, compiled into the binary.
pub const PRESETS: [(&str, &str); 9] = [
    ("paper-vgg16", include_str!("../../../presets/paper-vgg16.toml")),
    ("gpu-vgg16", include_str!("../../../presets/gpu-vgg16.toml")),
    ("gpu-resnet152", include_str!("../../../presets/gpu-resnet152.toml")),
    ("cpu-small", include_str!("../../../presets/cpu-small.toml")),
    ("cpu-small-lab", include_str!("../../../presets/cpu-small-lab.toml")),
    ("paper-resnet152", include_str!("../../../presets/paper-resnet152.toml")),
    ("cpu-resnet18", include_str!("../../../presets/cpu-resnet18.toml")),
    ("paper-alexnet", include_str!("../../../presets/paper-alexnet.toml")),
    ("cpu-alexnet", include_str!("../../../presets/cpu-alexnet.toml")),
];

/// The text of preset `name` in a table of presets.
pub fn preset_text(table: &[(&str, &'static str)], name: &str) -> Result<&'static str, NnError> {
    table.iter().find(|(n, _)| *n == name).map(|(_, t)| *t).ok_or_else(|| {
        NnError::UnknownPreset(name.into(), table.iter().map(|p| p.0).collect::<Vec<_>>().join(", "))
    })
}

impl PretrainConfig {
    /// A preset by name.
    pub fn preset(name: &str) -> Result<Self, NnError> {
        let text = preset_text(&PRESETS, name)?;
        Self::from_toml(text).map_err(|e| NnError::Config(format!("preset {name}: {e}")))
    }

    pub fn from_toml(text: &str) -> Result<Self, NnError> {
        if text.trim().is_empty() {
            return Err(NnError::Config(
                "the config is empty (start from a preset: presets/*.toml, or pass --preset)".into(),
            ));
        }
        let cfg: Self = toml::from_str(text).map_err(|e| NnError::Config(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The config of the pretraining run a checkpoint belongs to (`given`, else the run folder's
    /// config.toml; see [`crate::run_dir::config_of_checkpoint`]).
    pub fn of_checkpoint(ck: &std::path::Path, given: Option<&std::path::Path>) -> Result<Self, NnError> {
        let (path, text) = crate::run_dir::config_of_checkpoint(ck, given)?;
        if crate::run_dir::RunKind::of_config(&text) == crate::run_dir::RunKind::Finetune {
            return Err(NnError::File {
                path: ck.to_owned(),
                msg: format!(
                    "is a fine-tuned network ({} is a fine-tuning config); this needs a colorization \
                     pretraining checkpoint (RUN/checkpoints/last.safetensors of `colorproxy pretrain`)",
                    path.display()
                ),
            });
        }
        Self::from_toml(&text).map_err(|e| NnError::File { path, msg: format!("invalid config: {e}") })
    }

    /// The config for a run of `n` iterations with the same schedule shape: learning-rate drops
    /// and snapshots keep their fraction of the run (a drop at 450 of 600 moves to 3000 of 4000).
    pub fn with_iterations(mut self, n: usize) -> Self {
        let scale = |v: &[usize], old: usize| -> Vec<usize> {
            let mut out: Vec<usize> = v
                .iter()
                .map(|&d| ((d as f64 * n as f64 / old.max(1) as f64).round() as usize).max(1))
                .collect();
            out.dedup();
            out
        };
        self.optim.lr_drops = scale(&self.optim.lr_drops, self.iterations);
        self.snapshots = scale(&self.snapshots, self.iterations);
        self.iterations = n;
        self
    }

    /// Warnings about a schedule that cannot be what was meant: learning-rate drops or snapshots
    /// outside the run's iterations never happen (`--iterations` rescales both; a config file or
    /// `--set` may not).
    pub fn schedule_warnings(&self) -> Vec<String> {
        [("optim.lr_drops", &self.optim.lr_drops), ("snapshots", &self.snapshots)]
            .into_iter()
            .filter_map(|(key, list)| {
                let outside: Vec<String> =
                    list.iter().filter(|&&d| d == 0 || d > self.iterations).map(|d| d.to_string()).collect();
                (!outside.is_empty()).then(|| {
                    format!(
                        "warning: {key} {} outside the run's iterations 1..={}: never happens",
                        outside.join(", "),
                        self.iterations
                    )
                })
            })
            .collect()
    }

    /// The learning-rate schedule in words, with the rate the run uses (the batch rule applied),
    /// e.g. `lr 0.0025 (0.01 x 0.25 by the batch rule), x0.1 at 450 (of 600)`.
    pub fn schedule_summary(&self) -> String {
        let drops: Vec<String> = self.optim.lr_drops.iter().map(|d| d.to_string()).collect();
        let (lr, scale) = (self.optim.lr, self.optim.lr_scale);
        let lr = if scale == 1.0 {
            format!("{lr}")
        } else {
            format!("{} ({lr} x {scale} by the batch rule)", self.optim.scaled_lr())
        };
        if drops.is_empty() {
            format!("lr {lr} for all {} iterations", self.iterations)
        } else {
            format!("lr {lr}, x{} at {} (of {})", self.optim.gamma, drops.join(", "), self.iterations)
        }
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }

    pub fn validate(&self) -> Result<(), NnError> {
        self.data.validate()?;
        self.targets.validate().map_err(|e| NnError::Config(e.to_string()))?;
        if self.iterations == 0 || self.checkpoint_every == 0 || self.log_every == 0 {
            return Err(NnError::Config(
                "iterations, checkpoint_every and log_every must be positive".into(),
            ));
        }
        if !(self.model.width.is_finite() && self.model.width > 0.0 && self.model.width <= 16.0) {
            return Err(NnError::Config(format!("model.width must be in (0, 16], got {}", self.model.width)));
        }
        self.optim.validate()?;
        self.model.validate()?;
        if self.world_size == 0 {
            return Err(NnError::Config("world_size must be positive".into()));
        }
        Ok(())
    }

    /// The data pipeline of the whole job: `world_size x batch_size` images per step (each rank
    /// builds its share of the slots; see [`crate::data_parallel`]).
    pub fn job_pipeline(&self) -> colorproxy_data::PipelineConfig {
        colorproxy_data::PipelineConfig {
            batch_size: self.data.batch_size * self.world_size,
            ..self.data.clone()
        }
    }

    /// The pretraining data stream of this config: the job's batches in the order, with the
    /// augmentation and the points that `pretrain` draws (all a function of the seed); `rank`:
    /// `(rank, world_size)` of a data-parallel job, whose process builds its slots of each job batch
    /// (the config's `world_size` must be the job's, see [`Self::for_world_size`]).
    pub fn pretrain_data(
        &self,
        source: colorproxy_data::ImageSource,
        rank: Option<(usize, usize)>,
    ) -> Result<colorproxy_data::PretrainData, NnError> {
        let pipeline = self.job_pipeline();
        let mut data =
            colorproxy_data::PretrainData::new(source, pipeline.clone(), self.targets.clone(), self.seed)?;
        if let Some((rank, world_size)) = rank {
            if world_size != self.world_size {
                return Err(NnError::Config(format!(
                    "the config is for {} process(es), the job has {world_size}",
                    self.world_size
                )));
            }
            data.shard = Some(crate::data_parallel::shard_slots(rank, world_size, pipeline.batch_size)?);
        }
        Ok(data)
    }

    /// Records a run of `world_size` processes: the total batch and the learning rate of the batch
    /// rule; returns the rule's line when it changed the learning rate.
    pub fn for_world_size(&mut self, world_size: usize) -> Option<String> {
        self.world_size = world_size.max(1);
        self.total_batch = self.world_size * self.data.batch_size;
        self.optim.apply_batch_rule(self.total_batch)
    }
}

impl ModelConfig {
    /// Sizes must be positive and the architecture known (layer names are checked when the
    /// network is built).
    pub fn validate(&self) -> Result<(), NnError> {
        crate::backbone::arch::arch(&self.arch)?;
        let size_ok = |v: i64| (1..=65_536).contains(&v);
        if !size_ok(self.fc_channels) || !size_ok(self.head_hidden) {
            return Err(NnError::Config(format!(
                "model.fc_channels ({}) and model.head_hidden ({}) must be in [1, 65536]",
                self.fc_channels, self.head_hidden
            )));
        }
        if self.in_channels != 1 && self.in_channels != 3 {
            return Err(NnError::Config(format!(
                "model.in_channels must be 1 or 3, got {}",
                self.in_channels
            )));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(NnError::Config(format!("model.dropout must be in [0, 1), got {}", self.dropout)));
        }
        let finite_nonneg = |v: f64| v.is_finite() && v >= 0.0;
        if !finite_nonneg(self.head_init_std) || !(0.0..=1.0).contains(&self.bn_momentum) {
            return Err(NnError::Config(
                "model.head_init_std must be finite and non-negative, model.bn_momentum in [0, 1]".into(),
            ));
        }
        if !(self.lab_loss_weight.is_finite() && self.lab_loss_weight > 0.0) {
            return Err(NnError::Config(format!(
                "model.lab_loss_weight must be positive, got {}",
                self.lab_loss_weight
            )));
        }
        Ok(())
    }
}

/// The keys whose values differ between two configs (TOML texts), as
/// `key: saved A, now B` joined by `; ` (at most 6, then a count), for resume errors.
pub fn toml_differences(saved: &str, now: &str) -> String {
    fn walk(prefix: &str, a: &toml::Value, b: &toml::Value, out: &mut Vec<String>) {
        match (a, b) {
            (toml::Value::Table(ta), toml::Value::Table(tb)) => {
                let keys: std::collections::BTreeSet<&String> = ta.keys().chain(tb.keys()).collect();
                for k in keys {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    match (ta.get(k), tb.get(k)) {
                        (Some(x), Some(y)) => walk(&key, x, y, out),
                        (x, y) => out.push(format!(
                            "{key}: saved {}, now {}",
                            x.map_or("unset".into(), |v| v.to_string()),
                            y.map_or("unset".into(), |v| v.to_string())
                        )),
                    }
                }
            }
            _ if a != b => out.push(format!("{prefix}: saved {a}, now {b}")),
            _ => {}
        }
    }
    let parse = |t: &str| t.parse::<toml::Table>().map(toml::Value::Table);
    let (Ok(a), Ok(b)) = (parse(saved), parse(now)) else { return "unreadable config".into() };
    let mut out = vec![];
    walk("", &a, &b, &mut out);
    let n = out.len();
    out.truncate(6);
    let mut s = out.join("; ");
    if n > 6 {
        s.push_str(&format!("; and {} more", n - 6));
    }
    s
}
