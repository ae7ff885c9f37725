//! What a pretraining run costs: parameters, gradient bytes, multiply-accumulates per image
//! (counted on a real forward pass at the config's crop and point count), and the time a run
//! takes at a given sustained throughput. Training FLOPs per image are taken as 3 x the forward
//! pass (forward + backward of the activations and of the weights), 2 FLOPs per MAC.
use tch::{Device, Kind, Tensor};

use crate::config::PretrainConfig;
use crate::model::ColorizationNet;
use crate::NnError;

/// ImageNet-1k training images (ILSVRC 2012), the unit of the paper's epochs.
pub const IMAGENET_TRAIN_IMAGES: usize = 1_281_167;

/// The cost figures of a pretraining config.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PretrainCost {
    /// Trainable parameters.
    pub parameters: i64,
    /// Bytes of every variable (weights and BN buffers, float32): one weights file.
    pub weight_bytes: u64,
    /// Bytes of one float32 gradient (what data parallelism all-reduces per step).
    pub gradient_bytes: u64,
    /// Multiply-accumulates of one image's forward pass (backbone, hypercolumn head at the points).
    pub forward_macs_per_image: u64,
    /// `6 x forward_macs_per_image`: forward + backward, 2 FLOPs per MAC.
    pub train_flops_per_image: f64,
    /// Output elements of the convolutions and linear layers for one image: the activations
    /// training keeps for the backward pass are about 3x this (convolution, BN and ReLU outputs).
    pub activations_per_image: u64,
}

impl PretrainCost {
    /// Estimated training memory (bytes) at `batch` images per process: weights, gradients and
    /// momentum (3 x 4 bytes per parameter) plus 3 float32 activations per layer output.
    pub fn memory_bytes(&self, batch: usize) -> u64 {
        12 * self.parameters as u64 + batch as u64 * 12 * self.activations_per_image
    }

    /// The run folder on disk, in bytes: what a finished run keeps and the most a checkpoint write
    /// adds while it runs (the previous generation stays until the new one is durable).
    pub fn disk(&self, cfg: &PretrainConfig) -> RunDisk {
        let optimiser = 4 * self.parameters as u64;
        let mut snaps: Vec<usize> =
            cfg.snapshots.iter().copied().filter(|&s| s > 0 && s <= cfg.iterations).collect();
        snaps.dedup();
        RunDisk {
            weights: self.weight_bytes,
            optimiser,
            snapshots: snaps.len(),
            kept: 2 * self.weight_bytes + optimiser + snaps.len() as u64 * self.weight_bytes,
            peak_extra: 2 * self.weight_bytes + optimiser,
        }
    }
}

/// What a pretraining run folder holds on disk ([`PretrainCost::disk`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunDisk {
    /// One weights file (the checkpoint's, `last.safetensors`, each snapshot).
    pub weights: u64,
    /// The checkpoint's optimiser state (momentum of every trainable parameter).
    pub optimiser: u64,
    /// Snapshots the schedule writes (weights only).
    pub snapshots: usize,
    /// The finished folder: checkpoint (weights + optimiser), `last.safetensors`, snapshots.
    pub kept: u64,
    /// Added while a checkpoint is written: the new generation and `last.safetensors`' temp copy.
    pub peak_extra: u64,
}

impl PretrainCost {
    /// Training FLOPs of the whole run: `iterations x total batch x train_flops_per_image`.
    pub fn run_flops(&self, cfg: &PretrainConfig) -> f64 {
        cfg.iterations as f64
            * (cfg.data.batch_size * cfg.world_size.max(1)) as f64
            * self.train_flops_per_image
    }
}

/// Counts the costs of `cfg`'s network: builds it on the CPU and runs one image through it at
/// the crop size with the config's number of points (no gradients).
pub fn pretrain_cost(cfg: &PretrainConfig) -> Result<PretrainCost, NnError> {
    let net = ColorizationNet::new(
        &cfg.model,
        cfg.targets.hue_bins as i64,
        cfg.targets.chroma_bins as i64,
        Device::Cpu,
        cfg.seed,
    )?;
    let s = cfg.data.augment.crop as i64;
    let p = cfg.data.points as i64;
    let input = Tensor::zeros([1, cfg.model.in_channels, s, s], (Kind::Float, Device::Cpu));
    let points = Tensor::full([1, p, 2], (s / 2) as f64, (Kind::Float, Device::Cpu));
    let (_, macs, outputs) =
        crate::conv::count_macs(|| tch::no_grad(|| net.forward(&input, &points, false, 0)));
    let parameters: i64 = net.vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
    let weight_bytes =
        net.vs.variables().values().map(|t| (t.numel() * t.kind().elt_size_in_bytes()) as u64).sum();
    Ok(PretrainCost {
        parameters,
        weight_bytes,
        gradient_bytes: parameters as u64 * 4,
        forward_macs_per_image: macs,
        train_flops_per_image: 6.0 * macs as f64,
        activations_per_image: outputs,
    })
}

/// Seconds of a ring all-reduce of `bytes` over `n` ranks at `bus_bytes_per_s` (NCCL's "bus
/// bandwidth": the algorithm moves `2 (n - 1) / n x bytes` through each rank's link).
pub fn ring_allreduce_seconds(bytes: u64, n: usize, bus_bytes_per_s: f64) -> f64 {
    if n <= 1 {
        return 0.0;
    }
    2.0 * (n as f64 - 1.0) / n as f64 * bytes as f64 / bus_bytes_per_s
}
