//! Networks, losses and training against independent references: finite differences, analytic
//! gradients, dense bilinear upsampling, hand-computed SGD steps, exact resume.
use colorproxy_nn::run_dir::Resume;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use colorproxy_nn::backbone::Backbone;
use colorproxy_nn::checkpoint::read_tensors;
use colorproxy_nn::config::OptimConfig;
use colorproxy_nn::hypercolumn::{dense_upsample, sample_at};
use colorproxy_nn::loss::{lab_regression, weighted_kl};
use colorproxy_nn::optim::Sgd;
use colorproxy_nn::pretrain::{read_metrics, PretrainRun};
use colorproxy_nn::run_dir::{RunPaths, Silent};
use colorproxy_nn::{ModelConfig, NnError, PretrainConfig};
use tch::{Device, Kind, Tensor};

/// Central finite-difference gradient of `f` at `x` (double precision).
fn numeric_grad(x: &Tensor, f: &dyn Fn(&Tensor) -> f64) -> Vec<f64> {
    let n = x.numel();
    let flat = x.flatten(0, -1);
    let eps = 1e-6;
    (0..n)
        .map(|i| {
            let plus = flat.copy();
            let _ = plus.get(i as i64).g_add_scalar_(eps);
            let minus = flat.copy();
            let _ = minus.get(i as i64).g_add_scalar_(-eps);
            (f(&plus.reshape(x.size())) - f(&minus.reshape(x.size()))) / (2.0 * eps)
        })
        .collect()
}

fn to_vec(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.flatten(0, -1).to_kind(Kind::Double)).unwrap()
}

#[test]
fn histogram_loss_gradient_matches_finite_differences_and_the_authors_formula() {
    tch::manual_seed(1);
    let opts = (Kind::Double, Device::Cpu);
    let logits = Tensor::randn([6, 8], opts).set_requires_grad(true);
    // Targets with exact zeros (windows that miss bins) and a uniform row.
    let mut q = Tensor::rand([6, 8], opts);
    let _ = q.narrow(1, 0, 3).get(0).zero_();
    q = &q / q.sum_dim_intlist([1i64].as_slice(), true, Kind::Double);
    let w = Tensor::rand([6], opts) * 5.0;
    let loss = weighted_kl(&logits, &q, &w);
    loss.backward();
    let auto = to_vec(&logits.grad());
    let f = |z: &Tensor| weighted_kl(z, &q, &w).double_value(&[]);
    let num = numeric_grad(&logits.detach(), &f);
    for (a, n) in auto.iter().zip(&num) {
        assert!((a - n).abs() < 1e-8, "autograd {a} vs finite difference {n}");
    }
    // (p - q) * w / N, N = 6.
    let p = logits.detach().softmax(-1, Kind::Double);
    let analytic = to_vec(&((p - &q) * w.unsqueeze(1) / 6.0));
    for (a, b) in auto.iter().zip(&analytic) {
        assert!((a - b).abs() < 1e-12);
    }
    // Hand-computed value: uniform logits against a one-hot target give log(K) per point.
    let z = Tensor::zeros([2, 4], opts);
    let onehot = Tensor::from_slice(&[1.0f64, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]).reshape([2, 4]);
    let v = weighted_kl(&z, &onehot, &Tensor::from_slice(&[1.0f64, 3.0])).double_value(&[]);
    assert!((v - 4.0f64.ln() * 4.0 / 2.0).abs() < 1e-12, "{v}");
}

#[test]
fn lab_regression_gradient_matches_finite_differences() {
    tch::manual_seed(2);
    let opts = (Kind::Double, Device::Cpu);
    let pred = Tensor::randn([5, 2], opts).set_requires_grad(true);
    let t = Tensor::randn([5, 2], opts) * 0.3;
    lab_regression(&pred, &t, 10.0).backward();
    let auto = to_vec(&pred.grad());
    let num = numeric_grad(&pred.detach(), &|x| lab_regression(x, &t, 10.0).double_value(&[]));
    for (a, n) in auto.iter().zip(&num) {
        assert!((a - n).abs() < 1e-8, "{a} vs {n}");
    }
    let analytic = to_vec(&((pred.detach() - &t) * 10.0 / 5.0));
    for (a, b) in auto.iter().zip(&analytic) {
        assert!((a - b).abs() < 1e-12);
    }
}

fn tiny_vgg() -> ModelConfig {
    ModelConfig { width: 1.0 / 16.0, fc_channels: 8, head_hidden: 8, dropout: 0.0, ..ModelConfig::default() }
}

#[test]
fn sparse_hypercolumn_equals_dense_bilinear_upsampling_at_the_points() {
    tch::manual_seed(3);
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let backbone = Backbone::new(&vs.root(), &tiny_vgg()).unwrap();
    let x = Tensor::randn([2, 1, 64, 64], (Kind::Float, Device::Cpu));
    let taps = tch::no_grad(|| backbone.forward_taps(&x, true, 0));
    assert_eq!(taps.len(), 16);
    // Points include the borders, where clamping matters.
    let pts: Vec<i64> = vec![0, 0, 63, 63, 17, 40, 31, 32, 5, 60, 62, 1, 33, 33, 1, 2];
    let points = Tensor::from_slice(&pts).reshape([2, 4, 2]);
    for tap in &taps {
        let sparse = sample_at(&tap.features, tap.scale, &points); // [B, C, P]
        let dense = dense_upsample(tap); // [B, C, 64, 64]
        assert_eq!(dense.size()[2], 64, "{}", tap.name);
        for b in 0..2 {
            for p in 0..4 {
                let (y, xx) = (pts[(b * 4 + p) * 2], pts[(b * 4 + p) * 2 + 1]);
                let d = dense.get(b as i64).select(1, y).select(1, xx);
                let s = sparse.get(b as i64).select(1, p as i64);
                let diff = (d - s).abs().max().double_value(&[]);
                assert!(diff < 1e-5, "{} at ({y},{xx}): {diff}", tap.name);
            }
        }
    }
}

#[test]
fn vgg16_parameters_have_torchvision_names_and_shapes() {
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let cfg = ModelConfig { width: 1.0, fc_channels: 4096, ..ModelConfig::default() };
    let _ = Backbone::new(&vs.root(), &ModelConfig { width: 0.25, fc_channels: 64, ..cfg.clone() }).unwrap();
    let vars: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
    // torchvision.models.vgg16: features.{0,2,5,7,10,12,14,17,19,21,24,26,28}, classifier.{0,3}.
    for i in [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28] {
        assert!(vars.contains_key(&format!("features.{i}.weight")), "features.{i}.weight");
        assert!(vars.contains_key(&format!("features.{i}.bias")));
    }
    assert_eq!(vars["features.0.weight"].size(), [16, 1, 3, 3]);
    assert_eq!(vars["features.28.weight"].size(), [128, 128, 3, 3]);
    assert_eq!(vars["classifier.0.weight"].size(), [64, 128, 7, 7]);
    assert_eq!(vars["classifier.3.weight"].size(), [64, 64, 1, 1]);
    let trainable = vars.iter().filter(|(_, t)| t.requires_grad()).count();
    assert_eq!(trainable, 2 * 15);
}

#[test]
fn sgd_matches_hand_computed_momentum_steps() {
    // One weight w (decay applies) and one bias b (2x lr, no decay); loss = 3 w + 2 b.
    let w = Tensor::from_slice(&[1.0f64]).set_requires_grad(true);
    let b = Tensor::from_slice(&[0.5f64]).set_requires_grad(true);
    let named = BTreeMap::from([
        ("l.weight".to_string(), w.shallow_clone()),
        ("l.bias".to_string(), b.shallow_clone()),
    ]);
    let cfg = OptimConfig {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 0.1,
        bias_lr_mult: 2.0,
        lr_drops: vec![],
        gamma: 0.1,
        ..OptimConfig::default()
    };
    let mut sgd = Sgd::new(named, cfg);
    for _ in 0..2 {
        sgd.zero_grad();
        (&w * 3.0 + &b * 2.0).sum(Kind::Double).backward();
        sgd.step(0.1);
    }
    // Step 1: d = 3 + 0.1*1 = 3.1, buf = 3.1, w = 1 - 0.31 = 0.69.
    // Step 2: d = 3 + 0.069 = 3.069, buf = 0.9*3.1 + 3.069 = 5.859, w = 0.69 - 0.5859 = 0.1041.
    assert!((w.double_value(&[0]) - 0.1041).abs() < 1e-12, "{}", w.double_value(&[0]));
    // Bias: buf 2 then 3.8; lr 0.2: b = 0.5 - 0.4 - 0.76 = -0.66.
    assert!((b.double_value(&[0]) + 0.66).abs() < 1e-12);
    let sched = OptimConfig { lr: 1.0, lr_drops: vec![10, 20], gamma: 0.1, ..OptimConfig::default() };
    assert_eq!((sched.lr_at(9), sched.lr_at(10)), (1.0, 0.1));
    assert!((sched.lr_at(25) - 0.01).abs() < 1e-15);
}

/// Writes `n` colourful generated PNGs.
fn make_images(dir: &Path, n: u32) {
    for i in 0..n {
        let img = image::RgbImage::from_fn(80 + i * 3, 72 + (i * 5) % 20, |x, y| {
            let r = ((x * (3 + i)) % 256) as u8;
            let g = if (x / 8 + y / 8) % 2 == 0 { 200 } else { 40 };
            image::Rgb([r, g, ((y * 7 + i * 11) % 256) as u8])
        });
        img.save(dir.join(format!("img{i:02}.png"))).unwrap();
    }
}

fn tiny_run_config(iterations: usize) -> PretrainConfig {
    let mut cfg = PretrainConfig::preset("cpu-small").unwrap();
    cfg.iterations = iterations;
    cfg.checkpoint_every = 3;
    cfg.snapshots = vec![3];
    cfg.log_every = 1;
    cfg.model.width = 1.0 / 16.0;
    cfg.model.fc_channels = 16;
    cfg.model.head_hidden = 16;
    cfg.data.batch_size = 4;
    cfg.data.points = 8;
    cfg.data.workers = 2;
    cfg
}

fn run(
    cfg: PretrainConfig,
    data: &Path,
    out: &Path,
    resume: bool,
) -> Result<colorproxy_nn::pretrain::PretrainSummary, NnError> {
    PretrainRun {
        config: cfg,
        data_dir: data.to_owned(),
        out: out.to_owned(),
        resume: if resume { Resume::Yes } else { Resume::No },
        force: false,
        device: Device::Cpu,
        interrupt: Arc::new(AtomicBool::new(false)),
        observer: &mut Silent,
        dist: None,
    }
    .run()
}

#[test]
fn resumed_training_reaches_the_same_weights_as_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("images");
    std::fs::create_dir_all(&data).unwrap();
    make_images(&data, 10);
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    run(tiny_run_config(6), &data, &a, false).unwrap();
    run(tiny_run_config(3), &data, &b, false).unwrap();
    let s = run(tiny_run_config(6), &data, &b, true).unwrap();
    assert_eq!(s.iterations_done, 6);
    let wa: BTreeMap<_, _> = read_tensors(&RunPaths::new(&a).last_weights()).unwrap().into_iter().collect();
    let wb: BTreeMap<_, _> = read_tensors(&RunPaths::new(&b).last_weights()).unwrap().into_iter().collect();
    assert_eq!(wa.keys().collect::<Vec<_>>(), wb.keys().collect::<Vec<_>>());
    let mut max = 0f64;
    for (k, ta) in &wa {
        max = max.max((ta - &wb[k]).abs().max().double_value(&[]));
    }
    assert!(max <= 1e-6, "max weight difference {max}");
    // The weights changed from the snapshot at 3 (training happened) and metrics are complete.
    let snap: BTreeMap<_, _> = read_tensors(&RunPaths::new(&a).snapshot(3)).unwrap().into_iter().collect();
    let moved = (&snap["head.fc1.weight"] - &wa["head.fc1.weight"]).abs().max().double_value(&[]);
    assert!(moved > 0.0);
    let ma = read_metrics(&RunPaths::new(&a).metrics()).unwrap();
    let mb = read_metrics(&RunPaths::new(&b).metrics()).unwrap();
    assert_eq!(ma.iter().map(|m| m.iteration).collect::<Vec<_>>(), (1..=6).collect::<Vec<_>>());
    assert_eq!(ma.iter().map(|m| m.loss).collect::<Vec<_>>(), mb.iter().map(|m| m.loss).collect::<Vec<_>>());
    // Resuming with a changed config is refused with a clear message.
    let mut other = tiny_run_config(9);
    other.optim.lr = 0.5;
    let err = run(other, &data, &b, true).unwrap_err().to_string();
    assert!(err.contains("differs"), "{err}");
}

#[test]
fn a_diverging_run_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("images");
    std::fs::create_dir_all(&data).unwrap();
    make_images(&data, 6);
    let mut cfg = tiny_run_config(40);
    cfg.checkpoint_every = 1;
    cfg.optim.lr = 1e30;
    let out = tmp.path().join("run");
    match run(cfg, &data, &out, false) {
        Err(NnError::NonFiniteLoss { iteration, .. }) => {
            let state: colorproxy_nn::checkpoint::TrainState =
                colorproxy_nn::checkpoint::read_json(&RunPaths::new(&out).last_state()).unwrap();
            assert_eq!(state.iteration, iteration);
            // The kept weights are finite.
            for (_, t) in read_tensors(&RunPaths::new(&out).last_weights()).unwrap() {
                assert!(bool::try_from(t.isfinite().all()).unwrap());
            }
        }
        other => panic!("expected a non-finite loss error, got {other:?}"),
    }
}

#[test]
fn presets_parse_and_the_small_ones_build() {
    for (name, _) in colorproxy_nn::config::PRESETS {
        let cfg = PretrainConfig::preset(name).unwrap();
        // The saved config round-trips.
        assert_eq!(PretrainConfig::from_toml(&cfg.to_toml()).unwrap(), cfg, "{name}");
        if name.starts_with("cpu") {
            colorproxy_nn::pretrain::build(&cfg, Device::Cpu).unwrap();
        }
    }
    let paper = PretrainConfig::preset("paper-vgg16").unwrap();
    assert_eq!((paper.data.batch_size, paper.data.augment.crop, paper.optim.lr), (8, 352, 1e-3));
    assert_eq!(paper.optim.lr_drops, vec![1_000_000, 1_500_000, 1_750_000]);
    assert!(PretrainConfig::preset("nope").is_err());
}

/// On the real photos, cpu-small lowers the loss clearly within a few hundred iterations.
#[test]
fn cpu_small_learns_on_the_shared_photos() {
    let Some(root) = std::env::var_os("COLORPROXY_SHARED_DATA") else {
        eprintln!("COLORPROXY_SHARED_DATA not set: skipping");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = PretrainConfig::preset("cpu-small").unwrap();
    cfg.iterations = 300;
    cfg.checkpoint_every = 300;
    cfg.snapshots = vec![];
    run(cfg, &Path::new(&root).join("photos/train"), tmp.path(), false).unwrap();
    let m = read_metrics(&RunPaths::new(tmp.path()).metrics()).unwrap();
    let mean =
        |s: &[colorproxy_nn::pretrain::Metrics]| s.iter().map(|m| m.loss).sum::<f64>() / s.len() as f64;
    let (first, last) = (mean(&m[..3]), mean(&m[m.len() - 3..]));
    assert!(last < 0.85 * first, "loss {first:.4} -> {last:.4}");

    // The pretrained network colorizes the held-out photos better than leaving them gray.
    use colorproxy_nn::colorize::{gray_rgb, psnr_rmse, ColorizeOptions, Colorizer};
    let cfg =
        PretrainConfig::from_toml(&std::fs::read_to_string(RunPaths::new(tmp.path()).config()).unwrap())
            .unwrap();
    let opts = ColorizeOptions::for_config(&cfg);
    let col = Colorizer::load(&RunPaths::new(tmp.path()).last_weights(), cfg, Device::Cpu, opts).unwrap();
    let val = colorproxy_data::ImageSource::open(&Path::new(&root).join("photos/val")).unwrap();
    let (mut p, mut pg) = (0.0, 0.0);
    for f in &val.files {
        let img = colorproxy_data::decode_file(f, &Default::default()).unwrap();
        let out = col.colorize(&img);
        p += psnr_rmse(&out.rgb, &img.data).0;
        pg += psnr_rmse(&gray_rgb(&img), &img.data).0;
    }
    let n = val.len() as f64;
    assert!(p / n > pg / n + 0.2, "colorized PSNR {:.2} dB vs gray {:.2} dB", p / n, pg / n);
}

#[test]
fn colorized_output_keeps_the_input_size_and_its_gray_at_every_pixel() {
    use colorproxy_nn::colorize::{ColorizeOptions, Colorizer};
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = tiny_run_config(1);
    cfg.model.head_init_std = 1.0; // a random network with confident, varied predictions
    let (net, _) = colorproxy_nn::pretrain::build(&cfg, Device::Cpu).unwrap();
    let w = tmp.path().join("w.safetensors");
    colorproxy_nn::checkpoint::save_weights(&net.vs, &w).unwrap();
    let col = Colorizer::load(&w, cfg.clone(), Device::Cpu, ColorizeOptions::for_config(&cfg)).unwrap();
    // Odd sizes, smaller and larger than the processing size.
    for (wd, ht) in [(77usize, 50usize), (203, 131)] {
        let data: Vec<u8> =
            (0..wd * ht).flat_map(|i| [(i * 7 % 256) as u8, (i / wd * 3 % 256) as u8, 90]).collect();
        let img = colorproxy_data::RgbImage8 { width: wd, height: ht, data };
        let out = col.colorize(&img);
        assert_eq!((out.width, out.height, out.rgb.len()), (wd, ht, wd * ht * 3));
        let mut coloured = 0;
        for (o, i) in out.rgb.chunks(3).zip(img.data.chunks(3)) {
            let mo = (o[0] as f64 + o[1] as f64 + o[2] as f64) / 3.0;
            let mi = (i[0] as f64 + i[1] as f64 + i[2] as f64) / 3.0;
            assert!((mo - mi).abs() <= 1.0, "channel mean {mo} vs input gray {mi}");
            coloured += (o[0].max(o[1]).max(o[2]) - o[0].min(o[1]).min(o[2]) > 2) as usize;
        }
        assert!(coloured > 0, "the random network should put some colour in");
        assert!(out.hue_entropy.iter().all(|e| (0.0..=1.0001).contains(e)));
    }
}

#[test]
fn init_and_dropout_masks_are_functions_of_the_seed_only() {
    let cfg = tiny_vgg();
    let a = colorproxy_nn::ColorizationNet::new(&cfg, 32, 32, Device::Cpu, 5).unwrap();
    // Another thread touching libtorch's global RNG does not matter.
    tch::manual_seed(123);
    let _ = Tensor::rand([1000], (Kind::Float, Device::Cpu));
    let b = colorproxy_nn::ColorizationNet::new(&cfg, 32, 32, Device::Cpu, 5).unwrap();
    let c = colorproxy_nn::ColorizationNet::new(&cfg, 32, 32, Device::Cpu, 6).unwrap();
    let va: BTreeMap<_, _> = a.vs.variables().into_iter().collect();
    let vb: BTreeMap<_, _> = b.vs.variables().into_iter().collect();
    let vc: BTreeMap<_, _> = c.vs.variables().into_iter().collect();
    for (k, t) in &va {
        assert!(t.equal(&vb[k]), "{k}");
    }
    assert!(!va["features.0.weight"].equal(&vc["features.0.weight"]));
    // Xavier bound sqrt(3 / fan_in) for conv1_1 (fan_in 9) and the head's Gaussian std 1e-4.
    let w = &va["features.0.weight"];
    assert!(w.abs().max().double_value(&[]) <= (3.0f64 / 9.0).sqrt());
    let head = &va["head.fc1.weight"];
    let std = f64::try_from(head.std(true)).unwrap();
    assert!((std / cfg.head_init_std - 1.0).abs() < 0.1, "{std}");
    // Dropout masks: keep rate 1 - p, same key same mask, other key other mask.
    use colorproxy_nn::init::keep_mask;
    let m1 = keep_mask(&[64, 1000], 0.5, 42, Device::Cpu);
    let m2 = keep_mask(&[64, 1000], 0.5, 42, Device::Cpu);
    let m3 = keep_mask(&[64, 1000], 0.5, 43, Device::Cpu);
    assert!(m1.equal(&m2) && !m1.equal(&m3));
    let rate = m1.to_kind(Kind::Double).mean(Kind::Double).double_value(&[]);
    assert!((rate - 0.5).abs() < 0.01, "keep rate {rate}");
    let rate =
        keep_mask(&[100_000], 0.2, 7, Device::Cpu).to_kind(Kind::Double).mean(Kind::Double).double_value(&[]);
    assert!((rate - 0.8).abs() < 0.01, "keep rate {rate}");
}

#[test]
fn alexnet_has_torchvision_names_and_trains_a_step() {
    let cfg = PretrainConfig::preset("cpu-alexnet").unwrap();
    let (net, mut sgd) = colorproxy_nn::pretrain::build(&cfg, Device::Cpu).unwrap();
    let vars: BTreeMap<String, Tensor> = net.vs.variables().into_iter().collect();
    // torchvision.models.alexnet: features.{0,3,6,8,10}, classifier.{1,4} (here as convolutions).
    assert_eq!(vars["features.0.weight"].size(), [16, 1, 11, 11]);
    assert_eq!(vars["features.3.weight"].size(), [48, 16, 5, 5]);
    assert_eq!(vars["features.10.weight"].size(), [64, 64, 3, 3]);
    assert_eq!(vars["classifier.1.weight"].size(), [128, 64, 6, 6]);
    assert_eq!(vars["classifier.4.weight"].size(), [128, 128, 1, 1]);
    // One step on a generated batch lowers nothing to NaN and moves the weights.
    let tmp = tempfile::tempdir().unwrap();
    make_images(tmp.path(), 4);
    let src = colorproxy_data::ImageSource::open(tmp.path()).unwrap();
    let mut pipe = cfg.data.clone();
    pipe.batch_size = 4;
    let data = colorproxy_data::PretrainData::new(src, pipe, cfg.targets.clone(), 0).unwrap();
    let batch = data.batch(0, 0, &data.epoch_order(0)).unwrap();
    let before = vars["features.0.weight"].copy();
    let r = colorproxy_nn::pretrain::train_step(&net, &mut sgd, &batch, 0.01, 0, None).unwrap();
    assert!(r.loss.is_finite() && r.loss > 0.0);
    assert!(!before.equal(&vars["features.0.weight"]));
}
