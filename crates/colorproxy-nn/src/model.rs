//! [`ColorizationNet`]: backbone + sparse hypercolumn + colour head, and the loss of a batch.
use colorproxy_data::ColorBatch;
use tch::{nn, Device, Kind, Tensor};

use crate::backbone::Backbone;
use crate::config::ModelConfig;
use crate::head::{ColorHead, HeadOutput};
use crate::hypercolumn::{points_tensor, SparseHypercolumn};
use crate::loss;
use crate::NnError;

/// The colorization network. Parameters live in `vs` under torchvision names for the backbone
/// (`features.*`, `classifier.*` or `conv1`, `layer*`), `bn.*` for parameter-free BN running
/// statistics and `head.*` for the colour head.
pub struct ColorizationNet {
    pub vs: nn::VarStore,
    pub backbone: Backbone,
    pub hypercolumn: SparseHypercolumn,
    pub head: ColorHead,
    pub config: ModelConfig,
}

/// A batch's loss and its parts (for logging).
pub struct LossParts {
    /// The scalar that is minimised.
    pub total: Tensor,
    /// Mean unweighted KL of the hue / chroma histograms (0 for regression).
    pub hue_kl: f64,
    pub chroma_kl: f64,
}

impl ColorizationNet {
    /// Builds the network on `device`, initialised from `seed` (see [`crate::init::initialize`]).
    pub fn new(
        cfg: &ModelConfig,
        hue_bins: i64,
        chroma_bins: i64,
        device: Device,
        seed: u64,
    ) -> Result<Self, NnError> {
        let vs = nn::VarStore::new(device);
        let backbone = Backbone::new(&vs.root(), cfg)?;
        let specs = backbone.tap_specs();
        let layers: Vec<String> = if backbone.spec().pretrain_hypercolumn && !cfg.hypercolumn.is_empty() {
            cfg.hypercolumn.clone()
        } else {
            // No hypercolumn: the head reads the top layer only.
            vec![specs.last().expect("a backbone has taps").0.to_string()]
        };
        let mut cin = 0;
        for l in &layers {
            let spec = specs.iter().find(|s| s.0 == l).ok_or_else(|| {
                NnError::Config(format!(
                    "hypercolumn layer {l:?} is not a layer of {} (layers: {})",
                    cfg.arch,
                    specs.iter().map(|s| s.0).collect::<Vec<_>>().join(", ")
                ))
            })?;
            cin += spec.1;
        }
        let head = ColorHead::new(vs.root() / "head", cin, cfg, hue_bins, chroma_bins);
        crate::init::initialize(&vs, cfg, seed);
        Ok(Self { vs, backbone, hypercolumn: SparseHypercolumn::new(layers), head, config: cfg.clone() })
    }

    /// Head outputs at the points: `input` `[B, 1, S, S]`, `points` `[B, P, 2]` (y, x).
    /// `key` seeds the dropout masks (use [`crate::init::dropout_key`]).
    pub fn forward(&self, input: &Tensor, points: &Tensor, train: bool, key: u64) -> HeadOutput {
        let taps = self.backbone.forward_taps(input, train, key);
        let hc = self.hypercolumn.forward(&taps, points);
        self.head.forward(&hc, train, key)
    }

    /// The loss of a batch (moved to the network's device).
    pub fn batch_loss(&self, batch: &ColorBatch, train: bool, key: u64) -> LossParts {
        let dev = self.vs.device();
        let (b, s, p) = (batch.batch as i64, batch.side as i64, batch.points_per_image as i64);
        let input = Tensor::from_slice(&batch.input).reshape([b, 1, s, s]).to_dev(dev);
        let points = points_tensor(&batch.points, b, p).to_dev(dev);
        match self.forward(&input, &points, train, key) {
            HeadOutput::Histogram { hue, chroma } => {
                let t = |v: &[f32], k: usize| Tensor::from_slice(v).reshape([b * p, k as i64]).to_dev(dev);
                let hue_t = t(&batch.hue_hist, batch.hue_bins);
                let chroma_t = t(&batch.chroma_hist, batch.chroma_bins);
                let hw = Tensor::from_slice(&batch.hue_weight).to_dev(dev);
                let cw = Tensor::from_slice(&batch.chroma_weight).to_dev(dev);
                let total = loss::weighted_kl(&hue, &hue_t, &hw) + loss::weighted_kl(&chroma, &chroma_t, &cw);
                LossParts {
                    total,
                    hue_kl: loss::mean_kl(&hue, &hue_t),
                    chroma_kl: loss::mean_kl(&chroma, &chroma_t),
                }
            }
            HeadOutput::Lab { ab } => {
                let t = Tensor::from_slice(&batch.lab_ab).reshape([b * p, 2]).to_dev(dev);
                LossParts {
                    total: loss::lab_regression(&ab, &t, self.config.lab_loss_weight),
                    hue_kl: 0.0,
                    chroma_kl: 0.0,
                }
            }
        }
    }

    /// Whether a parameter name is a bias (2x learning rate, no weight decay).
    pub fn is_bias(name: &str) -> bool {
        name.ends_with(".bias")
    }

    /// Number of trainable parameters.
    pub fn num_parameters(&self) -> i64 {
        self.vs.trainable_variables().iter().map(|t| t.numel() as i64).sum()
    }

    /// Casts helper for tests: the network in double precision.
    pub fn to_double(&mut self) {
        self.vs.set_kind(Kind::Double);
    }
}

/// Host-to-device copies of batch tensors.
pub trait ToDev {
    /// Moves a host tensor to `dev`; to a GPU through pinned memory, asynchronously (the copy
    /// overlaps with the work already queued, and the next batch is being built on CPU threads).
    fn to_dev(self, dev: Device) -> Tensor;
}

impl ToDev for Tensor {
    fn to_dev(self, dev: Device) -> Tensor {
        if dev.is_cuda() {
            self.pin_memory(dev).to_device_(dev, self.kind(), true, false)
        } else {
            self
        }
    }
}
