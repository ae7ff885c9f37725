//! Backbones: VGG-16 (the paper's main network), AlexNet and ResNet-18/50/152, 1- or 3-channel
//! input, any input size, channel widths scaled by `width`, torchvision parameter names. One
//! file per architecture; what colorproxy knows about each (layer names, torchvision names,
//! default hypercolumn, BN kind, receptive fields) is in the table of [`arch`].
pub mod alexnet;
pub mod arch;
pub mod resnet;
pub mod vgg;

pub use crate::conv::{set_allow_tf32, xavier, Conv};
pub use alexnet::AlexNet;
pub use arch::{ArchSpec, Family};
pub use resnet::{ResNet, RESNET_TAPS};
pub use vgg::{Vgg16, VGG16_CONVS};

use tch::nn;
use tch::Tensor;

use crate::config::ModelConfig;
use crate::NnError;

/// A layer's output offered to the hypercolumn: its name (the paper's), the feature map
/// `[B, C, H/scale, W/scale]` (after ReLU) and its stride `scale` relative to the input.
pub struct Tap {
    pub name: &'static str,
    pub features: Tensor,
    pub scale: i64,
}

pub(crate) fn scaled(c: i64, width: f64) -> i64 {
    ((c as f64 * width).round() as i64).max(1)
}

/// fc6 and fc7 of VGG-16 and AlexNet (convolutions with parameter-free BN), dropout after each.
pub(crate) struct FcLayers<'a> {
    pub fc6: &'a (Conv, crate::bn::ParamFreeBatchNorm),
    pub fc7: &'a (Conv, crate::bn::ParamFreeBatchNorm),
    pub use_bn: bool,
    pub dropout: f64,
}

impl FcLayers<'_> {
    /// The fc6 and fc7 taps from fc6's convolution output `out6`. Dropout follows fc6 and fc7; as
    /// Caffe's in-place dropout, the hypercolumn sees it too. With `pre`, the taps are the
    /// normalised outputs before ReLU and dropout.
    pub fn taps(&self, out6: Tensor, train: bool, key: u64, pre: bool) -> [Tap; 2] {
        use crate::bn_absorb::norm_unless_absorbed as norm;
        use crate::init::keyed_dropout;
        let z6 = norm(self.use_bn, &self.fc6.1, out6, train);
        let f6 = keyed_dropout(&z6.relu(), self.dropout, key ^ 0x6, train);
        let z7 = norm(self.use_bn, &self.fc7.1, self.fc7.0.forward(&f6), train);
        let f7 = keyed_dropout(&z7.relu(), self.dropout, key ^ 0x7, train);
        let (t6, t7) = if pre { (z6, z7) } else { (f6, f7) };
        [Tap { name: "fc6", features: t6, scale: 32 }, Tap { name: "fc7", features: t7, scale: 32 }]
    }
}

/// A backbone by architecture name.
#[derive(Debug)]
pub enum Backbone {
    Vgg16(Vgg16),
    AlexNet(AlexNet),
    ResNet(ResNet),
}

impl Backbone {
    pub fn new(vs: &nn::Path, cfg: &ModelConfig) -> Result<Self, NnError> {
        let spec = arch::arch(&cfg.arch)?;
        Ok(match spec.family {
            Family::Vgg16 => Self::Vgg16(Vgg16::new(vs, cfg)),
            Family::AlexNet => Self::AlexNet(AlexNet::new(vs, cfg)),
            Family::ResNet { bottleneck, blocks } => {
                Self::ResNet(ResNet::new(vs, cfg, spec, bottleneck, blocks))
            }
        })
    }

    /// The architecture's entry in the table of [`arch`].
    pub fn spec(&self) -> &'static ArchSpec {
        let name = match self {
            Self::Vgg16(_) => "vgg16",
            Self::AlexNet(_) => "alexnet",
            Self::ResNet(r) => r.spec.name,
        };
        arch::arch(name).expect("a built backbone's arch is in the table")
    }

    /// Name, channels and scale of every tap, in order.
    pub fn tap_specs(&self) -> Vec<(&'static str, i64, i64)> {
        match self {
            Self::Vgg16(v) => v.tap_specs(),
            Self::AlexNet(a) => a.tap_specs(),
            Self::ResNet(r) => r.tap_specs(),
        }
    }

    /// Absorbs parameter-free BN into the convolutions (VGG-16, AlexNet; see
    /// [`crate::bn_absorb`]); ResNet keeps its standard BN.
    pub fn absorb_bn(&mut self) {
        match self {
            Self::Vgg16(v) => v.absorb_bn(),
            Self::AlexNet(a) => a.absorb_bn(),
            Self::ResNet(_) => {}
        }
    }

    /// Whether the parameter-free BN is applied (VGG-16, AlexNet before absorption).
    pub fn uses_bn(&self) -> bool {
        match self {
            Self::Vgg16(v) => v.use_bn,
            Self::AlexNet(a) => a.use_bn,
            Self::ResNet(_) => false,
        }
    }

    /// Whether the parameter-free BN is applied (false after [`Self::absorb_bn`]).
    pub fn set_use_bn(&mut self, on: bool) {
        match self {
            Self::Vgg16(v) => v.use_bn = on,
            Self::AlexNet(a) => a.use_bn = on,
            Self::ResNet(_) => {}
        }
    }

    /// The layers in order, as `freeze_until` and the hypercolumn name them.
    pub fn layer_names(&self) -> Vec<&'static str> {
        self.spec().layer_names()
    }

    /// The position in [`Self::layer_names`] (1-based) of the layer a parameter belongs to.
    pub fn layer_of(&self, param: &str) -> Option<usize> {
        self.layer_position(self.spec().layer_of_param(param)?)
    }

    /// The 1-based position of `layer` in [`Self::layer_names`].
    pub fn layer_position(&self, layer: &str) -> Option<usize> {
        self.layer_names().iter().position(|n| *n == layer).map(|p| p + 1)
    }

    /// Each layer's output before ReLU (normalised convolution; ResNet: the block sum before its
    /// last ReLU), in eval mode: the feature values the analyses compare. `data` is the input.
    pub fn pre_activations(&self, x: &Tensor) -> Vec<Tap> {
        tch::no_grad(|| self.pre_activations_with_grad(x))
    }

    /// [`Self::pre_activations`] with autograd on (e.g. to back-propagate a unit to the input).
    pub fn pre_activations_with_grad(&self, x: &Tensor) -> Vec<Tap> {
        match self {
            Self::Vgg16(v) => v.pre_activations(x),
            Self::AlexNet(a) => a.pre_activations(x),
            Self::ResNet(r) => r.pre_activations(x),
        }
    }

    pub fn forward_taps(&self, x: &Tensor, train: bool, key: u64) -> Vec<Tap> {
        match self {
            Self::Vgg16(v) => v.forward_taps(x, train, key),
            Self::AlexNet(a) => a.forward_taps(x, train, key),
            Self::ResNet(r) => r.forward_taps(x, train),
        }
    }
}
