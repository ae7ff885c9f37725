//! Backbones: VGG-16 (the paper's main network) and ResNet-18/50/152, 1-channel input, any input
//! size, channel widths scaled by `width`. Parameter names follow torchvision (`features.N`,
//! `classifier.N` for VGG; `conv1`, `layerK.I.convJ`, `bnJ`, `downsample` for ResNet).
use std::sync::atomic::{AtomicBool, Ordering};

use tch::nn::{self, Init};
use tch::Tensor;

use crate::bn::ParamFreeBatchNorm;
use crate::config::ModelConfig;
use crate::init::keyed_dropout;
use crate::NnError;

/// A layer's output offered to the hypercolumn: its name (the paper's), the feature map
/// `[B, C, H/scale, W/scale]` (after ReLU) and its stride `scale` relative to the input.
pub struct Tap {
    pub name: &'static str,
    pub features: Tensor,
    pub scale: i64,
}

/// Caffe's "xavier" filler, as the authors use: uniform in `±sqrt(3 / fan_in)`.
pub fn xavier(fan_in: i64) -> Init {
    let a = (3.0 / fan_in as f64).sqrt();
    Init::Uniform { lo: -a, up: a }
}

static ALLOW_TF32: AtomicBool = AtomicBool::new(true);

/// Whether cuDNN convolutions may use TF32 on GPUs that have it (PyTorch's default: yes). The
/// CPU/GPU parity check turns it off to compare float32 with float32.
pub fn set_allow_tf32(allow: bool) {
    ALLOW_TF32.store(allow, Ordering::Relaxed);
}

/// A convolution with Xavier-initialised weight `[out, in, k, k]` and zero bias. With `bf16`, the
/// convolution itself runs in bfloat16 (inputs and weights cast, output cast back to float32).
#[derive(Debug)]
pub struct Conv {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub stride: i64,
    pub padding: i64,
    pub bf16: bool,
}

impl Conv {
    pub fn new(p: nn::Path, cin: i64, cout: i64, k: i64, stride: i64, padding: i64, bias: bool) -> Self {
        let weight = p.var("weight", &[cout, cin, k, k], xavier(cin * k * k));
        let bias = bias.then(|| p.var("bias", &[cout], Init::Const(0.0)));
        Self { weight, bias, stride, padding, bf16: false }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_padded(x, self.padding)
    }

    /// The convolution with the border filled per channel with `fill` (`[1, C, 1, 1]`) instead
    /// of zeros: the paper's "pad with the bias" edge fix (footnote 3), where `fill` is the ReLU
    /// of the previous layer's (absorbed) bias. Same as adding the authors' precomputed border
    /// correction to the zero-padded convolution.
    pub fn forward_fill_padded(&self, x: &Tensor, fill: &Tensor) -> Tensor {
        let p = self.padding;
        let xp = (x - fill).constant_pad_nd([p, p, p, p]) + fill;
        self.forward_padded(&xp, 0)
    }

    fn forward_padded(&self, x: &Tensor, padding: i64) -> Tensor {
        let conv = |x: &Tensor, w: &Tensor, b: Option<&Tensor>| {
            x.internal_convolution(
                w,
                b,
                [self.stride, self.stride],
                [padding, padding],
                [1, 1],
                false,
                [0, 0],
                1,
                false,
                false,
                true,
                ALLOW_TF32.load(Ordering::Relaxed),
            )
        };
        if self.bf16 {
            let k = tch::Kind::BFloat16;
            let b = self.bias.as_ref().map(|b| b.to_kind(k));
            conv(&x.to_kind(k), &self.weight.to_kind(k), b.as_ref()).to_kind(x.kind())
        } else {
            conv(x, &self.weight, self.bias.as_ref())
        }
    }

    pub fn out_channels(&self) -> i64 {
        self.weight.size()[0]
    }
}

fn scaled(c: i64, width: f64) -> i64 {
    ((c as f64 * width).round() as i64).max(1)
}

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

/// Absorbs each parameter-free BN into its convolution (see [`Vgg16::absorb_bn`]).
fn absorb_layers<'a>(layers: impl Iterator<Item = (&'a mut Conv, &'a ParamFreeBatchNorm)>) {
    tch::no_grad(|| {
        for (conv, bn) in layers {
            let sigma = (&bn.running_var + bn.eps).sqrt();
            let w = &conv.weight / sigma.view([-1, 1, 1, 1]);
            conv.weight.copy_(&w);
            if let Some(b) = conv.bias.as_mut() {
                let nb = (&*b - &bn.running_mean) / &sigma;
                b.copy_(&nb);
            }
        }
    });
}

/// `bn(x)` while the network uses its BN, `x` once BN has been absorbed.
fn norm_unless_absorbed(use_bn: bool, bn: &ParamFreeBatchNorm, x: Tensor, train: bool) -> Tensor {
    if use_bn {
        bn.forward(&x, train)
    } else {
        x
    }
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
    /// the dropout masks (see [`keyed_dropout`]).
    pub fn forward_taps(&self, x: &Tensor, train: bool, key: u64) -> Vec<Tap> {
        let mut taps = vec![Tap { name: "data", features: x.shallow_clone(), scale: 1 }];
        let mut h = x.shallow_clone();
        for (i, ((name, conv, bn), (_, _, _, scale))) in self.convs.iter().zip(VGG16_CONVS).enumerate() {
            let out = match (self.pad_with_bias, i.checked_sub(1).and_then(|k| self.convs[k].1.bias.as_ref()))
            {
                (true, Some(b)) => conv.forward_fill_padded(&h, &b.relu().view([1, -1, 1, 1])),
                _ => conv.forward(&h),
            };
            h = self.norm(bn, out, train).relu();
            taps.push(Tap { name, features: h.shallow_clone(), scale });
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
        let f6 = self.norm(&self.fc6.1, out6, train).relu();
        let f6 = keyed_dropout(&f6, self.dropout, key ^ 0x6, train);
        taps.push(Tap { name: "fc6", features: f6.shallow_clone(), scale: 32 });
        let f7 = self.norm(&self.fc7.1, self.fc7.0.forward(&f6), train).relu();
        let f7 = keyed_dropout(&f7, self.dropout, key ^ 0x7, train);
        taps.push(Tap { name: "fc7", features: f7, scale: 32 });
        taps
    }
}

/// A torchvision-style BatchNorm2d (affine, running statistics).
#[derive(Debug)]
pub struct Bn2d(nn::BatchNorm);

impl Bn2d {
    fn new(p: nn::Path, c: i64) -> Self {
        Self(nn::batch_norm2d(p, c, Default::default()))
    }
    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        use tch::nn::ModuleT;
        self.0.forward_t(x, train)
    }
}

/// A ResNet residual block (basic for ResNet-18, bottleneck for 50/152), torchvision layout.
#[derive(Debug)]
pub struct Block {
    convs: Vec<(Conv, Bn2d)>,
    downsample: Option<(Conv, Bn2d)>,
}

impl Block {
    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = x.shallow_clone();
        let n = self.convs.len();
        for (i, (c, b)) in self.convs.iter().enumerate() {
            h = b.forward(&c.forward(&h), train);
            if i + 1 < n {
                h = h.relu();
            }
        }
        let skip = match &self.downsample {
            Some((c, b)) => b.forward(&c.forward(x), train),
            None => x.shallow_clone(),
        };
        (h + skip).relu()
    }
}

/// ResNet tap names and scales.
pub const RESNET_TAPS: [(&str, i64); 5] =
    [("conv1", 2), ("layer1", 4), ("layer2", 8), ("layer3", 16), ("layer4", 32)];

/// ResNet with standard BN; the head reads `layer4` (scale 32) at the points.
#[derive(Debug)]
pub struct ResNet {
    conv1: Conv,
    bn1: Bn2d,
    layers: Vec<Vec<Block>>,
    /// Output channels of conv1 and of layer1 ... layer4.
    channels: Vec<i64>,
    /// The first this many of conv1, layer1 ... layer4 are frozen (transfer's `freeze_until`):
    /// their BN uses its running statistics and does not update them, even in training.
    pub frozen: usize,
}

impl ResNet {
    pub fn new(vs: &nn::Path, cfg: &ModelConfig) -> Result<Self, NnError> {
        let (bottleneck, counts): (bool, [usize; 4]) = match cfg.arch.as_str() {
            "resnet18" => (false, [2, 2, 2, 2]),
            "resnet50" => (true, [3, 4, 6, 3]),
            "resnet152" => (true, [3, 8, 36, 3]),
            a => return Err(NnError::Config(format!("unknown arch {a:?}"))),
        };
        let w = |c| scaled(c, cfg.width);
        let conv1 = Conv::new(vs / "conv1", cfg.in_channels, w(64), 7, 2, 3, false);
        let bn1 = Bn2d::new(vs / "bn1", w(64));
        let mut cin = w(64);
        let mut channels = vec![cin];
        let mut layers = Vec::new();
        for (li, &n) in counts.iter().enumerate() {
            let planes = w(64 << li);
            let out = if bottleneck { planes * 4 } else { planes };
            let mut blocks = Vec::new();
            for bi in 0..n {
                let p = vs / format!("layer{}", li + 1) / bi;
                let stride = if bi == 0 && li > 0 { 2 } else { 1 };
                let convs = if bottleneck {
                    vec![
                        (Conv::new(&p / "conv1", cin, planes, 1, 1, 0, false), Bn2d::new(&p / "bn1", planes)),
                        (
                            Conv::new(&p / "conv2", planes, planes, 3, stride, 1, false),
                            Bn2d::new(&p / "bn2", planes),
                        ),
                        (Conv::new(&p / "conv3", planes, out, 1, 1, 0, false), Bn2d::new(&p / "bn3", out)),
                    ]
                } else {
                    vec![
                        (
                            Conv::new(&p / "conv1", cin, planes, 3, stride, 1, false),
                            Bn2d::new(&p / "bn1", planes),
                        ),
                        (
                            Conv::new(&p / "conv2", planes, planes, 3, 1, 1, false),
                            Bn2d::new(&p / "bn2", planes),
                        ),
                    ]
                };
                let downsample = (bi == 0 && (stride != 1 || cin != out)).then(|| {
                    let d = &p / "downsample";
                    (Conv::new(&d / 0, cin, out, 1, stride, 0, false), Bn2d::new(&d / 1, out))
                });
                blocks.push(Block { convs, downsample });
                cin = out;
            }
            layers.push(blocks);
            channels.push(cin);
        }
        Ok(Self { conv1, bn1, layers, channels, frozen: 0 })
    }

    /// Taps (for transfer hypercolumns): conv1 (after BN and ReLU, scale 2), layer1 ... layer4
    /// (scales 4 ... 32); colorization pretraining reads layer4, the last.
    pub fn tap_specs(&self) -> Vec<(&'static str, i64, i64)> {
        RESNET_TAPS.iter().zip(&self.channels).map(|(&(n, s), &c)| (n, c, s)).collect()
    }

    pub fn forward_taps(&self, x: &Tensor, train: bool) -> Vec<Tap> {
        let mut h = self.bn1.forward(&self.conv1.forward(x), train && self.frozen < 1).relu();
        let mut taps = vec![Tap { name: "conv1", features: h.shallow_clone(), scale: 2 }];
        h = h.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        for (k, (blocks, &(name, scale))) in self.layers.iter().zip(&RESNET_TAPS[1..]).enumerate() {
            for b in blocks {
                h = b.forward(&h, train && self.frozen < k + 2);
            }
            taps.push(Tap { name, features: h.shallow_clone(), scale });
        }
        taps
    }
}

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

    /// Absorbs the parameter-free BN into the convolutions, as [`Vgg16::absorb_bn`].
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
        let mut taps = vec![Tap { name: "data", features: x.shallow_clone(), scale: 1 }];
        let mut h = x.shallow_clone();
        for (i, (name, conv, bn, scale)) in self.convs.iter().enumerate() {
            h = self.norm(bn, conv.forward(&h), train).relu();
            taps.push(Tap { name, features: h.shallow_clone(), scale: *scale });
            // Max-pool 3x3 stride 2 after conv1, conv2 and conv5 (ceil mode keeps small inputs alive).
            if matches!(i, 0 | 1 | 4) {
                h = h.max_pool2d([3, 3], [2, 2], [0, 0], [1, 1], true);
            }
        }
        let f6 = self.norm(&self.fc6.1, self.fc6.0.forward(&h), train).relu();
        let f6 = keyed_dropout(&f6, self.dropout, key ^ 0x6, train);
        taps.push(Tap { name: "fc6", features: f6.shallow_clone(), scale: 32 });
        let f7 = self.norm(&self.fc7.1, self.fc7.0.forward(&f6), train).relu();
        let f7 = keyed_dropout(&f7, self.dropout, key ^ 0x7, train);
        taps.push(Tap { name: "fc7", features: f7, scale: 32 });
        taps
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
        match cfg.arch.as_str() {
            "vgg16" => Ok(Self::Vgg16(Vgg16::new(vs, cfg))),
            "alexnet" => Ok(Self::AlexNet(AlexNet::new(vs, cfg))),
            "resnet18" | "resnet50" | "resnet152" => Ok(Self::ResNet(ResNet::new(vs, cfg)?)),
            a => Err(NnError::Config(format!(
                "unknown arch {a:?} (vgg16, alexnet, resnet18, resnet50, resnet152)"
            ))),
        }
    }

    pub fn tap_specs(&self) -> Vec<(&'static str, i64, i64)> {
        match self {
            Self::Vgg16(v) => v.tap_specs(),
            Self::AlexNet(a) => a.tap_specs(),
            Self::ResNet(r) => r.tap_specs(),
        }
    }

    /// Absorbs parameter-free BN into the convolutions (VGG-16, AlexNet); ResNet keeps its
    /// standard BN.
    pub fn absorb_bn(&mut self) {
        match self {
            Self::Vgg16(v) => v.absorb_bn(),
            Self::AlexNet(a) => a.absorb_bn(),
            Self::ResNet(_) => {}
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
        self.tap_specs().into_iter().map(|s| s.0).filter(|n| *n != "data").collect()
    }

    /// The position in [`Self::layer_names`] (1-based) of the layer a parameter belongs to.
    pub fn layer_of(&self, param: &str) -> Option<usize> {
        let name = param.strip_prefix("bn.").unwrap_or(param);
        let layer: &str = match self {
            Self::Vgg16(_) => {
                let idx: usize = match name.split('.').collect::<Vec<_>>()[..] {
                    ["features", i, ..] => i.parse().ok()?,
                    ["classifier", "0", ..] => return self.layer_position("fc6"),
                    ["classifier", "3", ..] => return self.layer_position("fc7"),
                    _ => return None,
                };
                VGG16_CONVS.iter().find(|c| c.1 == idx)?.0
            }
            Self::AlexNet(_) => match name.split('.').collect::<Vec<_>>()[..] {
                ["features", i, ..] => ["conv1", "conv2", "conv3", "conv4", "conv5"]
                    [[0, 3, 6, 8, 10].iter().position(|&k| i.parse::<usize>().ok() == Some(k))?],
                ["classifier", "1", ..] => "fc6",
                ["classifier", "4", ..] => "fc7",
                _ => return None,
            },
            Self::ResNet(_) => match name.split('.').next()? {
                "conv1" | "bn1" => "conv1",
                l @ ("layer1" | "layer2" | "layer3" | "layer4") => RESNET_TAPS.iter().find(|t| t.0 == l)?.0,
                _ => return None,
            },
        };
        self.layer_position(layer)
    }

    /// The 1-based position of `layer` in [`Self::layer_names`].
    pub fn layer_position(&self, layer: &str) -> Option<usize> {
        self.layer_names().iter().position(|n| *n == layer).map(|p| p + 1)
    }

    pub fn forward_taps(&self, x: &Tensor, train: bool, key: u64) -> Vec<Tap> {
        match self {
            Self::Vgg16(v) => v.forward_taps(x, train, key),
            Self::AlexNet(a) => a.forward_taps(x, train, key),
            Self::ResNet(r) => r.forward_taps(x, train),
        }
    }
}
