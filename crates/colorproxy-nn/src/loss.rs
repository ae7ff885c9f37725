//! The colour losses.
use tch::{Kind, Tensor};

/// Weighted KL divergence of target histograms from predicted ones, summed over points and
/// divided by the number of points `N = B * P`:
/// `sum_n w_n * sum_k q_nk (log q_nk - log softmax(z_n)_k) / N`.
/// Its gradient with respect to the logits is `(p - q) * w / N` (the authors' custom layer).
///
/// `logits`, `target`: `[N, K]`; `weight`: `[N]`. Returns a scalar.
pub fn weighted_kl(logits: &Tensor, target: &Tensor, weight: &Tensor) -> Tensor {
    let n = logits.size()[0] as f64;
    let logp = logits.log_softmax(-1, logits.kind());
    // q log q with 0 log 0 = 0.
    let qlogq = target * target.clamp_min(1e-30).log();
    let kl = (qlogq - target * logp).sum_dim_intlist([-1i64].as_slice(), false, logits.kind());
    (kl * weight).sum(logits.kind()) / n
}

/// Mean unweighted KL per point (for logging).
pub fn mean_kl(logits: &Tensor, target: &Tensor) -> f64 {
    tch::no_grad(|| {
        let logp = logits.log_softmax(-1, Kind::Float);
        let kl = (target * target.clamp_min(1e-30).log() - target * logp).sum_dim_intlist(
            [-1i64].as_slice(),
            false,
            Kind::Float,
        );
        kl.mean(Kind::Float).double_value(&[])
    })
}

/// The L\*a\*b\* regression loss: `lab_loss_weight * sum_n ||pred_n - t_n||^2 / (2 N)` on
/// (a\*, b\*) / 110. Its gradient with respect to the predictions is
/// `lab_loss_weight * (pred - t) / N`.
///
/// The default weight 10 puts its gradient at initialisation on the scale of the histogram loss:
/// there, per point, `|p - q| * w` is about 1 (peaked q against a near-uniform p, weights ~1),
/// while `|pred - t|` is about 0.1-0.3 for natural images (|ab| / 110 at init predictions ~0).
pub fn lab_regression(pred: &Tensor, target: &Tensor, lab_loss_weight: f64) -> Tensor {
    let n = pred.size()[0] as f64;
    (pred - target).square().sum(pred.kind()) * (lab_loss_weight / (2.0 * n))
}
