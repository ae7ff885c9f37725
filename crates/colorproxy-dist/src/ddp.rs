//! Data parallelism over a [`ProcessGroup`], as PyTorch's DDP does it: the same weights on every
//! rank at the start (broadcast from rank 0, buffers included), gradients averaged in buckets
//! after each backward pass, buffers (BN running statistics) broadcast from rank 0 so every rank
//! holds the same state, and a check that the ranks' weights agree bit for bit.
use std::collections::BTreeMap;

use tch::nn::VarStore;
use tch::{Kind, Tensor};

use crate::{DistError, ProcessGroup, ReduceOp};

/// PyTorch DDP's default bucket size (25 MiB).
pub const BUCKET_BYTES: usize = 25 << 20;

/// The variables of `vs` sorted by name (the same order on every rank).
pub fn sorted_variables(vs: &VarStore) -> Vec<(String, Tensor)> {
    let map: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
    map.into_iter().collect()
}

/// Every variable (parameters and buffers) from rank 0.
pub fn broadcast_variables(pg: &ProcessGroup, vs: &VarStore) -> Result<(), DistError> {
    let ts: Vec<Tensor> = sorted_variables(vs).into_iter().map(|(_, t)| t).collect();
    tch::no_grad(|| pg.broadcast(&ts, 0))
}

/// The buffers (variables without gradients: BN running statistics) from rank 0.
pub fn broadcast_buffers(pg: &ProcessGroup, vs: &VarStore) -> Result<(), DistError> {
    let ts: Vec<Tensor> =
        sorted_variables(vs).into_iter().filter(|(_, t)| !t.requires_grad()).map(|(_, t)| t).collect();
    if ts.is_empty() {
        return Ok(());
    }
    tch::no_grad(|| pg.broadcast(&ts, 0))
}

/// Averages the gradients of `params` (sorted by name) over the ranks, in buckets of at most
/// [`BUCKET_BYTES`] (one flat all-reduce each). Parameters without a gradient are skipped.
pub fn average_gradients(pg: &ProcessGroup, params: &[(String, Tensor)]) -> Result<(), DistError> {
    let grads: Vec<Tensor> = params.iter().map(|(_, p)| p.grad()).filter(|g| g.defined()).collect();
    let mut bucket: Vec<Tensor> = Vec::new();
    let mut bytes = 0usize;
    for g in grads {
        let b = g.numel() * 4;
        let compatible = bucket.first().is_none_or(|f| f.kind() == g.kind() && f.device() == g.device());
        if !bucket.is_empty() && (bytes + b > BUCKET_BYTES || !compatible) {
            pg.all_reduce_flat(&std::mem::take(&mut bucket), ReduceOp::Avg)?;
            bytes = 0;
        }
        bytes += b;
        bucket.push(g);
    }
    if !bucket.is_empty() {
        pg.all_reduce_flat(&bucket, ReduceOp::Avg)?;
    }
    Ok(())
}

/// A scalar summed over the ranks (e.g. the loss, for logging and for agreeing on a stop).
pub fn sum_scalar(pg: &ProcessGroup, v: f64) -> Result<f64, DistError> {
    let t = Tensor::from_slice(&[v]);
    pg.all_reduce(std::slice::from_ref(&t), ReduceOp::Sum)?;
    Ok(t.double_value(&[0]))
}

/// Whether any rank says yes (e.g. an interrupt seen by one rank stops all at the same step).
pub fn any(pg: &ProcessGroup, flag: bool) -> Result<bool, DistError> {
    let t = Tensor::from_slice(&[flag as i64]);
    pg.all_reduce(std::slice::from_ref(&t), ReduceOp::Max)?;
    Ok(t.int64_value(&[0]) != 0)
}

/// A 64-bit hash of the variables' bytes (sorted by name).
pub fn weights_hash(vs: &VarStore) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for (name, t) in sorted_variables(vs) {
        h.update(name.as_bytes());
        let t = t.detach().to_device(tch::Device::Cpu).to_kind(Kind::Float).contiguous().view([-1]);
        let v: Vec<f32> = Vec::<f32>::try_from(&t).unwrap_or_default();
        for x in v {
            h.update(&x.to_bits().to_le_bytes());
        }
    }
    h.digest()
}

/// Whether every rank holds bit-identical variables (weights and buffers); returns this rank's
/// hash too.
pub fn in_sync(pg: &ProcessGroup, vs: &VarStore) -> Result<(bool, u64), DistError> {
    let h = weights_hash(vs);
    // Two 32-bit halves as int64, so MIN and MAX are exact.
    let halves = [(h >> 32) as i64, (h & 0xFFFF_FFFF) as i64];
    let lo = Tensor::from_slice(&halves);
    let hi = Tensor::from_slice(&halves);
    pg.all_reduce(std::slice::from_ref(&lo), ReduceOp::Min)?;
    pg.all_reduce(std::slice::from_ref(&hi), ReduceOp::Max)?;
    Ok((lo.equal(&hi), h))
}
