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
//! - [`launch`]: a data-parallel job on this machine; [`mod@bench`], [`bench_dist`]: benchmarks.
//!
//! Errors are [`RunError`]s: the library crates' errors, or a message in the context it happened.
//!
//! # Example: pretrain, fine-tune and evaluate through typed requests
//!
//! What `colorproxy pretrain`, `colorproxy finetune seg` and `colorproxy eval seg` do, on
//! generated scenes and a generated VOC-style set, a few steps each:
//!
//! ```
//! use colorproxy_nn::transfer::Task;
//! use colorproxy_run::request::{EvalRequest, FinetuneRequest, PretrainRequest, Resume};
//!
//! let dir = std::env::temp_dir().join(format!("colorproxy-run-doc-{}", std::process::id()));
//! colorproxy_data::synth::write_unlabelled(&dir.join("images"), 0, 0, 16, 64)?;
//! colorproxy_data::synth::write_voc(&dir.join("voc"), 1, 0, 8, 4, 64)?;
//! // Colorization pretraining: the cpu-small preset, 4 steps of 4 images.
//! colorproxy_run::pretrain::run(PretrainRequest {
//!     preset: Some("cpu-small".into()),
//!     config: None,
//!     data: dir.join("images"),
//!     out: dir.join("pretrain"),
//!     iterations: Some(4),
//!     resume: Resume::No,
//!     force: false,
//!     device: Some("cpu".into()),
//!     seed: None,
//!     batch_size: Some(4),
//!     lr: None,
//!     set: vec![],
//!     workers: None,
//!     threads: None,
//!     dry_run: false,
//! })?;
//! // Segmentation fine-tuned from it (seg-cpu, 4 steps), scored on val at the end.
//! let mut ft = FinetuneRequest::new(Task::Seg, &dir.join("voc"), &dir.join("seg"));
//! ft.init = dir.join("pretrain/checkpoints/last.safetensors").display().to_string();
//! (ft.max_iterations, ft.device) = (Some(4), Some("cpu".into()));
//! colorproxy_run::finetune::finetune(ft)?;
//! let results: serde_json::Value =
//!     serde_json::from_str(&std::fs::read_to_string(dir.join("seg/results.json"))?)?;
//! assert_eq!(results["metric"], "miou");
//! let miou = results["value"].as_f64().unwrap();
//! assert!((0.0..=1.0).contains(&miou));
//! // The same network evaluated again: the same mIoU.
//! colorproxy_run::evaluate::eval(EvalRequest {
//!     task: Task::Seg,
//!     checkpoint: dir.join("seg/checkpoints/last.safetensors"),
//!     config: None,
//!     data: dir.join("voc"),
//!     split: "val".into(),
//!     json: true,
//!     save_predictions: None,
//!     report: Some(dir.join("seg/eval")),
//!     skip_bad: false,
//!     device: Some("cpu".into()),
//! })?;
//! let again: serde_json::Value =
//!     serde_json::from_str(&std::fs::read_to_string(dir.join("seg/eval/results.json"))?)?;
//! assert_eq!(again["value"].as_f64(), Some(miou));
//! std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
pub mod analyse;
pub mod batches;
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
pub mod threads;

pub use error::{Context, Result, RunError};

/// A task's name on the command line and in presets: `seg` or `cls`.
pub(crate) fn task_name(task: colorproxy_nn::transfer::Task) -> &'static str {
    match task {
        colorproxy_nn::transfer::Task::Seg => "seg",
        colorproxy_nn::transfer::Task::Cls => "cls",
    }
}
