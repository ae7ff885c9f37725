//! Requests of the benchmarks (each prints ratios against a reference run in the same command).
use std::path::PathBuf;

/// Data pipeline throughput (`colorproxy bench data`).
#[derive(Debug, Clone)]
pub struct BenchDataRequest {
    /// Image folder (recursive) or file list.
    pub images: PathBuf,
    /// Images to process per measurement.
    pub count: usize,
    /// Crop side (the paper: 352).
    pub size: u32,
    pub short_min: u32,
    pub short_max: u32,
    pub points: usize,
    pub border: usize,
    /// Python interpreter for the reference (default: the project's .venv, else python3).
    pub python: Option<PathBuf>,
    /// Skip the Python reference.
    pub no_reference: bool,
    pub json: bool,
}

/// Pretraining throughput (`colorproxy bench pretrain`).
#[derive(Debug, Clone)]
pub struct BenchPretrainRequest {
    pub preset: String,
    /// Image folder for the end-to-end measurement.
    pub images: PathBuf,
    pub steps: usize,
    pub warmup: usize,
    /// libtorch threads, the same on both sides.
    pub threads: usize,
    /// Data workers (threads here, DataLoader processes in the reference; default: --threads).
    pub workers: Option<usize>,
    pub device: Option<String>,
    pub python: Option<PathBuf>,
    pub no_reference: bool,
    pub json: bool,
    /// Data-parallel scaling instead: the preset's pretraining as 1 process (--threads threads)
    /// and as N ranks on Gloo (--threads / N each), images/s and their ratio.
    pub nproc: usize,
}

/// Device vs CPU parity of one step (`colorproxy bench parity`).
#[derive(Debug, Clone)]
pub struct BenchParityRequest {
    pub preset: String,
    /// Images for the batch.
    pub images: PathBuf,
    /// The device to check (default: cuda if available, else cpu).
    pub device: Option<String>,
    pub tol: f64,
    pub json: bool,
}

/// All-reduce bandwidth (`colorproxy bench allreduce`).
#[derive(Debug, Clone)]
pub struct BenchAllreduceRequest {
    /// Ranks to launch (when not already inside a job).
    pub nproc: usize,
    /// The pretraining preset whose trainable parameter count sets the size.
    pub preset: String,
    /// Elements to all-reduce instead of the preset's parameter count.
    pub numel: Option<i64>,
    /// Timed all-reduces (after one checked warm-up).
    pub iters: usize,
    /// cpu (Gloo) or cuda (NCCL, one GPU per rank).
    pub device: Option<String>,
}

/// The presets' costs and the data-parallel scaling model (`colorproxy bench cost`).
#[derive(Debug, Clone)]
pub struct BenchCostRequest {
    /// Pretraining presets to cost.
    pub presets: Vec<String>,
    /// Sustained training throughput per GPU (TFLOP/s).
    pub tflops: f64,
    /// NCCL bus bandwidth within an 8-GPU NVLink node (GB/s).
    pub nvlink_gbs: f64,
    /// NCCL bus bandwidth across nodes (GB/s).
    pub network_gbs: f64,
    /// GPU counts of the scaling table.
    pub gpus: Vec<usize>,
}
