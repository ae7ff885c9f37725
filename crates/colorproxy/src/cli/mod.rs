//! Command-line interface (clap derive).

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

mod analyse;
mod tools;
mod train;

pub use analyse::*;
pub use tools::*;
pub use train::*;

#[derive(Debug, Parser)]
#[command(
    name = "colorproxy",
    version,
    about = "Colorization as a proxy task for visual understanding (Larsson et al., CVPR 2017)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the command line with negative numbers taken as values in every command, so that
    /// `--lr -1` or `--iterations -5` get the flag's own check ("must be positive", "invalid
    /// digit") instead of clap's "unexpected argument '-1'".
    pub fn parse_with_negative_numbers() -> Self {
        fn allow(c: clap::Command) -> clap::Command {
            c.allow_negative_numbers(true).mut_subcommands(allow)
        }
        let matches = allow(Self::command()).get_matches();
        Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Colour targets (hue/chroma histograms, loss weights, Lab) of an image at given points.
    Targets(TargetsArgs),
    /// Inspect datasets.
    Data {
        #[command(subcommand)]
        what: DataWhat,
    },
    /// The built-in demo: generate scenes, pretrain a colorizer, fine-tune from random and from
    /// colorization, report (the paper's Table 3 in minutes on a CPU).
    Demo(DemoArgs),
    /// Pretrain a network from scratch to predict colour from grayscale.
    Pretrain(PretrainArgs),
    /// Supervised pretraining on class folders (the paper's ImageNet baseline), in a label-space
    /// variant of Table 4: fewer images per class, label noise, random or hierarchical buckets.
    /// Its checkpoint is an --init for `finetune`.
    PretrainSupervised(SupervisedArgs),
    /// Run a recipe of experiments (pretrainings, fine-tunings x seeds) and write its tables and
    /// plots with means, standard deviations and 95% intervals; finished runs are reused.
    Experiment {
        #[command(subcommand)]
        what: ExperimentWhat,
    },
    /// Colorize images with a pretrained network (or measure how well it colorizes: --eval).
    Colorize(ColorizeArgs),
    /// Fine-tune for VOC classification or segmentation with the paper's protocol.
    Finetune(FinetuneArgs),
    /// Evaluate a fine-tuned network (mAP or mIoU).
    Eval(EvalArgs),
    /// Export a backbone as a torchvision state dict (safetensors) that
    /// `torchvision.models.<arch>()` loads with `load_state_dict(strict=True)`.
    Export(ExportArgs),
    /// Layer activations of a network on images (centre crops), as safetensors: the input tensor
    /// and each layer's features.
    Features(FeaturesArgs),
    /// Run a command data-parallel on this machine: N ranks on PyTorch's c10d (Gloo on CPU, NCCL
    /// on GPU), like `torchrun --no-python --nproc-per-node N colorproxy ...`.
    Launch(LaunchArgs),
    /// Analyses of a representation (the paper's section 6.5).
    Analyse {
        #[command(subcommand)]
        what: AnalyseWhat,
    },
    /// Benchmarks against reference implementations, run in the same command.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
}

/// `--device`: cpu, cuda or cuda:N (default: cuda if available, else cpu).
#[derive(Debug, Clone, Args)]
pub struct DeviceArg {
    /// cpu, cuda or cuda:N (default: cuda if available, else cpu).
    #[arg(long)]
    pub device: Option<String>,
}

impl From<TaskArg> for colorproxy_nn::transfer::Task {
    fn from(t: TaskArg) -> Self {
        match t {
            TaskArg::Cls => Self::Cls,
            TaskArg::Seg => Self::Seg,
        }
    }
}

impl From<ProbeMethod> for colorproxy_run::request::ProbeMethod {
    fn from(m: ProbeMethod) -> Self {
        match m {
            ProbeMethod::Knn => Self::Knn,
            ProbeMethod::Linear => Self::Linear,
        }
    }
}

/// Parses `Y,X` into pixel coordinates.
pub fn parse_point(s: &str) -> anyhow::Result<(usize, usize)> {
    let (y, x) =
        s.split_once(',').ok_or_else(|| anyhow::anyhow!("point {s:?}: expected Y,X (e.g. 120,64)"))?;
    let p = |v: &str| -> anyhow::Result<usize> {
        v.trim()
            .parse::<usize>()
            .map_err(|_| anyhow::anyhow!("point {s:?}: {v:?} is not a non-negative integer"))
    };
    Ok((p(y)?, p(x)?))
}

/// `--resume` (continue; an error without a checkpoint) and `--resume auto` (continue if the
/// folder holds this run's checkpoint, else start fresh: a requeued job just reruns its command).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ResumeWhen {
    /// Plain `--resume`.
    #[value(hide = true)]
    Always,
    /// Resume when there is a checkpoint, else start fresh.
    Auto,
}

/// The flags of every training command that trains from a config: the batch per process, the
/// learning rate, data workers and config overrides, and resuming.
#[derive(Debug, Clone, Args)]
pub struct TrainFlags {
    /// Continue the run in --out from its newest checkpoint, to the same result as an
    /// uninterrupted run (the same command plus --resume). `--resume auto`: continue if the folder
    /// holds a checkpoint of this run, start fresh if it holds none (for Slurm requeue and
    /// torchrun restarts); a folder of another run is refused.
    #[arg(long, num_args = 0..=1, default_missing_value = "always", value_name = "auto")]
    pub resume: Option<ResumeWhen>,
    /// Start over in a run folder that holds a run (its checkpoints, metrics and results are
    /// removed once every input has been checked); without it such a folder is refused.
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// Images per step and process (PyTorch convention): the job trains on world size x this.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Learning rate, used as given (turns the linear batch rule off; to keep the rule, use
    /// --set optim.lr=X, the rate at the preset's optim.reference_batch).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Worker threads building batches (0: all cores); results do not depend on it.
    #[arg(long)]
    pub workers: Option<usize>,
    /// Config override KEY=VALUE (repeatable; dotted keys and TOML values as in a recipe's `set`),
    /// e.g. --set optim.lr_drops=[] --set optim.lr_scaling=none; points per image are
    /// data.points in pretrain, points in finetune.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

impl TrainFlags {
    pub fn resume(&self) -> colorproxy_run::request::Resume {
        use colorproxy_run::request::Resume;
        match self.resume {
            None => Resume::No,
            Some(ResumeWhen::Always) => Resume::Yes,
            Some(ResumeWhen::Auto) => Resume::Auto,
        }
    }
}
