//! `colorproxy demo`: the paper's main result end to end on built-in data, in minutes on a CPU.
//!
//! generate scenes -> pretrain a colorizer (cpu-small) -> fine-tune segmentation and
//! classification from random init and from the colorization checkpoint (the paper's
//! early-stopping protocol) -> evaluate on the validation split -> report.md, report.html,
//! results.json, loss curve and colorization samples.
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use colorproxy_data::synth;
use colorproxy_nn::colorize::{gray_rgb, ColorizeOptions, Colorizer};
use colorproxy_nn::pretrain::{read_metrics, PretrainRun};
use colorproxy_nn::run_dir::RunPaths;
use colorproxy_nn::transfer::{
    evaluate, load_finetuned, load_split, FinetuneRun, OnBad, Task, TransferConfig,
};
use colorproxy_nn::PretrainConfig;
use image::RgbImage;

use crate::cli::{DemoArgs, GenerateArgs};
use crate::progress;

/// Image side of the generated scenes.
const SIDE: usize = 96;

/// Sizes of a demo run.
struct Plan {
    unlabelled: usize,
    train: usize,
    val: usize,
    pretrain_iterations: usize,
    finetune_max: usize,
}

pub fn generate(a: GenerateArgs) -> anyhow::Result<()> {
    let n = a.images;
    synth::write_unlabelled(&a.out.join("unlabelled"), a.seed, 0, n, SIDE)?;
    let (train, val) = ((n / 4).max(2), (n / 10).max(1));
    synth::write_voc(&a.out.join("voc"), a.seed, 1_000_000, train, val, SIDE)?;
    let (ftrain, fval) = ((n / 20).max(2), (n / 80).max(1));
    synth::write_image_folders(&a.out.join("folders"), a.seed, ftrain, fval, SIDE)?;
    println!(
        "wrote {n} unlabelled scenes to {}, a VOC-style set ({train} train, {val} val) to {} and \
         single-label class folders ({ftrain} train, {fval} val per class) to {}",
        a.out.join("unlabelled").display(),
        a.out.join("voc").display(),
        a.out.join("folders").display()
    );
    Ok(())
}

fn transfer_config(task: Task, init: &str, plan: &Plan, seed: u64) -> TransferConfig {
    let mut c = TransferConfig::cpu(task);
    c.init = init.to_string();
    // The paper's random baseline: a BN-free backbone rescaled to unit variance (as `finetune`
    // does by default for --init random).
    c.rebalance = init == "random";
    c.seed = seed;
    c.short_side = SIDE as f64;
    c.crop = if task == Task::Seg { SIDE } else { 80 };
    c.test_short_side = SIDE as f64;
    c.test_max_side = 0;
    c.early_stop.max_iterations = plan.finetune_max;
    c.early_stop.eval_every = (plan.finetune_max / 15).max(1);
    c.early_stop.window = 3;
    c.early_stop.min_stage_iterations = plan.finetune_max / 5;
    c
}

pub fn run(a: DemoArgs) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let out = a.out.clone();
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let plan = if a.quick {
        Plan { unlabelled: 64, train: 24, val: 12, pretrain_iterations: 20, finetune_max: 15 }
    } else {
        Plan { unlabelled: 2000, train: 300, val: 100, pretrain_iterations: 1200, finetune_max: 600 }
    };
    let data = out.join("data");
    println!(
        "[1/5] generating {} unlabelled scenes and a labelled set ({} train / {} val)",
        plan.unlabelled, plan.train, plan.val
    );
    synth::write_unlabelled(&data.join("unlabelled"), a.seed, 0, plan.unlabelled, SIDE)?;
    synth::write_voc(&data.join("voc"), a.seed, 1_000_000, plan.train, plan.val, SIDE)?;

    println!("[2/5] pretraining a colorizer (cpu-small, {} iterations)", plan.pretrain_iterations);
    let mut pc = PretrainConfig::preset("cpu-small")?;
    pc.seed = a.seed;
    pc.iterations = plan.pretrain_iterations;
    pc.optim.lr_drops = vec![plan.pretrain_iterations * 3 / 4];
    pc.snapshots = vec![];
    pc.checkpoint_every = plan.pretrain_iterations;
    let pre = out.join("pretrain");
    let pb = progress::bar(pc.iterations as u64, "pretrain");
    PretrainRun {
        config: pc,
        data_dir: data.join("unlabelled"),
        out: pre.clone(),
        resume: false,
        force: true,
        device: tch::Device::Cpu,
        interrupt: Arc::new(AtomicBool::new(false)),
        observer: &mut crate::progress::BarObserver(pb.clone()),
    }
    .run()?;
    pb.finish_and_clear();
    let metrics = read_metrics(&RunPaths::new(&pre).metrics())?;
    crate::report::loss_curve(&metrics, &out.join("loss.png"))?;
    let ck = RunPaths::new(&pre).last_weights();

    println!("[3/5] fine-tuning segmentation and classification from random init and from colorization");
    let voc = data.join("voc");
    let mut results: Vec<(Task, &str, f64, usize)> = Vec::new();
    let mut reference = std::collections::BTreeMap::new();
    for task in [Task::Seg, Task::Cls] {
        for (label, init) in
            [("random", "random".to_string()), ("colorization", ck.to_string_lossy().into_owned())]
        {
            let cfg = transfer_config(task, &init, &plan, a.seed);
            let run_dir = out.join(format!("{}-{label}", if task == Task::Seg { "seg" } else { "cls" }));
            let pb = progress::bar(cfg.early_stop.max_iterations as u64, &format!("{task:?} {label}"));
            let s = FinetuneRun {
                config: cfg.clone(),
                data: voc.clone(),
                train_split: "train".into(),
                out: run_dir.clone(),
                device: tch::Device::Cpu,
                fixed_schedule: None,
                on_bad: OnBad::Stop,
                resume: false,
                force: true,
                interrupt: Arc::new(AtomicBool::new(false)),
                observer: &mut crate::progress::BarObserver(pb.clone()),
            }
            .run()?;
            pb.finish_and_clear();
            let net = load_finetuned(&RunPaths::new(&run_dir).last_weights(), cfg, tch::Device::Cpu)?;
            let set = load_split(task, &voc, "val", OnBad::Stop, &mut |_| {})?;
            let idx: Vec<usize> = (0..set.images.len()).collect();
            let r = evaluate(&net, &set, &idx, &mut |_, _| {})?;
            crate::report::write_results(&run_dir, &r, &format!("{task:?} from {label}"))?;
            println!("    {task:?} from {label}: {} {:.4} ({} iterations)", r.metric, r.value, s.iterations);
            results.push((task, label, r.value, s.iterations));
            if let Some(rf) = r.reference {
                reference.insert(task, rf);
            }
        }
    }

    println!("[4/5] colorizing validation scenes");
    let pcfg = PretrainConfig::of_checkpoint(&ck, None)?;
    let opts = ColorizeOptions::for_config(&pcfg);
    let col = Colorizer::load(&ck, pcfg, tch::Device::Cpu, opts)?;
    let set = load_split(Task::Seg, &voc, "val", OnBad::Stop, &mut |_| {})?;
    let im = |d: Vec<u8>| RgbImage::from_raw(SIDE as u32, SIDE as u32, d).expect("size");
    let rows: Vec<Vec<RgbImage>> = set
        .images
        .iter()
        .take(4)
        .map(|img| vec![im(gray_rgb(img)), im(col.colorize(img).rgb), im(img.data.clone())])
        .collect();
    let canvas = crate::report::image_grid(&rows, SIDE as u32);
    canvas.save(out.join("colorization.png")).context("writing colorization.png")?;

    println!("[5/5] writing the report");
    let get =
        |t: Task, l: &str| results.iter().find(|r| r.0 == t && r.1 == l).map(|r| r.2).unwrap_or(f64::NAN);
    let seconds = t0.elapsed().as_secs_f64();
    let json = serde_json::json!({
        "seg": {"random": get(Task::Seg, "random"), "colorization": get(Task::Seg, "colorization")},
        "cls": {"random": get(Task::Cls, "random"), "colorization": get(Task::Cls, "colorization")},
        "reference": {
            "seg": reference.get(&Task::Seg).map(|r| serde_json::json!({"name": r.0, "value": r.1})),
            "cls": reference.get(&Task::Cls).map(|r| serde_json::json!({"name": r.0, "value": r.1})),
        },
        "seconds": seconds,
        "seed": a.seed,
        "iterations": results.iter().map(|r| serde_json::json!({"task": format!("{:?}", r.0).to_lowercase(), "init": r.1, "iterations": r.3})).collect::<Vec<_>>(),
    });
    std::fs::write(out.join("results.json"), serde_json::to_string_pretty(&json)?)?;
    let rf = |t: Task| reference.get(&t).map(|r| r.1).unwrap_or(f64::NAN);
    let table = format!(
        "| initialisation | segmentation (mIoU) | classification (mAP) |\n|---|---|---|\n| random | {:.3} | {:.3} |\n| colorization | {:.3} | {:.3} |\n| reference (majority class / constant scorer) | {:.3} | {:.3} |\n",
        get(Task::Seg, "random"),
        get(Task::Cls, "random"),
        get(Task::Seg, "colorization"),
        get(Task::Cls, "colorization"),
        rf(Task::Seg),
        rf(Task::Cls)
    );
    let md = format!(
        "# colorproxy demo (seed {seed})\n\nColorization pretraining on {u} generated scenes ({pi} iterations), then fine-tuning on {tr} labelled scenes with the paper's early-stopping protocol, evaluated on {va} validation scenes. {secs:.0} s in all.\n\n{table}\n## Pretraining loss\n\n![loss](loss.png)\n\n## Colorization (gray | colorized | original)\n\n![colorization](colorization.png)\n",
        seed = a.seed,
        u = plan.unlabelled,
        pi = plan.pretrain_iterations,
        tr = plan.train,
        va = plan.val,
        secs = seconds
    );
    std::fs::write(out.join("report.md"), &md)?;
    let rows: String = [("random", Task::Seg, Task::Cls), ("colorization", Task::Seg, Task::Cls)]
        .iter()
        .map(|(l, s, c)| format!("<tr><td>{l}</td><td>{:.3}</td><td>{:.3}</td></tr>", get(*s, l), get(*c, l)))
        .collect();
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>colorproxy demo</title><style>body{{font-family:sans-serif;max-width:760px;margin:2em auto}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}</style></head><body><h1>colorproxy demo (seed {})</h1><p>Colorization pretraining on {} generated scenes, then fine-tuning with the paper's early-stopping protocol; validation scores. {:.0} s in all.</p><table><tr><th>initialisation</th><th>segmentation (mIoU)</th><th>classification (mAP)</th></tr>{rows}</table><p>Reference (a network that learned nothing about the images): majority-class mIoU {:.3}, constant-scorer mAP {:.3}.</p><h2>Pretraining loss</h2><img src=\"loss.png\" alt=\"loss curve\"><h2>Colorization (gray | colorized | original)</h2><img src=\"colorization.png\" alt=\"colorization samples\" width=\"600\"></body></html>\n",
        a.seed,
        plan.unlabelled,
        seconds,
        rf(Task::Seg),
        rf(Task::Cls)
    );
    std::fs::write(out.join("report.html"), html)?;
    println!("\n{table}\n{:.0} s; report: {}", seconds, out.join("report.html").display());
    Ok(())
}
