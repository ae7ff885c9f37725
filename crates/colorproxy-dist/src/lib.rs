//! Data-parallel training on PyTorch's own distributed engine, c10d: TCPStore rendezvous and
//! ProcessGroupGloo (CPU) or ProcessGroupNCCL (GPU, cargo feature `nccl`), the code inside the
//! libtorch that tch links, reached through the C++ shim in `csrc/` (no exception crosses into
//! Rust; every failure is a [`DistError`]).
//!
//! - [`mod@env`]: who am I: torchrun's variables, Slurm's, or `colorproxy launch`'s.
//! - [`ProcessGroup`]: all-reduce (per tensor or through one flat bucket), broadcast, barrier,
//!   with the group's timeout; a failed collective reports which ranks are lost.
//! - [`ddp`]: what data parallelism needs: the same initial weights everywhere, gradients
//!   averaged in buckets, a check that all ranks hold the same weights.
//!
//! A `tch::Tensor` wraps an `at::Tensor*` (torch-sys' `typedef torch::Tensor *tensor;`), which the
//! shim receives as `Tensor::as_ptr()`.
pub mod ddp;
pub mod env;

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ptr::NonNull;
use std::time::Duration;

use tch::Tensor;

pub use env::{DistEnv, Launcher};

/// Errors of the process group.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    #[error("distributed launch: {0}")]
    Env(String),
    #[error("c10d: {0}")]
    C10d(String),
    #[error("rank {rank}: lost rank(s) {lost:?} (no liveness report within {grace_s} s after a failed collective: {cause})")]
    Lost { rank: usize, lost: Vec<usize>, grace_s: u64, cause: String },
    #[error("rank {rank}: lost the job's rendezvous store (hosted by rank 0, or by torchrun's agent): rank 0 stopped or cannot be reached; the job stops (resume it with --resume auto) ({cause})")]
    StoreLost { rank: usize, cause: String },
}

mod ffi {
    use super::*;
    #[repr(C)]
    pub struct c10d_pg {
        _p: [u8; 0],
    }
    #[repr(C)]
    pub struct c10d_store {
        _p: [u8; 0],
    }
    extern "C" {
        pub fn c10d_store_server_new(port: c_int, timeout_ms: i64) -> *mut c10d_store;
        pub fn c10d_store_free(s: *mut c10d_store);
        pub fn c10d_last_error() -> *const c_char;
        pub fn c10d_has_nccl() -> c_int;
        pub fn c10d_quiet_warnings();
        pub fn c10d_pg_new(
            backend: *const c_char,
            rank: c_int,
            world_size: c_int,
            master_addr: *const c_char,
            master_port: c_int,
            is_store_server: c_int,
            store_prefix: *const c_char,
            timeout_ms: i64,
            cuda_device: c_int,
        ) -> *mut c10d_pg;
        pub fn c10d_pg_free(pg: *mut c10d_pg);
        pub fn c10d_allreduce(pg: *mut c10d_pg, t: *const *mut c_void, n: usize, op: c_int) -> c_int;
        pub fn c10d_allreduce_flat(pg: *mut c10d_pg, t: *const *mut c_void, n: usize, op: c_int) -> c_int;
        pub fn c10d_broadcast(pg: *mut c10d_pg, t: *const *mut c_void, n: usize, root: c_int) -> c_int;
        pub fn c10d_barrier(pg: *mut c10d_pg) -> c_int;
        pub fn c10d_store_set(pg: *mut c10d_pg, key: *const c_char, value: *const c_char) -> c_int;
        pub fn c10d_store_check(pg: *mut c10d_pg, key: *const c_char, found: *mut c_int) -> c_int;
        pub fn c10d_sync_batch_norm(
            pg: *mut c10d_pg,
            x: *mut c_void,
            running_mean: *mut c_void,
            running_var: *mut c_void,
            momentum: f64,
            eps: f64,
        ) -> *mut c_void;
    }
}

fn last_error() -> String {
    // SAFETY: the shim returns a pointer to its thread-local, NUL-terminated message.
    unsafe { CStr::from_ptr(ffi::c10d_last_error()) }.to_string_lossy().into_owned()
}

fn cstring(s: &str) -> Result<CString, DistError> {
    CString::new(s).map_err(|_| DistError::Env(format!("{s:?} contains a NUL byte")))
}

/// Whether the shim was compiled with ProcessGroupNCCL (cargo feature `nccl`).
pub fn has_nccl() -> bool {
    // SAFETY: no arguments, no state.
    unsafe { ffi::c10d_has_nccl() != 0 }
}

/// Reduction of an all-reduce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum ReduceOp {
    Sum = 0,
    /// Native on NCCL; SUM followed by division by the world size on Gloo.
    Avg = 1,
    Min = 3,
    Max = 4,
}

/// What the liveness reports after a failed collective say.
enum Liveness {
    AllAlive,
    /// These ranks did not report within the grace period.
    Lost(Vec<usize>),
    /// The store (on rank 0 or torchrun's agent) does not answer.
    StoreLost,
}

/// Seconds the surviving ranks wait for each other's liveness reports after a failed collective.
const LIVENESS_GRACE: Duration = Duration::from_secs(3);

/// A process group: this process's rank among `size`, on Gloo (CPU tensors) or NCCL (CUDA).
pub struct ProcessGroup {
    ptr: NonNull<ffi::c10d_pg>,
    rank: usize,
    size: usize,
    backend: String,
}

// SAFETY: the c10d backend is used from one thread at a time (the training loop); moving it
// between threads is fine.
unsafe impl Send for ProcessGroup {}

impl ProcessGroup {
    /// Rendezvous (rank 0 hosts the TCPStore unless torchrun's agent does) and creates the
    /// backend. `timeout` bounds the rendezvous and every collective.
    pub fn new(
        backend: &str,
        env: &DistEnv,
        timeout: Duration,
        cuda_device: Option<usize>,
    ) -> Result<Self, DistError> {
        let be = cstring(backend)?;
        let addr = cstring(&env.master_addr)?;
        let prefix = cstring(&env.store_prefix())?;
        // SAFETY: valid NUL-terminated strings that outlive the call; the shim copies them.
        let ptr = unsafe {
            ffi::c10d_pg_new(
                be.as_ptr(),
                env.rank as c_int,
                env.world_size as c_int,
                addr.as_ptr(),
                env.master_port as c_int,
                env.hosts_store() as c_int,
                prefix.as_ptr(),
                timeout.as_millis() as i64,
                cuda_device.map(|d| d as c_int).unwrap_or(-1),
            )
        };
        let ptr = NonNull::new(ptr).ok_or_else(|| {
            DistError::C10d(format!(
                "rendezvous at {}:{} as rank {} of {} ({backend}): {}",
                env.master_addr,
                env.master_port,
                env.rank,
                env.world_size,
                last_error()
            ))
        })?;
        Ok(Self { ptr, rank: env.rank, size: env.world_size, backend: backend.to_string() })
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn backend(&self) -> &str {
        &self.backend
    }

    fn ptrs(tensors: &[Tensor]) -> Vec<*mut c_void> {
        tensors.iter().map(|t| t.as_ptr() as *mut c_void).collect()
    }

    /// In place, one collective per tensor.
    pub fn all_reduce(&self, tensors: &[Tensor], op: ReduceOp) -> Result<(), DistError> {
        let p = Self::ptrs(tensors);
        // SAFETY: `p` holds live at::Tensor pointers for the duration of the call.
        let rc = unsafe { ffi::c10d_allreduce(self.ptr.as_ptr(), p.as_ptr(), p.len(), op as c_int) };
        self.checked(rc)
    }

    /// In place through one flat buffer (a DDP bucket): tensors of one dtype and device.
    pub fn all_reduce_flat(&self, tensors: &[Tensor], op: ReduceOp) -> Result<(), DistError> {
        let p = Self::ptrs(tensors);
        // SAFETY: as above.
        let rc = unsafe { ffi::c10d_allreduce_flat(self.ptr.as_ptr(), p.as_ptr(), p.len(), op as c_int) };
        self.checked(rc)
    }

    /// In place, from `root` to every rank.
    pub fn broadcast(&self, tensors: &[Tensor], root: usize) -> Result<(), DistError> {
        if root >= self.size {
            return Err(DistError::Env(format!("broadcast root {root} >= world size {}", self.size)));
        }
        let p = Self::ptrs(tensors);
        // SAFETY: as above.
        let rc = unsafe { ffi::c10d_broadcast(self.ptr.as_ptr(), p.as_ptr(), p.len(), root as c_int) };
        self.checked(rc)
    }

    pub fn barrier(&self) -> Result<(), DistError> {
        // SAFETY: a live group.
        let rc = unsafe { ffi::c10d_barrier(self.ptr.as_ptr()) };
        self.checked(rc)
    }

    /// Parameter-free batch normalisation of `x` `[B, C, ...]` with the statistics of all ranks'
    /// batches (SyncBatchNorm without scale and shift): an autograd function whose backward pass
    /// all-reduces too, so the gradient is the global batch's. Updates the running statistics in
    /// place (momentum in PyTorch's convention, unbiased running variance).
    pub fn sync_batch_norm(
        &self,
        x: &Tensor,
        running_mean: &Tensor,
        running_var: &Tensor,
        momentum: f64,
        eps: f64,
    ) -> Result<Tensor, DistError> {
        // SAFETY: live tensors for the duration of the call; the shim returns a new at::Tensor*
        // (owned by the returned Tensor, freed by tch) or NULL.
        let p = unsafe {
            ffi::c10d_sync_batch_norm(
                self.ptr.as_ptr(),
                x.as_ptr() as *mut c_void,
                running_mean.as_ptr() as *mut c_void,
                running_var.as_ptr() as *mut c_void,
                momentum,
                eps,
            )
        };
        if p.is_null() {
            return Err(DistError::C10d(format!("sync batch norm: {}", last_error())));
        }
        // SAFETY: `p` is a heap-allocated at::Tensor that nothing else owns.
        Ok(unsafe { Tensor::from_ptr(p as *mut torch_sys::C_tensor) })
    }

    /// A failed collective becomes [`DistError::Lost`] when some ranks do not report alive
    /// within [`LIVENESS_GRACE`] (each surviving rank's collective fails too, and reports).
    fn checked(&self, rc: c_int) -> Result<(), DistError> {
        if rc == 0 {
            return Ok(());
        }
        let cause = last_error();
        match self.lost_ranks() {
            Liveness::StoreLost if self.rank != 0 => Err(DistError::StoreLost { rank: self.rank, cause }),
            Liveness::StoreLost | Liveness::AllAlive => Err(DistError::C10d(cause)),
            Liveness::Lost(lost) => {
                Err(DistError::Lost { rank: self.rank, lost, grace_s: LIVENESS_GRACE.as_secs(), cause })
            }
        }
    }

    /// Which ranks report alive after a failure, through the store (each surviving rank's
    /// collective fails too, and reports).
    fn lost_ranks(&self) -> Liveness {
        // The store's client logs a warning (with a stack trace) per failed retry: thousands of
        // lines that would bury the error when the store is gone.
        // SAFETY: sets a logging flag.
        unsafe { ffi::c10d_quiet_warnings() };
        let key = |r: usize| format!("colorproxy/alive/{r}");
        let Ok(k) = cstring(&key(self.rank)) else { return Liveness::AllAlive };
        let one = cstring("1").expect("no NUL");
        // SAFETY: live group, valid strings.
        if unsafe { ffi::c10d_store_set(self.ptr.as_ptr(), k.as_ptr(), one.as_ptr()) } != 0 {
            return Liveness::StoreLost;
        }
        let deadline = std::time::Instant::now() + LIVENESS_GRACE;
        loop {
            let mut lost = Vec::new();
            for r in 0..self.size {
                let k = cstring(&key(r)).expect("no NUL");
                let mut found: c_int = 0;
                // SAFETY: as above; `found` outlives the call.
                let rc = unsafe { ffi::c10d_store_check(self.ptr.as_ptr(), k.as_ptr(), &mut found) };
                if rc != 0 {
                    // The store itself stopped answering: it lives on rank 0 (or torchrun's agent).
                    return Liveness::StoreLost;
                }
                if found == 0 {
                    lost.push(r);
                }
            }
            if lost.is_empty() {
                return Liveness::AllAlive;
            }
            if std::time::Instant::now() >= deadline {
                return Liveness::Lost(lost);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: created by c10d_pg_new, freed once.
        unsafe { ffi::c10d_pg_free(self.ptr.as_ptr()) }
    }
}

/// A bare TCPStore server on 127.0.0.1 (what torchrun's agent hosts; ranks then connect with
/// `TORCHELASTIC_USE_AGENT_STORE=True`). For launchers and tests.
pub struct StoreServer(NonNull<ffi::c10d_store>);

impl StoreServer {
    pub fn new(port: u16, timeout: Duration) -> Result<Self, DistError> {
        // SAFETY: plain values.
        let p = unsafe { ffi::c10d_store_server_new(port as c_int, timeout.as_millis() as i64) };
        NonNull::new(p).map(Self).ok_or_else(|| DistError::C10d(last_error()))
    }
}

impl Drop for StoreServer {
    fn drop(&mut self) {
        // SAFETY: created by c10d_store_server_new, freed once.
        unsafe { ffi::c10d_store_free(self.0.as_ptr()) }
    }
}
