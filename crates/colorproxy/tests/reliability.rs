//! Nothing of the user's is deleted and every failure is a message, through the real binary:
//! `--force` removes only colorproxy's files, out of memory is an error (exit 1, not a panic),
//! resume keeps the run's length, a full disk leaves no temp file and truncates nothing, and
//! bad numbers get the flag's own check.
mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use colorproxy_nn::PretrainConfig;
use common::{bin, make_images, pretrain, snapshot, text, tiny_config, weights};

fn setup() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("images");
    make_images(&data, 6);
    (tmp, data)
}

#[test]
fn force_removes_only_colorproxys_files_and_refuses_a_folder_with_the_users() {
    let (tmp, data) = setup();
    let cfg = tiny_config(tmp.path(), 2);
    // A run folder into which the user put files of their own: refused, naming one, byte for byte
    // unchanged.
    let run = tmp.path().join("run");
    assert!(pretrain(&cfg, &data, &run, &[]).status().unwrap().success());
    std::fs::write(run.join("notes.txt"), "my notes").unwrap();
    let before = snapshot(&run);
    let o = pretrain(&cfg, &data, &run, &["--force"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("notes.txt") && text(&o).contains("nothing was removed"), "{}", text(&o));
    assert!(snapshot(&run) == before, "--force changed a folder it refused");
    std::fs::remove_file(run.join("notes.txt")).unwrap();
    std::fs::write(run.join("checkpoints/my_model.safetensors"), "weights of mine").unwrap();
    let before = snapshot(&run);
    let o = pretrain(&cfg, &data, &run, &["--force"]).output().unwrap();
    assert!(!o.status.success() && text(&o).contains("my_model.safetensors"), "{}", text(&o));
    assert!(snapshot(&run) == before);
    // A folder of the user's own files under the names a run uses (the reported case): refused as
    // not a run folder.
    let mine = tmp.path().join("mine");
    std::fs::create_dir_all(mine.join("checkpoints")).unwrap();
    std::fs::create_dir_all(mine.join("chapter")).unwrap();
    for (f, body) in [
        ("config.toml", "[thesis]\ntitle = \"mine\"\n"),
        ("results.json", "{\"accuracy\": 0.9}"),
        ("metrics.jsonl", "{\"iteration\": 1}\n"),
        ("checkpoints/my_model.safetensors", "x"),
        ("thesis.txt", "words"),
        ("chapter/one.txt", "more words"),
    ] {
        std::fs::write(mine.join(f), body).unwrap();
    }
    let before = snapshot(&mine);
    let o = pretrain(&cfg, &data, &mine, &["--force"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("is not a colorproxy run folder"), "{}", text(&o));
    assert!(snapshot(&mine) == before, "--force touched the user's folder");
    // Positive control: colorproxy's own folder is replaced, and the new run equals a fresh one.
    std::fs::remove_file(run.join("checkpoints/my_model.safetensors")).unwrap();
    let cfg4 = tiny_config(tmp.path(), 4);
    let o = pretrain(&cfg4, &data, &run, &["--force"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let fresh = tmp.path().join("fresh");
    assert!(pretrain(&cfg4, &data, &fresh, &[]).status().unwrap().success());
    assert!(weights(&run) == weights(&fresh));
    // --out naming a file: said so.
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let o = pretrain(&cfg, &data, &file, &[]).output().unwrap();
    assert!(!o.status.success() && text(&o).contains("is a file, not a folder"), "{}", text(&o));
}

#[test]
fn out_of_memory_is_a_message_with_the_flag_to_lower_not_a_panic() {
    let (tmp, data) = setup();
    let run = tmp.path().join("run");
    // 3,000 images of 64 x 64 per step under a 3 GB address space (libtorch itself maps about
    // 0.6 GB): the first step's activations cannot be allocated.
    let limited = |extra: &[&str]| {
        let mut c = bin();
        c.args(["pretrain", "--preset", "cpu-small", "--batch-size", "3000", "--iterations", "2", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(&run)
            .args(extra);
        // SAFETY: setrlimit in the child between fork and exec (async-signal-safe).
        unsafe {
            c.pre_exec(|| {
                let lim = libc::rlimit { rlim_cur: 3_000_000_000, rlim_max: 3_000_000_000 };
                if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        c.output().unwrap()
    };
    let o = limited(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let msg = text(&o);
    assert!(msg.contains("out of memory on cpu in pretraining step 1 at 3000 images per process"), "{msg}");
    assert!(msg.contains("can't allocate memory") && msg.contains("--batch-size 1500"), "{msg}");
    assert!(!msg.contains("panicked") && !msg.contains("RUST_BACKTRACE"), "{msg}");
    // The dry run says it would not fit, without training at that batch.
    let o = limited(&["--dry-run", "--force"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let msg = text(&o);
    assert!(msg.contains("not measured, the run would stop out of memory"), "{msg}");
    assert!(!msg.contains("measured on cpu"), "{msg}");
}

/// `iterations` of the saved config.
fn saved_iterations(run: &Path) -> usize {
    PretrainConfig::from_toml(&std::fs::read_to_string(run.join("config.toml")).unwrap()).unwrap().iterations
}

#[test]
fn resume_keeps_the_runs_length_and_refuses_to_cut_it() {
    let (tmp, data) = setup();
    let cfg = tiny_config(tmp.path(), 40);
    let run = tmp.path().join("run");
    let o = pretrain(&cfg, &data, &run, &["--iterations", "4"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let w4 = weights(&run);
    // Without --iterations: the run's 4, not the config's 40.
    let o = pretrain(&cfg, &data, &run, &["--resume"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("done at iteration 4: the run had already finished, nothing was trained"),
        "{}",
        text(&o)
    );
    assert_eq!(saved_iterations(&run), 4);
    assert!(weights(&run) == w4, "a resume without --iterations trained on");
    // Shorter than done: refused, naming both numbers; the config still describes the weights.
    let before = snapshot(&run);
    let o = pretrain(&cfg, &data, &run, &["--resume", "--iterations", "2"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("--iterations 2 is shorter than the 4 iterations"), "{}", text(&o));
    assert!(snapshot(&run) == before);
    // Longer: extends, to the weights of a run of that length.
    let o = pretrain(&cfg, &data, &run, &["--resume", "auto", "--iterations", "6"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(saved_iterations(&run), 6);
    let six = tmp.path().join("six");
    assert!(pretrain(&cfg, &data, &six, &["--iterations", "6"]).status().unwrap().success());
    assert!(weights(&run) == weights(&six));
}

/// A tmpfs of `bytes` at `dir`, unmounted when dropped (needs root, as CI runs).
struct Tmpfs(PathBuf);
impl Tmpfs {
    fn mount(dir: &Path, bytes: usize) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Self(dir.to_owned()))
    }
}
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` but `leave` bytes (a file of zeros written until the disk is
/// full, then cut by `leave`).
fn fill(dir: &Path, leave: u64) {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).unwrap();
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
    let len = f.metadata().unwrap().len();
    f.set_len(len.saturating_sub(leave)).unwrap();
}

fn temp_files(run: &Path) -> Vec<String> {
    let mut left = vec![];
    for d in [run.to_owned(), run.join("checkpoints")] {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.contains(".tmp.") {
                left.push(n);
            }
        }
    }
    left
}

#[test]
fn a_full_disk_leaves_no_temp_file_truncates_nothing_and_the_rerun_continues() {
    let (tmp, data) = setup();
    let cfg = tiny_config(tmp.path(), 8);
    let Some(disk) = Tmpfs::mount(&tmp.path().join("disk"), 16 << 20) else {
        // Mounting needs root (CI and the developers' machines run as root).
        eprintln!("skipped: cannot mount a tmpfs here (not root)");
        return;
    };
    let run = disk.0.join("run");
    let o = pretrain(&cfg, &data, &run, &["--iterations", "4"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    // 64 kB left: the config and the log's lines fit, the checkpoint at 6 (about 1.6 MB) does not.
    fill(&disk.0, 64 << 10);
    let metrics_before = std::fs::read(run.join("metrics.jsonl")).unwrap();
    // Continue to 8 on the full disk: the checkpoint at 6 cannot be written.
    let o = pretrain(&cfg, &data, &run, &["--resume", "--iterations", "8"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let msg = text(&o);
    assert!(msg.contains("the disk is full: this write needs") && msg.contains("MB free"), "{msg}");
    assert_eq!(msg.matches("the disk is full").count(), 1, "{msg}");
    assert!(temp_files(&run).is_empty(), "left: {:?}", temp_files(&run));
    let metrics = std::fs::read(run.join("metrics.jsonl")).unwrap();
    assert!(metrics.starts_with(&metrics_before), "metrics.jsonl lost lines");
    assert!(metrics.len() > metrics_before.len(), "the run did not log past its checkpoint");
    fill(&disk.0, 0);
    // Again on the now full disk: resuming cuts the log back to the checkpoint, which must not
    // leave it empty or shorter than before when the write fails.
    let o = pretrain(&cfg, &data, &run, &["--resume", "--iterations", "8"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(temp_files(&run).is_empty(), "left: {:?}", temp_files(&run));
    assert!(std::fs::read(run.join("metrics.jsonl")).unwrap() == metrics, "a failed resume changed the log");
    // Space freed: the same command finishes, with the weights of an uninterrupted run.
    std::fs::remove_file(disk.0.join("filler")).unwrap();
    let o = pretrain(&cfg, &data, &run, &["--resume", "--iterations", "8"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let reference = tmp.path().join("reference");
    assert!(pretrain(&cfg, &data, &reference, &[]).status().unwrap().success());
    assert!(weights(&run) == weights(&reference));
    // One line per iteration, the losses of the uninterrupted run (images/s differ).
    let losses = |r: &Path| -> Vec<(u64, String)> {
        std::fs::read_to_string(r.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (v["iteration"].as_u64().unwrap(), v["loss"].to_string())
            })
            .collect()
    };
    assert_eq!(losses(&run), losses(&reference));
}

#[test]
fn bad_numbers_get_the_flags_own_check() {
    let (tmp, data) = setup();
    let cfg = tiny_config(tmp.path(), 2);
    let run = tmp.path().join("run");
    for (args, want) in [
        (&["--lr", "-1"][..], "optim.lr must be in (0, 10]"),
        (&["--lr", "1e308"][..], "optim.lr must be in (0, 10]"),
        (&["--iterations", "-5"][..], "invalid value '-5' for '--iterations"),
    ] {
        let o = pretrain(&cfg, &data, &run, args).output().unwrap();
        assert!(!o.status.success() && text(&o).contains(want), "{args:?}: {}", text(&o));
        assert!(!text(&o).contains("unexpected argument"), "{args:?}: {}", text(&o));
    }
    assert!(!run.join("config.toml").exists());
    // A drop past the run's end is said (it never happens); the run goes on.
    let o = pretrain(&cfg, &data, &run, &["--set", "optim.lr_drops=[1000000]"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o)
        .contains("warning: optim.lr_drops 1000000 outside the run's iterations 1..=2: never happens"));
    let img = data.join("img0.png");
    let o = bin().args(["targets", "--image"]).arg(&img).args(["--point", "-1,1"]).output().unwrap();
    assert!(!o.status.success() && text(&o).contains("-1,1"), "{}", text(&o));
    assert!(!text(&o).contains("unexpected argument"), "{}", text(&o));
}
