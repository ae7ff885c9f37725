//! Everything around the network that needs no libtorch.
//!
//! - Colorization pretraining's unlabelled-image pipeline: listing image folders and file lists
//!   ([`source`]), robust decoding ([`decode`]: every bad input skipped with a named reason), the
//!   paper's augmentation ([`augment`]), sparse points and colour targets per batch ([`batch`]),
//!   parallel workers behind a bounded prefetch queue ([`loader`]).
//! - Transfer data: the VOC devkit layout ([`voc`], [`palette`]), class folders
//!   ([`image_folder`]), a labelled split of either as a [`LabelledSet`] ([`labelled`]), the views
//!   of training and test images ([`transfer_data`]) and the metrics: AP, mIoU, top-k
//!   ([`metrics`]).
//! - The procedural scenes of the demo ([`synth`]) and `data check` ([`check`]).
//!
//! Everything is deterministic given a seed: the batch at a [`DataPosition`] is a pure function of
//! the seed, the file list and the config, whatever the thread count or timing.
//!
//! # Example: batches of colour targets from a folder of images
//!
//! Writes 8 procedural scenes, then builds the first batch of the pretraining pipeline (random
//! crops, 32 points per image and their hue/chroma targets) twice: the same batch both times.
//!
//! ```
//! use std::sync::Arc;
//! use colorproxy_data::{BatchLoader, DataPosition, ImageSource, PipelineConfig, PretrainData};
//!
//! let dir = std::env::temp_dir().join(format!("colorproxy-data-doc-{}", std::process::id()));
//! colorproxy_data::synth::write_unlabelled(&dir, 0, 0, 8, 64)?;
//! let mut pipeline = PipelineConfig::default();
//! (pipeline.batch_size, pipeline.points, pipeline.border) = (4, 32, 8);
//! (pipeline.augment.crop, pipeline.augment.short_side_min, pipeline.augment.short_side_max) = (48, 56, 64);
//! let data = Arc::new(PretrainData::new(ImageSource::open(&dir)?, pipeline, Default::default(), 7)?);
//! let first = |d: &Arc<PretrainData>| BatchLoader::new(d.clone(), DataPosition::default()).unwrap().next().unwrap();
//! let (pos, batch) = first(&data);
//! let batch = batch?;
//! assert_eq!((pos.epoch, pos.batch, batch.batch, batch.side), (0, 0, 4, 48));
//! assert_eq!(batch.input.len(), 4 * 48 * 48); // gray input, [B, 1, S, S]
//! assert_eq!(batch.hue_hist.len(), 4 * 32 * batch.hue_bins); // [B, P, bins]
//! assert_eq!(batch.input, first(&data).1?.input); // deterministic
//! std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), colorproxy_data::DataError>(())
//! ```

pub mod augment;
pub mod batch;
pub mod check;
pub mod decode;
pub mod image_folder;
pub mod label_space;
pub mod labelled;
pub mod loader;
pub mod metrics;
pub mod palette;
pub mod rng;
pub mod source;
pub mod spread;
pub mod synth;
pub mod transfer_data;
pub mod voc;

pub use augment::{AugmentConfig, Augmented};
pub use batch::{ColorBatch, PipelineConfig, PretrainData};
pub use check::{check_images, CheckReport};
pub use decode::{decode_file, DecodeLimits, RgbImage8, SkipReason};
pub use image_folder::ImageFolder;
pub use labelled::{load_split, load_split_with, LabelledSet, OnBad, Task};
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
    /// Labels that do not fit the data or the network (class lists, splits).
    #[error("{0}")]
    Labels(String),
    #[error(transparent)]
    Color(#[from] colorproxy_color::ColorError),
}
