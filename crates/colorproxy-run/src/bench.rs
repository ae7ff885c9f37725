//! `colorproxy bench ...`: throughput against reference implementations run in the same command.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use crate::Context;
use colorproxy_color::TargetConfig;
use colorproxy_data::{AugmentConfig, BatchLoader, DataPosition, ImageSource, PipelineConfig, PretrainData};

use crate::request::BenchDataRequest;

/// The repository root this binary was built from (for bench/ scripts and the .venv).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A file of the repository: relative to the current folder if it exists there, else to the
/// repository the binary was built from.
pub fn repo_file(rel: &str) -> PathBuf {
    let here = Path::new(rel);
    if here.exists() {
        here.to_owned()
    } else {
        repo_root().join(rel)
    }
}

/// A Python interpreter that can import `modules`: the one given, else the project's .venv, else
/// python3. None if none can.
pub fn find_python(given: Option<&Path>, modules: &str) -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match given {
        Some(p) => vec![p.to_owned()],
        None => vec![repo_file(".venv/bin/python"), PathBuf::from("python3")],
    };
    candidates.into_iter().find(|py| {
        Command::new(py)
            .args(["-c", &format!("import {modules}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    })
}

/// Images per second of the Rust pipeline with `threads` workers over `count` images.
fn rust_rate(src: &ImageSource, a: &BenchDataRequest, threads: usize) -> crate::Result<f64> {
    let batch = 8;
    let pipe = PipelineConfig {
        batch_size: batch,
        points: a.points,
        border: a.border,
        augment: AugmentConfig {
            crop: a.size,
            short_side_min: a.short_min,
            short_side_max: a.short_max,
            mirror: true,
        },
        workers: threads,
        prefetch: 2,
        ..PipelineConfig::default()
    };
    let data = Arc::new(PretrainData::new(src.clone(), pipe, TargetConfig::default(), 0)?);
    let batches = a.count.div_ceil(batch);
    let t = Instant::now();
    for (_, b) in BatchLoader::new(data, DataPosition::default())?.take(batches) {
        b?;
    }
    Ok((batches * batch) as f64 / t.elapsed().as_secs_f64())
}

pub fn data(a: BenchDataRequest) -> crate::Result<()> {
    let src = ImageSource::open(&a.images)?;
    // Warm the page cache so the first measurement does not pay for disk reads.
    for f in src.files.iter().take(a.count) {
        let _ = std::fs::read(f);
    }
    let r1 = rust_rate(&src, &a, 1)?;
    let r2 = rust_rate(&src, &a, 2)?;
    let mut py_rate = None;
    if !a.no_reference {
        if let Some(py) = find_python(a.python.as_deref(), "PIL, numpy") {
            let script = repo_file("bench/data_ref.py");
            let n = a.count.min(100);
            let out = Command::new(&py)
                .arg(&script)
                .args(["--images", &a.images.to_string_lossy(), "--count", &n.to_string()])
                .args(["--size", &a.size.to_string(), "--short-min", &a.short_min.to_string()])
                .args(["--short-max", &a.short_max.to_string(), "--points", &a.points.to_string()])
                .args(["--border", &a.border.to_string()])
                .output()
                .with_context(|| format!("running {} {}", py.display(), script.display()))?;
            crate::ensure!(
                out.status.success(),
                "{} failed: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let v: serde_json::Value =
                serde_json::from_slice(&out.stdout).context("reading the reference's JSON")?;
            py_rate = v["images_per_s"].as_f64();
        } else {
            eprintln!("no Python with Pillow and numpy found: reference skipped (run scripts/setup.sh)");
        }
    }
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "size": a.size, "points": a.points,
                "rust_images_per_s_1_thread": r1, "rust_images_per_s_2_threads": r2,
                "python_images_per_s_1_process": py_rate,
                "ratio_per_core": py_rate.map(|p| r1 / p),
            })
        );
    } else {
        println!(
            "data pipeline, crop {}, {} points/image, shorter side [{}, {}]",
            a.size, a.points, a.short_min, a.short_max
        );
        println!("  colorproxy, 1 thread : {r1:8.1} images/s");
        println!("  colorproxy, 2 threads: {r2:8.1} images/s");
        if let Some(p) = py_rate {
            println!("  Python reference (Pillow + numpy), 1 process: {p:8.1} images/s");
            println!("  ratio per core: {:.2}x", r1 / p);
        }
    }
    Ok(())
}

/// Images per second of `steps` training steps (after `warmup`), compute only (one batch reused)
/// or end to end (the loader feeding every step).
fn rust_pretrain_rates(
    cfg: &colorproxy_nn::PretrainConfig,
    images: &Path,
    device: tch::Device,
    steps: usize,
    warmup: usize,
) -> crate::Result<(f64, f64)> {
    use colorproxy_nn::pretrain::{build, train_step};
    let source = ImageSource::open(images)?;
    let data = Arc::new(PretrainData::new(source, cfg.data.clone(), cfg.targets.clone(), cfg.seed)?);
    let b = cfg.data.batch_size as f64;
    let lr = cfg.optim.lr;
    // Compute only.
    let (net, mut sgd) = build(cfg, device)?;
    let batch = BatchLoader::new(data.clone(), DataPosition::default())?.next().context("no batch")?.1?;
    for i in 0..warmup {
        train_step(&net, &mut sgd, &batch, lr, i as u64, None)?;
    }
    sync(device);
    let t = Instant::now();
    for i in 0..steps {
        train_step(&net, &mut sgd, &batch, lr, i as u64, None)?;
    }
    sync(device);
    let compute = b * steps as f64 / t.elapsed().as_secs_f64();
    // End to end.
    let (net, mut sgd) = build(cfg, device)?;
    let mut loader = BatchLoader::new(data, DataPosition::default())?;
    let mut t = Instant::now();
    for i in 0..warmup + steps {
        if i == warmup {
            sync(device);
            t = Instant::now();
        }
        let batch = loader.next().context("loader stopped")?.1?;
        train_step(&net, &mut sgd, &batch, lr, i as u64, None)?;
    }
    sync(device);
    let e2e = b * steps as f64 / t.elapsed().as_secs_f64();
    Ok((compute, e2e))
}

fn sync(device: tch::Device) {
    if let tch::Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

pub fn pretrain(a: crate::request::BenchPretrainRequest) -> crate::Result<()> {
    if a.nproc > 1 {
        return crate::bench_dist::pretrain_scaling(&a);
    }
    let mut cfg = colorproxy_nn::PretrainConfig::preset(&a.preset)?;
    let workers = a.workers.unwrap_or(a.threads);
    cfg.data.workers = workers;
    tch::set_num_threads(a.threads as i32);
    let device = colorproxy_nn::parse_device(a.device.as_deref())?;
    if device.is_cuda() {
        tch::Cuda::cudnn_set_benchmark(true);
    }
    let (compute, e2e) = rust_pretrain_rates(&cfg, &a.images, device, a.steps, a.warmup)?;
    let mut reference = None;
    if !a.no_reference {
        match find_python(a.python.as_deref(), "torch, PIL, numpy") {
            Some(py) => {
                let script = repo_file("bench/pretrain_ref.py");
                let m = &cfg.model;
                let d = &cfg.data;
                let width = m.width.to_string();
                let args: Vec<String> = vec![
                    script.to_string_lossy().into_owned(),
                    "--images".into(),
                    a.images.to_string_lossy().into_owned(),
                    "--steps".into(),
                    a.steps.to_string(),
                    "--warmup".into(),
                    a.warmup.to_string(),
                    "--width".into(),
                    width,
                    "--fc".into(),
                    m.fc_channels.to_string(),
                    "--hidden".into(),
                    m.head_hidden.to_string(),
                    "--crop".into(),
                    d.augment.crop.to_string(),
                    "--batch".into(),
                    d.batch_size.to_string(),
                    "--points".into(),
                    d.points.to_string(),
                    "--border".into(),
                    d.border.to_string(),
                    "--short-min".into(),
                    d.augment.short_side_min.to_string(),
                    "--short-max".into(),
                    d.augment.short_side_max.to_string(),
                    "--lr".into(),
                    cfg.optim.lr.to_string(),
                    "--threads".into(),
                    a.threads.to_string(),
                    "--workers".into(),
                    workers.to_string(),
                    "--device".into(),
                    match device {
                        tch::Device::Cuda(i) => format!("cuda:{i}"),
                        _ => "cpu".into(),
                    },
                ];
                let out = Command::new(&py).args(&args).output().with_context(|| format!("running {}", script.display()))?;
                crate::ensure!(out.status.success(), "{} failed: {}", script.display(), String::from_utf8_lossy(&out.stderr));
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("reading the reference's JSON")?;
                reference = Some((v["compute_images_per_s"].as_f64().unwrap_or(f64::NAN), v["e2e_images_per_s"].as_f64().unwrap_or(f64::NAN)));
            }
            None => eprintln!("no Python with torch, Pillow and numpy found: PyTorch reference skipped (scripts/setup.sh --bench installs it)"),
        }
    }
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "preset": a.preset, "device": format!("{device:?}"), "threads": a.threads, "steps": a.steps,
                "colorproxy_compute_images_per_s": compute, "colorproxy_e2e_images_per_s": e2e,
                "pytorch_compute_images_per_s": reference.map(|r| r.0), "pytorch_e2e_images_per_s": reference.map(|r| r.1),
                "compute_ratio": reference.map(|r| compute / r.0), "e2e_ratio": reference.map(|r| e2e / r.1),
            })
        );
    } else {
        println!(
            "pretrain step, preset {} on {device:?}, {} threads, {} timed steps",
            a.preset, a.threads, a.steps
        );
        println!("  colorproxy: compute only {compute:8.1} images/s, end to end {e2e:8.1} images/s");
        if let Some((c, e)) = reference {
            println!("  PyTorch   : compute only {c:8.1} images/s, end to end {e:8.1} images/s");
            println!(
                "  ratio colorproxy/PyTorch: compute only {:.3}, end to end {:.3}",
                compute / c,
                e2e / e
            );
        }
    }
    Ok(())
}

pub fn parity(a: crate::request::BenchParityRequest) -> crate::Result<()> {
    let cfg = colorproxy_nn::PretrainConfig::preset(&a.preset)?;
    let device = colorproxy_nn::parse_device(a.device.as_deref())?;
    let source = ImageSource::open(&a.images)?;
    let data = Arc::new(PretrainData::new(source, cfg.data.clone(), cfg.targets.clone(), cfg.seed)?);
    let batch = data.batch(0, 0, &data.epoch_order(0))?;
    let r = colorproxy_nn::pretrain::step_parity(&cfg, &batch, tch::Device::Cpu, device)?;
    let ok = r.loss_rel_error <= a.tol && r.grad_rel_error <= a.tol;
    if a.json {
        let mut v = serde_json::to_value(&r)?;
        v["ok"] = serde_json::Value::Bool(ok);
        v["device"] = serde_json::Value::String(format!("{device:?}"));
        println!("{v}");
    } else {
        println!(
            "step parity, preset {} (batch {}, {}x{}), cpu vs {device:?}: loss {:.6} vs {:.6} (rel. error {:.2e}), gradients max rel. error {:.2e} ({})",
            a.preset,
            cfg.data.batch_size,
            cfg.data.augment.crop,
            cfg.data.augment.crop,
            r.loss_reference,
            r.loss_device,
            r.loss_rel_error,
            r.grad_rel_error,
            r.worst_parameter
        );
    }
    crate::ensure!(ok, "parity above tolerance {}", a.tol);
    Ok(())
}
