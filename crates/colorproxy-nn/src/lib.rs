//! The networks and training loops of colorproxy, on libtorch through `tch`.
//!
//! Colorization pretraining (the paper's section 3):
//! - [`backbone`]: VGG-16, AlexNet, ResNet-18/50/152 (one file each) with torchvision parameter
//!   names; [`backbone::arch`] is the table of what is known per architecture.
//! - [`bn`]: [`ParamFreeBatchNorm`], the authors' BN without scale and shift.
//! - [`hypercolumn`]: [`SparseHypercolumn`], features bilinearly sampled at the points (and the
//!   dense 1/4-resolution hypercolumn of colorizing and segmentation).
//! - [`head`]: [`ColorHead`], fc -> ReLU -> dropout -> hue / chroma (or a\*b\*) outputs.
//! - [`loss`]: the weighted-KL histogram loss and the L\*a\*b\* regression alternative.
//! - [`model`]: [`ColorizationNet`] = backbone + hypercolumn + head; [`init`]: seeded init and
//!   counter-based dropout.
//! - [`optim`]: SGD with momentum and the paper's weight-decay / bias-LR rules; [`schedule`]: the
//!   step learning-rate schedule shared by pretraining and fine-tuning.
//! - [`pretrain`]: the pretraining loop; [`colorize`]: the colorizer.
//!
//! Transfer (section 4): [`transfer`] (config and presets, network, +FoV, batches, evaluation,
//! the fine-tuning loop), [`bn_absorb`] (BN folded into the convolutions), [`early_stop`] (the
//! 90/10 early-stopping protocol and `--retrain-full`).
//!
//! Analyses (section 6.5): [`feature_shift`] (Fig. 3), [`top_activations`] (Fig. 5, Fig. 2),
//! [`probe`] (kNN and linear probes of frozen features).
//!
//! Interoperation: [`torchvision`] (export a backbone as a torchvision state dict, read one
//! back, the network input).
//!
//! Run folders: [`run_dir`] (paths, metrics log, resume or start fresh, the config beside a
//! checkpoint) and [`checkpoint`] (atomic weights / optimiser / state files).
//!
//! # Example: pretrain a few steps, then export a torchvision backbone
//!
//! A full-width ResNet-18 colorizer (torchvision's widths, so that it exports) trained for two
//! steps of two 32x32 crops on generated scenes, then written as the state dict that
//! `torchvision.models.resnet18()` loads with `strict=True` (after replacing `conv1` by a
//! 1-channel convolution, or with `rgb: true`):
//!
//! ```
//! use std::sync::{atomic::AtomicBool, Arc};
//! use colorproxy_nn::pretrain::PretrainRun;
//! use colorproxy_nn::run_dir::{Resume, RunPaths, Silent};
//! use colorproxy_nn::torchvision::{export_torchvision, load_network, ExportOptions};
//! use colorproxy_nn::PretrainConfig;
//!
//! let dir = std::env::temp_dir().join(format!("colorproxy-nn-doc-{}", std::process::id()));
//! colorproxy_data::synth::write_unlabelled(&dir.join("images"), 0, 0, 8, 48)?;
//! let mut cfg = PretrainConfig::preset("cpu-resnet18")?;
//! cfg.model.width = 1.0;
//! (cfg.iterations, cfg.checkpoint_every, cfg.snapshots, cfg.optim.lr_drops) = (2, 2, vec![], vec![]);
//! (cfg.data.batch_size, cfg.data.points, cfg.data.border) = (2, 8, 4);
//! let a = &mut cfg.data.augment;
//! (a.crop, a.short_side_min, a.short_side_max) = (32, 40, 48);
//! let run = PretrainRun {
//!     config: cfg,
//!     data_dir: dir.join("images"),
//!     out: dir.join("run"),
//!     resume: Resume::No,
//!     force: false,
//!     device: tch::Device::Cpu,
//!     interrupt: Arc::new(AtomicBool::new(false)),
//!     observer: &mut Silent,
//!     dist: None,
//! };
//! assert_eq!(run.run()?.iterations_done, 2);
//! let weights = RunPaths::new(&dir.join("run")).last_weights();
//! let mut net = load_network(&weights, None, None, tch::Device::Cpu)?;
//! let export = export_torchvision(&mut net, ExportOptions { rgb: true, seed: 0 })?;
//! let names: Vec<&str> = export.tensors.iter().map(|(n, _)| n.as_str()).collect();
//! assert!(names.contains(&"layer4.1.conv2.weight") && names.contains(&"fc.weight"));
//! assert_eq!(export.in_channels, 3);
//! std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod atomic_io;
pub mod backbone;
pub mod bn;
pub mod bn_absorb;
pub mod checkpoint;
pub mod colorize;
pub mod config;
pub mod conv;
pub mod cost;
pub mod data_parallel;
pub mod early_stop;
pub mod feature_shift;
pub mod head;
pub mod hypercolumn;
pub mod init;
pub mod loss;
pub mod model;
pub mod optim;
pub mod out_of_memory;
pub mod pretrain;
pub mod probe;
pub mod run_dir;
pub mod run_start;
pub mod schedule;
pub mod top_activations;
pub mod torchvision;
pub mod transfer;
pub mod weights;

pub use bn::ParamFreeBatchNorm;
pub use config::{ColorLoss, ModelConfig, OptimConfig, PretrainConfig};
pub use head::ColorHead;
pub use hypercolumn::SparseHypercolumn;
pub use model::ColorizationNet;

use std::path::PathBuf;

/// Errors of the networks and training.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    #[error("invalid config: {0}")]
    Config(String),
    #[error("unknown preset {0:?} (available: {1})")]
    UnknownPreset(String, String),
    #[error("{path}: {msg}")]
    File { path: PathBuf, msg: String },
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("loss became {value} at iteration {iteration}; the last good checkpoint is kept (lower the learning rate or check the data)")]
    NonFiniteLoss { iteration: usize, value: f64 },
    #[error(transparent)]
    Data(#[from] colorproxy_data::DataError),
    #[error(transparent)]
    Dist(#[from] colorproxy_dist::DistError),
    #[error("device {0:?}: {1}")]
    Device(String, String),
    #[error(
        "out of memory on {device} {during} at {batch} images per process: {detail}; lower --batch-size \
         (e.g. --batch-size {}){}; checkpoints already written are intact",
        (batch / 2).max(1),
        if *crop > 0 { format!(" or the crop (data.augment.crop = {crop})") } else { String::new() }
    )]
    OutOfMemory { device: String, during: String, batch: usize, crop: usize, detail: String },
}

/// Parses `cpu`, `cuda`, `cuda:N`; `None` means cuda if available, else cpu.
pub fn parse_device(s: Option<&str>) -> Result<tch::Device, NnError> {
    match s {
        None => Ok(tch::Device::cuda_if_available()),
        Some("cpu") => Ok(tch::Device::Cpu),
        Some(d) if d == "cuda" || d.starts_with("cuda:") => {
            let idx = match d.strip_prefix("cuda:") {
                Some(n) => {
                    n.parse::<usize>().map_err(|_| NnError::Device(d.into(), "expected cuda:N".into()))?
                }
                None => 0,
            };
            let n = tch::Cuda::device_count() as usize;
            if idx >= n {
                return Err(NnError::Device(
                    d.into(),
                    format!("{n} CUDA device(s) visible (is this a CUDA build? see README, GPU section)"),
                ));
            }
            Ok(tch::Device::Cuda(idx))
        }
        Some(d) => Err(NnError::Device(d.into(), "expected cpu, cuda or cuda:N".into())),
    }
}
