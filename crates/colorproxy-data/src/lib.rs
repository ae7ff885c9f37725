//! The unlabelled-image pipeline of colorization pretraining: listing image folders and file
//! lists, robust decoding (every bad input skipped with a named reason), the paper's augmentation
//! (mirror, random rescale, random crop, desaturate), sparse point sampling and batching with
//! parallel workers and a bounded prefetch queue.
//!
//! Everything is deterministic given a seed: the batch at a [`DataPosition`] is a pure function of
//! the seed, the file list and the config, whatever the thread count or timing.

pub mod augment;
pub mod batch;
pub mod check;
pub mod decode;
pub mod loader;
pub mod metrics;
pub mod rng;
pub mod source;
pub mod synth;
pub mod transfer_data;
pub mod voc;

pub use augment::{AugmentConfig, Augmented};
pub use batch::{ColorBatch, PipelineConfig, PretrainData};
pub use check::{check_images, CheckReport};
pub use decode::{decode_file, DecodeLimits, RgbImage8, SkipReason};
pub use loader::{BatchLoader, DataPosition};
pub use rng::Rng;
pub use source::ImageSource;

use std::path::PathBuf;

/// Errors of the data crate.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: no images found (looked for {exts} files, recursively)")]
    NoImages { path: PathBuf, exts: String },
    #[error("{path}:{line}: listed file does not exist: {file}")]
    ListedMissing { path: PathBuf, line: usize, file: PathBuf },
    #[error("invalid pipeline config: {0}")]
    BadConfig(String),
    #[error("{attempts} images in a row could not be used for batch slot {slot} (last: {last}); check the data with `colorproxy data check`")]
    TooManyBad { attempts: usize, slot: usize, last: String },
    #[error("{path}: {msg}")]
    Malformed { path: PathBuf, msg: String },
    #[error(transparent)]
    Color(#[from] colorproxy_color::ColorError),
}
