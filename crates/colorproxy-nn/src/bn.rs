//! Parameter-free batch normalisation (the paper's BN: batch statistics, no scale or shift).
use tch::{nn, Tensor};

/// Normalises each channel of `[B, C, H, W]` by its batch mean and variance (eps 1e-5), with no
/// learnt scale or shift. Keeps running statistics (buffers `running_mean`, `running_var`) for
/// inference and for absorbing BN into the preceding convolution after pretraining.
#[derive(Debug)]
pub struct ParamFreeBatchNorm {
    pub running_mean: Tensor,
    pub running_var: Tensor,
    pub momentum: f64,
    pub eps: f64,
}

impl ParamFreeBatchNorm {
    pub fn new(p: nn::Path, channels: i64, momentum: f64) -> Self {
        let running_mean = p.zeros_no_train("running_mean", &[channels]);
        let running_var = p.ones_no_train("running_var", &[channels]);
        Self { running_mean, running_var, momentum, eps: 1e-5 }
    }

    /// Batch statistics (and a running-stat update) when `train`, running statistics otherwise.
    /// In a data-parallel run with synchronised BN ([`crate::data_parallel::SyncBnScope`]), the
    /// batch statistics are those of all ranks.
    pub fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        if train {
            if let Some(y) = crate::data_parallel::sync_bn(
                x,
                &self.running_mean,
                &self.running_var,
                self.momentum,
                self.eps,
            ) {
                return y;
            }
        }
        x.batch_norm(
            None::<&Tensor>,
            None::<&Tensor>,
            Some(&self.running_mean),
            Some(&self.running_var),
            train,
            self.momentum,
            self.eps,
            true,
        )
    }
}
