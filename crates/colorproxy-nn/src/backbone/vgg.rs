//! VGG-16 (the paper's main network): parameter-free BN after every convolution, fc6/fc7 as
//! convolutions, torchvision names `features.N`, `classifier.0/3`.
use tch::nn;
use tch::Tensor;

use super::{scaled, Conv, FcLayers, Tap};
use crate::bn::ParamFreeBatchNorm;
use crate::bn_absorb::{absorb_layers, norm_unless_absorbed};
use crate::config::ModelConfig;

/// VGG-16 with parameter-free BN after every convolution (fc6 and fc7 included), fc6 as a 7x7
/// convolution (padding 3) and fc7 as 1x1, dropout after fc6 and fc7.
#[derive(Debug)]
pub struct Vgg16 {
    /// conv1_1 ... conv5_3 with their BN; torchvision indices `features.{0,2,5,...,28}`.
    pub convs: Vec<(&'static str, Conv, ParamFreeBatchNorm)>,
    /// `classifier.0` (fc6) and `classifier.3` (fc7).
    pub fc6: (Conv, ParamFreeBatchNorm),
    pub fc7: (Conv, ParamFreeBatchNorm),
    pub dropout: f64,
    /// False once BN has been absorbed into the convolutions (transfer).
    pub use_bn: bool,
    /// Pad each convolution's input with the ReLU of the previous layer's bias instead of zeros
    /// (the paper's edge fix; meaningful after BN absorption, off by default).
    pub pad_with_bias: bool,
}

/// VGG-16 conv layers: (name, torchvision index, base channels, scale after the layer).
pub const VGG16_CONVS: [(&str, usize, i64, i64); 13] = [
    ("conv1_1", 0, 64, 1),
    ("conv1_2", 2, 64, 1),
    ("conv2_1", 5, 128, 2),
    ("conv2_2", 7, 128, 2),
    ("conv3_1", 10, 256, 4),
    ("conv3_2", 12, 256, 4),
    ("conv3_3", 14, 256, 4),
    ("conv4_1", 17, 512, 8),
    ("conv4_2", 19, 512, 8),
    ("conv4_3", 21, 512, 8),
    ("conv5_1", 24, 512, 16),
    ("conv5_2", 26, 512, 16),
    ("conv5_3", 28, 512, 16),
];

impl Vgg16 {
    pub fn new(vs: &nn::Path, cfg: &ModelConfig) -> Self {
        let mut cin = cfg.in_channels;
        let mut convs = Vec::new();
        for (name, idx, c, _) in VGG16_CONVS {
            let cout = scaled(c, cfg.width);
            let mut conv = Conv::new(vs / "features" / idx, cin, cout, 3, 1, 1, true);
            conv.bf16 = cfg.conv_bf16;
            let bn = ParamFreeBatchNorm::new(vs / "bn" / "features" / idx, cout, cfg.bn_momentum);
            convs.push((name, conv, bn));
            cin = cout;
        }
        let fc = cfg.fc_channels;
        let conv = |p: nn::Path, cin, cout, k, pad| {
            let mut c = Conv::new(p, cin, cout, k, 1, pad, true);
            c.bf16 = cfg.conv_bf16;
            c
        };
        let fc6 = (
            conv(vs / "classifier" / 0, cin, fc, 7, 3),
            ParamFreeBatchNorm::new(vs / "bn" / "classifier" / 0, fc, cfg.bn_momentum),
        );
        let fc7 = (
            conv(vs / "classifier" / 3, fc, fc, 1, 0),
            ParamFreeBatchNorm::new(vs / "bn" / "classifier" / 3, fc, cfg.bn_momentum),
        );
        Self { convs, fc6, fc7, dropout: cfg.dropout, use_bn: true, pad_with_bias: false }
    }

    /// Absorbs the parameter-free BN into the preceding convolutions, using the running
    /// statistics: `sigma = sqrt(var + eps)`, `W <- W / sigma`, `b <- (b - mean) / sigma` (per
    /// output channel). Afterwards the network computes, in eval mode, what it computed with BN.
    pub fn absorb_bn(&mut self) {
        let layers = self
            .convs
            .iter_mut()
            .map(|(_, c, b)| (c, &*b))
            .chain([(&mut self.fc6.0, &self.fc6.1), (&mut self.fc7.0, &self.fc7.1)]);
        absorb_layers(layers);
        self.use_bn = false;
    }

    /// Data-dependent rebalancing (the paper's "each layer's activation has unit variance", after
    /// Kraehenbuehl et al.): layer by layer, each convolution's output channels are divided by
    /// their standard deviation on `x` (`[N, C, H, W]`), weights and bias alike, so every
    /// pre-ReLU activation has unit variance on the sample. Run after BN absorption. Returns, per
    /// layer, the largest deviation of a channel's standard deviation from 1 before rescaling.
    pub fn rebalance(&mut self, x: &Tensor) -> Vec<f64> {
        tch::no_grad(|| {
            let mut deviations = Vec::new();
            let mut h = x.shallow_clone();
            let mut fix = |conv: &mut Conv, h: &Tensor| -> Tensor {
                let z = conv.forward(h);
                let c = z.size()[1];
                let std = z.transpose(0, 1).reshape([c, -1]).std_dim(1, true, false);
                // Channels that are constant on the sample are left as they are.
                let std = std.where_self(&std.ge(1e-4), &std.ones_like());
                deviations.push((&std - 1.0).abs().max().double_value(&[]));
                let w = &conv.weight / std.view([-1, 1, 1, 1]);
                conv.weight.copy_(&w);
                if let Some(b) = conv.bias.as_mut() {
                    let nb = &*b / &std;
                    b.copy_(&nb);
                }
                (z / std.view([1, -1, 1, 1])).relu()
            };
            for (i, (_, conv, _)) in self.convs.iter_mut().enumerate() {
                h = fix(conv, &h);
                if matches!(i, 1 | 3 | 6 | 9 | 12) {
                    h = h.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
                }
            }
            h = fix(&mut self.fc6.0, &h);
            let _ = fix(&mut self.fc7.0, &h);
            deviations
        })
    }

    fn norm(&self, bn: &ParamFreeBatchNorm, x: Tensor, train: bool) -> Tensor {
        norm_unless_absorbed(self.use_bn, bn, x, train)
    }

    /// Channels and scale of every tap, in order (data first).
    pub fn tap_specs(&self) -> Vec<(&'static str, i64, i64)> {
        let mut v = vec![("data", 1, 1)];
        for ((name, conv, _), (_, _, _, scale)) in self.convs.iter().zip(VGG16_CONVS) {
            v.push((*name, conv.out_channels(), scale));
        }
        v.push(("fc6", self.fc6.0.out_channels(), 32));
        v.push(("fc7", self.fc7.0.out_channels(), 32));
        v
    }

    /// All taps for input `[B, 1, H, W]` (H, W multiples of 32 for exact scales); `key` seeds
    /// the dropout masks (see [`crate::init::keyed_dropout`]).
    pub fn forward_taps(&self, x: &Tensor, train: bool, key: u64) -> Vec<Tap> {
        self.taps(x, train, key, false)
    }

    /// The taps before ReLU (and dropout), in eval mode: each layer's normalised convolution
    /// output (the analyses' feature values).
    pub fn pre_activations(&self, x: &Tensor) -> Vec<Tap> {
        self.taps(x, false, 0, true)
    }

    fn taps(&self, x: &Tensor, train: bool, key: u64, pre: bool) -> Vec<Tap> {
        let mut taps = vec![Tap { name: "data", features: x.shallow_clone(), scale: 1 }];
        let mut h = x.shallow_clone();
        for (i, ((name, conv, bn), (_, _, _, scale))) in self.convs.iter().zip(VGG16_CONVS).enumerate() {
            let out = match (self.pad_with_bias, i.checked_sub(1).and_then(|k| self.convs[k].1.bias.as_ref()))
            {
                (true, Some(b)) => conv.forward_fill_padded(&h, &b.relu().view([1, -1, 1, 1])),
                _ => conv.forward(&h),
            };
            let z = self.norm(bn, out, train);
            h = z.relu();
            taps.push(Tap { name, features: if pre { z } else { h.shallow_clone() }, scale });
            // Max-pool after conv1_2, conv2_2, conv3_3, conv4_3, conv5_3.
            if matches!(i, 1 | 3 | 6 | 9 | 12) {
                h = h.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
            }
        }
        // Dropout after fc6 and fc7; as Caffe's in-place dropout, the hypercolumn sees it too.
        let out6 = match (self.pad_with_bias, self.convs.last().and_then(|c| c.1.bias.as_ref())) {
            (true, Some(b)) => self.fc6.0.forward_fill_padded(&h, &b.relu().view([1, -1, 1, 1])),
            _ => self.fc6.0.forward(&h),
        };
        let fc = FcLayers { fc6: &self.fc6, fc7: &self.fc7, use_bn: self.use_bn, dropout: self.dropout };
        taps.extend(fc.taps(out6, train, key, pre));
        taps
    }
}
