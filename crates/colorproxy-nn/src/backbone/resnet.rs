//! ResNet-18/50/152 with standard BN, torchvision layout (`conv1`, `bn1`, `layerK.I.convJ`,
//! `downsample`); taps conv1, layer1 ... layer4.
use tch::nn;
use tch::Tensor;

use super::ArchSpec;
use super::{scaled, Conv, Tap};
use crate::config::ModelConfig;

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
        self.forward_pre(x, train).relu()
    }

    /// The block's output before its last ReLU (residual sum).
    fn forward_pre(&self, x: &Tensor, train: bool) -> Tensor {
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
        h + skip
    }
}

/// ResNet tap names and scales.
pub const RESNET_TAPS: [(&str, i64); 5] =
    [("conv1", 2), ("layer1", 4), ("layer2", 8), ("layer3", 16), ("layer4", 32)];

/// ResNet-152's taps inside its stages, for the paper's segmentation hypercolumn (footnote 2:
/// conv1, res2{a,b,c}, res3b{1,4,7}, res4b{5,10,...,35}, res5c), in Caffe's block names: `(stage
/// 0-3, block index, name)`. The last block of a stage is its stage tap (res2c = layer1, res3b7 =
/// layer2, res4b35 = layer3, res5c = layer4).
pub const RESNET152_BLOCK_TAPS: [(usize, usize, &str); 10] = [
    (0, 0, "res2a"),
    (0, 1, "res2b"),
    (1, 1, "res3b1"),
    (1, 4, "res3b4"),
    (2, 5, "res4b5"),
    (2, 10, "res4b10"),
    (2, 15, "res4b15"),
    (2, 20, "res4b20"),
    (2, 25, "res4b25"),
    (2, 30, "res4b30"),
];

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
    /// ResNet-18, 50 or 152.
    pub spec: &'static ArchSpec,
}

impl ResNet {
    pub fn new(
        vs: &nn::Path,
        cfg: &ModelConfig,
        spec: &'static ArchSpec,
        bottleneck: bool,
        counts: [usize; 4],
    ) -> Self {
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
        Self { conv1, bn1, layers, channels, frozen: 0, spec }
    }

    /// Taps (for transfer hypercolumns): conv1 (after BN and ReLU, scale 2), layer1 ... layer4
    /// (scales 4 ... 32); colorization pretraining reads layer4, the last.
    ///
    /// ResNet-152 also taps the blocks of [`RESNET152_BLOCK_TAPS`], each before its stage's tap.
    pub fn tap_specs(&self) -> Vec<(&'static str, i64, i64)> {
        let mut out = vec![(RESNET_TAPS[0].0, self.channels[0], RESNET_TAPS[0].1)];
        for (k, &(name, scale)) in RESNET_TAPS[1..].iter().enumerate() {
            let c = self.channels[k + 1];
            out.extend(self.block_taps().filter(|t| t.0 == k).map(|t| (t.2, c, scale)));
            out.push((name, c, scale));
        }
        out
    }

    /// The block taps of this network (ResNet-152's; none for ResNet-18/50).
    fn block_taps(&self) -> impl Iterator<Item = &'static (usize, usize, &'static str)> {
        let deep = self.layers.iter().map(Vec::len).eq([3, 8, 36, 3]);
        RESNET152_BLOCK_TAPS.iter().filter(move |_| deep)
    }

    pub fn forward_taps(&self, x: &Tensor, train: bool) -> Vec<Tap> {
        self.taps(x, train, false)
    }

    /// conv1 after BN and layer1 ... layer4's residual sums, before their ReLU, in eval mode.
    pub fn pre_activations(&self, x: &Tensor) -> Vec<Tap> {
        self.taps(x, false, true)
    }

    fn taps(&self, x: &Tensor, train: bool, pre: bool) -> Vec<Tap> {
        let z = self.bn1.forward(&self.conv1.forward(x), train && self.frozen < 1);
        let mut h = z.relu();
        let mut taps =
            vec![Tap { name: "conv1", features: if pre { z } else { h.shallow_clone() }, scale: 2 }];
        h = h.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        for (k, (blocks, &(name, scale))) in self.layers.iter().zip(&RESNET_TAPS[1..]).enumerate() {
            let t = train && self.frozen < k + 2;
            let (last, rest) = blocks.split_last().expect("a stage has blocks");
            for (i, b) in rest.iter().enumerate() {
                match self.block_taps().find(|bt| bt.0 == k && bt.1 == i) {
                    Some(&(_, _, name)) => {
                        let z = b.forward_pre(&h, t);
                        h = z.relu();
                        taps.push(Tap { name, features: if pre { z } else { h.shallow_clone() }, scale });
                    }
                    None => h = b.forward(&h, t),
                }
            }
            let z = last.forward_pre(&h, t);
            h = z.relu();
            taps.push(Tap { name, features: if pre { z } else { h.shallow_clone() }, scale });
        }
        taps
    }
}
