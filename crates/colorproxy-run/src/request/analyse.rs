//! Requests of the analyses (the paper's section 6.5).
use std::path::PathBuf;

use colorproxy_nn::transfer::Task;

/// How frozen features are probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeMethod {
    /// k nearest neighbours (cosine similarity).
    Knn,
    /// A linear classifier (logistic regression).
    Linear,
}

/// Table 6, which layers must be fine-tuned (`colorproxy analyse frozen`).
#[derive(Debug, Clone)]
pub struct FrozenRequest {
    pub task: Task,
    /// A VOC devkit (or class folders, for cls).
    pub data: PathBuf,
    /// Initialisations: random or a checkpoint (repeatable).
    pub inits: Vec<String>,
    /// Seeds, comma-separated.
    pub seeds: Vec<u64>,
    pub preset: Option<String>,
    pub config: Option<PathBuf>,
    /// Cap on each run's iterations (the schedule scales with it).
    pub max_iterations: Option<usize>,
    pub train_split: String,
    pub eval_split: String,
    pub out: PathBuf,
    pub device: Option<String>,
}

/// Feature shift, Fig. 3 (`colorproxy analyse shift`).
#[derive(Debug, Clone)]
pub struct ShiftRequest {
    /// The first network (e.g. the pretrained checkpoint).
    pub before: PathBuf,
    pub before_config: Option<PathBuf>,
    /// The second network (e.g. the fine-tuned checkpoint), same architecture and width.
    pub after: PathBuf,
    pub after_config: Option<PathBuf>,
    /// Both checkpoints are torchvision state dicts of this architecture.
    pub arch: Option<String>,
    /// Images (held-out ones): a folder or a file list.
    pub data: PathBuf,
    pub out: PathBuf,
    /// At most this many images (sorted order).
    pub images: usize,
    /// Positions sampled per image and layer (all of a smaller map).
    pub positions: usize,
    /// Shorter side scaled to this, centre square crop (a multiple of 32).
    pub size: usize,
    pub seed: u64,
    pub force: bool,
    pub device: Option<String>,
}

/// Top activations, Fig. 5 (`colorproxy analyse top`).
#[derive(Debug, Clone)]
pub struct TopRequest {
    pub checkpoint: PathBuf,
    pub config: Option<PathBuf>,
    /// The checkpoints are torchvision state dicts of this architecture.
    pub arch: Option<String>,
    /// The layer (e.g. fc7, conv5_3; ResNet: layer1 ... layer4).
    pub layer: String,
    /// Images: a folder or a file list.
    pub data: PathBuf,
    /// Features spread evenly over the layer's channels (unless --ids).
    pub features: usize,
    /// These features (channel indices), comma-separated.
    pub ids: Vec<i64>,
    /// Top activations per feature.
    pub top: usize,
    /// A second network of the same architecture (e.g. after fine-tuning).
    pub compare: Option<PathBuf>,
    pub compare_config: Option<PathBuf>,
    /// At most this many images.
    pub images: usize,
    /// Shorter side scaled to this, centre square crop (a multiple of 32).
    pub size: usize,
    /// Side of each patch in the pictures (pixels).
    pub cell: u32,
    pub out: PathBuf,
    pub force: bool,
    pub device: Option<String>,
}

/// A probe of frozen features (`colorproxy analyse probe`).
#[derive(Debug, Clone)]
pub struct ProbeRequest {
    pub checkpoint: PathBuf,
    pub config: Option<PathBuf>,
    /// The checkpoint is a torchvision state dict of this architecture.
    pub arch: Option<String>,
    /// Class folders (`DATA/train/<class>/...`) or a VOC devkit.
    pub data: PathBuf,
    /// The layers whose globally pooled features are probed, each on its own (e.g. fc7, conv5_3,
    /// layer4).
    pub layers: Vec<String>,
    /// Probe the checkpoint's architecture untrained (its run config's network with the initial
    /// weights of `seed`) instead of the checkpoint's weights.
    pub random_init: bool,
    pub method: ProbeMethod,
    /// Neighbours (kNN).
    pub k: usize,
    pub train_split: String,
    pub split: String,
    /// Shorter side scaled to this, centre square crop (a multiple of 32).
    pub size: usize,
    pub seed: u64,
    pub json: bool,
    pub device: Option<String>,
}
