//! Run folders and checkpoints under faults, through the real binary: a run killed (SIGKILL) at
//! every checkpoint file operation resumes to the uninterrupted run's weights bit for bit; torn
//! or copied checkpoints; the folder lock; signals; refusing to overwrite a run.
mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{make_images, pretrain, snapshot, text, tiny_config, weights};

#[test]
fn killed_at_every_checkpoint_operation_resumes_to_the_same_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("images");
    make_images(&data, 6);
    let cfg = tiny_config(tmp.path(), 6);
    let reference = tmp.path().join("reference");
    let o = pretrain(&cfg, &data, &reference, &[]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let want = weights(&reference);
    for k in 1..200 {
        let run = tmp.path().join(format!("run-{k}"));
        let o = pretrain(&cfg, &data, &run, &[]).env("COLORPROXY_FAULT_AT", k.to_string()).output().unwrap();
        if o.status.success() {
            // Past the last checkpoint operation: every boundary has been tried.
            assert!(k > 10, "only {} crash points", k - 1);
            assert_eq!(weights(&run), want);
            return;
        }
        assert_eq!(o.status.signal(), Some(9), "k={k}: {}", text(&o));
        let r = pretrain(&cfg, &data, &run, &["--resume"]).output().unwrap();
        if !r.status.success() {
            // Killed before the first checkpoint was complete: nothing to resume, say so.
            assert!(text(&r).contains("no checkpoint to resume from"), "k={k}: {}", text(&r));
            let f = pretrain(&cfg, &data, &run, &["--force"]).output().unwrap();
            assert!(f.status.success(), "k={k}: {}", text(&f));
        }
        assert!(weights(&run) == want, "k={k}: resumed weights differ from the uninterrupted run");
        std::fs::remove_dir_all(&run).unwrap();
    }
    panic!("the run never completed under fault injection");
}

#[test]
fn torn_or_copied_checkpoints_resume_from_the_newest_complete_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("images");
    make_images(&data, 6);
    let (cfg4, cfg6) = (tiny_config(tmp.path(), 4), tiny_config(tmp.path(), 6));
    let reference = tmp.path().join("reference");
    assert!(pretrain(&cfg6, &data, &reference, &[]).status().unwrap().success());
    let run = tmp.path().join("run");
    assert!(pretrain(&cfg4, &data, &run, &[]).status().unwrap().success());
    // A torn newer generation: iteration 6's folder with the weights of iteration 4 under its
    // manifest (as a kill between two writes of a naive writer would leave), every file with
    // the same modification time.
    let ck = run.join("checkpoints");
    let torn = ck.join("gen-6");
    std::fs::create_dir(&torn).unwrap();
    for f in ["weights.safetensors", "optim.safetensors", "state.json", "manifest.json"] {
        std::fs::copy(ck.join("gen-4").join(f), torn.join(f)).unwrap();
    }
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(torn.join("manifest.json")).unwrap()).unwrap();
    m["iteration"] = 6.into();
    std::fs::write(torn.join("manifest.json"), m.to_string()).unwrap();
    let mut w = std::fs::read(torn.join("weights.safetensors")).unwrap();
    let n = w.len();
    w[n - 1] ^= 1;
    std::fs::write(torn.join("weights.safetensors"), w).unwrap();
    let stamp = std::fs::File::open(torn.join("state.json")).unwrap().metadata().unwrap().modified().unwrap();
    for d in [&torn, &ck.join("gen-4")] {
        for e in std::fs::read_dir(d).unwrap() {
            std::fs::File::options()
                .write(true)
                .open(e.unwrap().path())
                .unwrap()
                .set_modified(stamp)
                .unwrap();
        }
    }
    // A plain copy of the run (new modification times, another folder) resumes too.
    let copy = tmp.path().join("copy");
    assert!(Command::new("cp").arg("-r").arg(&run).arg(&copy).status().unwrap().success());
    // (A resumed run keeps its length unless --iterations extends it.)
    let o = pretrain(&cfg6, &data, &run, &["--resume", "--iterations", "6"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("skipping incomplete checkpoint"), "{}", text(&o));
    assert!(weights(&run) == weights(&reference));
    std::fs::remove_dir_all(copy.join("checkpoints/gen-6")).unwrap();
    let o = pretrain(&cfg6, &data, &copy, &["--resume", "--iterations", "6"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(weights(&copy) == weights(&reference));
}

/// Waits until `path` exists (the run has started), at most 60 s.
fn wait_for(path: &Path) {
    let t = Instant::now();
    while !path.exists() {
        assert!(t.elapsed() < Duration::from_secs(60), "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_run_folder_is_locked_existing_runs_are_kept_and_data_changes_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("images");
    make_images(&data, 6);
    let long = tiny_config(tmp.path(), 1_000_000);
    let run = tmp.path().join("run");
    let mut first =
        pretrain(&long, &data, &run, &[]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for(&run.join("metrics.jsonl"));
    let o = pretrain(&long, &data, &run, &["--force"]).output().unwrap();
    assert!(!o.status.success());
    let msg = text(&o);
    assert!(msg.contains("in use by another run") && msg.contains(&format!("pid {}", first.id())), "{msg}");
    first.kill().unwrap();
    first.wait().unwrap();
    // The folder holds a run: without --resume or --force it is refused, and a call that fails on
    // its input changes nothing in it.
    let before = snapshot(&run);
    let o = pretrain(&long, &data, &run, &[]).output().unwrap();
    assert!(!o.status.success() && text(&o).contains("already holds a run"), "{}", text(&o));
    assert!(snapshot(&run) == before, "a refused call changed the run folder");
    let o = pretrain(&long, &tmp.path().join("no-such-folder"), &run, &["--force"]).output().unwrap();
    assert!(!o.status.success() && text(&o).contains("no-such-folder"), "{}", text(&o));
    assert!(snapshot(&run) == before, "a call that failed on its input changed the run folder");
    // Resuming on other data is refused, naming both.
    let other = tmp.path().join("other");
    make_images(&other, 5);
    let o = pretrain(&long, &other, &run, &["--resume"]).output().unwrap();
    assert!(!o.status.success() && text(&o).contains("other data"), "{}", text(&o));
}

#[test]
fn sigterm_checkpoints_and_a_second_signal_exits_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("images");
    make_images(&data, 6);
    let long = tiny_config(tmp.path(), 1_000_000);
    // SIGTERM (or Ctrl-C) mid-run, then --resume: the weights of the uninterrupted run.
    let finite = tiny_config(tmp.path(), 400);
    let reference = tmp.path().join("reference");
    assert!(pretrain(&finite, &data, &reference, &[]).status().unwrap().success());
    for (sig, twice, code) in
        [(libc::SIGTERM, false, 143), (libc::SIGINT, false, 130), (libc::SIGINT, true, 130)]
    {
        let run = tmp.path().join(format!("run-{sig}-{twice}"));
        let cfg = if twice { &long } else { &finite };
        let child =
            pretrain(cfg, &data, &run, &[]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        wait_for(&run.join("metrics.jsonl"));
        let pid = child.id() as i32;
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, sig) };
        if twice {
            std::thread::sleep(Duration::from_millis(5));
            unsafe { libc::kill(pid, sig) };
        }
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(code), "signal {sig} twice={twice}: {:?} {}", o.status, text(&o));
        if !twice {
            assert!(text(&o).contains("checkpoint"), "{}", text(&o));
            let r = pretrain(cfg, &data, &run, &["--resume"]).output().unwrap();
            assert!(r.status.success(), "{}", text(&r));
            assert!(weights(&run) == weights(&reference), "signal {sig}: resumed weights differ");
        }
    }
}
