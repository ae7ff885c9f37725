//! Runs of colorproxy: what the `colorproxy` binary calls after parsing its arguments.
//!
//! - [`request`]: typed requests (no command-line types), one per command that runs something;
//! - [`session`]: one process of a run (alone or one rank of a c10d job), its device, interrupt
//!   flag and rank 0's progress bar;
//! - [`pretrain`], [`finetune`], [`evaluate`]: colorization pretraining, fine-tuning (and
//!   supervised pretraining), evaluation, each a request resolved into a config and run;
//! - [`experiment`]: the recipe planner and runner (the paper's tables and Fig. 4);
//! - [`demo`]: the built-in demo; [`frozen`]: Table 6; [`analyse`]: feature shift, top
//!   activations, probes;
//! - [`report`], [`draw`]: results files, HTML pages, plots and pictures;
//! - [`launch`]: a data-parallel job on this machine; [`bench`], [`bench_dist`]: benchmarks.
//!
//! Errors are [`RunError`]s: the library crates' errors, or a message in the context it happened.
pub mod analyse;
pub mod bench;
pub mod bench_dist;
pub mod cost;
pub mod demo;
pub mod draw;
mod error;
pub mod evaluate;
pub mod experiment;
pub mod finetune;
pub mod frozen;
pub mod images;
pub mod launch;
pub mod overrides;
pub mod pretrain;
pub mod progress;
pub mod report;
pub mod request;
pub mod session;

pub use error::{Context, Result, RunError};
