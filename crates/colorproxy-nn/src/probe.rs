//! Probes: evaluations of frozen features, as today's self-supervised toolkits report them, on
//! globally pooled features `[N, D]` of one layer. k-nearest neighbours (cosine similarity,
//! neighbours' votes weighted by similarity) and a linear classifier (logistic regression: softmax
//! for single-label class folders, per-class sigmoids for VOC multi-label, "difficult" labels
//! ignored). Both return scores `[M, K]` for the evaluation images.
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use crate::NnError;

/// The labels of a probe's training or evaluation images.
#[derive(Debug, Clone)]
pub enum ProbeLabels {
    /// Class index per image (class folders).
    Single(Vec<i64>),
    /// Per image and class: 1 positive, -1 negative, 0 ignored (VOC classification).
    Multi(Vec<Vec<i8>>),
}

impl ProbeLabels {
    pub fn len(&self) -> usize {
        match self {
            Self::Single(v) => v.len(),
            Self::Multi(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `[N, K]` float targets: one-hot (single) or 1 for positives (multi), and a mask `[N, K]` of
    /// the entries that count (all for single; non-ignored for multi).
    fn targets(&self, classes: i64) -> (Tensor, Tensor) {
        match self {
            Self::Single(v) => {
                let t = Tensor::from_slice(v).one_hot(classes).to_kind(Kind::Float);
                let m = t.ones_like();
                (t, m)
            }
            Self::Multi(v) => {
                let flat: Vec<f32> = v.iter().flatten().map(|&l| if l > 0 { 1.0 } else { 0.0 }).collect();
                let mask: Vec<f32> = v.iter().flatten().map(|&l| if l != 0 { 1.0 } else { 0.0 }).collect();
                let n = v.len() as i64;
                (
                    Tensor::from_slice(&flat).reshape([n, classes]),
                    Tensor::from_slice(&mask).reshape([n, classes]),
                )
            }
        }
    }
}

fn check(train: &Tensor, labels: &ProbeLabels, val: &Tensor) -> Result<(), NnError> {
    if train.dim() != 2 || val.dim() != 2 || train.size()[1] != val.size()[1] {
        return Err(NnError::Config(format!(
            "probe features must be [N, D] and [M, D], got {:?} and {:?}",
            train.size(),
            val.size()
        )));
    }
    if labels.len() as i64 != train.size()[0] || labels.is_empty() {
        return Err(NnError::Config(format!(
            "{} labels for {} training images",
            labels.len(),
            train.size()[0]
        )));
    }
    Ok(())
}

/// k-nearest-neighbour scores `[M, K]`: for each evaluation image, the `k` most cosine-similar
/// training images vote for their classes (single) or positive labels (multi) with weight =
/// similarity; scores are the weighted votes divided by `k`.
pub fn knn(
    train: &Tensor,
    labels: &ProbeLabels,
    val: &Tensor,
    classes: i64,
    k: usize,
) -> Result<Tensor, NnError> {
    check(train, labels, val)?;
    let unit = |t: &Tensor| {
        let t = t.to_device(Device::Cpu).to_kind(Kind::Float);
        &t / t.norm_scalaropt_dim(2, [1i64].as_slice(), true).clamp_min(1e-12)
    };
    let sims = unit(val).matmul(&unit(train).transpose(0, 1));
    let k = (k as i64).clamp(1, train.size()[0]);
    let (top, idx) = sims.topk(k, 1, true, true);
    let (y, _) = labels.targets(classes);
    // [M, k, K]: the neighbours' targets, weighted by their similarity.
    let votes = y.index_select(0, &idx.reshape([-1])).reshape([idx.size()[0], k, classes]) * top.unsqueeze(2);
    Ok(votes.sum_dim_intlist([1i64].as_slice(), false, Kind::Float) / k as f64)
}

/// Options of the linear probe.
#[derive(Debug, Clone, Copy)]
pub struct LinearProbe {
    /// Full-batch Adam steps.
    pub steps: usize,
    pub lr: f64,
    /// L2 penalty on the weights (not the bias), times the mean loss.
    pub weight_decay: f64,
    pub seed: u64,
}

impl Default for LinearProbe {
    fn default() -> Self {
        Self { steps: 300, lr: 0.05, weight_decay: 1e-4, seed: 0 }
    }
}

impl LinearProbe {
    /// Trains logistic regression on standardised `train` features (mean and standard deviation
    /// of the training set) and returns the scores (logits) `[M, K]` of `val`.
    pub fn fit_predict(
        &self,
        train: &Tensor,
        labels: &ProbeLabels,
        val: &Tensor,
        classes: i64,
    ) -> Result<Tensor, NnError> {
        check(train, labels, val)?;
        let train = train.to_device(Device::Cpu).to_kind(Kind::Float);
        let mean = train.mean_dim([0i64].as_slice(), true, Kind::Float);
        let std = train.std_dim([0i64].as_slice(), false, true).clamp_min(1e-6);
        let x = (&train - &mean) / &std;
        let xv = (val.to_device(Device::Cpu).to_kind(Kind::Float) - &mean) / &std;
        tch::manual_seed(self.seed as i64);
        let vs = nn::VarStore::new(Device::Cpu);
        let d = x.size()[1];
        let w = vs.root().var("weight", &[classes, d], nn::Init::Const(0.0));
        let b = vs.root().var("bias", &[classes], nn::Init::Const(0.0));
        let mut opt = nn::Adam::default().build(&vs, self.lr).map_err(NnError::Torch)?;
        let (y, mask) = labels.targets(classes);
        for _ in 0..self.steps {
            let logits = x.linear(&w, Some(&b));
            let data = match labels {
                ProbeLabels::Single(_) => {
                    -(logits.log_softmax(1, Kind::Float) * &y).sum(Kind::Float) / x.size()[0] as f64
                }
                ProbeLabels::Multi(_) => {
                    let per = logits.binary_cross_entropy_with_logits::<Tensor>(
                        &y,
                        None,
                        None,
                        tch::Reduction::None,
                    );
                    (per * &mask).sum(Kind::Float) / mask.sum(Kind::Float).clamp_min(1.0)
                }
            };
            let loss = data + w.square().sum(Kind::Float) * self.weight_decay;
            opt.zero_grad();
            loss.backward();
            opt.step();
        }
        Ok(tch::no_grad(|| xv.linear(&w, Some(&b))))
    }
}
