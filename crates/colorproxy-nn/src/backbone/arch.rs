//! What colorproxy knows about each architecture, in one table: the layers as the hypercolumn,
//! `--freeze-until` and the analyses name them, their torchvision parameter names, the default
//! transfer hypercolumn, the kind of BN, the transfer options that apply, and the main path's
//! geometry (for receptive fields).
use crate::NnError;

/// The architecture families (one file each in [`crate::backbone`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Vgg16,
    AlexNet,
    /// Bottleneck blocks (ResNet-50/152) or basic blocks (ResNet-18), and blocks per stage.
    ResNet {
        bottleneck: bool,
        blocks: [usize; 4],
    },
}

/// A layer: its name, the torchvision parameter prefixes that belong to it and the stride of
/// its output relative to the input.
#[derive(Debug, Clone, Copy)]
pub struct LayerSpec {
    pub name: &'static str,
    pub torchvision: &'static [&'static str],
    pub scale: i64,
}

/// A convolution or pooling on the main path: kernel, stride, padding (pixels of its input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    pub kernel: i64,
    pub stride: i64,
    pub padding: i64,
}

/// The receptive field of a layer's units, in input pixels: unit `i` (along one axis) sees
/// `[start + i * stride - (size - 1) / 2, start + i * stride + (size - 1) / 2]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReceptiveField {
    pub size: i64,
    pub stride: i64,
    /// Centre of unit 0.
    pub start: f64,
}

/// One architecture.
#[derive(Debug)]
pub struct ArchSpec {
    pub name: &'static str,
    pub family: Family,
    /// The layers in order (without `data`).
    pub layers: &'static [LayerSpec],
    /// Parameter-free BN after every convolution (absorbed for transfer); otherwise standard BN.
    pub param_free_bn: bool,
    /// The input is a hypercolumn tap (`data`).
    pub data_tap: bool,
    /// Default hypercolumn of segmentation transfer (before `fov1`, `fov2`).
    pub transfer_hypercolumn: &'static [&'static str],
    /// Colorization pretraining may read a hypercolumn (else the top layer only).
    pub pretrain_hypercolumn: bool,
    /// `--rebalance` and `--pad-with-bias` are implemented.
    pub rebalance: bool,
    /// The main path: ops, each with the layer whose output it ends (if any).
    pub path: fn() -> Vec<(Op, Option<&'static str>)>,
}

const fn op(kernel: i64, stride: i64, padding: i64) -> Op {
    Op { kernel, stride, padding }
}

const VGG16_LAYER_SPECS: [LayerSpec; 15] = [
    LayerSpec { name: "conv1_1", torchvision: &["features.0"], scale: 1 },
    LayerSpec { name: "conv1_2", torchvision: &["features.2"], scale: 1 },
    LayerSpec { name: "conv2_1", torchvision: &["features.5"], scale: 2 },
    LayerSpec { name: "conv2_2", torchvision: &["features.7"], scale: 2 },
    LayerSpec { name: "conv3_1", torchvision: &["features.10"], scale: 4 },
    LayerSpec { name: "conv3_2", torchvision: &["features.12"], scale: 4 },
    LayerSpec { name: "conv3_3", torchvision: &["features.14"], scale: 4 },
    LayerSpec { name: "conv4_1", torchvision: &["features.17"], scale: 8 },
    LayerSpec { name: "conv4_2", torchvision: &["features.19"], scale: 8 },
    LayerSpec { name: "conv4_3", torchvision: &["features.21"], scale: 8 },
    LayerSpec { name: "conv5_1", torchvision: &["features.24"], scale: 16 },
    LayerSpec { name: "conv5_2", torchvision: &["features.26"], scale: 16 },
    LayerSpec { name: "conv5_3", torchvision: &["features.28"], scale: 16 },
    LayerSpec { name: "fc6", torchvision: &["classifier.0"], scale: 32 },
    LayerSpec { name: "fc7", torchvision: &["classifier.3"], scale: 32 },
];

const ALEXNET_LAYER_SPECS: [LayerSpec; 7] = [
    LayerSpec { name: "conv1", torchvision: &["features.0"], scale: 4 },
    LayerSpec { name: "conv2", torchvision: &["features.3"], scale: 8 },
    LayerSpec { name: "conv3", torchvision: &["features.6"], scale: 16 },
    LayerSpec { name: "conv4", torchvision: &["features.8"], scale: 16 },
    LayerSpec { name: "conv5", torchvision: &["features.10"], scale: 16 },
    LayerSpec { name: "fc6", torchvision: &["classifier.1"], scale: 32 },
    LayerSpec { name: "fc7", torchvision: &["classifier.4"], scale: 32 },
];

const RESNET_LAYER_SPECS: [LayerSpec; 5] = [
    LayerSpec { name: "conv1", torchvision: &["conv1", "bn1"], scale: 2 },
    LayerSpec { name: "layer1", torchvision: &["layer1"], scale: 4 },
    LayerSpec { name: "layer2", torchvision: &["layer2"], scale: 8 },
    LayerSpec { name: "layer3", torchvision: &["layer3"], scale: 16 },
    LayerSpec { name: "layer4", torchvision: &["layer4"], scale: 32 },
];

fn vgg16_path() -> Vec<(Op, Option<&'static str>)> {
    let mut v = Vec::new();
    for (i, l) in VGG16_LAYER_SPECS[..13].iter().enumerate() {
        v.push((op(3, 1, 1), Some(l.name)));
        if matches!(i, 1 | 3 | 6 | 9 | 12) {
            v.push((op(2, 2, 0), None));
        }
    }
    v.push((op(7, 1, 3), Some("fc6")));
    v.push((op(1, 1, 0), Some("fc7")));
    v
}

fn alexnet_path() -> Vec<(Op, Option<&'static str>)> {
    vec![
        (op(11, 4, 2), Some("conv1")),
        (op(3, 2, 0), None),
        (op(5, 1, 2), Some("conv2")),
        (op(3, 2, 0), None),
        (op(3, 1, 1), Some("conv3")),
        (op(3, 1, 1), Some("conv4")),
        (op(3, 1, 1), Some("conv5")),
        (op(3, 2, 0), None),
        (op(6, 1, 3), Some("fc6")),
        (op(1, 1, 0), Some("fc7")),
    ]
}

fn resnet_path(bottleneck: bool, blocks: [usize; 4]) -> Vec<(Op, Option<&'static str>)> {
    let mut v = vec![(op(7, 2, 3), Some("conv1")), (op(3, 2, 1), None)];
    for (stage, &n) in blocks.iter().enumerate() {
        for b in 0..n {
            let stride = if b == 0 && stage > 0 { 2 } else { 1 };
            let ops = if bottleneck {
                vec![op(1, 1, 0), op(3, stride, 1), op(1, 1, 0)]
            } else {
                vec![op(3, stride, 1), op(3, 1, 1)]
            };
            let last = ops.len() - 1;
            for (k, o) in ops.into_iter().enumerate() {
                let end = (b + 1 == n && k == last).then_some(RESNET_LAYER_SPECS[stage + 1].name);
                v.push((o, end));
            }
        }
    }
    v
}

const RESNET_HC: [&str; 5] = ["conv1", "layer1", "layer2", "layer3", "layer4"];

/// ResNet-152's segmentation hypercolumn, the paper's footnote 2 (conv1, res2{a,b,c},
/// res3b{1,4,7}, res4b{5,10,...,35}, res5c; the stage ends under their torchvision names).
const RESNET152_HC: [&str; 15] = [
    "conv1", "res2a", "res2b", "layer1", "res3b1", "res3b4", "layer2", "res4b5", "res4b10", "res4b15",
    "res4b20", "res4b25", "res4b30", "layer3", "layer4",
];

/// A ResNet's entry: standard BN, taps conv1 and layer1 ... layer4 (ResNet-152: also the blocks of
/// the paper's hypercolumn), no pretraining hypercolumn.
const fn resnet(
    name: &'static str,
    bottleneck: bool,
    blocks: [usize; 4],
    transfer_hypercolumn: &'static [&'static str],
    path: fn() -> Vec<(Op, Option<&'static str>)>,
) -> ArchSpec {
    ArchSpec {
        name,
        family: Family::ResNet { bottleneck, blocks },
        layers: &RESNET_LAYER_SPECS,
        param_free_bn: false,
        data_tap: false,
        transfer_hypercolumn,
        pretrain_hypercolumn: false,
        rebalance: false,
        path,
    }
}

/// The architectures.
pub static ARCHS: [ArchSpec; 5] = [
    ArchSpec {
        name: "vgg16",
        family: Family::Vgg16,
        layers: &VGG16_LAYER_SPECS,
        param_free_bn: true,
        data_tap: true,
        transfer_hypercolumn: &[
            "data", "conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv4_1",
            "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3", "fc6", "fc7",
        ],
        pretrain_hypercolumn: true,
        rebalance: true,
        path: vgg16_path,
    },
    ArchSpec {
        name: "alexnet",
        family: Family::AlexNet,
        layers: &ALEXNET_LAYER_SPECS,
        param_free_bn: true,
        data_tap: true,
        transfer_hypercolumn: &["data", "conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"],
        pretrain_hypercolumn: true,
        rebalance: false,
        path: alexnet_path,
    },
    resnet("resnet18", false, [2, 2, 2, 2], &RESNET_HC, || resnet_path(false, [2, 2, 2, 2])),
    resnet("resnet50", true, [3, 4, 6, 3], &RESNET_HC, || resnet_path(true, [3, 4, 6, 3])),
    resnet("resnet152", true, [3, 8, 36, 3], &RESNET152_HC, || resnet_path(true, [3, 8, 36, 3])),
];

/// The architecture called `name`.
pub fn arch(name: &str) -> Result<&'static ArchSpec, NnError> {
    ARCHS.iter().find(|a| a.name == name).ok_or_else(|| {
        NnError::Config(format!(
            "unknown arch {name:?} ({})",
            ARCHS.iter().map(|a| a.name).collect::<Vec<_>>().join(", ")
        ))
    })
}

impl ArchSpec {
    /// The layer names in order (without `data`).
    pub fn layer_names(&self) -> Vec<&'static str> {
        self.layers.iter().map(|l| l.name).collect()
    }

    /// The layer a parameter belongs to, from its torchvision name (`bn.` prefixes of the
    /// parameter-free BN statistics are ignored); `None` for head and +FoV parameters.
    pub fn layer_of_param(&self, param: &str) -> Option<&'static str> {
        let name = param.strip_prefix("bn.").unwrap_or(param);
        self.layers
            .iter()
            .find(|l| l.torchvision.iter().any(|p| name.strip_prefix(p).is_some_and(|r| r.starts_with('.'))))
            .map(|l| l.name)
    }

    /// The receptive field of `layer`'s units along the main path (`data`: one pixel).
    pub fn receptive_field(&self, layer: &str) -> Option<ReceptiveField> {
        let mut rf = ReceptiveField { size: 1, stride: 1, start: 0.0 };
        if layer == "data" {
            return Some(rf);
        }
        for (o, end) in (self.path)() {
            rf.start += ((o.kernel - 1) as f64 / 2.0 - o.padding as f64) * rf.stride as f64;
            rf.size += (o.kernel - 1) * rf.stride;
            rf.stride *= o.stride;
            if end == Some(layer) {
                return Some(rf);
            }
        }
        None
    }
}
