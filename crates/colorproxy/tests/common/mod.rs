//! Helpers shared by the binary's integration tests that drive run folders (`mod common;`).
#![allow(dead_code)] // each test file uses its own subset
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use colorproxy_nn::PretrainConfig;

/// The colorproxy binary, bars hidden, one libtorch thread, no fault injection.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_colorproxy"));
    c.env("CI", "1").env("OMP_NUM_THREADS", "1").env_remove("COLORPROXY_FAULT_AT");
    c
}

/// `pretrain --config CFG --data DATA --out OUT EXTRA...`.
pub fn pretrain(cfg: &Path, data: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = bin();
    c.arg("pretrain").arg("--config").arg(cfg).arg("--data").arg(data).arg("--out").arg(out).args(extra);
    c
}

/// A run's newest weights (`checkpoints/last.safetensors`).
pub fn weights(run: &Path) -> Vec<u8> {
    std::fs::read(run.join("checkpoints/last.safetensors")).unwrap()
}

/// stdout then stderr.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Every file under `dir` with its bytes.
pub fn snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// `n` colourful 100x100 PNGs.
pub fn make_images(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let img = image::RgbImage::from_fn(100, 100, |x, y| {
            image::Rgb([(x * 2 + i as u32 * 40) as u8, (y * 2) as u8, ((x + y + i as u32 * 17) % 256) as u8])
        });
        img.save(dir.join(format!("img{i}.png"))).unwrap();
    }
}

/// A tiny pretraining config: `iterations` steps, a checkpoint every 2.
pub fn tiny_config(dir: &Path, iterations: usize) -> PathBuf {
    let mut cfg = PretrainConfig::preset("cpu-small").unwrap();
    cfg.iterations = iterations;
    cfg.checkpoint_every = 2;
    cfg.snapshots = vec![];
    cfg.log_every = 1;
    cfg.model.width = 1.0 / 16.0;
    cfg.model.fc_channels = 16;
    cfg.model.head_hidden = 16;
    cfg.data.batch_size = 2;
    cfg.data.points = 8;
    cfg.data.workers = 1;
    cfg.optim.lr_drops = vec![];
    let p = dir.join(format!("tiny-{iterations}.toml"));
    std::fs::write(&p, cfg.to_toml()).unwrap();
    p
}

/// Child processes killed (and reaped) when the guard is dropped, however the test ends.
pub struct KillOnDrop(pub Vec<std::process::Child>);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
