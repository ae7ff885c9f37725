//! Segmentation on ../shared/data/voc-mini overfits its training images (the proof).
//! Skipped without COLORPROXY_SHARED_DATA; about 5 minutes on 2 cores.
use colorproxy_nn::run_dir::Resume;
use std::path::Path;

use colorproxy_nn::transfer::{Task, TransferConfig};
use tch::Device;

/// From a colorization checkpoint (600 iterations of cpu-small on the shared photos),
/// segmentation fine-tuning (4000 iterations, x0.1 at 3000) fits the three voc-mini training
/// images. Measured training-image mIoU / pixel accuracy: 0.893 / 0.954 with the default kernels
/// and 0.913 / 0.961 with oneDNN and MKL limited to AVX2, on this project's 2-core Xeon; without
/// the drop at 3000 the same recipe gave 0.881 here and 0.922 on the machine that first ran it.
/// The thresholds (mIoU > 0.82, pixel accuracy > 0.92) sit about twice that machine-to-machine
/// spread below the lowest value.
#[test]
fn segmentation_fits_the_voc_mini_training_images() {
    use colorproxy_nn::early_stop::FoundSchedule;
    use colorproxy_nn::pretrain::PretrainRun;
    use colorproxy_nn::run_dir::{RunPaths, Silent};
    use colorproxy_nn::transfer::{evaluate, load_finetuned, load_split, FinetuneRun, OnBad};
    use std::sync::{atomic::AtomicBool, Arc};
    let Some(root) = std::env::var_os("COLORPROXY_SHARED_DATA") else { return };
    // The only test of this binary: let libtorch use every core (scripts/test.sh sets
    // OMP_NUM_THREADS=1 so that parallel tests elsewhere do not oversubscribe the machine).
    tch::set_num_threads(std::thread::available_parallelism().map_or(1, |n| n.get()) as i32);
    let root = Path::new(&root);
    let tmp = tempfile::tempdir().unwrap();
    let mut pc = colorproxy_nn::PretrainConfig::preset("cpu-small").unwrap();
    pc.iterations = 600;
    pc.checkpoint_every = 600;
    pc.snapshots = vec![];
    let pre = tmp.path().join("pre");
    PretrainRun {
        config: pc,
        data_dir: root.join("photos/train"),
        out: pre.clone(),
        resume: Resume::No,
        force: false,
        device: Device::Cpu,
        interrupt: Arc::new(AtomicBool::new(false)),
        observer: &mut Silent,
        dist: None,
    }
    .run()
    .unwrap();
    let mut cfg = TransferConfig::cpu(Task::Seg);
    cfg.init = RunPaths::new(&pre).last_weights().to_string_lossy().into_owned();
    // The run the thresholds were measured on absorbs the pretraining's BN (seg-cpu's setting
    // before it kept BN). With BN kept (the preset's default now) the same test measured
    // 0.864 / 0.924 with AVX2-limited kernels: too close to the pixel-accuracy threshold to hold
    // on every CPU, so the test pins the measured protocol.
    cfg.absorb_bn = true;
    cfg.dropout = 0.0;
    cfg.model.dropout = 0.0;
    cfg.optim.weight_decay = 0.0;
    cfg.short_side = 192.0;
    cfg.crop = 128;
    cfg.batch_size = 4;
    // The learning rate as measured (0.01 at 4 images), not scaled by the batch rule.
    cfg.optim.lr_scaling = colorproxy_nn::config::LrScaling::None;
    cfg.points = 256;
    cfg.test_max_side = 256;
    cfg.held_out = 0.0;
    let out = tmp.path().join("seg");
    FinetuneRun {
        config: cfg.clone(),
        data: root.join("voc-mini"),
        train_split: "train".into(),
        out: out.clone(),
        device: Device::Cpu,
        fixed_schedule: Some(FoundSchedule { drops: vec![3000], stop: 4000, windows: vec![] }),
        on_bad: OnBad::Stop,
        resume: Resume::No,
        force: false,
        interrupt: Arc::new(AtomicBool::new(false)),
        observer: &mut Silent,
        dist: None,
    }
    .run()
    .unwrap();
    let net = load_finetuned(&RunPaths::new(&out).last_weights(), cfg, Device::Cpu).unwrap();
    let set = load_split(Task::Seg, &root.join("voc-mini"), "train", OnBad::Stop, &mut |_| {}).unwrap();
    let r = evaluate(&net, &set, &[0, 1, 2], &mut |_, _| {}).unwrap();
    eprintln!("training-image mIoU {:.4}, pixel accuracy {:.4}", r.value, r.extra["pixel_accuracy"]);
    assert!(r.value > 0.82, "training-image mIoU {:.3}", r.value);
    assert!(r.extra["pixel_accuracy"] > 0.92, "{:?}", r.extra);
}
