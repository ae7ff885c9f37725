//! Deterministic initialisation and dropout that do not depend on libtorch's global RNG: the same
//! seed gives the same weights and the same dropout masks on any device, in any thread, and after
//! a resume.
use colorproxy_data::Rng;
use tch::{nn, Device, Kind, Tensor};

use crate::config::ModelConfig;

/// A stable 64-bit hash of a name (FNV-1a).
pub fn name_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

/// Fills every variable of `vs` from `seed`, by name and shape:
/// - `*.bias`, `*running_mean`: 0; `*running_var`: 1; 1-d `*.weight` (BN scale): 1;
/// - `head.fc1.weight`: Gaussian, std `head_init_std` (the authors' head);
/// - any other weight: Caffe's "xavier", uniform in `±sqrt(3 / fan_in)`.
///
/// Each variable draws from its own stream `Rng::derive(seed, [hash(name)])`, so the result does
/// not depend on creation order, device or thread.
pub fn initialize(vs: &nn::VarStore, cfg: &ModelConfig, seed: u64) {
    tch::no_grad(|| {
        for (name, mut var) in vs.variables() {
            if var.kind() != Kind::Float && var.kind() != Kind::Double {
                continue;
            }
            let size = var.size();
            let n = var.numel();
            let constant = |v: f64| Some(v);
            let c = if name.ends_with(".bias") || name.ends_with("running_mean") {
                constant(0.0)
            } else if name.ends_with("running_var") || (name.ends_with(".weight") && size.len() == 1) {
                constant(1.0)
            } else {
                None
            };
            if let Some(v) = c {
                let _ = var.fill_(v);
                continue;
            }
            let mut rng = Rng::derive(seed, &[name_hash(&name)]);
            let values: Vec<f32> = if name == "head.fc1.weight" {
                let std = cfg.head_init_std;
                (0..n)
                    .map(|_| {
                        // Box-Muller.
                        let (u1, u2) = (1.0 - rng.uniform(), rng.uniform());
                        (std * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
                    })
                    .collect()
            } else {
                let fan_in: i64 = size[1..].iter().product();
                let a = (3.0 / fan_in.max(1) as f64).sqrt();
                (0..n).map(|_| ((rng.uniform() * 2.0 - 1.0) * a) as f32).collect()
            };
            let t = Tensor::from_slice(&values).reshape(&size).to_device(var.device()).to_kind(var.kind());
            var.copy_(&t);
        }
    });
}

const M31: i64 = 0x7fff_ffff;

/// Inverted dropout with a counter-based mask: element `i` is kept iff
/// `hash31(i, key) / 2^31 >= p`. The hash uses only int64 arithmetic that cannot overflow, so
/// CPU and CUDA give identical masks. `key` is derived from (seed, iteration, layer).
pub fn keyed_dropout(x: &Tensor, p: f64, key: u64, train: bool) -> Tensor {
    if !train || p <= 0.0 {
        return x.shallow_clone();
    }
    let mask = keep_mask(&x.size(), p, key, x.device());
    x * mask.to_kind(x.kind()) * (1.0 / (1.0 - p))
}

thread_local! {
    /// Data parallelism: (first slot of this rank's share, slots in it), so a rank's dropout masks
    /// are its slice of the global batch's masks (see [`DropoutShard`]).
    static DROPOUT_SHARD: std::cell::Cell<(i64, i64)> = const { std::cell::Cell::new((0, 1)) };
}

/// While alive, [`keep_mask`] on this thread indexes its elements as the slots
/// `[start, start + len)` of the global batch: for a tensor whose leading factor is the batch
/// (`[B, ...]` or `[B * P, ...]`) a rank draws exactly its slice of the 1-process masks.
pub struct DropoutShard;

impl DropoutShard {
    pub fn new(start: usize, len: usize) -> Self {
        DROPOUT_SHARD.with(|s| s.set((start as i64, len.max(1) as i64)));
        Self
    }
}

impl Drop for DropoutShard {
    fn drop(&mut self) {
        DROPOUT_SHARD.with(|s| s.set((0, 1)));
    }
}

/// The keep mask of [`keyed_dropout`] (bool tensor of `size`).
pub fn keep_mask(size: &[i64], p: f64, key: u64, device: Device) -> Tensor {
    let n: i64 = size.iter().product();
    let k1 = (key & M31 as u64) as i64;
    let k2 = ((key >> 31) & M31 as u64) as i64;
    let (start, len) = DROPOUT_SHARD.with(|s| s.get());
    let mut idx = Tensor::arange(n, (Kind::Int64, device));
    if start != 0 {
        idx += n / len * start;
    }
    // Each step keeps values below 2^31 and multiplies by constants below 2^31: no overflow.
    let mut h = (idx.remainder(1 << 31) * 1_640_531_527i64 + k1).bitwise_and(M31);
    for (mul, add) in [(1_103_515_245i64, 12_345i64), (69_069, k2), (1_664_525, 1_013_904_223 & M31)] {
        h = h.bitwise_xor_tensor(&h.bitwise_right_shift(&Tensor::from(13i64).to_device(device)));
        h = (h * mul + add).bitwise_and(M31);
    }
    h = h.bitwise_xor_tensor(&h.bitwise_right_shift(&Tensor::from(16i64).to_device(device)));
    let threshold = (p * (1u64 << 31) as f64) as i64;
    h.ge(threshold).reshape(size)
}

/// The dropout key of `layer` at `iteration` of a run seeded with `seed`.
pub fn dropout_key(seed: u64, iteration: u64, layer: u64) -> u64 {
    Rng::derive(seed, &[0xD0, iteration, layer]).next_u64()
}
