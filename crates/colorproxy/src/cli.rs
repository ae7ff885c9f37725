//! Command-line interface (clap derive).
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "colorproxy",
    version,
    about = "Colorization as a proxy task for visual understanding (Larsson et al., CVPR 2017)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Colour targets (hue/chroma histograms, loss weights, Lab) of an image at given points.
    Targets(TargetsArgs),
    /// Inspect datasets.
    Data {
        #[command(subcommand)]
        what: DataWhat,
    },
    /// The built-in demo: generate scenes, pretrain a colorizer, fine-tune from random and from
    /// colorization, report (the paper's Table 3 in minutes on a CPU).
    Demo(DemoArgs),
    /// Pretrain a network from scratch to predict colour from grayscale.
    Pretrain(PretrainArgs),
    /// Supervised pretraining on class folders (the paper's ImageNet baseline), in a label-space
    /// variant of Table 4: fewer images per class, label noise, random or hierarchical buckets.
    /// Its checkpoint is an --init for `finetune`.
    PretrainSupervised(SupervisedArgs),
    /// Run a recipe of experiments (pretrainings, fine-tunings x seeds) and write its tables and
    /// plots with means, standard deviations and 95% intervals; finished runs are reused.
    Experiment {
        #[command(subcommand)]
        what: ExperimentWhat,
    },
    /// Colorize images with a pretrained network (or measure how well it colorizes: --eval).
    Colorize(ColorizeArgs),
    /// Fine-tune for VOC classification or segmentation with the paper's protocol.
    Finetune(FinetuneArgs),
    /// Evaluate a fine-tuned network (mAP or mIoU).
    Eval(EvalArgs),
    /// Export a backbone as a torchvision state dict (safetensors) that
    /// `torchvision.models.<arch>()` loads with `load_state_dict(strict=True)`.
    Export(ExportArgs),
    /// Layer activations of a network on images (centre crops), as safetensors: the input tensor
    /// and each layer's features.
    Features(FeaturesArgs),
    /// Run a command data-parallel on this machine: N ranks on PyTorch's c10d (Gloo on CPU, NCCL
    /// on GPU), like `torchrun --no-python --nproc-per-node N colorproxy ...`.
    Launch(LaunchArgs),
    /// Analyses of a representation (the paper's section 6.5).
    Analyse {
        #[command(subcommand)]
        what: AnalyseWhat,
    },
    /// Benchmarks against reference implementations, run in the same command.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
}

#[derive(Debug, Args)]
pub struct TargetsArgs {
    /// The image (used as it is: no augmentation).
    #[arg(long)]
    pub image: PathBuf,
    /// A point as Y,X in pixels (repeatable).
    #[arg(long = "point", value_name = "Y,X", required = true)]
    pub points: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Also draw the image, its gray input and the histograms at each point to this PNG.
    #[arg(long, value_name = "OUT")]
    pub png: Option<PathBuf>,
    /// Target constants as a TOML file (defaults: the authors' values).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PretrainArgs {
    /// A built-in preset (presets/*.toml): paper-vgg16, paper-alexnet, paper-resnet152, cpu-small,
    /// cpu-small-lab, cpu-alexnet, cpu-resnet18.
    #[arg(long)]
    pub preset: Option<String>,
    /// A config TOML file (e.g. a run's config.toml).
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
    /// Unlabelled images: a folder (recursive) or a file list.
    #[arg(long)]
    pub data: std::path::PathBuf,
    /// Run folder: config.toml, metrics.jsonl, checkpoints/, loss.png.
    #[arg(long)]
    pub out: std::path::PathBuf,
    /// Total iterations (overrides the config).
    #[arg(long)]
    pub iterations: Option<usize>,
    /// Continue from RUN_DIR/checkpoints/last.* to the same result as an uninterrupted run.
    #[arg(long)]
    pub resume: bool,
    /// Start over in a run folder that holds a run (its checkpoints, metrics and results are
    /// removed); without it such a folder is refused.
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// cpu, cuda or cuda:N (default: cuda if available, else cpu).
    #[arg(long)]
    pub device: Option<String>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Data worker threads (0: all cores).
    #[arg(long)]
    pub workers: Option<usize>,
    /// libtorch threads (0: libtorch's default).
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Debug, Args)]
pub struct ColorizeArgs {
    /// Weights written by pretrain (e.g. RUN_DIR/checkpoints/last.safetensors).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The run's config (default: RUN_DIR/config.toml next to the checkpoint folder).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// An image, or a folder (recursive).
    #[arg(long)]
    pub input: PathBuf,
    /// Output PNG (for one input) or folder (for a folder).
    #[arg(long)]
    pub output: Option<PathBuf>,
    #[arg(long)]
    pub device: Option<String>,
    /// Also write <name>.hue-entropy.png, the entropy of the hue prediction (white: unsure).
    #[arg(long)]
    pub uncertainty: bool,
    /// Write gray | colorized | original (when the input was colour) in one PNG.
    #[arg(long)]
    pub side_by_side: bool,
    /// PSNR and RMSE against the originals, and the same for the plain gray image.
    #[arg(long)]
    pub eval: bool,
    #[arg(long)]
    pub json: bool,
    /// Chroma from its histogram: median, mode or expectation.
    #[arg(long, default_value = "median")]
    pub chroma: String,
    /// Turn off chromatic fading (chroma reduced where the hue prediction is spread out).
    #[arg(long)]
    pub no_fading: bool,
    /// Processing size: the shorter side is resized to this (default: the middle of the
    /// network's training range), the longer side to at most --max-side (default: twice that).
    /// The output always has the input's size.
    #[arg(long)]
    pub short_side: Option<usize>,
    #[arg(long)]
    pub max_side: Option<usize>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum TaskArg {
    /// Classification: VOC2007 multi-label (mAP), or single-label class folders
    /// DATA/<split>/<class>/... (top-1/top-5 accuracy).
    Cls,
    /// VOC2012 semantic segmentation (mIoU).
    Seg,
}

#[derive(Debug, Args)]
pub struct FinetuneArgs {
    pub task: TaskArg,
    /// VOC devkit folder (e.g. VOCdevkit/VOC2012), or for cls a folder of splits with one
    /// sub-folder per class (DATA/train/<class>/*.jpg, ImageNet-style).
    #[arg(long)]
    pub data: PathBuf,
    /// The object classes of a VOC-layout set, one per line (a first `background` line is
    /// skipped). Default: DATA/class_names.txt, else the ImageSets/Main/<class>_<split>.txt files
    /// present, else VOC's 20.
    #[arg(long)]
    pub classes: Option<PathBuf>,
    /// Keep a randomly initialised BN-free backbone (VGG-16) as initialised: no data-dependent
    /// rescaling (on by default for `--init random`, as the paper's random baseline).
    #[arg(long)]
    pub no_rebalance: bool,
    /// `random` (Xavier) or a checkpoint: colorization (RUN_DIR/checkpoints/last.safetensors) or
    /// supervised (torchvision names).
    #[arg(long)]
    pub init: String,
    #[arg(long)]
    pub out: PathBuf,
    /// cls-paper, seg-paper, cls-cpu, seg-cpu (default: <task>-cpu).
    #[arg(long)]
    pub preset: Option<String>,
    /// A fine-tuning config TOML (e.g. a run's config.toml) instead of a preset.
    #[arg(long, conflicts_with = "preset")]
    pub config: Option<PathBuf>,
    /// Train only the layers above this one (VGG-16: conv1_1 ... fc7; AlexNet: conv1 ... fc7;
    /// ResNet: conv1, layer1 ... layer4).
    #[arg(long)]
    pub freeze_until: Option<String>,
    /// Retrain on 100% of the training split with the schedule found by the early-stopping run
    /// in --out (written to OUT/full).
    #[arg(long)]
    pub retrain_full: bool,
    /// Continue an interrupted run from OUT/checkpoints/last.* (to the same result).
    #[arg(long)]
    pub resume: bool,
    /// Start over in a run folder that holds a run (its checkpoints, metrics and results are
    /// removed); without it such a folder is refused.
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// Lift conv1 to RGB and train on colour images.
    #[arg(long)]
    pub color: bool,
    /// Rescale each layer to unit activation variance on a sample of training images.
    #[arg(long)]
    pub rebalance: bool,
    /// Pad convolutions with the ReLU of the previous layer's bias instead of zeros.
    #[arg(long)]
    pub pad_with_bias: bool,
    #[arg(long, default_value = "train")]
    pub train_split: String,
    #[arg(long, default_value = "val")]
    pub eval_split: String,
    /// Skip (and report) malformed samples instead of stopping.
    #[arg(long)]
    pub skip_bad: bool,
    #[arg(long)]
    pub max_iterations: Option<usize>,
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long)]
    pub device: Option<String>,
}

impl FinetuneArgs {
    /// Arguments of a run from random init with every other option at its default (for the
    /// commands that run fine-tunings: the Table 6 runner, experiments, supervised pretraining).
    pub fn new(task: TaskArg, data: &std::path::Path, out: &std::path::Path) -> Self {
        Self {
            task,
            data: data.to_path_buf(),
            classes: None,
            no_rebalance: false,
            init: "random".into(),
            out: out.to_path_buf(),
            preset: None,
            config: None,
            freeze_until: None,
            retrain_full: false,
            resume: false,
            force: false,
            color: false,
            rebalance: false,
            pad_with_bias: false,
            train_split: "train".into(),
            eval_split: "val".into(),
            skip_bad: false,
            max_iterations: None,
            seed: None,
            device: None,
        }
    }
}

#[derive(Debug, Args)]
pub struct SupervisedArgs {
    /// Class folders: DATA/<train-split>/<class>/*.jpg (and DATA/<eval-split>/... for the final
    /// top-1/top-5 of the full label space).
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
    /// A classification preset (sup-cpu, cls-cpu, cls-paper): the backbone, schedule and early
    /// stopping.
    #[arg(long, default_value = "sup-cpu")]
    pub preset: String,
    /// A fine-tuning config TOML instead of the preset.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Keep at most this many training images per class (chosen by the seed).
    #[arg(long)]
    pub per_class: Option<usize>,
    /// Give this fraction of the training images a uniformly random other label (by the seed).
    #[arg(long, default_value_t = 0.0)]
    pub label_noise: f64,
    /// Merge the classes at random into this many labels (by the seed).
    #[arg(long, conflicts_with = "buckets")]
    pub random_buckets: Option<usize>,
    /// Merge the classes into the buckets of a mapping file: one `class bucket` pair per line
    /// (`#` comments; e.g. `data generate --classes 20` writes folders/shape-buckets.txt). Every
    /// class must be mapped, and only classes of the data.
    #[arg(long)]
    pub buckets: Option<PathBuf>,
    #[arg(long, default_value = "train")]
    pub train_split: String,
    #[arg(long, default_value = "val")]
    pub eval_split: String,
    #[arg(long)]
    pub max_iterations: Option<usize>,
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long)]
    pub resume: bool,
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    #[arg(long)]
    pub skip_bad: bool,
    #[arg(long)]
    pub device: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ExperimentWhat {
    /// Run a recipe (experiments/*.toml): every run it lists, then its tables and plots.
    Run(ExperimentArgs),
}

#[derive(Debug, Args)]
pub struct ExperimentArgs {
    /// The recipe (TOML; see experiments/README.md).
    pub recipe: PathBuf,
    /// Output folder: runs/, results.csv, tables.md, report.html, plots.
    #[arg(long)]
    pub out: PathBuf,
    /// Only the runs a table, sweep, pretraining or fine-tuning of this name needs.
    #[arg(long)]
    pub only: Option<String>,
    /// List what would run and what is already done; run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Data set paths for the recipe's named data (NAME=PATH, repeatable), e.g. for paper recipes.
    #[arg(long = "data", value_name = "NAME=PATH")]
    pub data: Vec<String>,
    #[arg(long)]
    pub device: Option<String>,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    pub task: TaskArg,
    /// Weights of a fine-tuning run (RUN_DIR/checkpoints/last.safetensors).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The run's config (default: RUN_DIR/config.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long, default_value = "val")]
    pub split: String,
    #[arg(long)]
    pub json: bool,
    /// Segmentation: write one class-index PNG per image (same size as the image; palette PNG with
    /// the VOC colours, as the devkit's SegmentationClass).
    #[arg(long)]
    pub save_predictions: Option<PathBuf>,
    /// Write results.json, results.md and report.html (per-class scores, the reference row,
    /// segmentation examples) to this folder.
    #[arg(long)]
    pub report: Option<PathBuf>,
    #[arg(long)]
    pub skip_bad: bool,
    #[arg(long)]
    pub device: Option<String>,
}

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
    #[arg(long)]
    pub preset: Option<String>,
    #[arg(long, conflicts_with = "preset")]
    pub config: Option<PathBuf>,
    /// Cap on each run's iterations (the schedule scales with it).
    #[arg(long)]
    pub max_iterations: Option<usize>,
    #[arg(long, default_value = "train")]
    pub train_split: String,
    #[arg(long, default_value = "val")]
    pub eval_split: String,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub device: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ProbeMethod {
    Knn,
    Linear,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    #[arg(long)]
    pub checkpoint: PathBuf,
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The checkpoint is a torchvision state dict of this architecture.
    #[arg(long)]
    pub arch: Option<String>,
    /// Class folders (DATA/train/<class>/...) or a VOC devkit.
    #[arg(long)]
    pub data: PathBuf,
    /// The layer whose globally pooled features are probed (e.g. fc7, conv5_3, layer4).
    #[arg(long, default_value = "fc7")]
    pub layer: String,
    #[arg(long, value_enum, default_value = "knn")]
    pub method: ProbeMethod,
    /// Neighbours (kNN).
    #[arg(long, default_value_t = 20)]
    pub k: usize,
    #[arg(long, default_value = "train")]
    pub train_split: String,
    #[arg(long, default_value = "val")]
    pub split: String,
    /// Shorter side scaled to this, centre square crop (a multiple of 32).
    #[arg(long, default_value_t = 224)]
    pub size: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long)]
    pub json: bool,
    #[arg(long)]
    pub device: Option<String>,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    #[arg(long)]
    pub checkpoint: PathBuf,
    #[arg(long)]
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
    #[arg(long)]
    pub compare_config: Option<PathBuf>,
    /// At most this many images.
    #[arg(long, default_value_t = 500)]
    pub images: usize,
    /// Shorter side scaled to this, centre square crop (a multiple of 32).
    #[arg(long, default_value_t = 224)]
    pub size: usize,
    /// Side of each patch in the pictures (pixels).
    #[arg(long, default_value_t = 96)]
    pub cell: u32,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub force: bool,
    #[arg(long)]
    pub device: Option<String>,
}

#[derive(Debug, Args)]
pub struct ShiftArgs {
    /// The first network (e.g. the pretrained checkpoint).
    #[arg(long)]
    pub before: PathBuf,
    #[arg(long)]
    pub before_config: Option<PathBuf>,
    /// The second network (e.g. the fine-tuned checkpoint), same architecture and width.
    #[arg(long)]
    pub after: PathBuf,
    #[arg(long)]
    pub after_config: Option<PathBuf>,
    /// Both checkpoints are torchvision state dicts of this architecture.
    #[arg(long)]
    pub arch: Option<String>,
    /// Images (held-out ones): a folder or a file list.
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
    /// At most this many images (sorted order).
    #[arg(long, default_value_t = 50)]
    pub images: usize,
    /// Positions sampled per image and layer (all of a smaller map).
    #[arg(long, default_value_t = 64)]
    pub positions: usize,
    /// Shorter side scaled to this, centre square crop (a multiple of 32).
    #[arg(long, default_value_t = 224)]
    pub size: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long)]
    pub force: bool,
    #[arg(long)]
    pub device: Option<String>,
}

#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// Processes (ranks) to start: one per GPU, or a few on CPU.
    #[arg(long)]
    pub nproc: usize,
    /// The rendezvous port on 127.0.0.1 (default: a free one).
    #[arg(long)]
    pub master_port: Option<u16>,
    /// The colorproxy command each rank runs, after `--` (e.g. `-- pretrain --preset cpu-small ...`).
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
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
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "torchvision")]
    pub format: ExportFormat,
    /// Lift the gray conv1 to 3 input channels (each the gray filter / 3), so a stock model loads
    /// the file and a gray image given as RGB gives the same features.
    #[arg(long)]
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
    #[arg(long)]
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
    #[arg(long)]
    pub force: bool,
    #[arg(long)]
    pub device: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum DataWhat {
    /// Decode every image: how many are usable, what was skipped and why, sizes, achromatic share.
    Check(DataCheckArgs),
    /// Generate procedural scenes: DIR/unlabelled (pretraining), DIR/voc (a VOC-style set) and
    /// DIR/folders (single-label class folders, DIR/folders/{train,val}/<class>/*.jpg).
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[arg(long)]
    pub out: PathBuf,
    /// Unlabelled scenes (the labelled set gets a quarter as many training and a tenth as many
    /// validation scenes).
    #[arg(long, default_value_t = 2000)]
    pub images: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Classes of the single-label class folders, 2 to 20: up to 5 are shapes (named after VOC
    /// classes), more are shape x style (e.g. disc-striped), with DIR/folders/shape-buckets.txt
    /// mapping each class to its shape (hierarchical buckets for `pretrain-supervised`).
    #[arg(long, default_value_t = 5)]
    pub classes: usize,
    /// Training images per class of the class folders (default: images / 20).
    #[arg(long)]
    pub per_class_train: Option<usize>,
    /// Validation images per class (default: images / 80).
    #[arg(long)]
    pub per_class_val: Option<usize>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A shortened run (same code path, far fewer images and iterations), for tests.
    #[arg(long)]
    pub quick: bool,
}

#[derive(Debug, Args)]
pub struct DataCheckArgs {
    /// Image folder (recursive) or file list.
    pub dir: PathBuf,
    #[arg(long)]
    pub json: bool,
    /// Mean chroma below which an image counts as achromatic.
    #[arg(long, default_value_t = 0.02)]
    pub achromatic_threshold: f32,
    /// Skip images whose shorter side is below this.
    #[arg(long, default_value_t = 32)]
    pub min_side: u32,
}

#[derive(Debug, Subcommand)]
pub enum BenchWhat {
    /// Pretraining data pipeline throughput at 1 and 2 threads, and the ratio to the Python
    /// reference (bench/data_ref.py) when Python with Pillow and numpy is available.
    Data(BenchDataArgs),
    /// Pretraining images/s (compute only and end to end) against the PyTorch reference
    /// (bench/pretrain_ref.py: same network, loss and batch; DataLoader with 2 workers).
    Pretrain(BenchPretrainArgs),
    /// One training step on a device against the same step on the CPU (float32, TF32 off):
    /// relative error of the loss and of every parameter's gradient. Exits non-zero above --tol.
    Parity(BenchParityArgs),
    /// All-reduce bandwidth of a gradient-sized buffer (a preset's parameter count) between real
    /// processes on c10d (Gloo over loopback on CPU, NCCL on GPUs), in DDP's 25 MiB buckets.
    Allreduce(BenchAllreduceArgs),
}

#[derive(Debug, Args)]
pub struct BenchAllreduceArgs {
    /// Ranks to launch (when not already inside a job).
    #[arg(long, default_value_t = 2)]
    pub nproc: usize,
    /// The pretraining preset whose trainable parameter count sets the size.
    #[arg(long, default_value = "paper-vgg16")]
    pub preset: String,
    /// Elements to all-reduce instead of the preset's parameter count.
    #[arg(long)]
    pub numel: Option<i64>,
    /// Timed all-reduces (after one checked warm-up).
    #[arg(long, default_value_t = 3)]
    pub iters: usize,
    /// cpu (Gloo) or cuda (NCCL, one GPU per rank).
    #[arg(long)]
    pub device: Option<String>,
}

#[derive(Debug, Args)]
pub struct BenchParityArgs {
    #[arg(long, default_value = "cpu-small")]
    pub preset: String,
    /// Images for the batch.
    #[arg(long, default_value = "../shared/data/photos/train")]
    pub images: PathBuf,
    /// The device to check (default: cuda if available, else cpu).
    #[arg(long)]
    pub device: Option<String>,
    #[arg(long, default_value_t = 1e-3)]
    pub tol: f64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchPretrainArgs {
    #[arg(long, default_value = "cpu-small")]
    pub preset: String,
    /// Image folder for the end-to-end measurement.
    #[arg(long, default_value = "../shared/data/photos/train")]
    pub images: PathBuf,
    #[arg(long, default_value_t = 30)]
    pub steps: usize,
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// libtorch threads, the same on both sides.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Data workers (threads here, DataLoader processes in the reference; default: --threads).
    #[arg(long)]
    pub workers: Option<usize>,
    #[arg(long)]
    pub device: Option<String>,
    #[arg(long)]
    pub python: Option<PathBuf>,
    #[arg(long)]
    pub no_reference: bool,
    #[arg(long)]
    pub json: bool,
    /// Data-parallel scaling instead: the preset's pretraining as 1 process (--threads threads)
    /// and as N ranks on Gloo (--threads / N each), images/s and their ratio.
    #[arg(long, default_value_t = 1)]
    pub nproc: usize,
}

#[derive(Debug, Args)]
pub struct BenchDataArgs {
    /// Image folder (recursive) or file list.
    #[arg(long)]
    pub images: PathBuf,
    /// Images to process per measurement.
    #[arg(long, default_value_t = 200)]
    pub count: usize,
    /// Crop side (the paper: 352).
    #[arg(long, default_value_t = 352)]
    pub size: u32,
    #[arg(long, default_value_t = 352)]
    pub short_min: u32,
    #[arg(long, default_value_t = 600)]
    pub short_max: u32,
    #[arg(long, default_value_t = 128)]
    pub points: usize,
    #[arg(long, default_value_t = 96)]
    pub border: usize,
    /// Python interpreter for the reference (default: the project's .venv, else python3).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Skip the Python reference.
    #[arg(long)]
    pub no_reference: bool,
    #[arg(long)]
    pub json: bool,
}

/// Parses `Y,X` into pixel coordinates.
pub fn parse_point(s: &str) -> anyhow::Result<(usize, usize)> {
    let (y, x) =
        s.split_once(',').ok_or_else(|| anyhow::anyhow!("point {s:?}: expected Y,X (e.g. 120,64)"))?;
    let p = |v: &str| -> anyhow::Result<usize> {
        v.trim()
            .parse::<usize>()
            .map_err(|_| anyhow::anyhow!("point {s:?}: {v:?} is not a non-negative integer"))
    };
    Ok((p(y)?, p(x)?))
}
