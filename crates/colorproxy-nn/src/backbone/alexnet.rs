//! AlexNet (torchvision sizes and names), fully convolutional, parameter-free BN.
use tch::nn;
use tch::Tensor;

use super::{scaled, Conv, FcLayers, Tap};
use crate::bn::ParamFreeBatchNorm;
use crate::bn_absorb::{absorb_layers, norm_unless_absorbed};
use crate::config::ModelConfig;

/// AlexNet with torchvision's layer sizes and names (`features.{0,3,6,8,10}`, `classifier.1` and
/// `classifier.4` as fc6/fc7), fully convolutional: fc6 is a 6x6 convolution (padding 3, so its
/// weight reshapes to torchvision's `Linear(9216, 4096)`), fc7 1x1. Parameter-free BN after every
/// convolution, dropout after fc6 and fc7. Strides of the hypercolumn taps (the authors' list):
/// data 1, conv1 4, conv2 8, conv3-5 16, fc6-7 32.
#[derive(Debug)]
pub struct AlexNet {
    pub convs: Vec<(&'static str, Conv, ParamFreeBatchNorm, i64)>,
    pub fc6: (Conv, ParamFreeBatchNorm),
    pub fc7: (Conv, ParamFreeBatchNorm),
    pub dropout: f64,
    /// False once BN has been absorbed into the convolutions (transfer).
    pub use_bn: bool,
}

impl AlexNet {
    pub fn new(vs: &nn::Path, cfg: &ModelConfig) -> Self {
        // (name, torchvision index, channels, kernel, stride, padding, scale)
        let spec: [(&str, usize, i64, i64, i64, i64, i64); 5] = [
            ("conv1", 0, 64, 11, 4, 2, 4),
            ("conv2", 3, 192, 5, 1, 2, 8),
            ("conv3", 6, 384, 3, 1, 1, 16),
            ("conv4", 8, 256, 3, 1, 1, 16),
            ("conv5", 10, 256, 3, 1, 1, 16),
        ];
        let mut cin = cfg.in_channels;
        let mut convs = Vec::new();
        for (name, idx, c, k, st, pad, scale) in spec {
            let cout = scaled(c, cfg.width);
            let mut conv = Conv::new(vs / "features" / idx, cin, cout, k, st, pad, true);
            conv.bf16 = cfg.conv_bf16;
            convs.push((
                name,
                conv,
                ParamFreeBatchNorm::new(vs / "bn" / "features" / idx, cout, cfg.bn_momentum),
                scale,
            ));
            cin = cout;
        }
        let fc = cfg.fc_channels;
        let fc6 = (
            Conv::new(vs / "classifier" / 1, cin, fc, 6, 1, 3, true),
            ParamFreeBatchNorm::new(vs / "bn" / "classifier" / 1, fc, cfg.bn_momentum),
        );
        let fc7 = (
            Conv::new(vs / "classifier" / 4, fc, fc, 1, 1, 0, true),
            ParamFreeBatchNorm::new(vs / "bn" / "classifier" / 4, fc, cfg.bn_momentum),
        );
        Self { convs, fc6, fc7, dropout: cfg.dropout, use_bn: true }
    }

    /// Absorbs the parameter-free BN into the convolutions, as [`super::vgg::Vgg16::absorb_bn`].
    pub fn absorb_bn(&mut self) {
        let layers = self
            .convs
            .iter_mut()
            .map(|(_, c, b, _)| (c, &*b))
            .chain([(&mut self.fc6.0, &self.fc6.1), (&mut self.fc7.0, &self.fc7.1)]);
        absorb_layers(layers);
        self.use_bn = false;
    }

    fn norm(&self, bn: &ParamFreeBatchNorm, x: Tensor, train: bool) -> Tensor {
        norm_unless_absorbed(self.use_bn, bn, x, train)
    }

    pub fn tap_specs(&self) -> Vec<(&'static str, i64, i64)> {
        let mut v = vec![("data", 1, 1)];
        v.extend(self.convs.iter().map(|(n, c, _, s)| (*n, c.out_channels(), *s)));
        v.push(("fc6", self.fc6.0.out_channels(), 32));
        v.push(("fc7", self.fc7.0.out_channels(), 32));
        v
    }

    pub fn forward_taps(&self, x: &Tensor, train: bool, key: u64) -> Vec<Tap> {
        self.taps(x, train, key, false)
    }

    /// The taps before ReLU (and dropout), in eval mode (see [`super::Vgg16::pre_activations`]).
    pub fn pre_activations(&self, x: &Tensor) -> Vec<Tap> {
        self.taps(x, false, 0, true)
    }

    fn taps(&self, x: &Tensor, train: bool, key: u64, pre: bool) -> Vec<Tap> {
        let mut taps = vec![Tap { name: "data", features: x.shallow_clone(), scale: 1 }];
        let mut h = x.shallow_clone();
        for (i, (name, conv, bn, scale)) in self.convs.iter().enumerate() {
            let z = self.norm(bn, conv.forward(&h), train);
            h = z.relu();
            taps.push(Tap { name, features: if pre { z } else { h.shallow_clone() }, scale: *scale });
            // Max-pool 3x3 stride 2 after conv1, conv2 and conv5 (ceil mode keeps small inputs alive).
            if matches!(i, 0 | 1 | 4) {
                h = h.max_pool2d([3, 3], [2, 2], [0, 0], [1, 1], true);
            }
        }
        let fc = FcLayers { fc6: &self.fc6, fc7: &self.fc7, use_bn: self.use_bn, dropout: self.dropout };
        taps.extend(fc.taps(self.fc6.0.forward(&h), train, key, pre));
        taps
    }
}
