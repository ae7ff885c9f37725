//! Arguments of the training commands: pretrain, finetune, pretrain-supervised, eval, experiment,
//! demo, data generate; each converts into its library request.
use std::path::PathBuf;

use clap::{Args, Subcommand};
use colorproxy_run::request::{
    DemoRequest, EvalRequest, ExperimentRequest, FinetuneRequest, GenerateRequest, PretrainRequest,
    SupervisedRequest,
};

use super::{DeviceArg, TrainFlags};

#[derive(Debug, Args)]
pub struct PretrainArgs {
    /// A built-in preset (presets/*.toml): gpu-vgg16, gpu-resnet152 (one 80 GB GPU), paper-vgg16,
    /// paper-alexnet, paper-resnet152 (the paper's batch of 8), cpu-small (default), cpu-small-lab,
    /// cpu-alexnet, cpu-resnet18.
    #[arg(long)]
    pub preset: Option<String>,
    /// A config TOML file (e.g. a run's config.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Unlabelled images: a folder (recursive) or a file list.
    #[arg(long)]
    pub data: PathBuf,
    /// Run folder: config.toml, metrics.jsonl, checkpoints/, loss.png.
    #[arg(long)]
    pub out: PathBuf,
    /// Total iterations (overrides the config; the learning-rate drops and snapshots keep
    /// their fraction of the run).
    #[arg(long)]
    pub iterations: Option<usize>,
    #[command(flatten)]
    pub train: TrainFlags,
    #[command(flatten)]
    pub device: DeviceArg,
    /// Seed of the initialisation, data order, augmentation and points.
    #[arg(long)]
    pub seed: Option<u64>,
    /// libtorch threads (0: libtorch's default).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print the plan (total batch, epochs over the data, estimated time on the device) and
    /// run nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl From<PretrainArgs> for PretrainRequest {
    fn from(a: PretrainArgs) -> Self {
        Self {
            preset: a.preset,
            config: a.config,
            data: a.data,
            out: a.out,
            iterations: a.iterations,
            resume: a.train.resume(),
            force: a.train.force,
            device: a.device.device,
            seed: a.seed,
            batch_size: a.train.batch_size,
            lr: a.train.lr,
            set: a.train.set,
            workers: a.train.workers,
            threads: a.threads,
            dry_run: a.dry_run,
        }
    }
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
    /// Run folder: config.toml, metrics.jsonl, schedule.json, checkpoints/, results.json, report.html.
    #[arg(long)]
    pub out: PathBuf,
    /// cls-paper, seg-paper (the paper's protocol; one GPU), cls-cpu, seg-cpu. Default: <task>-paper
    /// for a full-width init (paper or GPU pretraining, torchvision), else <task>-cpu.
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
    #[command(flatten)]
    pub train: TrainFlags,
    /// Lift conv1 to RGB and train on colour images.
    #[arg(long)]
    pub color: bool,
    /// Rescale each layer to unit activation variance on a sample of training images.
    #[arg(long)]
    pub rebalance: bool,
    /// Pad convolutions with the ReLU of the previous layer's bias instead of zeros.
    #[arg(long)]
    pub pad_with_bias: bool,
    /// The split trained on (early stopping holds out part of it): VOC `ImageSets/.../<SPLIT>.txt`
    /// or the class-folder subfolder `DATA/<SPLIT>/`.
    #[arg(long, default_value = "train")]
    pub train_split: String,
    /// The split scored at the end (the reported result), in the layout of --train-split.
    #[arg(long, default_value = "val")]
    pub eval_split: String,
    /// Skip (and report) malformed samples instead of stopping.
    #[arg(long)]
    pub skip_bad: bool,
    /// Cap on the iterations (the early-stopping protocol scales with it).
    #[arg(long = "iterations", alias = "max-iterations", value_name = "N")]
    pub max_iterations: Option<usize>,
    /// Seed of the initialisation, held-out split, data order and augmentation.
    #[arg(long)]
    pub seed: Option<u64>,
    #[command(flatten)]
    pub device: DeviceArg,
}

impl From<FinetuneArgs> for FinetuneRequest {
    fn from(a: FinetuneArgs) -> Self {
        Self {
            task: a.task.into(),
            data: a.data,
            classes: a.classes,
            no_rebalance: a.no_rebalance,
            init: a.init,
            out: a.out,
            preset: a.preset,
            config: a.config,
            freeze_until: a.freeze_until,
            retrain_full: a.retrain_full,
            resume: a.train.resume(),
            force: a.train.force,
            color: a.color,
            rebalance: a.rebalance,
            pad_with_bias: a.pad_with_bias,
            train_split: a.train_split,
            eval_split: a.eval_split,
            skip_bad: a.skip_bad,
            max_iterations: a.max_iterations,
            seed: a.seed,
            device: a.device.device,
            batch_size: a.train.batch_size,
            lr: a.train.lr,
            workers: a.train.workers,
            set: a.train.set,
        }
    }
}

#[derive(Debug, Args)]
pub struct SupervisedArgs {
    /// Class folders: DATA/<train-split>/<class>/*.jpg (and DATA/<eval-split>/... for the final
    /// top-1/top-5 of the full label space).
    #[arg(long)]
    pub data: PathBuf,
    /// Run folder: config.toml, metrics.jsonl, checkpoints/ (an --init for finetune), results.json.
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
    /// The split trained on (early stopping holds out part of it): VOC `ImageSets/.../<SPLIT>.txt`
    /// or the class-folder subfolder `DATA/<SPLIT>/`.
    #[arg(long, default_value = "train")]
    pub train_split: String,
    /// The split scored at the end (the reported result), in the layout of --train-split.
    #[arg(long, default_value = "val")]
    pub eval_split: String,
    /// Cap on the iterations (the early-stopping protocol scales with it).
    #[arg(long = "iterations", alias = "max-iterations", value_name = "N")]
    pub max_iterations: Option<usize>,
    /// Seed of the initialisation, label-space variant, data order and augmentation.
    #[arg(long)]
    pub seed: Option<u64>,
    #[command(flatten)]
    pub train: TrainFlags,
    /// Skip (and report) malformed samples instead of stopping.
    #[arg(long)]
    pub skip_bad: bool,
    #[command(flatten)]
    pub device: DeviceArg,
}

impl From<SupervisedArgs> for SupervisedRequest {
    fn from(a: SupervisedArgs) -> Self {
        Self {
            data: a.data,
            out: a.out,
            preset: a.preset,
            config: a.config,
            per_class: a.per_class,
            label_noise: a.label_noise,
            random_buckets: a.random_buckets,
            buckets: a.buckets,
            train_split: a.train_split,
            eval_split: a.eval_split,
            max_iterations: a.max_iterations,
            seed: a.seed,
            resume: a.train.resume(),
            force: a.train.force,
            skip_bad: a.skip_bad,
            device: a.device.device,
            batch_size: a.train.batch_size,
            lr: a.train.lr,
            workers: a.train.workers,
            set: a.train.set,
        }
    }
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
    /// Runs side by side in this process, each on its own thread(s): each run uses its config's
    /// `threads`, so give each its share (`set = { threads = N }` in the recipe); a run at
    /// libtorch's default (`threads = 0`) runs alone while the others wait. Other processes may
    /// run the same recipe into the same --out too.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub workers: u32,
    #[command(flatten)]
    pub device: DeviceArg,
}

impl From<ExperimentArgs> for ExperimentRequest {
    fn from(a: ExperimentArgs) -> Self {
        Self {
            recipe: a.recipe,
            out: a.out,
            only: a.only,
            dry_run: a.dry_run,
            data: a.data,
            device: a.device.device,
            workers: a.workers as usize,
        }
    }
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    pub task: TaskArg,
    /// Weights of a fine-tuning run (RUN_DIR/checkpoints/last.safetensors).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The run's config (default: RUN_DIR/config.toml).
    #[arg(long = "run-config", alias = "config", value_name = "CONFIG")]
    pub config: Option<PathBuf>,
    /// The labelled data: a VOC devkit folder (e.g. VOCdevkit/VOC2012) or class folders.
    #[arg(long)]
    pub data: PathBuf,
    /// The split scored: VOC `ImageSets/.../<SPLIT>.txt` or the class-folder subfolder `DATA/<SPLIT>/`.
    #[arg(long, default_value = "val")]
    pub split: String,
    /// Print the result as one JSON object instead of text.
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
    /// Skip (and report) malformed samples instead of stopping.
    #[arg(long)]
    pub skip_bad: bool,
    #[command(flatten)]
    pub device: DeviceArg,
}

impl From<EvalArgs> for EvalRequest {
    fn from(a: EvalArgs) -> Self {
        Self {
            task: a.task.into(),
            checkpoint: a.checkpoint,
            config: a.config,
            data: a.data,
            split: a.split,
            json: a.json,
            save_predictions: a.save_predictions,
            report: a.report,
            skip_bad: a.skip_bad,
            device: a.device.device,
        }
    }
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Unlabelled scenes (the labelled set gets a quarter as many training and a tenth as many
    /// validation scenes).
    #[arg(long, default_value_t = 2000)]
    pub images: usize,
    /// Seed of the generated scenes (the same seed, the same files).
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
    /// Training scenes of the VOC-style set (default: images / 4).
    #[arg(long)]
    pub voc_train: Option<usize>,
    /// Validation scenes of the VOC-style set (default: images / 10). The scenes follow the
    /// training scenes, so a larger count keeps the first ones.
    #[arg(long)]
    pub voc_val: Option<usize>,
}

impl From<GenerateArgs> for GenerateRequest {
    fn from(a: GenerateArgs) -> Self {
        Self {
            out: a.out,
            images: a.images,
            seed: a.seed,
            classes: a.classes,
            per_class_train: a.per_class_train,
            per_class_val: a.per_class_val,
            voc_train: a.voc_train,
            voc_val: a.voc_val,
        }
    }
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Output folder: data/, pretrain/, the fine-tuning runs, results.json, report.html.
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
    /// Seed of the scenes, the pretraining and the fine-tunings.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A shortened run (same code path, far fewer images and iterations), for tests.
    #[arg(long)]
    pub quick: bool,
    /// cpu (the default: the demo is sized for CPUs), cuda or cuda:N.
    #[arg(long)]
    pub device: Option<String>,
}

impl From<DemoArgs> for DemoRequest {
    fn from(a: DemoArgs) -> Self {
        Self { out: a.out, seed: a.seed, quick: a.quick, device: a.device }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum TaskArg {
    /// Classification: VOC2007 multi-label (mAP), or single-label class folders
    /// DATA/<split>/<class>/... (top-1/top-5 accuracy).
    Cls,
    /// VOC2012 semantic segmentation (mIoU).
    Seg,
}
