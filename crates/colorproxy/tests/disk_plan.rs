//! The dry run says what a run will take on disk: within 10% of the folder the same run leaves,
//! for cpu-small and a full-width VGG-16 (3 iterations each).
mod common;

use std::path::Path;

use common::{bin, make_images, text};

/// Bytes of every file under `dir`.
fn folder_bytes(dir: &Path) -> u64 {
    common::snapshot(dir).values().map(|b| b.len() as u64).sum()
}

/// The `disk: about N MB` of a dry run's output, in bytes.
fn planned(out: &str) -> u64 {
    let n = out
        .split("disk: about ")
        .nth(1)
        .and_then(|r| r.split(" MB").next())
        .unwrap_or_else(|| panic!("{out}"));
    (n.parse::<f64>().unwrap() * 1e6) as u64
}

#[test]
fn the_dry_runs_disk_estimate_is_within_ten_percent_of_the_run_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("images");
    make_images(&data, 6);
    let vgg = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/torchvision-check/vgg16.toml");
    let full = ["--config", vgg.to_str().unwrap()];
    for (name, base) in [("cpu-small", &["--preset", "cpu-small"][..]), ("vgg16-full", &full[..])] {
        let run = tmp.path().join(name);
        let go = |extra: &[&str]| {
            let mut c = bin();
            c.arg("pretrain").args(base).args(["--iterations", "3", "--batch-size", "2", "--data"]);
            c.arg(&data).arg("--out").arg(&run).args(extra).output().unwrap()
        };
        let o = go(&["--dry-run"]);
        assert!(o.status.success(), "{name}: {}", text(&o));
        let plan = planned(&text(&o));
        if name == "cpu-small" {
            // One learning-rate line: the schedule states the rate the run uses.
            assert!(
                text(&o).contains("schedule: lr 0.00125 (0.01 x 0.125 by the batch rule)"),
                "{}",
                text(&o)
            );
            assert!(text(&o).contains("(after 3 warm-up steps)"), "{}", text(&o));
        }
        let o = go(&[]);
        assert!(o.status.success(), "{name}: {}", text(&o));
        let real = folder_bytes(&run);
        let off = (plan as f64 - real as f64).abs() / real as f64;
        assert!(
            off < 0.10,
            "{name}: planned {plan} bytes, the folder holds {real} ({:.1}% off)",
            100.0 * off
        );
    }
}
