//! Networks, sparse hypercolumns, losses, optimiser and the pretraining loop of colorproxy, on
//! libtorch through `tch`.
//!
//! - [`backbone`]: VGG-16 and ResNet-18/50/152 with torchvision parameter names, 1-channel input,
//!   a width multiplier and any input size; [`ParamFreeBatchNorm`] after every VGG convolution.
//! - [`hypercolumn`]: [`SparseHypercolumn`], features bilinearly sampled at the points.
//! - [`head`]: [`ColorHead`], fc 1024 -> ReLU -> dropout -> hue / chroma (or a\*b\*) outputs.
//! - [`loss`]: the weighted-KL histogram loss and the L\*a\*b\* regression alternative.
//! - [`optim`]: SGD with momentum, the paper's weight-decay / bias-LR rules, step schedule.
//! - [`pretrain`]: the training loop with atomic checkpoints, exact resume and metrics.

pub mod backbone;
pub mod bn;
pub mod checkpoint;
pub mod colorize;
pub mod config;
pub mod early_stop;
pub mod head;
pub mod hypercolumn;
pub mod init;
pub mod loss;
pub mod model;
pub mod optim;
pub mod pretrain;
pub mod transfer;

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
    #[error("device {0:?}: {1}")]
    Device(String, String),
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
