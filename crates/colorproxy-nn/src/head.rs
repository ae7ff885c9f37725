//! [`ColorHead`]: the prediction head on the hypercolumn.
use tch::nn::{self, Init};
use tch::Tensor;

use crate::backbone::xavier;
use crate::config::{ColorLoss, ModelConfig};

/// A fully connected layer `y = x W^T + b` with torchvision-style `weight [out, in]`, `bias [out]`.
#[derive(Debug)]
pub struct Fc {
    pub weight: Tensor,
    pub bias: Tensor,
}

impl Fc {
    pub fn new(p: nn::Path, cin: i64, cout: i64, init: Init) -> Self {
        Self { weight: p.var("weight", &[cout, cin], init), bias: p.var("bias", &[cout], Init::Const(0.0)) }
    }
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let y = x.linear(&self.weight, Some(&self.bias));
        crate::conv::add_macs(y.numel() as u64, self.weight.size()[1] as u64);
        y
    }
}

/// fc `hidden` (Gaussian init, std `head_init_std`) -> ReLU -> dropout -> two fc-`bins` outputs
/// (hue, chroma; Xavier) for the histogram loss, or one fc-2 output (a\*, b\*) for regression.
#[derive(Debug)]
pub struct ColorHead {
    pub fc1: Fc,
    pub hue: Option<Fc>,
    pub chroma: Option<Fc>,
    pub ab: Option<Fc>,
    pub dropout: f64,
}

/// The head's output: `[N, bins]` logits, or `[N, 2]` (a\*, b\*) predictions.
pub enum HeadOutput {
    Histogram { hue: Tensor, chroma: Tensor },
    Lab { ab: Tensor },
}

impl ColorHead {
    pub fn new(p: nn::Path, cin: i64, cfg: &ModelConfig, hue_bins: i64, chroma_bins: i64) -> Self {
        let h = cfg.head_hidden;
        let fc1 = Fc::new(&p / "fc1", cin, h, Init::Randn { mean: 0.0, stdev: cfg.head_init_std });
        let (hue, chroma, ab) = match cfg.loss {
            ColorLoss::Histogram => (
                Some(Fc::new(&p / "hue", h, hue_bins, xavier(h))),
                Some(Fc::new(&p / "chroma", h, chroma_bins, xavier(h))),
                None,
            ),
            ColorLoss::LabRegression => (None, None, Some(Fc::new(&p / "ab", h, 2, xavier(h)))),
        };
        Self { fc1, hue, chroma, ab, dropout: cfg.dropout }
    }

    /// `x`: `[N, C]` hypercolumns; `key` seeds the dropout mask.
    pub fn forward(&self, x: &Tensor, train: bool, key: u64) -> HeadOutput {
        let h = crate::init::keyed_dropout(&self.fc1.forward(x).relu(), self.dropout, key ^ 0x48, train);
        match (&self.hue, &self.chroma, &self.ab) {
            (Some(hu), Some(ch), _) => HeadOutput::Histogram { hue: hu.forward(&h), chroma: ch.forward(&h) },
            (_, _, Some(ab)) => HeadOutput::Lab { ab: ab.forward(&h) },
            _ => unreachable!("head built with one of the two losses"),
        }
    }
}
