//! `colorproxy bench allreduce`: the bandwidth of a gradient-sized all-reduce on c10d (Gloo on
//! CPU over loopback, NCCL on GPUs), as DDP does it (flat buckets of 25 MiB), between real
//! processes. Outside a job it launches itself as `--nproc` ranks.
use std::time::Instant;

use crate::Context;
use colorproxy_dist::{ddp, DistEnv, ProcessGroup, ReduceOp};
use tch::{Device, Kind, Tensor};

use crate::request::BenchAllreduceRequest;

/// The trainable parameters of a pretraining preset's network (paper-vgg16: the paper's VGG-16
/// with its hypercolumn head).
fn parameter_count(preset: &str) -> crate::Result<i64> {
    let cfg = colorproxy_nn::PretrainConfig::preset(preset)?;
    let (net, _) = colorproxy_nn::pretrain::build(&cfg, Device::Cpu)?;
    Ok(net.vs.trainable_variables().iter().map(|t| t.numel() as i64).sum())
}

pub fn allreduce(a: BenchAllreduceRequest) -> crate::Result<()> {
    let Some(env) = DistEnv::from_env()? else {
        let numel = match a.numel {
            Some(n) => n,
            None => {
                parameter_count(&a.preset).with_context(|| format!("counting {}'s parameters", a.preset))?
            }
        };
        let mut cmd = vec!["bench".to_string(), "allreduce".into(), "--numel".into(), numel.to_string()];
        cmd.extend(["--iters".into(), a.iters.to_string(), "--preset".into(), a.preset.clone()]);
        if let Some(d) = &a.device {
            cmd.extend(["--device".into(), d.clone()]);
        }
        return crate::launch::launch(a.nproc, None, &cmd);
    };
    let numel = a.numel.context("--numel (set by the launching process)")?;
    let device = colorproxy_nn::parse_device(a.device.as_deref().or(Some("cpu")))?;
    let (backend, device, cuda) = match device {
        Device::Cuda(_) => ("nccl", Device::Cuda(env.local_rank), Some(env.local_rank)),
        d => ("gloo", d, None),
    };
    let pg = ProcessGroup::new(backend, &env, env.timeout, cuda)?;
    // Buckets of 25 MiB, as DDP's gradient buckets.
    let per = (ddp::BUCKET_BYTES / 4) as i64;
    let buckets: Vec<Tensor> = (0..numel)
        .step_by(per as usize)
        .map(|s| Tensor::ones([(numel - s).min(per)], (Kind::Float, device)) * (env.rank as f64 + 1.0))
        .collect();
    // Correctness first: the sum over ranks of (rank + 1).
    for b in &buckets {
        pg.all_reduce(std::slice::from_ref(b), ReduceOp::Sum)?;
    }
    let want = (env.world_size * (env.world_size + 1) / 2) as f64;
    let ok = buckets.iter().all(|b| b.min().double_value(&[]) == want && b.max().double_value(&[]) == want);
    pg.barrier()?;
    let t0 = Instant::now();
    for _ in 0..a.iters {
        for b in &buckets {
            pg.all_reduce(std::slice::from_ref(b), ReduceOp::Avg)?;
        }
    }
    pg.barrier()?;
    let s = t0.elapsed().as_secs_f64() / a.iters.max(1) as f64;
    if env.rank == 0 {
        let gb = numel as f64 * 4.0 / 1e9;
        let n = env.world_size as f64;
        println!(
            "all-reduce of {numel} float32 ({:.1} MB, {} buckets of 25 MiB) over {} ranks ({backend}): {:.3} s each; \
             algorithm bandwidth {:.2} GB/s, bus bandwidth {:.2} GB/s (x 2(n-1)/n); sums correct: {ok}",
            gb * 1e3,
            buckets.len(),
            env.world_size,
            s,
            gb / s,
            gb / s * 2.0 * (n - 1.0) / n
        );
    }
    if !ok {
        crate::bail!("rank {}: the all-reduced sums are wrong", env.rank);
    }
    Ok(())
}

/// `bench pretrain --nproc N`: the same pretraining (preset, images, steps) as one process with
/// `--threads` libtorch threads and as N ranks (`colorproxy launch`) with `threads / N` each (the
/// same cores), images/s of the global batch after the warm-up, and their ratio.
pub fn pretrain_scaling(a: &crate::request::BenchPretrainRequest) -> crate::Result<()> {
    let exe = std::env::current_exe()?;
    let tmp = std::env::temp_dir().join(format!("colorproxy-bench-dp-{}", std::process::id()));
    let steps = (a.warmup + a.steps).to_string();
    let run = |dir: &str, nproc: usize| -> crate::Result<f64> {
        let threads = (a.threads / nproc).max(1).to_string();
        let out = tmp.join(dir);
        let mut args: Vec<String> = Vec::new();
        if nproc > 1 {
            args.extend(["launch".into(), "--nproc".into(), nproc.to_string(), "--".into()]);
        }
        args.extend(
            ["pretrain", "--preset", &a.preset, "--iterations", &steps, "--threads", &threads, "--force"]
                .map(String::from),
        );
        args.extend([
            "--data".into(),
            a.images.display().to_string(),
            "--out".into(),
            out.display().to_string(),
        ]);
        let st = std::process::Command::new(&exe)
            .args(&args)
            .env("OMP_NUM_THREADS", &threads)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()?;
        crate::ensure!(st.success(), "{} failed", args.join(" "));
        let m =
            colorproxy_nn::pretrain::read_metrics(&colorproxy_nn::run_dir::RunPaths::new(&out).metrics())?;
        let after: Vec<f64> = m.iter().filter(|m| m.iteration > a.warmup).map(|m| m.images_per_s).collect();
        crate::ensure!(!after.is_empty(), "no metrics after the warm-up ({} steps)", a.warmup);
        Ok(after.iter().sum::<f64>() / after.len() as f64)
    };
    let one = run("one", 1)?;
    let many = run("many", a.nproc)?;
    let _ = std::fs::remove_dir_all(&tmp);
    println!(
        "pretrain, preset {}, {} steps after {} warm-up: 1 process x {} threads {one:.1} images/s; {} ranks x {} thread(s) (Gloo) {many:.1} images/s; ratio {:.3}",
        a.preset,
        a.steps,
        a.warmup,
        a.threads,
        a.nproc,
        (a.threads / a.nproc).max(1),
        many / one
    );
    Ok(())
}
