//! Arguments of the tools: targets, colorize, data check, launch and the benchmarks.
use std::path::PathBuf;

use clap::{Args, Subcommand};
use colorproxy_run::request::{
    BenchAllreduceRequest, BenchDataRequest, BenchParityRequest, BenchPretrainRequest,
};

use super::{DeviceArg, GenerateArgs};

#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// Processes (ranks) to start: one per GPU, or a few on CPU.
    #[arg(long)]
    pub nproc: usize,
    /// The rendezvous port on 127.0.0.1 (default: a free one).
    #[arg(long)]
    pub master_port: Option<u16>,
    /// The colorproxy command each rank runs, after `--` (e.g. `-- pretrain --preset cpu-small ...`).
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum DataWhat {
    /// Decode every image: how many are usable, what was skipped and why, sizes, achromatic share.
    Check(DataCheckArgs),
    /// Generate procedural scenes: DIR/unlabelled (pretraining), DIR/voc (a VOC-style set) and
    /// DIR/folders (single-label class folders, DIR/folders/{train,val}/<class>/*.jpg).
    Generate(GenerateArgs),
    /// Write the first pretraining batches (gray input, points, colour targets and weights) that
    /// `colorproxy pretrain` draws with the same preset, seed and batch, as safetensors, with the
    /// files of each batch beside it (FILE.txt): to see what the network is trained on, or to check
    /// another pipeline against this one.
    Batches(BatchesArgs),
}

#[derive(Debug, Args)]
pub struct BatchesArgs {
    /// Unlabelled images: a folder (recursive) or a file list.
    pub dir: PathBuf,
    /// A built-in pretraining preset (default cpu-small).
    #[arg(long)]
    pub preset: Option<String>,
    /// A pretraining config TOML file instead of a preset.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Seed of the data order, augmentation and points (default: the config's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Images per batch and process.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Config override KEY=VALUE (repeatable), as for pretrain.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Batches to write.
    #[arg(long, default_value_t = 4)]
    pub count: usize,
    /// The epoch to start at.
    #[arg(long, default_value_t = 0)]
    pub epoch: u64,
    /// This process's rank in a job of --world-size processes (its slots of each job batch).
    #[arg(long, default_value_t = 0)]
    pub rank: usize,
    /// Processes of the job.
    #[arg(long, default_value_t = 1)]
    pub world_size: usize,
    /// Output file (.safetensors): tensors `{batch}.gray`, `.points`, `.hue_hist`, `.chroma_hist`,
    /// `.hue_weight`, `.chroma_weight`, `.ab`.
    #[arg(long)]
    pub out: PathBuf,
}

impl From<BatchesArgs> for colorproxy_run::batches::BatchesRequest {
    fn from(a: BatchesArgs) -> Self {
        let mut pretrain = colorproxy_run::request::PretrainRequest::new(&a.dir, &PathBuf::new());
        (pretrain.preset, pretrain.config, pretrain.seed) = (a.preset, a.config, a.seed);
        (pretrain.batch_size, pretrain.set, pretrain.device) = (a.batch_size, a.set, Some("cpu".into()));
        Self { pretrain, count: a.count, epoch: a.epoch, rank: a.rank, world_size: a.world_size, out: a.out }
    }
}

#[derive(Debug, Args)]
pub struct DataCheckArgs {
    /// Image folder (recursive) or file list.
    pub dir: PathBuf,
    /// Print the result as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Mean chroma below which an image counts as achromatic.
    #[arg(long, default_value_t = 0.02)]
    pub achromatic_threshold: f32,
    /// Skip images whose shorter side is below this.
    #[arg(long, default_value_t = 32)]
    pub min_side: u32,
}

#[derive(Debug, Subcommand)]
pub enum BenchWhat {
    /// Pretraining data pipeline throughput at 1 and 2 threads, and the ratio to the Python
    /// reference (bench/data_ref.py) when Python with Pillow and numpy is available.
    Data(BenchDataArgs),
    /// Pretraining images/s (compute only and end to end) against the PyTorch reference
    /// (bench/pretrain_ref.py: same network, loss and batch; DataLoader with 2 workers).
    Pretrain(BenchPretrainArgs),
    /// One training step on a device against the same step on the CPU (float32, TF32 off):
    /// relative error of the loss and of every parameter's gradient. Exits non-zero above --tol.
    Parity(BenchParityArgs),
    /// All-reduce bandwidth of a gradient-sized buffer (a preset's parameter count) between real
    /// processes on c10d (Gloo over loopback on CPU, NCCL on GPUs), in DDP's 25 MiB buckets.
    Allreduce(BenchAllreduceArgs),
    /// What the pretraining presets cost (parameters, FLOPs per image counted on a forward pass,
    /// memory, epochs, hours on one H100 at a stated throughput) and the data-parallel scaling
    /// model for 1 / 8 / 64 GPUs, as Markdown with every assumption written down.
    Cost(BenchCostArgs),
}

#[derive(Debug, Args)]
pub struct BenchCostArgs {
    /// Pretraining presets to cost.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "paper-vgg16,gpu-vgg16,paper-resnet152,gpu-resnet152,paper-alexnet,cpu-small"
    )]
    pub presets: Vec<String>,
    /// Sustained training throughput per GPU, TFLOP/s (default: 30% of an H100's dense TF32 peak).
    #[arg(long, default_value_t = colorproxy_run::cost::H100_TFLOPS)]
    pub tflops: f64,
    /// NCCL bus bandwidth within an 8-GPU NVLink node, GB/s.
    #[arg(long, default_value_t = 300.0)]
    pub nvlink_gbs: f64,
    /// NCCL bus bandwidth across nodes, GB/s.
    #[arg(long, default_value_t = 40.0)]
    pub network_gbs: f64,
    /// GPU counts of the scaling table.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    pub gpus: Vec<usize>,
}

impl From<BenchCostArgs> for colorproxy_run::request::BenchCostRequest {
    fn from(a: BenchCostArgs) -> Self {
        Self {
            presets: a.presets,
            tflops: a.tflops,
            nvlink_gbs: a.nvlink_gbs,
            network_gbs: a.network_gbs,
            gpus: a.gpus,
        }
    }
}

#[derive(Debug, Args)]
pub struct BenchAllreduceArgs {
    /// Ranks to launch (when not already inside a job).
    #[arg(long, default_value_t = 2)]
    pub nproc: usize,
    /// The pretraining preset whose trainable parameter count sets the size.
    #[arg(long, default_value = "paper-vgg16")]
    pub preset: String,
    /// Elements to all-reduce instead of the preset's parameter count.
    #[arg(long)]
    pub numel: Option<i64>,
    /// Timed all-reduces (after one checked warm-up).
    #[arg(long, default_value_t = 3)]
    pub iters: usize,
    #[command(flatten)]
    pub device: DeviceArg,
}

impl From<BenchAllreduceArgs> for BenchAllreduceRequest {
    fn from(a: BenchAllreduceArgs) -> Self {
        Self { nproc: a.nproc, preset: a.preset, numel: a.numel, iters: a.iters, device: a.device.device }
    }
}

#[derive(Debug, Args)]
pub struct BenchParityArgs {
    /// The pretraining preset whose network, batch and targets are measured.
    #[arg(long, default_value = "cpu-small")]
    pub preset: String,
    /// Images for the batch.
    #[arg(
        long = "data",
        alias = "images",
        value_name = "DATA",
        default_value = "../shared/data/photos/train"
    )]
    pub images: PathBuf,
    #[command(flatten)]
    pub device: DeviceArg,
    /// Largest relative difference of loss and gradients (CPU vs this device) that passes.
    #[arg(long, default_value_t = 1e-3)]
    pub tol: f64,
    /// Print the result as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

impl From<BenchParityArgs> for BenchParityRequest {
    fn from(a: BenchParityArgs) -> Self {
        Self { preset: a.preset, images: a.images, device: a.device.device, tol: a.tol, json: a.json }
    }
}

#[derive(Debug, Args)]
pub struct BenchPretrainArgs {
    /// The pretraining preset whose network, batch and targets are measured.
    #[arg(long, default_value = "cpu-small")]
    pub preset: String,
    /// Image folder for the end-to-end measurement.
    #[arg(
        long = "data",
        alias = "images",
        value_name = "DATA",
        default_value = "../shared/data/photos/train"
    )]
    pub images: PathBuf,
    /// Training steps timed on each side (after --warmup).
    #[arg(long, default_value_t = 30)]
    pub steps: usize,
    /// Steps run before timing starts (allocator, kernels and caches warm).
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// libtorch threads, the same on both sides.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Data workers (threads here, DataLoader processes in the reference; default: --threads).
    #[arg(long)]
    pub workers: Option<usize>,
    #[command(flatten)]
    pub device: DeviceArg,
    /// Python interpreter of the reference (default: the project's .venv, else python3).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Skip the reference run.
    #[arg(long)]
    pub no_reference: bool,
    /// Print the result as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Data-parallel scaling instead: the preset's pretraining as 1 process (--threads threads)
    /// and as N ranks on Gloo (--threads / N each), images/s and their ratio.
    #[arg(long, default_value_t = 1)]
    pub nproc: usize,
}

impl From<BenchPretrainArgs> for BenchPretrainRequest {
    fn from(a: BenchPretrainArgs) -> Self {
        Self {
            preset: a.preset,
            images: a.images,
            steps: a.steps,
            warmup: a.warmup,
            threads: a.threads,
            workers: a.workers,
            device: a.device.device,
            python: a.python,
            no_reference: a.no_reference,
            json: a.json,
            nproc: a.nproc,
        }
    }
}

#[derive(Debug, Args)]
pub struct BenchDataArgs {
    /// Image folder (recursive) or file list.
    #[arg(long = "data", alias = "images", value_name = "DATA")]
    pub images: PathBuf,
    /// Images to process per measurement.
    #[arg(long, default_value_t = 200)]
    pub count: usize,
    /// Crop side (the paper: 352).
    #[arg(long, default_value_t = 352)]
    pub size: u32,
    /// Shorter side scaled to at least this many pixels (the paper: 352).
    #[arg(long, default_value_t = 352)]
    pub short_min: u32,
    /// Shorter side scaled to at most this many pixels (the paper: 600).
    #[arg(long, default_value_t = 600)]
    pub short_max: u32,
    /// Hypercolumn points per image (the paper: 128).
    #[arg(long, default_value_t = 128)]
    pub points: usize,
    /// Points are drawn at least this many pixels from the crop's edge.
    #[arg(long, default_value_t = 96)]
    pub border: usize,
    /// Python interpreter for the reference (default: the project's .venv, else python3).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Skip the Python reference.
    #[arg(long)]
    pub no_reference: bool,
    /// Print the result as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

impl From<BenchDataArgs> for BenchDataRequest {
    fn from(a: BenchDataArgs) -> Self {
        Self {
            images: a.images,
            count: a.count,
            size: a.size,
            short_min: a.short_min,
            short_max: a.short_max,
            points: a.points,
            border: a.border,
            python: a.python,
            no_reference: a.no_reference,
            json: a.json,
        }
    }
}

#[derive(Debug, Args)]
pub struct TargetsArgs {
    /// The image (used as it is: no augmentation).
    #[arg(long)]
    pub image: PathBuf,
    /// A point as Y,X in pixels (repeatable).
    #[arg(long = "point", value_name = "Y,X", required = true, allow_hyphen_values = true)]
    pub points: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Also draw the image, its gray input and the histograms at each point to this PNG.
    #[arg(long, value_name = "OUT")]
    pub png: Option<PathBuf>,
    /// Target constants as a TOML file (defaults: the authors' values).
    #[arg(long = "run-config", alias = "config", value_name = "CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ColorizeArgs {
    /// Weights written by pretrain (e.g. RUN_DIR/checkpoints/last.safetensors).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The run's config (default: RUN_DIR/config.toml next to the checkpoint folder).
    #[arg(long = "run-config", alias = "config", value_name = "CONFIG")]
    pub config: Option<PathBuf>,
    /// An image, or a folder (recursive).
    #[arg(long = "data", alias = "input", value_name = "DATA")]
    pub input: PathBuf,
    /// Output PNG (for one input) or folder (for a folder).
    #[arg(long = "out", alias = "output", value_name = "OUT")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub device: DeviceArg,
    /// Also write <name>.hue-entropy.png, the entropy of the hue prediction (white: unsure).
    #[arg(long)]
    pub uncertainty: bool,
    /// Write gray | colorized | original (when the input was colour) in one PNG.
    #[arg(long)]
    pub side_by_side: bool,
    /// PSNR and RMSE against the originals, and the same for the plain gray image.
    #[arg(long)]
    pub eval: bool,
    /// Print the result as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Chroma from its histogram: median, mode or expectation.
    #[arg(long, default_value = "median")]
    pub chroma: String,
    /// Turn off chromatic fading (chroma reduced where the hue prediction is spread out).
    #[arg(long)]
    pub no_fading: bool,
    /// Processing size: the shorter side is resized to this (default: the middle of the
    /// network's training range), the longer side to at most --max-side (default: twice that).
    /// The output always has the input's size.
    #[arg(long)]
    pub short_side: Option<usize>,
    /// Processing size: the longer side at most this (default: twice --short-side).
    #[arg(long)]
    pub max_side: Option<usize>,
}
