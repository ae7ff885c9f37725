//! What a run will cost before it starts: `pretrain --dry-run` (the plan: total batch, epochs,
//! FLOPs, memory, time on the chosen device) and `bench cost` (the presets' cost table and the
//! data-parallel scaling model for 1 / 8 / 64 GPUs, every assumption printed with it).
use std::time::Instant;

use colorproxy_data::{BatchLoader, DataPosition, ImageSource, PretrainData};
use colorproxy_nn::cost::{pretrain_cost, ring_allreduce_seconds, PretrainCost, IMAGENET_TRAIN_IMAGES};
use colorproxy_nn::PretrainConfig;

use crate::request::BenchCostRequest;
use crate::Context;

/// Sustained training throughput assumed for one H100 (TFLOP/s), until `scripts/gpu-check.sh`
/// measures it: 30% of the SXM part's dense TF32 tensor-core peak (494.7 TFLOP/s), the TF32 path
/// cuDNN takes for float32 convolutions by default; convolutional networks in PyTorch typically
/// sustain 30-50% of peak.
pub const H100_TFLOPS: f64 = 150.0;

/// `12,345,678` style.
fn grouped(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Hours of `flops` at `tflops` TFLOP/s.
fn hours(flops: f64, tflops: f64) -> f64 {
    flops / (tflops * 1e12) / 3600.0
}

/// Steps run before the timed ones (the allocator, kernel choices and the loader's first batches
/// warm up: the first steps took 5x the steady ones).
const WARMUP_STEPS: usize = 3;

/// Seconds per step of `steps` timed training steps (after [`WARMUP_STEPS`]) of `cfg` on
/// `device`, on batches of the given data. Only the step is timed, not the wait for its batch: a
/// run builds batches ahead, beside the steps.
fn measured_step_seconds(
    cfg: &PretrainConfig,
    data: &std::path::Path,
    device: tch::Device,
    steps: usize,
) -> crate::Result<f64> {
    let source = ImageSource::open(data)?;
    let pd = PretrainData::new(source, cfg.job_pipeline(), cfg.targets.clone(), cfg.seed)?;
    let (net, mut sgd) = colorproxy_nn::pretrain::build(cfg, device)?;
    let mut loader = BatchLoader::new(std::sync::Arc::new(pd), DataPosition::default())?;
    let mut timed = 0.0;
    for i in 0..WARMUP_STEPS + steps {
        let (_, b) = loader.next().context("the data loader stopped")?;
        let b = b?;
        let memory = || {
            let during = "measuring a step of the dry run".to_string();
            colorproxy_nn::out_of_memory::StepMemory::new(
                device,
                during,
                cfg.data.batch_size,
                cfg.data.augment.crop as usize,
            )
        };
        let t0 = Instant::now();
        colorproxy_nn::out_of_memory::guard(memory, || {
            colorproxy_nn::pretrain::train_step(&net, &mut sgd, &b, cfg.optim.lr_at(i), i as u64, None)
        })?;
        if let tch::Device::Cuda(d) = device {
            tch::Cuda::synchronize(d as i64);
        }
        if i >= WARMUP_STEPS {
            timed += t0.elapsed().as_secs_f64();
        }
    }
    Ok(timed / steps as f64)
}

/// The plan of a pretraining run, printed by `pretrain --dry-run`: nothing is written.
pub fn pretrain_plan(cfg: &PretrainConfig, data: &std::path::Path, device: tch::Device) -> crate::Result<()> {
    let images = ImageSource::open(data)?.files.len();
    let cost = pretrain_cost(cfg)?;
    let total = cfg.total_batch.max(cfg.data.batch_size * cfg.world_size);
    let seen = cfg.iterations as f64 * total as f64;
    println!("plan ({} process(es); nothing is written):", cfg.world_size);
    println!("  batch: {} per process x {} = {total} images per step", cfg.data.batch_size, cfg.world_size);
    println!(
        "  length: {} iterations = {} images = {:.1} epochs of the given data ({} images) = {:.2} epochs of ImageNet",
        grouped(cfg.iterations as u64),
        grouped(seen as u64),
        seen / images.max(1) as f64,
        grouped(images as u64),
        seen / IMAGENET_TRAIN_IMAGES as f64
    );
    println!("  schedule: {}", cfg.schedule_summary());
    print_network(&cost, cfg);
    let flops = cost.run_flops(cfg);
    println!(
        "  estimate on H100s at an assumed {H100_TFLOPS} TFLOP/s sustained each (compute only): {:.1} h on {} GPU(s)",
        hours(flops, H100_TFLOPS * cfg.world_size as f64),
        cfg.world_size
    );
    let disk = cost.disk(cfg);
    let mb = |b: u64| b as f64 / 1e6;
    println!(
        "  disk: about {:.1} MB in the run folder: the checkpoint ({:.1} MB of weights + {:.1} MB of \
         optimiser state), last.safetensors ({:.1} MB), {} snapshot(s) of weights ({:.1} MB each); up to \
         {:.1} MB more while a checkpoint is written (--set snapshots=[] keeps none)",
        mb(disk.kept),
        mb(disk.weights),
        mb(disk.optimiser),
        mb(disk.weights),
        disk.snapshots,
        mb(disk.weights),
        mb(disk.peak_extra)
    );
    let need = cost.memory_bytes(cfg.data.batch_size);
    if let (tch::Device::Cpu, Some((avail, from))) = (device, cpu_memory_available()) {
        if need as f64 > avail as f64 {
            let fits = (1..=cfg.data.batch_size).rev().find(|&b| cost.memory_bytes(b) <= avail).unwrap_or(1);
            crate::bail!(
                "a step at {} images per process needs about {:.1} GB, more than the {:.1} GB available \
                 ({from}): not measured, the run would stop out of memory; lower --batch-size (about {fits} \
                 fits) or run on a larger machine",
                cfg.data.batch_size,
                need as f64 / 1e9,
                avail as f64 / 1e9
            );
        }
    }
    let steps = 3;
    eprintln!(
        "  measuring {steps} training steps on {} (after {WARMUP_STEPS} warm-up steps) ...",
        crate::session::device_name(device)
    );
    let per_process = PretrainConfig { world_size: 1, ..cfg.clone() };
    let step = measured_step_seconds(&per_process, data, device, steps)?;
    println!(
        "  measured on {}: {:.3} s per step of {} images -> {:.1} h for the run (each of the {} process(es) \
         on such a device, before communication)",
        crate::session::device_name(device),
        step,
        cfg.data.batch_size,
        step * cfg.iterations as f64 / 3600.0,
        cfg.world_size
    );
    Ok(())
}

/// The memory this process may still use on the CPU, in bytes, and what limits it: the smallest of
/// the machine's available memory (`MemAvailable`), the cgroup's limit less its usage, and the
/// address-space limit (`ulimit -v`) less what the process has mapped.
fn cpu_memory_available() -> Option<(u64, String)> {
    let kb = |text: &str, key: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(key))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|k| k * 1024)
    };
    let mut best: Option<(u64, String)> = None;
    let mut offer = |bytes: u64, from: &str| {
        if best.as_ref().is_none_or(|b| bytes < b.0) {
            best = Some((bytes, from.to_string()));
        }
    };
    if let Some(m) = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| kb(&t, "MemAvailable:")) {
        offer(m, "the machine's available memory");
    }
    let cg =
        |f: &str| std::fs::read_to_string(format!("/sys/fs/cgroup/{f}")).ok()?.trim().parse::<u64>().ok();
    if let (Some(max), Some(cur)) = (cg("memory.max"), cg("memory.current")) {
        offer(max.saturating_sub(cur), "the cgroup's memory limit");
    }
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut lim) } == 0 && lim.rlim_cur != libc::RLIM_INFINITY {
        let mapped =
            std::fs::read_to_string("/proc/self/status").ok().and_then(|t| kb(&t, "VmSize:")).unwrap_or(0);
        offer(lim.rlim_cur.saturating_sub(mapped), "the address-space limit, ulimit -v");
    }
    best
}

fn print_network(cost: &PretrainCost, cfg: &PretrainConfig) {
    println!(
        "  network: {} (width {}), {:.1} M parameters, {:.1} GFLOPs per training image at {}x{} \
         ({:.2} G multiply-adds forward); est. memory per process {:.1} GB at batch {}",
        cfg.model.arch,
        cfg.model.width,
        cost.parameters as f64 / 1e6,
        cost.train_flops_per_image / 1e9,
        cfg.data.augment.crop,
        cfg.data.augment.crop,
        cost.forward_macs_per_image as f64 / 1e9,
        cost.memory_bytes(cfg.data.batch_size) as f64 / 1e9,
        cfg.data.batch_size
    );
}

/// `bench cost`: the presets' cost table and the scaling model, as Markdown.
pub fn bench_cost(a: BenchCostRequest) -> crate::Result<()> {
    println!("## Pretraining presets: what a run costs\n");
    println!(
        "Training FLOPs per image = 6 x the forward pass's multiply-adds, counted on a real forward \
         pass at the preset's crop and points; epochs of ImageNet = iterations x batch / {}; hours \
         on one H100 at an assumed {} TFLOP/s sustained (see below). Memory: 12 bytes per \
         parameter (weights, gradient, momentum) + 3 float32 activations per layer output.\n",
        grouped(IMAGENET_TRAIN_IMAGES as u64),
        a.tflops
    );
    println!("| preset | arch | width | batch / GPU | reference batch | iterations | epochs of ImageNet | params (M) | GFLOPs / image | memory (GB) | hours on 1 H100 |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut costs = vec![];
    for name in &a.presets {
        let cfg = PretrainConfig::preset(name)?;
        let cost = pretrain_cost(&cfg)?;
        let epochs = cfg.iterations as f64 * cfg.data.batch_size as f64 / IMAGENET_TRAIN_IMAGES as f64;
        println!(
            "| {name} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            cfg.model.arch,
            cfg.model.width,
            cfg.data.batch_size,
            cfg.optim.reference_batch,
            grouped(cfg.iterations as u64),
            epochs,
            cost.parameters as f64 / 1e6,
            cost.train_flops_per_image / 1e9,
            cost.memory_bytes(cfg.data.batch_size) as f64 / 1e9,
            hours(cost.run_flops(&cfg), a.tflops)
        );
        costs.push((name.clone(), cfg, cost));
    }
    println!("\n## Data-parallel scaling model (per step, per GPU)\n");
    println!(
        "Compute per step = batch per GPU x FLOPs per image / {} TFLOP/s. Gradient all-reduce: ring, \
         2 (N-1)/N x gradient bytes / bus bandwidth, with an assumed NCCL bus bandwidth of {} GB/s \
         within a node of 8 NVLink GPUs and {} GB/s across nodes (one 400 Gb/s NIC per GPU, about 80% \
         of its 50 GB/s). colorproxy all-reduces after the backward pass (no overlap): efficiency = \
         compute / (compute + all-reduce); with DDP-style bucketed overlap, the all-reduce hides \
         behind the backward pass (2/3 of compute): step = compute / 3 + max(2/3 compute, all-reduce).\n",
        a.tflops, a.nvlink_gbs, a.network_gbs
    );
    println!("| preset | GPUs | images / step | compute (ms) | all-reduce (ms) | efficiency, no overlap | efficiency, overlap | hours for the preset's images, no overlap |");
    println!("|---|---|---|---|---|---|---|---|");
    for (name, cfg, cost) in &costs {
        for &n in &a.gpus {
            let compute = cfg.data.batch_size as f64 * cost.train_flops_per_image / (a.tflops * 1e12);
            let bw = if n <= 8 { a.nvlink_gbs } else { a.network_gbs } * 1e9;
            let comm = ring_allreduce_seconds(cost.gradient_bytes, n, bw);
            let plain = compute + comm;
            let overlap = compute / 3.0 + (2.0 * compute / 3.0).max(comm);
            println!(
                "| {name} | {n} | {} | {:.1} | {:.1} | {:.0}% | {:.0}% | {:.2} |",
                n * cfg.data.batch_size,
                compute * 1e3,
                comm * 1e3,
                100.0 * compute / plain,
                100.0 * compute / overlap,
                plain * (cfg.iterations as f64 / n as f64).ceil() / 3600.0
            );
        }
    }
    println!(
        "\nHours in the last column: the preset's number of images (iterations x batch per GPU) in \
         iterations / N steps of N x its per-GPU batch (the learning rate scaled by the linear rule)."
    );
    Ok(())
}
