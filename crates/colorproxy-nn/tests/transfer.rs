//! Transfer networks: BN absorption is exact, gray-to-RGB lifting preserves the function,
//! freezing selects the right layers, single-label folders, resume, malformed samples, other
//! backbones (the voc-mini overfit is in `seg_overfit.rs`).
use colorproxy_nn::run_dir::Resume;
use std::path::Path;

use colorproxy_data::RgbImage8;
use colorproxy_nn::backbone::Backbone;
use colorproxy_nn::transfer::{Task, TransferConfig, TransferNet};
use tch::{Device, Kind, Tensor};

fn small(task: Task) -> TransferConfig {
    let mut c = TransferConfig::cpu(task);
    c.model.width = 1.0 / 16.0;
    c.model.fc_channels = 16;
    c.fov_channels = 16;
    c.head_hidden = 16;
    c
}

#[test]
fn absorbing_parameter_free_bn_leaves_the_eval_function_unchanged() {
    for arch in ["vgg16", "alexnet"] {
        absorb_check(arch);
    }
}

fn absorb_check(arch: &str) {
    let mut cfg = small(Task::Cls);
    cfg.model.arch = arch.into();
    let mut net = TransferNet::new(&cfg, Device::Cpu).unwrap();
    // Give BN running statistics that matter.
    tch::no_grad(|| {
        for (name, mut v) in net.vs.variables() {
            if name.ends_with("running_mean") {
                v.copy_(&(Tensor::rand(v.size(), (Kind::Float, Device::Cpu)) - 0.5));
            }
            if name.ends_with("running_var") {
                v.copy_(&(Tensor::rand(v.size(), (Kind::Float, Device::Cpu)) * 3.0 + 0.1));
            }
        }
    });
    let x = Tensor::randn([2, 1, 64, 64], (Kind::Float, Device::Cpu));
    let before = tch::no_grad(|| net.cls_logits(&x, false, 0));
    net.absorb_bn();
    match &net.backbone {
        Backbone::Vgg16(v) => assert!(!v.use_bn),
        Backbone::AlexNet(a) => assert!(!a.use_bn),
        _ => unreachable!(),
    }
    let after = tch::no_grad(|| net.cls_logits(&x, false, 0));
    let diff = (&before - &after).abs().max().double_value(&[]);
    let scale = before.abs().max().double_value(&[]).max(1e-6);
    assert!(diff / scale < 1e-4, "{arch}: max difference {diff} (scale {scale})");
}

#[test]
fn lifting_conv1_to_rgb_computes_the_same_function_on_colour_input() {
    let tmp = tempfile::tempdir().unwrap();
    let gray_cfg = small(Task::Seg);
    let gray = TransferNet::new(&gray_cfg, Device::Cpu).unwrap();
    let ck = tmp.path().join("gray.safetensors");
    colorproxy_nn::checkpoint::save_weights(&gray.vs, &ck).unwrap();
    let mut gray2 = TransferNet::new(&gray_cfg, Device::Cpu).unwrap();
    gray2.load_backbone(&ck).unwrap();
    let rgb_cfg = TransferConfig { color: true, ..gray_cfg.clone() };
    let mut rgb = TransferNet::new(&rgb_cfg, Device::Cpu).unwrap();
    rgb.load_backbone(&ck).unwrap();
    let w: Vec<Tensor> =
        rgb.vs.variables().into_iter().filter(|(n, _)| n == "features.0.weight").map(|(_, t)| t).collect();
    assert_eq!(w[0].size()[1], 3);
    // Compare the backbone's fc7 on a colour image (RGB net) and on its gray version (gray net).
    let img = RgbImage8 {
        width: 64,
        height: 64,
        data: (0..64 * 64).flat_map(|i| [(i % 256) as u8, (i * 7 % 256) as u8, (i / 64 * 4) as u8]).collect(),
    };
    let xr = rgb.input(&[&img], 0.4488);
    let xg = gray2.input(&[&img], 0.4488);
    let fr = tch::no_grad(|| rgb.backbone.forward_taps(&xr, false, 0).pop().unwrap().features);
    let fg = tch::no_grad(|| gray2.backbone.forward_taps(&xg, false, 0).pop().unwrap().features);
    let diff = (&fr - &fg).abs().max().double_value(&[]);
    assert!(diff < 1e-4, "{diff}");
}

#[test]
fn rebalancing_gives_every_layer_unit_variance_on_the_sample() {
    let cfg = small(Task::Cls);
    let mut net = TransferNet::new(&cfg, Device::Cpu).unwrap();
    net.absorb_bn();
    let imgs: Vec<RgbImage8> = (0..6)
        .map(|k| RgbImage8 {
            width: 80,
            height: 72,
            data: (0..80 * 72)
                .flat_map(|i| [((i * (k + 3)) % 256) as u8, (i / 80 * 3 % 256) as u8, (k * 40) as u8])
                .collect(),
        })
        .collect();
    let first = net.rebalance(&imgs);
    assert_eq!(first.len(), 15);
    assert!(first.iter().cloned().fold(0.0, f64::max) > 0.1, "the random network was not balanced before");
    // Measured again on the same sample, every layer's channels now have unit std.
    let second = net.rebalance(&imgs);
    for (k, d) in second.iter().enumerate() {
        assert!(*d < 1e-3, "layer {k}: std deviates from 1 by {d}");
    }
}

#[test]
fn padding_with_the_bias_removes_the_border_effect_of_a_constant_map() {
    // conv1_1 outputs the constant ReLU(bias) = 0.5 everywhere (zero weights); conv1_2 on that
    // map is spatially uniform only if its border is filled with 0.5 instead of 0.
    let cfg = small(Task::Seg);
    let mut net = TransferNet::new(&cfg, Device::Cpu).unwrap();
    net.absorb_bn();
    tch::no_grad(|| {
        for (name, mut v) in net.vs.variables() {
            if name == "features.0.weight" {
                let _ = v.zero_();
            }
            if name == "features.0.bias" {
                let _ = v.fill_(0.5);
            }
        }
    });
    let x = Tensor::randn([1, 1, 32, 32], (Kind::Float, Device::Cpu));
    let spread = |net: &TransferNet| {
        let taps = tch::no_grad(|| net.backbone.forward_taps(&x, false, 0));
        let t = &taps.iter().find(|t| t.name == "conv1_2").unwrap().features;
        (t.amax([2i64, 3].as_slice(), false) - t.amin([2i64, 3].as_slice(), false)).max().double_value(&[])
    };
    let zero_padded = spread(&net);
    net.set_pad_with_bias(true);
    let bias_padded = spread(&net);
    assert!(zero_padded > 1e-3, "zero padding should show a border: {zero_padded}");
    assert!(bias_padded < 1e-5, "bias padding leaves a uniform map: {bias_padded}");
}

#[test]
fn freeze_until_trains_only_the_layers_above() {
    let mut cfg = small(Task::Seg);
    cfg.freeze_until = Some("conv4_1".into());
    let net = TransferNet::new(&cfg, Device::Cpu).unwrap();
    let t = net.trainable().unwrap();
    // conv4_1 is features.17: frozen; conv4_2 (features.19) and up, fc6/fc7, +FoV and head train.
    assert!(!t.contains_key("features.17.weight") && !t.contains_key("features.0.bias"));
    for k in [
        "features.19.weight",
        "classifier.0.weight",
        "classifier.3.bias",
        "fov.conv8.weight",
        "head.fc2.weight",
    ] {
        assert!(t.contains_key(k), "{k}");
    }
    cfg.freeze_until = Some("fc7".into());
    let only_new = TransferNet::new(&cfg, Device::Cpu).unwrap().trainable().unwrap();
    assert!(
        only_new.keys().all(|k| k.starts_with("head.") || k.starts_with("fov.")),
        "{:?}",
        only_new.keys()
    );
    cfg.freeze_until = Some("conv9_9".into());
    assert!(TransferNet::new(&cfg, Device::Cpu).unwrap().trainable().is_err());
}

/// Sets the interrupt flag once `at` iterations are done (a scripted Ctrl-C).
struct InterruptAt {
    at: usize,
    flag: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl colorproxy_nn::run_dir::TrainObserver for InterruptAt {
    fn step(&mut self, iteration: usize, _loss: f64, _ips: f64) {
        if iteration == self.at {
            self.flag.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// A single-label config for the generated class folders (5 classes, 48-px images).
fn single_label_config() -> TransferConfig {
    let mut c = TransferConfig::cpu(Task::Cls);
    c.short_side = 48.0;
    c.scale_min = 1.0;
    c.scale_max = 1.0;
    c.crop = 48;
    c.test_short_side = 48.0;
    // From random init: the paper's data-dependent rescaling so the BN-free network trains.
    c.rebalance = true;
    c
}

fn finetune(
    cfg: &TransferConfig,
    data: &Path,
    out: &Path,
    resume: bool,
    observer: &mut dyn colorproxy_nn::run_dir::TrainObserver,
    interrupt: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> colorproxy_nn::transfer::FinetuneSummary {
    colorproxy_nn::transfer::FinetuneRun {
        config: cfg.clone(),
        data: data.to_owned(),
        train_split: "train".into(),
        out: out.to_owned(),
        device: Device::Cpu,
        fixed_schedule: None,
        on_bad: colorproxy_nn::transfer::OnBad::Stop,
        resume: if resume { Resume::Yes } else { Resume::No },
        force: false,
        interrupt,
        observer,
        dist: None,
    }
    .run()
    .unwrap()
}

/// Single-label class folders (ImageNet layout): softmax fine-tuning from random init (rebalanced)
/// fits the training images (chance 0.2), and top-1/top-5 and per-class accuracy agree with
/// hand-computed values from the 10-crop softmax scores, in the saved class order.
#[test]
fn single_label_folders_train_and_score_top1_top5() {
    use colorproxy_nn::run_dir::{RunPaths, Silent};
    use colorproxy_nn::transfer::{classify, evaluate, load_finetuned, load_split, OnBad};
    let tmp = tempfile::tempdir().unwrap();
    colorproxy_data::synth::write_image_folders(tmp.path(), 3, 6, 4, 5, 48).unwrap();
    let mut cfg = single_label_config();
    cfg.dropout = 0.0;
    cfg.held_out = 0.0;
    cfg.early_stop.min_stage_iterations = 1000;
    cfg.early_stop.max_iterations = 120;
    let out = tmp.path().join("run");
    let s = finetune(&cfg, tmp.path(), &out, false, &mut Silent, Default::default());
    assert_eq!(s.config.classes, ["aeroplane", "bicycle", "bird", "boat", "bottle"]);
    let net = load_finetuned(&RunPaths::new(&out).last_weights(), s.config.clone(), Device::Cpu).unwrap();
    let train = load_split(Task::Cls, tmp.path(), "train", OnBad::Stop, &mut |_| {}).unwrap();
    let all: Vec<usize> = (0..train.len()).collect();
    let r = evaluate(&net, &train, &all, &mut |_, _| {}).unwrap();
    assert!(r.value >= 0.9, "training-image top-1 {:.3} (chance 0.2)", r.value);
    let mut val = load_split(Task::Cls, tmp.path(), "val", OnBad::Stop, &mut |_| {}).unwrap();
    val.align_classes(&s.config.classes).unwrap();
    assert_eq!(val.len(), 20);
    let idx: Vec<usize> = (0..val.len()).collect();
    let r = evaluate(&net, &val, &idx, &mut |_, _| {}).unwrap();
    assert_eq!(r.metric, "top1");
    assert_eq!(r.extra["top5"], 1.0, "5 classes: top-5 is always right");
    // Top-1 by hand from the 10-crop softmax scores.
    let mut hits = 0;
    let mut per = [0usize; 5];
    for &i in &idx {
        let p = classify(&net, &val.image(i).unwrap());
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4, "softmax averaged over crops");
        let best = (0..5).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
        if best == val.targets[i] {
            hits += 1;
            per[best] += 1;
        }
    }
    assert!((r.value - hits as f64 / 20.0).abs() < 1e-12);
    for (c, name) in s.config.classes.iter().enumerate() {
        assert!((r.per_class[name].unwrap() - per[c] as f64 / 4.0).abs() < 1e-12, "{name}");
    }
    // The 10-crop score is the mean of the crops' softmaxes; `test_crops = 1` (the paper's ImNt
    // "single centre crop") is the softmax of the centre crop alone (corners first, centre fifth).
    let cfg1 = colorproxy_nn::transfer::TransferConfig { test_crops: 1, ..s.config.clone() };
    cfg1.validate().unwrap();
    assert!(colorproxy_nn::transfer::TransferConfig { test_crops: 5, ..s.config.clone() }
        .validate()
        .is_err());
    let net1 = load_finetuned(&RunPaths::new(&out).last_weights(), cfg1, Device::Cpu).unwrap();
    let img = val.image(0).unwrap();
    let crops = colorproxy_data::transfer_data::ten_crops(&img, s.config.test_short_side, s.config.crop);
    let soft = |c: &colorproxy_data::RgbImage8| -> Vec<f32> {
        let x = net.input(&[c], colorproxy_nn::transfer::GRAY_MEAN);
        let p = tch::no_grad(|| net.cls_logits(&x, false, 0).softmax(1, tch::Kind::Float));
        Vec::<f32>::try_from(p.flatten(0, -1)).unwrap()
    };
    let each: Vec<Vec<f32>> = crops.iter().map(soft).collect();
    let (p10, p1) = (classify(&net, &img), classify(&net1, &img));
    for k in 0..5 {
        let mean = each.iter().map(|p| p[k]).sum::<f32>() / 10.0;
        assert!((p10[k] - mean).abs() < 1e-5, "class {k}: 10-crop {} vs mean {mean}", p10[k]);
        assert!((p1[k] - each[4][k]).abs() < 1e-5, "class {k}: centre crop {} vs {}", p1[k], each[4][k]);
    }
    assert!(p1.iter().zip(&p10).any(|(a, b)| (a - b).abs() > 1e-4), "one crop scores as ten");
    // A file that does not decode: skipped once and counted once, however often it is met.
    std::fs::write(tmp.path().join("val/boat/corrupt.jpg"), b"not a jpeg").unwrap();
    let mut with_bad = load_split(Task::Cls, tmp.path(), "val", OnBad::Skip, &mut |_| {}).unwrap();
    with_bad.align_classes(&s.config.classes).unwrap();
    let all: Vec<usize> = (0..with_bad.len()).collect();
    for _ in 0..2 {
        let r2 = evaluate(&net, &with_bad, &all, &mut |_, _| {}).unwrap();
        assert_eq!((r2.value, r2.extra["images"]), (r.value, 20.0));
    }
    assert_eq!(with_bad.skipped.load(std::sync::atomic::Ordering::Relaxed), 1);
    let mut strict = load_split(Task::Cls, tmp.path(), "val", OnBad::Stop, &mut |_| {}).unwrap();
    strict.align_classes(&s.config.classes).unwrap();
    let all: Vec<usize> = (0..strict.len()).collect();
    let e = evaluate(&net, &strict, &all, &mut |_, _| {}).err().unwrap().to_string();
    assert!(e.contains("corrupt.jpg"), "{e}");
    std::fs::remove_file(tmp.path().join("val/boat/corrupt.jpg")).unwrap();
    // A VOC devkit for a class-folder network, or class folders for a VOC network: errors.
    let voc = tmp.path().join("voc");
    colorproxy_data::synth::write_voc(&voc, 1, 0, 2, 1, 32).unwrap();
    let mut v = load_split(Task::Cls, &voc, "train", OnBad::Stop, &mut |_| {}).unwrap();
    assert!(v.align_classes(&s.config.classes).is_err());
    assert!(val.align_classes(&[]).is_err());
    // A class folder the network does not know is an error naming it.
    std::fs::create_dir_all(tmp.path().join("val/zebra")).unwrap();
    std::fs::copy(tmp.path().join("val/boat/00006.jpg"), tmp.path().join("val/zebra/a.jpg")).unwrap();
    let mut bad = load_split(Task::Cls, tmp.path(), "val", OnBad::Stop, &mut |_| {}).unwrap();
    let e = bad.align_classes(&s.config.classes).unwrap_err().to_string();
    assert!(e.contains("zebra"), "{e}");
}

/// An interrupted fine-tuning run resumed from its checkpoint ends exactly where an
/// uninterrupted one does: same weights, same early-stopping decisions, same metrics lines.
#[test]
fn interrupted_finetuning_resumes_to_the_same_result() {
    use colorproxy_nn::checkpoint::read_tensors;
    use colorproxy_nn::run_dir::{RunPaths, Silent};
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    let tmp = tempfile::tempdir().unwrap();
    colorproxy_data::synth::write_image_folders(tmp.path(), 5, 8, 2, 5, 48).unwrap();
    let mut cfg = single_label_config();
    cfg.early_stop.eval_every = 4;
    cfg.early_stop.window = 2;
    cfg.early_stop.min_stage_iterations = 8;
    cfg.early_stop.min_delta = 10.0; // every window after the first is a plateau
    cfg.early_stop.reference_margin = -1.0; // plateaus count even before beating the reference
    cfg.early_stop.max_iterations = 60;
    cfg.checkpoint_every = 10;
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let full = finetune(&cfg, tmp.path(), &a, false, &mut Silent, Default::default());
    assert!(!full.interrupted);
    assert_eq!(full.schedule.drops.len(), 1, "{:?}", full.schedule);
    assert!(full.iterations < 60, "stopped by the second plateau");
    let flag = Arc::new(AtomicBool::new(false));
    let part = finetune(&cfg, tmp.path(), &b, false, &mut InterruptAt { at: 13, flag: flag.clone() }, flag);
    assert!(part.interrupted);
    assert_eq!(part.iterations, 13);
    let resumed = finetune(&cfg, tmp.path(), &b, true, &mut Silent, Default::default());
    assert_eq!(resumed.iterations, full.iterations);
    assert_eq!(resumed.schedule, full.schedule);
    let weights = |d: &Path| -> std::collections::BTreeMap<String, Tensor> {
        read_tensors(&RunPaths::new(d).last_weights()).unwrap().into_iter().collect()
    };
    let (wa, wb) = (weights(&a), weights(&b));
    assert_eq!(wa.len(), wb.len());
    for ((na, ta), (nb, tb)) in wa.iter().zip(&wb) {
        assert_eq!(na, nb);
        let d = (ta - tb).abs().max().double_value(&[]);
        assert!(d < 1e-6, "{na}: max difference {d}");
    }
    let lines = |d: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(RunPaths::new(d).metrics())
            .unwrap()
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("images_per_s");
                v
            })
            .collect()
    };
    assert_eq!(lines(&a), lines(&b));
    // Resuming with a different config is refused.
    let mut other = cfg.clone();
    other.optim.lr *= 2.0;
    let e = colorproxy_nn::transfer::FinetuneRun {
        config: other,
        data: tmp.path().to_owned(),
        train_split: "train".into(),
        out: b.clone(),
        device: Device::Cpu,
        fixed_schedule: None,
        on_bad: colorproxy_nn::transfer::OnBad::Stop,
        resume: Resume::Yes,
        force: false,
        interrupt: Default::default(),
        observer: &mut Silent,
        dist: None,
    }
    .run()
    .err()
    .expect("refused")
    .to_string();
    assert!(e.contains("differs"), "{e}");
}

/// Malformed samples (a missing listed image, a mask of the wrong size, a class index out of
/// range) stop the run with the file named, or are skipped and counted.
#[test]
fn malformed_segmentation_samples_stop_or_are_skipped_and_counted() {
    use colorproxy_nn::transfer::{load_split, OnBad};
    use std::sync::atomic::Ordering;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    colorproxy_data::synth::write_voc(root, 1, 0, 5, 1, 32).unwrap();
    let ids: Vec<String> = std::fs::read_to_string(root.join("ImageSets/Segmentation/train.txt"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let write_mask = |id: &str, w: u32, h: u32, v: u8| {
        image::GrayImage::from_pixel(w, h, image::Luma([v]))
            .save(root.join(format!("SegmentationClass/{id}.png")))
            .unwrap();
    };
    write_mask(&ids[1], 16, 32, 0); // wrong size
    write_mask(&ids[2], 32, 32, 42); // class 42
    std::fs::remove_file(root.join(format!("JPEGImages/{}.jpg", ids[3]))).unwrap();
    let e = load_split(Task::Seg, root, "train", OnBad::Stop, &mut |_| {}).err().unwrap().to_string();
    assert!(e.contains(&ids[1]) && e.contains("16x32"), "{e}");
    let mut log = Vec::new();
    let set = load_split(Task::Seg, root, "train", OnBad::Skip, &mut |m| log.push(m.to_string())).unwrap();
    assert_eq!(set.ids, [ids[0].clone(), ids[4].clone()]);
    assert_eq!(set.skipped.load(Ordering::Relaxed), 3);
    let all = log.join("\n");
    for (id, what) in [(&ids[1], "16x32"), (&ids[2], "42"), (&ids[3], "does not exist")] {
        assert!(all.contains(id.as_str()) && all.contains(what), "{id} {what}: {all}");
    }
    assert!(all.contains("skipped 3"), "{all}");
}

/// AlexNet and ResNet backbones: `freeze_until` names their layers (torchvision parameter
/// names map to them), the hypercolumn defaults to their layers, and a ResNet-18 (standard BN
/// kept) fine-tuned for single-label classification fits its training images.
#[test]
fn alexnet_and_resnet_backbones_transfer() {
    use colorproxy_nn::run_dir::{RunPaths, Silent};
    use colorproxy_nn::transfer::{evaluate, load_finetuned, load_split, OnBad};
    let mut a = small(Task::Seg);
    a.model.arch = "alexnet".into();
    let a = a.for_arch();
    assert_eq!(
        a.hypercolumn,
        ["data", "conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fov1", "fov2"]
    );
    let mut fa = a.clone();
    fa.freeze_until = Some("conv5".into());
    let t = TransferNet::new(&fa, Device::Cpu).unwrap().trainable().unwrap();
    assert!(!t.contains_key("features.10.weight") && !t.contains_key("features.0.weight"));
    for k in ["classifier.1.weight", "classifier.4.bias", "fov.conv8.weight", "head.fc2.weight"] {
        assert!(t.contains_key(k), "{k}");
    }
    // AlexNet's maps are not exactly input/stride (11x11 stride-4 conv1): the dense 1/4
    // hypercolumn still equals the sparse one sampled at the 4x4 cells' centres, and dense
    // segmentation gives one label per pixel.
    let anet = TransferNet::new(&a, Device::Cpu).unwrap();
    let x = Tensor::randn([1, 1, 64, 96], (Kind::Float, Device::Cpu));
    let taps = anet.backbone.forward_taps(&x, false, 0);
    assert_eq!(taps.iter().find(|t| t.name == "conv1").unwrap().features.size()[2..], [15, 23]);
    let hc = colorproxy_nn::hypercolumn::SparseHypercolumn::new(
        ["conv1", "conv2", "conv5", "fc7"].iter().map(|s| s.to_string()).collect(),
    );
    let dense = hc.dense_quarter(&taps, (64, 96));
    let grid: Vec<f32> = (0..16)
        .flat_map(|i| (0..24).flat_map(move |j| [4.0 * i as f32 + 1.5, 4.0 * j as f32 + 1.5]))
        .collect();
    let sparse = hc.forward(&taps, &Tensor::from_slice(&grid).reshape([1, 16 * 24, 2]));
    let dense = dense.permute([0, 2, 3, 1]).reshape([16 * 24, -1]);
    let d = (&dense - &sparse).abs().max().double_value(&[]);
    assert!(d < 1e-4, "dense vs sparse AlexNet hypercolumn: {d}");
    let img =
        RgbImage8 { width: 70, height: 45, data: (0..70 * 45 * 3).map(|v| (v * 7 % 251) as u8).collect() };
    assert_eq!(colorproxy_nn::transfer::segment(&anet, &img).len(), 70 * 45);

    let mut r = small(Task::Seg);
    r.model.arch = "resnet18".into();
    let r = r.for_arch();
    assert_eq!(r.hypercolumn, ["conv1", "layer1", "layer2", "layer3", "layer4", "fov1", "fov2"]);
    let mut fr = r.clone();
    fr.freeze_until = Some("layer3".into());
    let net = TransferNet::new(&fr, Device::Cpu).unwrap();
    let x = Tensor::randn([1, 1, 64, 64], (Kind::Float, Device::Cpu));
    let pts = Tensor::from_slice(&[3.0f32, 5.0, 60.0, 2.0]).reshape([1, 2, 2]);
    assert_eq!(net.seg_logits_sparse(&x, &pts, false, 0).size(), [2, 21]);
    let t = net.trainable().unwrap();
    assert!(
        t.keys().all(|k| k.starts_with("layer4.") || k.starts_with("head.") || k.starts_with("fov.")),
        "{:?}",
        t.keys()
    );
    assert!(t.contains_key("layer4.1.bn2.weight") && t.contains_key("layer4.0.downsample.0.weight"));
    // Frozen layers' BN keeps its running statistics in training; unfrozen layers' BN updates.
    let stat = |n: &str| net.vs.variables()[n].copy();
    let (l3, l4) = (stat("layer3.1.bn2.running_mean"), stat("layer4.1.bn2.running_mean"));
    let _ = net.seg_logits_sparse(&(x * 3.0 + 1.0), &pts, true, 0);
    assert!(stat("layer3.1.bn2.running_mean").equal(&l3), "frozen layer3 BN moved");
    assert!(!stat("layer4.1.bn2.running_mean").equal(&l4), "layer4 BN did not update");

    let tmp = tempfile::tempdir().unwrap();
    colorproxy_data::synth::write_image_folders(tmp.path(), 3, 6, 4, 5, 48).unwrap();
    let mut cfg = single_label_config();
    cfg.model.arch = "resnet18".into();
    cfg.model.width = 0.25;
    cfg.rebalance = false;
    cfg.dropout = 0.0;
    cfg.held_out = 0.0;
    cfg.optim.lr = 0.01;
    cfg.early_stop.min_stage_iterations = 1000;
    cfg.early_stop.max_iterations = 120;
    let out = tmp.path().join("run");
    let s = finetune(&cfg, tmp.path(), &out, false, &mut Silent, Default::default());
    let net = load_finetuned(&RunPaths::new(&out).last_weights(), s.config, Device::Cpu).unwrap();
    let train = load_split(Task::Cls, tmp.path(), "train", OnBad::Stop, &mut |_| {}).unwrap();
    let all: Vec<usize> = (0..train.len()).collect();
    let r = evaluate(&net, &train, &all, &mut |_, _| {}).unwrap();
    assert!(r.value >= 0.9, "ResNet-18 training-image top-1 {:.3} (chance 0.2)", r.value);
}

/// ResNet-152's segmentation hypercolumn is the paper's footnote 2 (conv1, res2{a,b,c},
/// res3b{1,4,7}, res4b{5,...,35}, res5c, then +FoV), each tap at its block's scale and width;
/// ResNet-50 keeps its 5 stage taps.
#[test]
fn resnet152_segmentation_hypercolumn_is_footnote_2() {
    let mut c = TransferConfig::preset("seg-paper").unwrap();
    (c.model.arch, c.model.width) = ("resnet152".into(), 1.0 / 16.0);
    (c.head_hidden, c.fov_channels) = (8, 8);
    let c = c.for_arch();
    let want = [
        "conv1", "res2a", "res2b", "layer1", "res3b1", "res3b4", "layer2", "res4b5", "res4b10", "res4b15",
        "res4b20", "res4b25", "res4b30", "layer3", "layer4", "fov1", "fov2",
    ];
    assert_eq!(c.hypercolumn, want);
    let net = TransferNet::new(&c, Device::Cpu).unwrap();
    let specs = net.backbone.tap_specs();
    let names: Vec<&str> = specs.iter().map(|s| s.0).collect();
    assert_eq!(names, want[..15]);
    // Width: stage k's bottleneck output is 4 x 64 x 2^k x width; scale 4 ... 32.
    for (name, ch, scale) in &specs[1..] {
        let stage = match *name {
            "res2a" | "res2b" | "layer1" => 0,
            "res3b1" | "res3b4" | "layer2" => 1,
            "layer4" => 3,
            _ => 2,
        };
        assert_eq!(*ch, 4 * (64 << stage) / 16, "{name}");
        assert_eq!(*scale, 4 << stage, "{name}");
    }
    // The taps the network computes: the same names, at those scales, on a 64 x 64 input.
    let x = Tensor::zeros([1, 1, 64, 64], (Kind::Float, Device::Cpu));
    let taps = net.backbone.forward_taps(&x, false, 0);
    let got: Vec<(&str, i64)> = taps.iter().map(|t| (t.name, t.features.size()[2])).collect();
    let sizes: Vec<(&str, i64)> = specs.iter().map(|s| (s.0, 64 / s.2)).collect();
    assert_eq!(got, sizes);
    let logits = net.seg_logits_dense(&x);
    assert_eq!(logits.size()[1], c.classes());
    let mut c50 = TransferConfig::preset("seg-paper").unwrap();
    (c50.model.arch, c50.model.width) = ("resnet50".into(), 1.0 / 16.0);
    let c50 = c50.for_arch();
    assert_eq!(c50.hypercolumn, ["conv1", "layer1", "layer2", "layer3", "layer4", "fov1", "fov2"]);
}
