// c10d shim: TCPStore rendezvous + ProcessGroupGloo (+ ProcessGroupNCCL via c10d_nccl.cpp).
// Adapted from ../shared/reference/c10d-from-tch (the project's proof of concept); added: store
// key set/check on the group's store (liveness reports after a failed collective).
// Built by build.rs with -std=c++17 -D_GLIBCXX_USE_CXX11_ABI=1 -DUSE_C10D_GLOO against the
// libtorch headers and third_party/gloo-include (the wheel ships no gloo headers).
#include "c10d_shim.h"

#include <chrono>
#include <cstdlib>
#include <exception>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <c10/util/Logging.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>

#ifdef C10D_SHIM_NCCL
// Defined in c10d_nccl.cpp (separate TU: needs CUDA/NCCL headers and -DUSE_C10D_NCCL).
c10::intrusive_ptr<c10d::Backend> c10d_shim_make_nccl(
    const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
    std::chrono::milliseconds timeout, int cuda_device);
#endif

struct c10d_pg {
  std::string backend;
  int rank;
  int size;
  int cuda_device;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> pg;
};

struct c10d_store {
  c10::intrusive_ptr<c10d::TCPStore> store;
};

namespace {

thread_local std::string g_last_error;

template <typename F>
int guarded(F&& f) {
  try {
    f();
    return 0;
  } catch (const c10::Error& e) {
    g_last_error = e.what_without_backtrace();
  } catch (const std::exception& e) {
    g_last_error = e.what();
  } catch (...) {
    g_last_error = "unknown C++ exception";
  }
  return 1;
}

std::vector<at::Tensor> to_vec(const c10d_tensor* tensors, size_t n) {
  std::vector<at::Tensor> v;
  v.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    TORCH_CHECK(tensors[i] != nullptr, "tensor ", i, " is null");
    v.push_back(*static_cast<at::Tensor*>(tensors[i]));  // shallow handle copy, same storage
  }
  return v;
}

// Gloo has no AVG: emulate with SUM + division afterwards.
c10d::ReduceOp effective_op(const c10d_pg* pg, int op, bool* divide_after) {
  *divide_after = false;
  if (op == C10D_AVG && pg->backend == "gloo") {
    *divide_after = true;
    return c10d::ReduceOp(c10d::ReduceOp::SUM);
  }
  TORCH_CHECK(op >= 0 && op <= 7, "unsupported reduce op ", op);
  return c10d::ReduceOp(static_cast<c10d::ReduceOp::RedOpType>(op));
}

std::vector<std::shared_ptr<::gloo::transport::Device>> gloo_devices() {
  // Same policy as torch.distributed: GLOO_SOCKET_IFNAME (comma list) else default device
  // (resolve hostname, fall back to loopback).
  std::vector<std::shared_ptr<::gloo::transport::Device>> devs;
  const bool lazy = c10d::getDefaultGlooLazyInit();
  const char* ifnames = std::getenv("GLOO_SOCKET_IFNAME");
  if (ifnames != nullptr && *ifnames != '\0') {
    std::stringstream ss(ifnames);
    std::string name;
    while (std::getline(ss, name, ',')) {
      if (!name.empty()) {
        devs.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(name, lazy));
      }
    }
  }
  if (devs.empty()) {
    devs.push_back(c10d::ProcessGroupGloo::createDefaultDevice(lazy));
  }
  return devs;
}

}  // namespace

// For c10d_sync_bn.cpp.
void c10d_shim_allreduce_sum(c10d_pg* pg, at::Tensor& t) {
  std::vector<at::Tensor> buf{t};
  c10d::AllreduceOptions opts;
  opts.reduceOp = c10d::ReduceOp(c10d::ReduceOp::SUM);
  pg->pg->allreduce(buf, opts)->wait();
}

int c10d_shim_guarded(const std::function<void()>& f) { return guarded(f); }

extern "C" {

const char* c10d_last_error(void) { return g_last_error.c_str(); }

int c10d_has_nccl(void) {
#ifdef C10D_SHIM_NCCL
  return 1;
#else
  return 0;
#endif
}

c10d_pg* c10d_pg_new(const char* backend, int rank, int world_size, const char* master_addr,
                     int master_port, int is_store_server, const char* store_prefix,
                     int64_t timeout_ms, int cuda_device) {
  c10d_pg* out = nullptr;
  int rc = guarded([&] {
    TORCH_CHECK(backend != nullptr && master_addr != nullptr, "null argument");
    TORCH_CHECK(world_size > 0 && rank >= 0 && rank < world_size, "bad rank/world_size ", rank,
                "/", world_size);
    TORCH_CHECK(master_port > 0 && master_port < 65536, "bad master_port ", master_port);
    const auto timeout = std::chrono::milliseconds(timeout_ms);
    std::string be(backend);

    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(master_port);
    so.isServer = is_store_server != 0;
    so.numWorkers = static_cast<std::size_t>(world_size);
    so.waitWorkers = true;
    so.timeout = timeout;
    so.multiTenant = true;  // as torch.distributed's env:// rendezvous
    c10::intrusive_ptr<c10d::Store> store =
        c10::make_intrusive<c10d::TCPStore>(std::string(master_addr), so);
    if (store_prefix != nullptr && *store_prefix != '\0') {
      store = c10::make_intrusive<c10d::PrefixStore>(std::string(store_prefix), store);
    }
    // Namespace this group's keys like torch.distributed's default group ("0/").
    auto pg_store = c10::make_intrusive<c10d::PrefixStore>("0/", store);

    c10::intrusive_ptr<c10d::Backend> pg;
    if (be == "gloo") {
      auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
      opts->devices = gloo_devices();
      opts->threads = static_cast<int>(opts->devices.size()) * 2;
      pg = c10::make_intrusive<c10d::ProcessGroupGloo>(pg_store, rank, world_size, opts);
    } else if (be == "nccl") {
#ifdef C10D_SHIM_NCCL
      pg = c10d_shim_make_nccl(pg_store, rank, world_size, timeout, cuda_device);
#else
      TORCH_CHECK(false, "c10d shim was built without NCCL (enable cargo feature `nccl`)");
#endif
    } else {
      TORCH_CHECK(false, "unknown backend '", be, "' (expected gloo or nccl)");
    }
    pg->setSequenceNumberForGroup();
    out = new c10d_pg{be, rank, world_size, cuda_device, store, pg};
  });
  return rc == 0 ? out : nullptr;
}

void c10d_pg_free(c10d_pg* pg) {
  if (pg == nullptr) return;
  guarded([&] { pg->pg->shutdown(); });  // NCCL: clean communicator teardown; Gloo: no-op
  guarded([&] {
    pg->pg.reset();
    pg->store.reset();
  });
  delete pg;
}

c10d_store* c10d_store_server_new(int port, int64_t timeout_ms) {
  c10d_store* out = nullptr;
  int rc = guarded([&] {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(port);
    so.isServer = true;
    so.waitWorkers = false;
    so.timeout = std::chrono::milliseconds(timeout_ms);
    out = new c10d_store{c10::make_intrusive<c10d::TCPStore>("127.0.0.1", so)};
  });
  return rc == 0 ? out : nullptr;
}

void c10d_store_free(c10d_store* s) {
  if (s == nullptr) return;
  guarded([&] { s->store.reset(); });
  delete s;
}

int c10d_pg_rank(const c10d_pg* pg) { return pg->rank; }
int c10d_pg_size(const c10d_pg* pg) { return pg->size; }

int c10d_allreduce(c10d_pg* pg, const c10d_tensor* tensors, size_t n, int op) {
  return guarded([&] {
    at::NoGradGuard no_grad;
    bool divide = false;
    c10d::AllreduceOptions opts;
    opts.reduceOp = effective_op(pg, op, &divide);
    auto ts = to_vec(tensors, n);
    // One collective per tensor (c10d's multi-tensor allreduce means "same tensor on several
    // devices", all of one shape); non-contiguous tensors go through a contiguous copy.
    std::vector<std::vector<at::Tensor>> bufs(ts.size());
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    works.reserve(ts.size());
    for (size_t i = 0; i < ts.size(); ++i) {
      bufs[i].push_back(ts[i].is_contiguous() ? ts[i] : ts[i].contiguous());
      works.push_back(pg->pg->allreduce(bufs[i], opts));
    }
    for (auto& w : works) w->wait();
    for (size_t i = 0; i < ts.size(); ++i) {
      if (divide) bufs[i][0].div_(pg->size);
      if (!bufs[i][0].is_same(ts[i])) ts[i].copy_(bufs[i][0]);
    }
  });
}

int c10d_allreduce_flat(c10d_pg* pg, const c10d_tensor* tensors, size_t n, int op) {
  return guarded([&] {
    if (n == 0) return;
    at::NoGradGuard no_grad;
    bool divide = false;
    c10d::AllreduceOptions opts;
    opts.reduceOp = effective_op(pg, op, &divide);
    auto ts = to_vec(tensors, n);
    std::vector<at::Tensor> flat_parts;
    flat_parts.reserve(ts.size());
    for (auto& t : ts) {
      TORCH_CHECK(t.scalar_type() == ts[0].scalar_type() && t.device() == ts[0].device(),
                  "allreduce_flat: all tensors must share dtype and device");
      flat_parts.push_back(t.reshape({-1}));
    }
    std::vector<at::Tensor> bucket{at::cat(flat_parts)};
    pg->pg->allreduce(bucket, opts)->wait();
    if (divide) bucket[0].div_(pg->size);
    int64_t off = 0;
    for (auto& t : ts) {
      const int64_t k = t.numel();
      t.copy_(bucket[0].narrow(0, off, k).view(t.sizes()));
      off += k;
    }
  });
}

int c10d_broadcast(c10d_pg* pg, const c10d_tensor* tensors, size_t n, int root) {
  return guarded([&] {
    at::NoGradGuard no_grad;
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    opts.rootTensor = 0;
    auto ts = to_vec(tensors, n);
    std::vector<std::vector<at::Tensor>> bufs(ts.size());
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (size_t i = 0; i < ts.size(); ++i) {
      bufs[i].push_back(ts[i].is_contiguous() ? ts[i] : ts[i].contiguous());
      works.push_back(pg->pg->broadcast(bufs[i], opts));
    }
    for (auto& w : works) w->wait();
    for (size_t i = 0; i < ts.size(); ++i) {
      if (!bufs[i][0].is_same(ts[i])) ts[i].copy_(bufs[i][0]);
    }
  });
}

void c10d_quiet_warnings(void) {
  if (std::getenv("TORCH_CPP_LOG_LEVEL") == nullptr && FLAGS_caffe2_log_level < 2) {
    FLAGS_caffe2_log_level = 2;  // c10: 0 INFO, 1 WARNING, 2 ERROR
  }
}

int c10d_store_set(c10d_pg* pg, const char* key, const char* value) {
  return guarded([&] {
    std::string v(value);
    pg->store->set(std::string(key), std::vector<uint8_t>(v.begin(), v.end()));
  });
}

int c10d_store_check(c10d_pg* pg, const char* key, int* found) {
  return guarded([&] { *found = pg->store->check({std::string(key)}) ? 1 : 0; });
}

int c10d_barrier(c10d_pg* pg) {
  return guarded([&] {
    c10d::BarrierOptions opts;
    if (pg->backend == "nccl" && pg->cuda_device >= 0) opts.device_ids = {pg->cuda_device};
    pg->pg->barrier(opts)->wait();
  });
}

}  // extern "C"
