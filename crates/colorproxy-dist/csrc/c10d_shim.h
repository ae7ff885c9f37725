// C API over PyTorch's c10d (TCPStore + ProcessGroupGloo / ProcessGroupNCCL) for tch-rs.
//
// A `c10d_tensor` is an `at::Tensor*`, i.e. exactly what tch's `Tensor::as_ptr()` /
// `as_mut_ptr()` return (torch-sys: `typedef torch::Tensor *tensor;`). Collectives work in
// place on the tensors' storage; the shim never takes ownership of them.
//
// Every function that can fail returns 0 on success / non-zero on failure (or NULL for the
// constructor); the message is then available from c10d_last_error() on the same thread.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct c10d_pg c10d_pg;
typedef void* c10d_tensor;

// Reduce ops: same numbering as c10d::ReduceOp::RedOpType.
enum {
  C10D_SUM = 0,
  C10D_AVG = 1,  // native on NCCL; emulated as SUM then /world_size on Gloo
  C10D_PRODUCT = 2,
  C10D_MIN = 3,
  C10D_MAX = 4,
};

const char* c10d_last_error(void);

// 1 if this shim was compiled with ProcessGroupNCCL support (cargo feature `nccl`).
int c10d_has_nccl(void);
/* Raises c10's log level to ERROR (c10d's store retries log a warning each), unless the user set
   TORCH_CPP_LOG_LEVEL. For the failure path, where the store may be gone. */
void c10d_quiet_warnings(void);

// Rendezvous through a c10d::TCPStore at master_addr:master_port (server on the rank that has
// is_store_server != 0), optional key prefix (torchrun: "/worker/attempt_<restart>"), then
// create the backend: "gloo" (CPU tensors) or "nccl" (CUDA tensors; `cuda_device` >= 0 binds
// the group to that device and creates the communicator eagerly).
c10d_pg* c10d_pg_new(const char* backend, int rank, int world_size, const char* master_addr,
                     int master_port, int is_store_server, const char* store_prefix,
                     int64_t timeout_ms, int cuda_device);
void c10d_pg_free(c10d_pg* pg);

// A bare TCPStore server (what torchrun's agent hosts; ranks then connect as clients with
// is_store_server = 0 and store_prefix "/worker/attempt_<n>"). Used by tests/launchers.
typedef struct c10d_store c10d_store;
c10d_store* c10d_store_server_new(int port, int64_t timeout_ms);
void c10d_store_free(c10d_store* s);
int c10d_pg_rank(const c10d_pg* pg);
int c10d_pg_size(const c10d_pg* pg);

// In-place all-reduce of each tensor (one collective per tensor, all issued, then all waited).
int c10d_allreduce(c10d_pg* pg, const c10d_tensor* tensors, size_t n, int op);
// In-place all-reduce through one flat buffer (DDP-style bucket): one collective for all.
// Tensors must share dtype and device.
int c10d_allreduce_flat(c10d_pg* pg, const c10d_tensor* tensors, size_t n, int op);
// In-place broadcast of each tensor from `root`.
int c10d_broadcast(c10d_pg* pg, const c10d_tensor* tensors, size_t n, int root);
int c10d_barrier(c10d_pg* pg);
// Parameter-free batch normalisation of x [B, C, ...] with statistics over all ranks (an autograd
// function: its backward all-reduces too); updates the running statistics in place. Returns a new
// tensor (an at::Tensor* the caller owns) or NULL on error.
c10d_tensor c10d_sync_batch_norm(c10d_pg* pg, c10d_tensor x, c10d_tensor running_mean,
                                 c10d_tensor running_var, double momentum, double eps);
// Key/value on the group's store (under the group's prefix): liveness reports.
int c10d_store_set(c10d_pg* pg, const char* key, const char* value);
int c10d_store_check(c10d_pg* pg, const char* key, int* found);

#ifdef __cplusplus
}
#endif
