//! Helpers shared by the binary's integration tests that drive run folders (`mod common;`).
#![allow(dead_code)] // each test file uses its own subset
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
