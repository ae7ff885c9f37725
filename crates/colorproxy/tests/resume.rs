//! Resuming as promised, through the real binary: every training command (pretrain, finetune,
//! pretrain-supervised) killed mid-run continues with the same command plus `--resume` (or
//! `--resume auto`), with and without `--iterations` / `--max-iterations`, to the weights of the
//! uninterrupted run; `--resume auto` starts, resumes and refuses another run's folder;
//! `--force` checks every input before the old run is touched; `--set` and the batch flags are
//! validated and saved; unclear inputs get messages that say what to do.
mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use colorproxy_nn::run_dir::RunPaths;
use colorproxy_nn::PretrainConfig;
use common::{bin, pretrain, snapshot, text, weights};

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// A tiny pretraining config: 8 steps, a checkpoint every 2, a learning-rate drop at 6.
fn tiny_config(dir: &Path) -> PathBuf {
    let mut cfg = PretrainConfig::preset("cpu-small").unwrap();
    cfg.iterations = 8;
    cfg.checkpoint_every = 2;
    cfg.snapshots = vec![4];
    cfg.log_every = 2;
    cfg.model.width = 1.0 / 16.0;
    cfg.model.fc_channels = 16;
    cfg.model.head_hidden = 16;
    cfg.data.batch_size = 2;
    cfg.data.points = 8;
    cfg.data.workers = 1;
    cfg.optim.lr_drops = vec![6];
    let p = dir.join("tiny.toml");
    std::fs::write(&p, cfg.to_toml()).unwrap();
    p
}

fn scenes(dir: &Path) -> PathBuf {
    let d = dir.join("scenes");
    colorproxy_data::synth::write_unlabelled(&d, 7, 0, 16, 64).unwrap();
    d
}

/// Runs `args` uninterrupted, then again killed (SIGKILL) at a checkpoint file operation after
/// its first complete checkpoint and continued with the same arguments plus `resume`: the
/// weights must be equal.
fn resumes_to_the_same_weights(tmp: &Path, name: &str, args: &[String], resume: &[&str]) {
    let (a, b) = (tmp.join(format!("{name}-a")), tmp.join(format!("{name}-b")));
    let o = bin().args(args).arg("--out").arg(&a).output().unwrap();
    assert!(o.status.success(), "{name}: {}", text(&o));
    // The first operation that leaves a complete checkpoint behind and the run unfinished.
    let killed = (4..40).find(|k| {
        let _ = std::fs::remove_dir_all(&b);
        let o =
            bin().args(args).arg("--out").arg(&b).env("COLORPROXY_FAULT_AT", k.to_string()).output().unwrap();
        o.status.signal() == Some(9) && !colorproxy_nn::run_dir::generations(&RunPaths::new(&b)).is_empty()
    });
    assert!(killed.is_some(), "{name}: never killed after a complete checkpoint");
    let o = bin().args(args).arg("--out").arg(&b).args(resume).output().unwrap();
    assert!(o.status.success(), "{name} {resume:?}: {}", text(&o));
    assert!(text(&o).contains("resuming at iteration"), "{name}: {}", text(&o));
    assert!(weights(&a) == weights(&b), "{name}: resumed weights differ from the uninterrupted run");
    // And once more: a finished run resumed is still the same run.
    let o = bin().args(args).arg("--out").arg(&b).args(resume).output().unwrap();
    assert!(o.status.success(), "{name} finished + {resume:?}: {}", text(&o));
    assert!(weights(&a) == weights(&b), "{name}: a finished run changed on resume");
}

#[test]
fn pretrain_resumes_with_the_same_command_with_and_without_iterations() {
    let tmp = tempfile::tempdir().unwrap();
    let data = scenes(tmp.path());
    let cfg = tiny_config(tmp.path());
    let base = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["pretrain", "--data", &s(&data)].iter().map(|x| x.to_string()).collect();
        v.extend(extra.iter().map(|x| x.to_string()));
        v
    };
    // The reported case: a preset with --iterations (its drops and snapshots rescaled).
    let preset = base(&["--preset", "cpu-small", "--iterations", "6", "--set", "checkpoint_every=2"]);
    resumes_to_the_same_weights(tmp.path(), "preset-iterations", &preset, &["--resume"]);
    let config = base(&["--config", &s(&cfg)]);
    resumes_to_the_same_weights(tmp.path(), "config", &config, &["--resume"]);
    let config_its = base(&["--config", &s(&cfg), "--iterations", "8"]);
    resumes_to_the_same_weights(tmp.path(), "config-iterations", &config_its, &["--resume", "auto"]);
    // Another run's folder: refused, naming what differs.
    let o = bin()
        .args(base(&["--config", &s(&cfg), "--seed", "5", "--resume", "--out"]))
        .arg(tmp.path().join("config-b"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("seed: saved 0, now 5"), "{}", text(&o));
}

#[test]
fn finetune_and_supervised_resume_with_the_same_command() {
    let tmp = tempfile::tempdir().unwrap();
    let voc = tmp.path().join("voc");
    colorproxy_data::synth::write_voc(&voc, 4, 0, 16, 4, 48).unwrap();
    let folders = tmp.path().join("folders");
    colorproxy_data::synth::write_image_folders(&folders, 2, 6, 2, 3, 48).unwrap();
    let seg = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> =
            ["finetune", "seg", "--init", "random", "--data", &s(&voc), "--set", "checkpoint_every=2"]
                .iter()
                .map(|x| x.to_string())
                .collect();
        v.extend(extra.iter().map(|x| x.to_string()));
        v
    };
    resumes_to_the_same_weights(tmp.path(), "seg-max", &seg(&["--max-iterations", "6"]), &["--resume"]);
    let capped = seg(&["--set", "early_stop.max_iterations=6"]);
    resumes_to_the_same_weights(tmp.path(), "seg-config", &capped, &["--resume", "auto"]);
    let sup: Vec<String> = ["pretrain-supervised", "--data", &s(&folders), "--max-iterations", "6"]
        .iter()
        .map(|x| x.to_string())
        .chain(["--set".to_string(), "checkpoint_every=2".to_string()])
        .collect();
    resumes_to_the_same_weights(tmp.path(), "supervised", &sup, &["--resume"]);
}

#[test]
fn resume_auto_starts_resumes_and_refuses_another_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = scenes(tmp.path());
    let cfg = tiny_config(tmp.path());
    let run = tmp.path().join("run");
    let go = |extra: &[&str]| pretrain(&cfg, &data, &run, extra).output().unwrap();
    let o = go(&["--resume", "auto"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("resuming"), "{}", text(&o));
    let first = weights(&run);
    let o = go(&["--resume", "auto"]);
    assert!(o.status.success() && text(&o).contains("resuming at iteration 8"), "{}", text(&o));
    assert!(weights(&run) == first);
    let o = go(&["--resume", "auto", "--set", "data.points=4"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("data.points: saved 8, now 4"), "{}", text(&o));
    // Plain --resume on an empty folder keeps its meaning: an error.
    let o = bin()
        .args(["pretrain", "--config", &s(&cfg), "--data", &s(&data), "--resume", "--out"])
        .arg(tmp.path().join("empty"))
        .output()
        .unwrap();
    assert!(!o.status.success() && text(&o).contains("no checkpoint to resume from"), "{}", text(&o));
}

#[test]
fn force_checks_every_input_before_the_old_run_is_touched() {
    let tmp = tempfile::tempdir().unwrap();
    let data = scenes(tmp.path());
    let cfg = tiny_config(tmp.path());
    let run = tmp.path().join("run");
    let o = bin()
        .args(["pretrain", "--config", &s(&cfg), "--data", &s(&data), "--out", &s(&run)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let before = snapshot(&run);
    for (set, want) in [
        ("model.arch=vgg17", "unknown arch \"vgg17\""),
        ("model.hypercolumn=[\"conv9_9\"]", "conv9_9"),
        ("model.fc_channels=0", "model.fc_channels (0)"),
        ("model.head_hidden=0", "model.head_hidden (0)"),
    ] {
        let o = bin()
            .args(["pretrain", "--config", &s(&cfg), "--data", &s(&data), "--out", &s(&run), "--force"])
            .args(["--set", set])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{set}: {}", text(&o));
        assert!(text(&o).contains(want), "{set}: {}", text(&o));
        assert!(snapshot(&run) == before, "{set}: the old run was changed");
    }
    // Fine-tuning: a run, then --force with a bad frozen layer, a NaN init, another architecture.
    let voc = tmp.path().join("voc");
    colorproxy_data::synth::write_voc(&voc, 4, 0, 8, 2, 48).unwrap();
    let ft = tmp.path().join("ft");
    let init = s(&run.join("checkpoints/last.safetensors"));
    let finetune = |extra: &[&str]| {
        bin()
            .args(["finetune", "seg", "--data", &s(&voc), "--out", &s(&ft), "--max-iterations", "2"])
            .args(extra)
            .output()
            .unwrap()
    };
    let o = finetune(&["--init", &init]);
    assert!(o.status.success(), "{}", text(&o));
    let before = snapshot(&ft);
    // A NaN tensor in a copy of the pretraining run (its config beside it).
    let nan_run = tmp.path().join("nan");
    std::fs::create_dir_all(nan_run.join("checkpoints")).unwrap();
    std::fs::copy(run.join("config.toml"), nan_run.join("config.toml")).unwrap();
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let mut named = tch::Tensor::read_safetensors(run.join("checkpoints/last.safetensors")).unwrap();
    // conv1_1's weight (a tensor fine-tuning loads; the file's order is not fixed, and the head's
    // tensors are not loaded).
    let k = named.iter().position(|(n, _)| n == "features.0.weight").expect("conv1_1 in the checkpoint");
    let _ = named[k].1.fill_(f64::NAN);
    drop(vs);
    tch::Tensor::write_safetensors(&named, nan_run.join("checkpoints/last.safetensors")).unwrap();
    let nan_name = named[k].0.clone();
    // Another architecture: a cpu-alexnet run's config beside the same weights.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(other.join("checkpoints")).unwrap();
    std::fs::write(other.join("config.toml"), PretrainConfig::preset("cpu-alexnet").unwrap().to_toml())
        .unwrap();
    std::fs::copy(run.join("checkpoints/last.safetensors"), other.join("checkpoints/last.safetensors"))
        .unwrap();
    for (extra, want) in [
        (vec!["--init", &init, "--freeze-until", "conv9_9"], "conv9_9".to_string()),
        (vec!["--init", &s(&nan_run.join("checkpoints/last.safetensors"))], nan_name),
        // A tensor of the wrong shape or a missing one, whichever the loader meets first.
        (vec!["--init", &s(&other.join("checkpoints/last.safetensors"))], "|".to_string()),
    ] {
        let mut args = extra.clone();
        args.push("--force");
        let o = finetune(&args);
        assert_eq!(o.status.code(), Some(1), "{extra:?}: {}", text(&o));
        let clear = if want == "|" {
            text(&o).contains("the network expects") || text(&o).contains("(same architecture and width?)")
        } else {
            text(&o).contains(&want)
        };
        assert!(clear, "{extra:?}: {}", text(&o));
        assert!(snapshot(&ft) == before, "{extra:?}: the old run was changed");
    }
}

#[test]
fn stale_temp_files_are_removed_when_a_run_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let data = scenes(tmp.path());
    let cfg = tiny_config(tmp.path());
    let run = tmp.path().join("run");
    let go = |extra: &[&str]| pretrain(&cfg, &data, &run, extra).output().unwrap();
    let o = go(&["--set", "iterations=4"]);
    assert!(o.status.success(), "{}", text(&o));
    // What a kill or a full disk leaves: a half-written generation and weights file.
    let ck = run.join("checkpoints");
    std::fs::create_dir_all(ck.join(".gen-6.tmp.4242.0")).unwrap();
    std::fs::write(ck.join(".gen-6.tmp.4242.0/weights.safetensors"), vec![0u8; 4096]).unwrap();
    std::fs::write(ck.join(".last.safetensors.tmp.4242.1"), vec![0u8; 4096]).unwrap();
    std::fs::write(run.join(".config.toml.tmp.4242.2"), "x").unwrap();
    let o = go(&["--set", "iterations=4", "--resume"]);
    assert!(o.status.success(), "{}", text(&o));
    let left: Vec<String> = snapshot(&run)
        .keys()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp."))
        .collect();
    assert!(left.is_empty(), "left: {left:?}");
}

#[test]
fn overrides_are_saved_and_a_wrong_key_or_type_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let data = scenes(tmp.path());
    let cfg = tiny_config(tmp.path());
    let run = tmp.path().join("run");
    let go = |run: &Path, extra: &[&str]| pretrain(&cfg, &data, run, extra).output().unwrap();
    let o = go(
        &run,
        &[
            "--batch-size",
            "3",
            "--lr",
            "0.005",
            "--workers",
            "2",
            "--set",
            "data.points=4",
            "--set",
            "optim.lr_drops=[]",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let saved =
        PretrainConfig::from_toml(&std::fs::read_to_string(run.join("config.toml")).unwrap()).unwrap();
    assert_eq!((saved.data.batch_size, saved.data.points, saved.data.workers), (3, 4, 2));
    assert_eq!((saved.optim.lr, saved.optim.lr_scale, saved.optim.lr_drops.len()), (0.005, 1.0, 0));
    assert_eq!((saved.world_size, saved.total_batch), (1, 3));
    // Without --lr the batch rule applies: tiny.toml's lr 0.01 is for 16 images; 4 give 0.25x.
    let ruled = tmp.path().join("ruled");
    let o = go(&ruled, &["--batch-size", "4"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("learning rate 0.01 x 4 / 16"), "{}", text(&o));
    let saved =
        PretrainConfig::from_toml(&std::fs::read_to_string(ruled.join("config.toml")).unwrap()).unwrap();
    assert_eq!(saved.optim.lr_scale, 0.25);
    for (set, want) in [
        ("optim.lrr=0.1", "optim.lrr"),
        ("optim.lr=fast", "--set optim.lr=\"fast\": expected a number"),
        ("data=3", "a section of the config"),
        ("points", "expected KEY=VALUE"),
    ] {
        let o = go(&tmp.path().join("bad"), &["--set", set]);
        assert_eq!(o.status.code(), Some(1), "{set}: {}", text(&o));
        assert!(text(&o).contains(want), "{set}: {}", text(&o));
    }
}

#[test]
fn unclear_inputs_get_messages_that_say_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let data = scenes(tmp.path());
    let cfg = tiny_config(tmp.path());
    let image = std::fs::read_dir(&data).unwrap().next().unwrap().unwrap().path();
    let o = bin()
        .args(["pretrain", "--config", &s(&cfg), "--data", &s(&image), "--out"])
        .arg(tmp.path().join("x"))
        .output()
        .unwrap();
    assert!(text(&o).contains("is an image; --data takes a folder of images"), "{}", text(&o));
    assert!(!text(&o).contains("error: error:"), "{}", text(&o));
    // A pretraining run and a fine-tuned one, each given to the command for the other.
    let run = tmp.path().join("run");
    let o = bin()
        .args(["pretrain", "--config", &s(&cfg), "--data", &s(&data), "--out", &s(&run)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("loss "), "{}", text(&o));
    let voc = tmp.path().join("voc");
    colorproxy_data::synth::write_voc(&voc, 4, 0, 8, 2, 48).unwrap();
    let ft = tmp.path().join("ft");
    let o = bin()
        .args([
            "finetune",
            "seg",
            "--init",
            "random",
            "--data",
            &s(&voc),
            "--out",
            &s(&ft),
            "--max-iterations",
            "1",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let o = bin()
        .args([
            "eval",
            "seg",
            "--checkpoint",
            &s(&run.join("checkpoints/last.safetensors")),
            "--data",
            &s(&voc),
        ])
        .output()
        .unwrap();
    assert!(text(&o).contains("a colorization pretraining checkpoint"), "{}", text(&o));
    let o = bin()
        .args([
            "colorize",
            "--checkpoint",
            &s(&ft.join("checkpoints/last.safetensors")),
            "--input",
            &s(&image),
            "--output",
        ])
        .arg(tmp.path().join("c.png"))
        .output()
        .unwrap();
    assert!(text(&o).contains("is a fine-tuned network"), "{}", text(&o));
    // The lock holder is named with a readable time.
    let lock = std::fs::read_to_string(run.join(".lock")).unwrap();
    assert!(lock.contains(" UTC"), "{lock}");
}

#[test]
fn utc_time_matches_hand_computed_dates() {
    use colorproxy_nn::run_dir::utc_time;
    assert_eq!(utc_time(0), "1970-01-01 00:00:00 UTC");
    // 2000-02-29 (a leap day of a year divisible by 400): 11,016 days after the epoch.
    assert_eq!(utc_time(11_016 * 86_400 + 3_723), "2000-02-29 01:02:03 UTC");
    // 2026-12-06 11:40:49: 20,793 days after the epoch.
    assert_eq!(utc_time(20_793 * 86_400 + 11 * 3600 + 40 * 60 + 49), "2026-12-06 11:40:49 UTC");
}

#[test]
fn interrupts_at_random_moments_exit_cleanly_and_resume_bit_identically() {
    // 20 SIGINT/SIGTERM at random moments (scripts/interrupt-stress.sh; 200 in docs/).
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/interrupt-stress.sh");
    let o = Command::new("bash")
        .arg(script)
        .args(["20", "3"])
        .env("COLORPROXY_BIN", env!("CARGO_BIN_EXE_colorproxy"))
        .env("CI", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("20 interrupts"), "{}", text(&o));
}
