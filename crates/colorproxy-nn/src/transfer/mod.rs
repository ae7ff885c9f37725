//! Transfer (the paper's section 4): fine-tuning a pretrained backbone for VOC multi-label
//! classification, single-label classification of class folders and semantic segmentation, with
//! the paper's protocol.
//!
//! - [`config`]: [`TransferConfig`], the presets (`presets/{cls,seg}-{paper,cpu}.toml`).
//! - [`net`]: [`TransferNet`]: the backbone initialised randomly, from a colorization checkpoint
//!   or a supervised torchvision-named one; BN absorbed ([`crate::bn_absorb`]); conv1 lifted to
//!   RGB with `color`; the classification head (top layer -> global average pool -> fc) or the
//!   segmentation hypercolumn head.
//! - [`fov`]: the +FoV blocks (2x2 max-pool -> 3x3 conv -> ReLU, twice) on the top layer.
//! - [`batch`]: the training batch of a step (random views, points) and its loss.
//! - [`eval`]: dense segmentation, 10-crop classification, mIoU / mAP / top-k.
//! - [`finetune`]: the training loop ([`FinetuneRun`]) with the early-stopping protocol of
//!   [`crate::early_stop`].
//!
//! The labelled data ([`LabelledSet`], [`load_split`]) come from `colorproxy_data::labelled`.
pub mod batch;
pub mod config;
pub mod eval;
pub mod finetune;
pub mod fov;
pub mod net;

pub use colorproxy_data::labelled::{load_split, load_split_with, LabelledSet, OnBad, Task};
pub use config::TransferConfig;
pub use eval::{classify, evaluate, reference_score, segment, EvalResult};
pub use finetune::{FinetuneRun, FinetuneSummary};
pub use fov::FovBlocks;
pub use net::{load_finetuned, TransferNet, GRAY_MEAN};
