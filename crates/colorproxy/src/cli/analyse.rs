//! Arguments of the analyses (section 6.5 of the paper), export and features.
use std::path::PathBuf;

use clap::{Args, Subcommand};
use colorproxy_run::request::{FrozenRequest, ProbeRequest, ShiftRequest, TopRequest};

use super::{DeviceArg, TaskArg};

#[derive(Debug, Subcommand)]
pub enum AnalyseWhat {
    /// Feature shift (Fig. 3): per layer and channel, the correlation of the channel's pre-ReLU
    /// activation in two networks (e.g. before and after fine-tuning) at the same positions of the
    /// same images; shift.json, shift.csv (every channel) and a chart (median and IQR per layer).
    Shift(ShiftArgs),
    /// Top activations (Fig. 5, Fig. 2): for chosen features of a layer, the strongest
    /// activations over the images (one per image), shown as receptive-field patches in original
    /// colour; --compare puts the same features of a second network (e.g. fine-tuned) beside them.
    Top(TopArgs),
    /// Probes of frozen features: k-nearest neighbours (cosine) or a linear classifier (logistic
    /// regression) on a layer's globally pooled features, trained on one split of class folders or
    /// a VOC devkit and scored on another (top-1/top-5 or mAP).
    Probe(ProbeArgs),
    /// Which layers must be fine-tuned (Table 6): fine-tuning with nothing / the top layers / the
    /// upper half / everything trainable, for each initialisation and seed; a table of means,
    /// standard deviations and every seed. Finished runs are reused, interrupted ones resumed.
    Frozen(FrozenArgs),
}

#[derive(Debug, Args)]
pub struct FrozenArgs {
    pub task: TaskArg,
    /// A VOC devkit (or class folders, for cls).
    #[arg(long)]
    pub data: PathBuf,
    /// Initialisations: random or a checkpoint (repeatable).
    #[arg(long = "init", required = true)]
    pub inits: Vec<String>,
    /// Seeds, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    pub seeds: Vec<u64>,
    /// Fine-tuning preset (cls-cpu, seg-cpu, cls-paper, seg-paper; default: <task>-cpu).
    #[arg(long)]
    pub preset: Option<String>,
    /// A fine-tuning config TOML instead of the preset.
    #[arg(long, conflicts_with = "preset")]
    pub config: Option<PathBuf>,
    /// Cap on each run's iterations (the schedule scales with it).
    #[arg(long)]
    pub max_iterations: Option<usize>,
    /// The split trained on (early stopping holds out part of it): VOC `ImageSets/.../<SPLIT>.txt`
    /// or the class-folder subfolder `DATA/<SPLIT>/`.
    #[arg(long, default_value = "train")]
    pub train_split: String,
    /// The split scored at the end (the reported result), in the layout of --train-split.
    #[arg(long, default_value = "val")]
    pub eval_split: String,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub device: DeviceArg,
}

impl From<FrozenArgs> for FrozenRequest {
    fn from(a: FrozenArgs) -> Self {
        Self {
            task: a.task.into(),
            data: a.data,
            inits: a.inits,
            seeds: a.seeds,
            preset: a.preset,
            config: a.config,
            max_iterations: a.max_iterations,
            train_split: a.train_split,
            eval_split: a.eval_split,
            out: a.out,
            device: a.device.device,
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ProbeMethod {
    Knn,
    Linear,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The network: a run's weights (e.g. RUN_DIR/checkpoints/last.safetensors).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The run's config (default: RUN_DIR/config.toml beside the checkpoint).
    #[arg(long = "run-config", alias = "config", value_name = "CONFIG")]
    pub config: Option<PathBuf>,
    /// The checkpoint is a torchvision state dict of this architecture.
    #[arg(long)]
    pub arch: Option<String>,
    /// Class folders (DATA/train/<class>/...) or a VOC devkit.
    #[arg(long)]
    pub data: PathBuf,
    /// The layers whose globally pooled features are probed, each on its own (e.g. fc7, or
    /// conv1_2,conv3_3,conv5_3,fc7): one result per layer.
    #[arg(long = "layer", alias = "layers", value_delimiter = ',', default_value = "fc7")]
    pub layers: Vec<String>,
    /// Probe the checkpoint's architecture untrained instead: its run config's network with the
    /// initial weights of --seed (the random baseline of the same network).
    #[arg(long)]
    pub random_init: bool,
    /// The probe: knn (cosine nearest neighbours, --k of them) or linear (logistic regression).
    #[arg(long, value_enum, default_value = "knn")]
    pub method: ProbeMethod,
    /// Neighbours (kNN).
    #[arg(long, default_value_t = 20)]
    pub k: usize,
    /// The split trained on (early stopping holds out part of it): VOC `ImageSets/.../<SPLIT>.txt`
    /// or the class-folder subfolder `DATA/<SPLIT>/`.
    #[arg(long, default_value = "train")]
    pub train_split: String,
    /// The split scored: VOC `ImageSets/.../<SPLIT>.txt` or the class-folder subfolder `DATA/<SPLIT>/`.
    #[arg(long, default_value = "val")]
    pub split: String,
    /// Shorter side scaled to this, centre square crop (a multiple of 32).
    #[arg(long, default_value_t = 224)]
    pub size: usize,
    /// Seed of the untrained network (--random-init) and of the linear probe's training.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the result as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub device: DeviceArg,
}

impl From<ProbeArgs> for ProbeRequest {
    fn from(a: ProbeArgs) -> Self {
        Self {
            checkpoint: a.checkpoint,
            config: a.config,
            arch: a.arch,
            data: a.data,
            layers: a.layers,
            random_init: a.random_init,
            method: a.method.into(),
            k: a.k,
            train_split: a.train_split,
            split: a.split,
            size: a.size,
            seed: a.seed,
            json: a.json,
            device: a.device.device,
        }
    }
}

#[derive(Debug, Args)]
pub struct TopArgs {
    /// The network: a run's weights (e.g. RUN_DIR/checkpoints/last.safetensors).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The run's config (default: RUN_DIR/config.toml beside the checkpoint).
    #[arg(long = "run-config", alias = "config", value_name = "CONFIG")]
    pub config: Option<PathBuf>,
    /// The checkpoints are torchvision state dicts of this architecture.
    #[arg(long)]
    pub arch: Option<String>,
    /// The layer (e.g. fc7, conv5_3; ResNet: layer1 ... layer4).
    #[arg(long)]
    pub layer: String,
    /// Images: a folder or a file list.
    #[arg(long)]
    pub data: PathBuf,
    /// Features spread evenly over the layer's channels (unless --ids).
    #[arg(long, default_value_t = 8)]
    pub features: usize,
    /// These features (channel indices), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub ids: Vec<i64>,
    /// Top activations per feature.
    #[arg(long, default_value_t = 8)]
    pub top: usize,
    /// A second network of the same architecture (e.g. after fine-tuning).
    #[arg(long)]
    pub compare: Option<PathBuf>,
    /// The run config of --compare (default: beside the checkpoint).
    #[arg(long)]
    pub compare_config: Option<PathBuf>,
    /// At most this many images.
    #[arg(long = "limit", alias = "images", value_name = "N", default_value_t = 500)]
    pub images: usize,
    /// Shorter side scaled to this, centre square crop (a multiple of 32).
    #[arg(long, default_value_t = 224)]
    pub size: usize,
    /// Side of each patch in the pictures (pixels).
    #[arg(long, default_value_t = 96)]
    pub cell: u32,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace the output if it exists.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub device: DeviceArg,
}

impl From<TopArgs> for TopRequest {
    fn from(a: TopArgs) -> Self {
        Self {
            checkpoint: a.checkpoint,
            config: a.config,
            arch: a.arch,
            layer: a.layer,
            data: a.data,
            features: a.features,
            ids: a.ids,
            top: a.top,
            compare: a.compare,
            compare_config: a.compare_config,
            images: a.images,
            size: a.size,
            cell: a.cell,
            out: a.out,
            force: a.force,
            device: a.device.device,
        }
    }
}

#[derive(Debug, Args)]
pub struct ShiftArgs {
    /// The first network (e.g. the pretrained checkpoint).
    #[arg(long)]
    pub before: PathBuf,
    /// The run config of --before (default: beside the checkpoint).
    #[arg(long)]
    pub before_config: Option<PathBuf>,
    /// The second network (e.g. the fine-tuned checkpoint), same architecture and width.
    #[arg(long)]
    pub after: PathBuf,
    /// The run config of --after (default: beside the checkpoint).
    #[arg(long)]
    pub after_config: Option<PathBuf>,
    /// Both checkpoints are torchvision state dicts of this architecture.
    #[arg(long)]
    pub arch: Option<String>,
    /// Images (held-out ones): a folder or a file list.
    #[arg(long)]
    pub data: PathBuf,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// At most this many images (sorted order).
    #[arg(long = "limit", alias = "images", value_name = "N", default_value_t = 50)]
    pub images: usize,
    /// Positions sampled per image and layer (all of a smaller map).
    #[arg(long, default_value_t = 64)]
    pub positions: usize,
    /// Shorter side scaled to this, centre square crop (a multiple of 32).
    #[arg(long, default_value_t = 224)]
    pub size: usize,
    /// Seed of the sampled positions.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Replace the output if it exists.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub device: DeviceArg,
}

impl From<ShiftArgs> for ShiftRequest {
    fn from(a: ShiftArgs) -> Self {
        Self {
            before: a.before,
            before_config: a.before_config,
            after: a.after,
            after_config: a.after_config,
            arch: a.arch,
            data: a.data,
            out: a.out,
            images: a.images,
            positions: a.positions,
            size: a.size,
            seed: a.seed,
            force: a.force,
            device: a.device.device,
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ExportFormat {
    /// torchvision's parameter names and shapes (VGG-16, AlexNet, ResNet-18/50/152).
    Torchvision,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A pretraining or fine-tuning checkpoint (RUN_DIR/checkpoints/*.safetensors).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The run's config (default: RUN_DIR/config.toml).
    #[arg(long = "run-config", alias = "config", value_name = "CONFIG")]
    pub config: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "torchvision")]
    pub format: ExportFormat,
    /// Lift the gray conv1 to 3 input channels (each the gray filter / 3), so a stock model loads
    /// the file and a gray image given as RGB gives the same features.
    #[arg(long = "color", alias = "rgb")]
    pub rgb: bool,
    /// The state dict to write (.safetensors).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing file.
    #[arg(long)]
    pub force: bool,
    /// Seed of the classifier's torchvision initialisation (when the checkpoint has none).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct FeaturesArgs {
    /// A colorproxy checkpoint, or a torchvision state dict with --arch.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The run's config (default: RUN_DIR/config.toml).
    #[arg(long = "run-config", alias = "config", value_name = "CONFIG")]
    pub config: Option<PathBuf>,
    /// The checkpoint is a torchvision state dict of this architecture (vgg16, alexnet,
    /// resnet18, resnet50, resnet152).
    #[arg(long)]
    pub arch: Option<String>,
    /// Images: a folder (recursive) or a file list.
    #[arg(long)]
    pub data: PathBuf,
    /// Layers, comma-separated (e.g. conv5_3,fc7; ResNet: conv1, layer1 ... layer4).
    #[arg(long, value_delimiter = ',', required = true)]
    pub layers: Vec<String>,
    /// Shorter side scaled to this, then the centre square crop of this side (pixels).
    #[arg(long, default_value_t = 224)]
    pub size: usize,
    /// At most this many images (in sorted order).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Output .safetensors: `input` [N, C, S, S] (the network input) and one tensor per layer
    /// [N, C, h, w]; the images, in order, are listed in OUT with the extension .txt.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace the output if it exists.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub device: DeviceArg,
}
