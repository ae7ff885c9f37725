//! A run you can watch without a terminal: with its output to a file (a Slurm log), a pretraining
//! writes a progress line every `COLORPROXY_LOG_SECONDS`, read here while it still runs.
mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{make_images, pretrain, tiny_config, KillOnDrop};

#[test]
fn a_run_with_its_output_to_a_file_writes_progress_lines_while_it_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("images");
    make_images(&data, 6);
    let cfg = tiny_config(tmp.path(), 1_000_000);
    let log = tmp.path().join("slurm.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut child = KillOnDrop(vec![pretrain(&cfg, &data, &tmp.path().join("run"), &[])
        .env("COLORPROXY_LOG_SECONDS", "1")
        .stdout(Stdio::from(file.try_clone().unwrap()))
        .stderr(Stdio::from(file))
        .spawn()
        .unwrap()]);
    let t = Instant::now();
    let lines = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("pretrain ") && l.contains("/1000000 ("))
            .map(String::from)
            .collect();
        if lines.len() >= 2 {
            break lines;
        }
        assert!(t.elapsed() < Duration::from_secs(90), "no progress lines after 90 s:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(child.0[0].try_wait().unwrap().is_none(), "the run ended: the lines were not read while it ran");
    for l in &lines {
        for part in ["| loss ", "| lr 1.250e-3 |", " img/s | ", " elapsed, ETA "] {
            assert!(l.contains(part), "{part:?} missing in {l:?}");
        }
    }
    // One line a second, not one per step: the iterations between two lines are many.
    let iteration = |l: &str| l["pretrain ".len()..].split('/').next().unwrap().parse::<usize>().unwrap();
    assert!(iteration(&lines[1]) > iteration(&lines[0]));
}
