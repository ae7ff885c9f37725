//! Data-parallel training on c10d ([`colorproxy_dist`]), the pieces the training loops use.
//!
//! Batch semantics: the config's `batch_size` is the **global** batch, as in the paper; with N
//! ranks each builds and trains on its share of slots `[r * B/N, (r + 1) * B/N)` of every global
//! batch (the same images, augmentations and points whatever N). The loss is a mean over the
//! points, so averaging the ranks' gradients gives the global batch's gradient. Parameter-free BN
//! normalises with each rank's sub-batch statistics (as the authors' multi-GPU Caffe did); BN
//! buffers are broadcast from rank 0 after every step (PyTorch DDP's `broadcast_buffers`), so all
//! ranks hold the same state and rank 0's checkpoint is everyone's. With `sync_bn = true` the BN
//! statistics are all ranks' ([`SyncBnScope`]) and each rank's dropout masks are its slice of the
//! global batch's ([`crate::init::DropoutShard`]), so a run equals the 1-process run.
use std::cell::{Cell, RefCell};
use std::ops::Range;

use colorproxy_dist::{ddp, DistError, ProcessGroup};
use tch::nn::VarStore;
use tch::Tensor;

use crate::optim::Sgd;
use crate::run_dir::TrainObserver;
use crate::NnError;

/// This process's rank (0 without a group).
pub fn rank(dist: Option<&ProcessGroup>) -> usize {
    dist.map(|pg| pg.rank()).unwrap_or(0)
}

/// Rank 0 (or a single process) writes the run folder.
pub fn is_rank0(dist: Option<&ProcessGroup>) -> bool {
    rank(dist) == 0
}

/// This rank's slots of a global batch of `batch` images.
pub fn shard(pg: &ProcessGroup, batch: usize) -> Result<Range<usize>, NnError> {
    shard_slots(pg.rank(), pg.size(), batch)
}

/// The slots of a job batch of `batch` images that rank `rank` of `world_size` builds: an equal
/// contiguous share (an error when the batch does not split evenly).
pub fn shard_slots(rank: usize, world_size: usize, batch: usize) -> Result<Range<usize>, NnError> {
    if world_size == 0 || rank >= world_size {
        return Err(NnError::Config(format!("rank {rank} is not in a job of {world_size} processes")));
    }
    if !batch.is_multiple_of(world_size) {
        return Err(NnError::Config(format!(
            "the global batch of {batch} images does not split evenly over {world_size} ranks (batch_size must be a multiple of the world size)"
        )));
    }
    let per = batch / world_size;
    Ok(rank * per..(rank + 1) * per)
}

/// Runs `f` on rank 0 first, then (after a barrier) on the other ranks: rank 0 prepares what the
/// others read (the run folder, a repaired checkpoint).
pub fn rank0_first(
    dist: Option<&ProcessGroup>,
    rank0: bool,
    f: impl FnOnce() -> Result<(), NnError>,
) -> Result<(), NnError> {
    let Some(pg) = dist else { return f() };
    if rank0 {
        f()?;
        pg.barrier()?;
        Ok(())
    } else {
        pg.barrier()?;
        f()
    }
}

/// Whether any rank has `flag` set (all ranks then act on it at the same step).
pub fn any(dist: Option<&ProcessGroup>, flag: bool) -> Result<bool, NnError> {
    match dist {
        Some(pg) => Ok(ddp::any(pg, flag)?),
        None => Ok(flag),
    }
}

/// The scalar results of one pretraining step.
pub struct StepResult {
    pub loss: f64,
    pub hue_kl: f64,
    pub chroma_kl: f64,
}

/// The step's loss and KL terms averaged over the ranks (one all-reduce).
pub fn mean_step_result(pg: &ProcessGroup, r: &StepResult) -> Result<StepResult, NnError> {
    let t = tch::Tensor::from_slice(&[r.loss, r.hue_kl, r.chroma_kl]);
    pg.all_reduce(std::slice::from_ref(&t), colorproxy_dist::ReduceOp::Sum)?;
    let n = pg.size() as f64;
    Ok(StepResult {
        loss: t.double_value(&[0]) / n,
        hue_kl: t.double_value(&[1]) / n,
        chroma_kl: t.double_value(&[2]) / n,
    })
}

/// Weights this rank's share of a batch loss that is a mean over `count` terms so that the
/// ranks' averaged gradients are the gradient of the mean over all ranks' terms: the loss times
/// `count x ranks / total count`. Returns the weighted loss and the global mean loss.
pub fn weight_share(pg: &ProcessGroup, loss: Tensor, count: f64) -> Result<(Tensor, f64), NnError> {
    let t = Tensor::from_slice(&[count, loss.double_value(&[]) * count]);
    pg.all_reduce(std::slice::from_ref(&t), colorproxy_dist::ReduceOp::Sum)?;
    let total = t.double_value(&[0]);
    let mean = if total > 0.0 { t.double_value(&[1]) / total } else { 0.0 };
    let w = if total > 0.0 { count * pg.size() as f64 / total } else { 0.0 };
    Ok((loss * w, mean))
}

/// Rank 0's value on every rank (identity without a group).
pub fn broadcast_scalar(dist: Option<&ProcessGroup>, v: f64) -> Result<f64, NnError> {
    let Some(pg) = dist else { return Ok(v) };
    let t = Tensor::from_slice(&[v]);
    pg.broadcast(std::slice::from_ref(&t), 0)?;
    Ok(t.double_value(&[0]))
}

/// Averages the optimiser's gradients over the ranks (flat buckets of 25 MiB).
pub fn average_gradients(pg: &ProcessGroup, sgd: &Sgd) -> Result<(), NnError> {
    Ok(ddp::average_gradients(pg, &sgd.parameters())?)
}

/// Checks that every rank holds bit-identical weights and buffers (at checkpoints); an error
/// names the iteration if they diverged.
pub fn check_in_sync<M>(
    dist: Option<&ProcessGroup>,
    vs: &VarStore,
    iteration: usize,
    obs: &mut dyn TrainObserver<M>,
) -> Result<(), NnError> {
    let Some(pg) = dist else { return Ok(()) };
    let (same, hash) = ddp::in_sync(pg, vs)?;
    if !same {
        return Err(NnError::Config(format!(
            "rank {}: the ranks' weights differ at iteration {iteration} (this rank's xxh3 {hash:016x})",
            pg.rank()
        )));
    }
    if pg.rank() == 0 {
        obs.message(&format!(
            "iteration {iteration}: weights identical on all {} ranks (xxh3 {hash:016x})",
            pg.size()
        ));
    }
    Ok(())
}

thread_local! {
    static SYNC_BN: Cell<*const ProcessGroup> = const { Cell::new(std::ptr::null()) };
    static SYNC_BN_ERROR: RefCell<Option<DistError>> = const { RefCell::new(None) };
}

/// While alive, the parameter-free BN of this thread normalises training batches with the
/// statistics of all ranks of `pg` ([`ProcessGroup::sync_batch_norm`]).
pub struct SyncBnScope<'a>(std::marker::PhantomData<&'a ProcessGroup>);

impl<'a> SyncBnScope<'a> {
    pub fn new(pg: &'a ProcessGroup) -> Self {
        SYNC_BN.with(|s| s.set(pg as *const ProcessGroup));
        Self(std::marker::PhantomData)
    }
}

impl Drop for SyncBnScope<'_> {
    fn drop(&mut self) {
        SYNC_BN.with(|s| s.set(std::ptr::null()));
    }
}

/// Synchronised BN of `x` when a [`SyncBnScope`] is alive on this thread. A failure is kept for
/// [`take_sync_bn_error`] and the local statistics are used for this call.
pub(crate) fn sync_bn(x: &Tensor, mean: &Tensor, var: &Tensor, momentum: f64, eps: f64) -> Option<Tensor> {
    let p = SYNC_BN.with(|s| s.get());
    if p.is_null() {
        return None;
    }
    // SAFETY: set by a live SyncBnScope, which borrows the group for its lifetime.
    let pg = unsafe { &*p };
    match pg.sync_batch_norm(x, mean, var, momentum, eps) {
        Ok(y) => Some(y),
        Err(e) => {
            SYNC_BN_ERROR.with(|s| *s.borrow_mut() = Some(e));
            None
        }
    }
}

/// The error of a synchronised BN call since the last check, if any.
pub fn take_sync_bn_error() -> Option<DistError> {
    SYNC_BN_ERROR.with(|s| s.borrow_mut().take())
}
