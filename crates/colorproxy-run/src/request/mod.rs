//! Typed run requests: what a command asks for, resolved by the library into configs and runs.
//! The command line (clap) fills them; so can any program. No clap types here.
pub mod analyse;
pub mod bench;

use std::path::PathBuf;

pub use colorproxy_nn::run_dir::Resume;
use colorproxy_nn::transfer::Task;

pub use analyse::{FrozenRequest, ProbeMethod, ProbeRequest, ShiftRequest, TopRequest};
pub use bench::{
    BenchAllreduceRequest, BenchCostRequest, BenchDataRequest, BenchParityRequest, BenchPretrainRequest,
};

/// Colorization pretraining (`colorproxy pretrain`).
#[derive(Debug, Clone)]
pub struct PretrainRequest {
    /// A built-in preset (presets/*.toml): gpu-vgg16, gpu-resnet152 (one 80 GB GPU), paper-vgg16,
    /// paper-alexnet, paper-resnet152 (the paper's batch of 8), cpu-small (default), cpu-small-lab,
    /// cpu-alexnet, cpu-resnet18.
    pub preset: Option<String>,
    /// A config TOML file (e.g. a run's config.toml).
    pub config: Option<PathBuf>,
    /// Unlabelled images: a folder (recursive) or a file list.
    pub data: PathBuf,
    /// Run folder: config.toml, metrics.jsonl, checkpoints/, loss.png.
    pub out: PathBuf,
    /// Total iterations (overrides the config).
    pub iterations: Option<usize>,
    /// Continue from the folder's newest checkpoint to the same result as an uninterrupted run
    /// (`Auto`: when there is one, else start fresh).
    pub resume: Resume,
    /// Start over in a run folder that holds a run (its checkpoints, metrics and results are
    /// removed); without it such a folder is refused.
    pub force: bool,
    /// cpu, cuda or cuda:N (default: cuda if available, else cpu).
    pub device: Option<String>,
    pub seed: Option<u64>,
    /// Images per step and process (the job's total batch is world size x this).
    pub batch_size: Option<usize>,
    /// The learning rate, used as given (the batch rule is off for it).
    pub lr: Option<f64>,
    /// Config overrides `KEY=VALUE` (dotted keys, TOML values), applied last.
    pub set: Vec<String>,
    /// Data worker threads (0: all cores).
    pub workers: Option<usize>,
    /// libtorch threads (0: libtorch's default).
    pub threads: Option<usize>,
    /// Print the plan (total batch, epochs over the data, estimated time) and run nothing.
    pub dry_run: bool,
}

impl PretrainRequest {
    /// A request with the defaults of `colorproxy pretrain --data DATA --out OUT` (the cpu-small
    /// preset, a fresh run).
    pub fn new(data: &std::path::Path, out: &std::path::Path) -> Self {
        Self {
            preset: None,
            config: None,
            data: data.to_path_buf(),
            out: out.to_path_buf(),
            iterations: None,
            resume: Resume::No,
            force: false,
            device: None,
            seed: None,
            batch_size: None,
            lr: None,
            set: vec![],
            workers: None,
            threads: None,
            dry_run: false,
        }
    }
}

/// Fine-tuning for classification or segmentation (`colorproxy finetune`).
#[derive(Debug, Clone)]
pub struct FinetuneRequest {
    pub task: Task,
    /// VOC devkit folder (e.g. VOCdevkit/VOC2012), or for cls a folder of splits with one
    /// sub-folder per class (`DATA/train/<class>/*.jpg`, ImageNet-style).
    pub data: PathBuf,
    /// The object classes of a VOC-layout set, one per line (a first `background` line is
    /// skipped). Default: DATA/class_names.txt, else the `ImageSets/Main/<class>_<split>.txt` files
    /// present, else VOC's 20.
    pub classes: Option<PathBuf>,
    /// Keep a randomly initialised BN-free backbone (VGG-16) as initialised: no data-dependent
    /// rescaling (on by default for `--init random`, as the paper's random baseline).
    pub no_rebalance: bool,
    /// `random` (Xavier) or a checkpoint: colorization (RUN_DIR/checkpoints/last.safetensors) or
    /// supervised (torchvision names).
    pub init: String,
    pub out: PathBuf,
    /// cls-paper, seg-paper (the paper's protocol; one GPU), cls-cpu, seg-cpu. Default: `<task>-paper`
    /// for a full-width init (paper or GPU pretraining, torchvision), else `<task>-cpu`.
    pub preset: Option<String>,
    /// A fine-tuning config TOML (e.g. a run's config.toml) instead of a preset.
    pub config: Option<PathBuf>,
    /// Train only the layers above this one (VGG-16: conv1_1 ... fc7; AlexNet: conv1 ... fc7;
    /// ResNet: conv1, layer1 ... layer4).
    pub freeze_until: Option<String>,
    /// Retrain on 100% of the training split with the schedule found by the early-stopping run
    /// in --out (written to OUT/full).
    pub retrain_full: bool,
    /// Continue an interrupted run from its newest checkpoint (to the same result); `Auto`: when
    /// there is one, else start fresh.
    pub resume: Resume,
    /// Start over in a run folder that holds a run (its checkpoints, metrics and results are
    /// removed); without it such a folder is refused.
    pub force: bool,
    /// Lift conv1 to RGB and train on colour images.
    pub color: bool,
    /// Rescale each layer to unit activation variance on a sample of training images.
    pub rebalance: bool,
    /// Pad convolutions with the ReLU of the previous layer's bias instead of zeros.
    pub pad_with_bias: bool,
    pub train_split: String,
    pub eval_split: String,
    /// Skip (and report) malformed samples instead of stopping.
    pub skip_bad: bool,
    pub max_iterations: Option<usize>,
    pub seed: Option<u64>,
    pub device: Option<String>,
    /// Images per step and process (the job's total batch is world size x this).
    pub batch_size: Option<usize>,
    /// The learning rate, used as given (the batch rule is off for it).
    pub lr: Option<f64>,
    /// Data worker threads (0: all cores).
    pub workers: Option<usize>,
    /// Config overrides `KEY=VALUE` (dotted keys, TOML values), applied last.
    pub set: Vec<String>,
}

/// Supervised pretraining on class folders in a label-space variant (`colorproxy pretrain-supervised`).
#[derive(Debug, Clone)]
pub struct SupervisedRequest {
    /// Class folders: `DATA/<train-split>/<class>/*.jpg` (and `DATA/<eval-split>/...` for the final
    /// top-1/top-5 of the full label space).
    pub data: PathBuf,
    pub out: PathBuf,
    /// A classification preset (sup-cpu, cls-cpu, cls-paper): the backbone, schedule and early
    /// stopping.
    pub preset: String,
    /// A fine-tuning config TOML instead of the preset.
    pub config: Option<PathBuf>,
    /// Keep at most this many training images per class (chosen by the seed).
    pub per_class: Option<usize>,
    /// Give this fraction of the training images a uniformly random other label (by the seed).
    pub label_noise: f64,
    /// Merge the classes at random into this many labels (by the seed).
    pub random_buckets: Option<usize>,
    /// Merge the classes into the buckets of a mapping file: one `class bucket` pair per line
    /// (`#` comments; e.g. `data generate --classes 20` writes folders/shape-buckets.txt). Every
    /// class must be mapped, and only classes of the data.
    pub buckets: Option<PathBuf>,
    pub train_split: String,
    pub eval_split: String,
    pub max_iterations: Option<usize>,
    pub seed: Option<u64>,
    pub resume: Resume,
    pub force: bool,
    pub skip_bad: bool,
    pub device: Option<String>,
    /// Images per step and process (the job's total batch is world size x this).
    pub batch_size: Option<usize>,
    /// The learning rate, used as given (the batch rule is off for it).
    pub lr: Option<f64>,
    /// Data worker threads (0: all cores).
    pub workers: Option<usize>,
    /// Config overrides `KEY=VALUE` (dotted keys, TOML values), applied last.
    pub set: Vec<String>,
}

/// Evaluation of a fine-tuned network (`colorproxy eval`).
#[derive(Debug, Clone)]
pub struct EvalRequest {
    pub task: Task,
    /// Weights of a fine-tuning run (RUN_DIR/checkpoints/last.safetensors).
    pub checkpoint: PathBuf,
    /// The run's config (default: RUN_DIR/config.toml).
    pub config: Option<PathBuf>,
    pub data: PathBuf,
    pub split: String,
    pub json: bool,
    /// Segmentation: write one class-index PNG per image (same size as the image; palette PNG with
    /// the VOC colours, as the devkit's SegmentationClass).
    pub save_predictions: Option<PathBuf>,
    /// Write results.json, results.md and report.html (per-class scores, the reference row,
    /// segmentation examples) to this folder.
    pub report: Option<PathBuf>,
    pub skip_bad: bool,
    pub device: Option<String>,
}

/// A recipe of experiments (`colorproxy experiment run`).
#[derive(Debug, Clone)]
pub struct ExperimentRequest {
    /// The recipe (TOML; see experiments/README.md).
    pub recipe: PathBuf,
    /// Output folder: runs/, results.csv, tables.md, report.html, plots.
    pub out: PathBuf,
    /// Only the runs a table, sweep, pretraining or fine-tuning of this name needs.
    pub only: Option<String>,
    /// List what would run and what is already done; run nothing.
    pub dry_run: bool,
    /// Data set paths for the recipe's named data (NAME=PATH, repeatable), e.g. for paper recipes.
    pub data: Vec<String>,
    pub device: Option<String>,
    /// Runs side by side in this process (threads; each run uses its config's `threads`).
    pub workers: usize,
}

/// Procedural scenes (`colorproxy data generate`).
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    pub out: PathBuf,
    /// Unlabelled scenes (the labelled set gets a quarter as many training and a tenth as many
    /// validation scenes).
    pub images: usize,
    pub seed: u64,
    /// Classes of the single-label class folders, 2 to 20: up to 5 are shapes (named after VOC
    /// classes), more are shape x style (e.g. disc-striped), with DIR/folders/shape-buckets.txt
    /// mapping each class to its shape (hierarchical buckets for `pretrain-supervised`).
    pub classes: usize,
    /// Training images per class of the class folders (default: images / 20).
    pub per_class_train: Option<usize>,
    /// Validation images per class (default: images / 80).
    pub per_class_val: Option<usize>,
    /// Training scenes of the VOC-style set (default: images / 4).
    pub voc_train: Option<usize>,
    /// Validation scenes of the VOC-style set (default: images / 10).
    pub voc_val: Option<usize>,
}

/// The built-in demo (`colorproxy demo`).
#[derive(Debug, Clone)]
pub struct DemoRequest {
    pub out: PathBuf,
    pub seed: u64,
    /// A shortened run (same code path, far fewer images and iterations), for tests.
    pub quick: bool,
    /// cpu (default: the demo is sized for CPUs), cuda or cuda:N.
    pub device: Option<String>,
}

impl FinetuneRequest {
    /// A run from random init with every other option at its default (the runners of many
    /// fine-tunings set what they vary: the Table 6 runner, experiments, supervised pretraining).
    pub fn new(task: Task, data: &std::path::Path, out: &std::path::Path) -> Self {
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
            resume: Resume::No,
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
            batch_size: None,
            lr: None,
            workers: None,
            set: vec![],
        }
    }
}
