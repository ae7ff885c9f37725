// Synchronised parameter-free batch normalisation over a c10d process group, as a libtorch
// autograd function (tch cannot define one): the forward pass all-reduces each channel's sum, sum
// of squares and count, normalises with the global mean and (biased) variance and updates the
// running statistics as single-process BN would (unbiased variance); the backward pass
// all-reduces sum(dy) and sum(dy * x_hat) so the input gradient is the global batch's:
//   dx = invstd * (dy - mean(dy) - x_hat * mean(dy * x_hat)),  means over all ranks' samples.
// Sums are taken in float64, so a data-parallel run matches the 1-process run closely.
#include "c10d_shim.h"

#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

// Defined in c10d_shim.cpp: in-place SUM all-reduce of one tensor on the group (throws on failure).
void c10d_shim_allreduce_sum(c10d_pg* pg, at::Tensor& t);
// Defined in c10d_shim.cpp: runs `f`, turning exceptions into the shim's last error.
int c10d_shim_guarded(const std::function<void()>& f);

namespace {

std::vector<int64_t> reduce_dims(const at::Tensor& x) {
  std::vector<int64_t> d{0};
  for (int64_t i = 2; i < x.dim(); ++i) d.push_back(i);
  return d;
}

std::vector<int64_t> channel_shape(const at::Tensor& x) {
  std::vector<int64_t> s(x.dim(), 1);
  s[1] = x.size(1);
  return s;
}

struct SyncBN : public torch::autograd::Function<SyncBN> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, int64_t pg_ptr,
                            at::Tensor running_mean, at::Tensor running_var, double momentum, double eps) {
    auto* pg = reinterpret_cast<c10d_pg*>(pg_ptr);
    const auto dims = reduce_dims(x);
    const int64_t c = x.size(1);
    const auto xd = x.to(at::kDouble);
    at::Tensor stats = at::cat({xd.sum(dims), (xd * xd).sum(dims),
                                at::full({1}, static_cast<double>(x.numel() / c), xd.options())});
    c10d_shim_allreduce_sum(pg, stats);
    const double n = stats[2 * c].item<double>();
    TORCH_CHECK(n > 1, "sync BN: a channel needs more than one value over all ranks");
    const auto mean = stats.narrow(0, 0, c) / n;
    const auto var = (stats.narrow(0, c, c) / n - mean * mean).clamp_min(0);
    const auto invstd = (var + eps).rsqrt();
    const auto shape = channel_shape(x);
    const auto x_hat = ((xd - mean.view(shape)) * invstd.view(shape)).to(x.scalar_type());
    {
      at::NoGradGuard no_grad;
      running_mean.mul_(1 - momentum).add_(mean.to(running_mean.scalar_type()), momentum);
      running_var.mul_(1 - momentum).add_((var * (n / (n - 1))).to(running_var.scalar_type()), momentum);
    }
    ctx->save_for_backward({x_hat, invstd});
    ctx->saved_data["pg"] = pg_ptr;
    ctx->saved_data["n"] = n;
    return x_hat;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto& x_hat = saved[0];
    const auto& invstd = saved[1];
    auto* pg = reinterpret_cast<c10d_pg*>(ctx->saved_data["pg"].toInt());
    const double n = ctx->saved_data["n"].toDouble();
    const auto dy = grads[0].to(at::kDouble);
    const auto xh = x_hat.to(at::kDouble);
    const auto dims = reduce_dims(dy);
    const int64_t c = dy.size(1);
    at::Tensor sums = at::cat({dy.sum(dims), (dy * xh).sum(dims)});
    c10d_shim_allreduce_sum(pg, sums);
    const auto shape = channel_shape(dy);
    const auto mean_dy = (sums.narrow(0, 0, c) / n).view(shape);
    const auto mean_dy_xhat = (sums.narrow(0, c, c) / n).view(shape);
    const auto dx = invstd.view(shape) * (dy - mean_dy - xh * mean_dy_xhat);
    return {dx.to(grads[0].scalar_type()), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

extern "C" c10d_tensor c10d_sync_batch_norm(c10d_pg* pg, c10d_tensor x, c10d_tensor running_mean,
                                            c10d_tensor running_var, double momentum, double eps) {
  at::Tensor* out = nullptr;
  c10d_shim_guarded([&] {
    TORCH_CHECK(pg != nullptr && x != nullptr && running_mean != nullptr && running_var != nullptr,
                "null argument");
    const auto& xt = *static_cast<at::Tensor*>(x);
    TORCH_CHECK(xt.dim() >= 2, "sync BN: expected [B, C, ...], got ", xt.dim(), " dimensions");
    auto y = SyncBN::apply(xt, reinterpret_cast<int64_t>(pg), *static_cast<at::Tensor*>(running_mean),
                           *static_cast<at::Tensor*>(running_var), momentum, eps);
    out = new at::Tensor(std::move(y));
  });
  return out;
}
