//! torchvision interoperation: every exported tensor's name, shape and dtype equals torchvision's
//! state dict (fixture made by tools/torchvision_keys.py with torchvision 0.26.0), non-standard
//! widths are refused, and export -> import (`finetune --init`, `--arch`) leaves the features
//! unchanged.
use std::collections::BTreeMap;
use std::path::Path;

use colorproxy_nn::backbone::Backbone;
use colorproxy_nn::checkpoint::write_tensors;
use colorproxy_nn::config::ModelConfig;
use colorproxy_nn::torchvision::{export_torchvision, load_network, ExportOptions, Network, Origin};
use colorproxy_nn::transfer::{Task, TransferConfig, TransferNet};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// `arch -> name -> (shape, dtype)` from the committed fixture.
fn torchvision_keys() -> BTreeMap<String, BTreeMap<String, (Vec<i64>, String)>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torchvision-keys.tsv");
    let text = std::fs::read_to_string(path).expect("fixture");
    let mut out: BTreeMap<String, BTreeMap<String, (Vec<i64>, String)>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split('\t').collect();
        let shape = f[2].split(',').filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect();
        out.entry(f[0].into()).or_default().insert(f[1].into(), (shape, f[3].into()));
    }
    out
}

fn network(arch: &str, width: f64) -> Network {
    let model = ModelConfig {
        arch: arch.into(),
        width,
        fc_channels: 4096,
        hypercolumn: Vec::new(),
        ..ModelConfig::default()
    };
    let vs = VarStore::new(Device::Cpu);
    let backbone = Backbone::new(&vs.root(), &model).unwrap();
    colorproxy_nn::init::initialize(&vs, &model, 1);
    Network { vs, backbone, model, classifier: None, origin: Origin::Pretrained }
}

fn dtype(k: Kind) -> &'static str {
    match k {
        Kind::Float => "float32",
        Kind::Int64 => "int64",
        _ => "other",
    }
}

#[test]
fn exported_names_and_shapes_are_torchvisions() {
    let keys = torchvision_keys();
    assert_eq!(keys.len(), 5);
    for (arch, want) in &keys {
        let mut net = network(arch, 1.0);
        let ex = export_torchvision(&mut net, ExportOptions { rgb: true, seed: 0 }).unwrap();
        let got: BTreeMap<String, (Vec<i64>, String)> =
            ex.tensors.iter().map(|(n, t)| (n.clone(), (t.size(), dtype(t.kind()).to_string()))).collect();
        let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
        let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
        assert!(missing.is_empty() && extra.is_empty(), "{arch}: missing {missing:?}, extra {extra:?}");
        for (name, w) in want {
            assert_eq!(&got[name], w, "{arch} {name}");
        }
        assert_eq!((ex.num_classes, ex.in_channels), (1000, 3), "{arch}");
        // Without --rgb only conv1 differs: one input channel.
        let ex = export_torchvision(&mut network(arch, 1.0), ExportOptions::default()).unwrap();
        let conv1 = if arch.starts_with("resnet") { "conv1.weight" } else { "features.0.weight" };
        for (n, t) in &ex.tensors {
            let mut shape = want[n].0.clone();
            if n == conv1 {
                shape[1] = 1;
            }
            assert_eq!(t.size(), shape, "{arch} {n} (gray)");
        }
    }
}

#[test]
fn a_fine_tuned_classifier_is_exported_and_other_widths_are_refused() {
    let mut net = network("alexnet", 1.0);
    let w = Tensor::randn([20, 4096], (Kind::Float, Device::Cpu));
    let b = Tensor::randn([20], (Kind::Float, Device::Cpu));
    net.classifier = Some((w.shallow_clone(), b.shallow_clone()));
    let ex = export_torchvision(&mut net, ExportOptions::default()).unwrap();
    assert_eq!(ex.num_classes, 20);
    let map: BTreeMap<_, _> = ex.tensors.into_iter().collect();
    assert!(map["classifier.6.weight"].equal(&w) && map["classifier.6.bias"].equal(&b));
    // A VGG head initialised as torchvision does: normal(0, 0.01), zero bias.
    let ex = export_torchvision(&mut network("vgg16", 1.0), ExportOptions::default()).unwrap();
    let map: BTreeMap<_, _> = ex.tensors.into_iter().collect();
    let std = map["classifier.6.weight"].std(true).double_value(&[]);
    assert!((std - 0.01).abs() < 2e-4, "std {std}");
    assert_eq!(map["classifier.6.bias"].abs().sum(Kind::Float).double_value(&[]), 0.0);
    // Widths a stock model cannot hold.
    let err = export_torchvision(&mut network("resnet18", 0.5), ExportOptions::default()).err().unwrap();
    assert!(err.to_string().contains("width 0.5"), "{err}");
}

/// Running statistics (and ResNet's affine BN) that make BN absorption matter.
fn randomise_bn(vs: &VarStore) {
    tch::no_grad(|| {
        for (name, mut v) in vs.variables() {
            let r = Tensor::rand(v.size(), (Kind::Float, Device::Cpu));
            if name.ends_with("running_mean") || name.ends_with("bn1.bias") || name.ends_with(".1.bias") {
                v.copy_(&((r - 0.5) * 0.2));
            } else if name.ends_with("running_var") || (name.contains("bn") && name.ends_with("weight")) {
                v.copy_(&(r * 1.5 + 0.5));
            }
        }
    });
}

fn max_rel(a: &Tensor, b: &Tensor) -> f64 {
    ((a - b).abs().max() / b.abs().max()).double_value(&[])
}

#[test]
fn export_then_import_leaves_the_features_unchanged() {
    tch::manual_seed(3);
    let dir = tempfile::tempdir().unwrap();
    for (arch, size) in [("alexnet", 224), ("resnet18", 96), ("vgg16", 64)] {
        let net = network(arch, 1.0);
        randomise_bn(&net.vs);
        let x = Tensor::rand([2, 1, size, size], (Kind::Float, Device::Cpu)) - 0.45;
        let layers: Vec<String> = net.backbone.layer_names().iter().map(|s| s.to_string()).collect();
        // The reference: the pretrained network, BN in eval mode (not absorbed).
        let before = net.features(&x, &layers).unwrap();
        for rgb in [false, true] {
            let ex = export_torchvision(&mut network_copy(&net), ExportOptions { rgb, seed: 0 }).unwrap();
            let file = dir.path().join(format!("{arch}-{rgb}.safetensors"));
            write_tensors(&file, &ex.tensors).unwrap();
            // `finetune --init FILE`: the transfer network's backbone.
            let mut cfg = TransferConfig::cpu(Task::Cls);
            cfg.model =
                ModelConfig { arch: arch.into(), width: 1.0, fc_channels: 4096, ..ModelConfig::default() };
            let mut tn = TransferNet::new(&cfg.for_arch(), Device::Cpu).unwrap();
            let loaded = tn.load_backbone(&file).unwrap();
            assert!(!loaded.bn_statistics);
            tn.backbone.set_use_bn(false);
            let taps = tch::no_grad(|| tn.backbone.forward_taps(&x, false, 0));
            // The analyses' `--arch`: a torchvision state dict loaded as a network.
            let imported = load_network(&file, None, Some(arch), Device::Cpu).unwrap();
            let after = imported.features(&x, &layers).unwrap();
            for ((name, a), (_, b)) in before.iter().zip(&after) {
                let t = &taps.iter().find(|t| t.name == name).unwrap().features;
                let (r1, r2) = (max_rel(b, a), max_rel(t, a));
                assert!(r1 < 1e-5 && r2 < 1e-5, "{arch} rgb={rgb} {name}: {r1:.2e} / {r2:.2e}");
            }
        }
    }
}

/// A copy of `net` (export absorbs BN in place).
fn network_copy(net: &Network) -> Network {
    let mut copy = network(&net.model.arch, net.model.width);
    copy.vs.copy(&net.vs).unwrap();
    copy
}
