//! Shared build script of the crates that link libtorch (colorproxy-nn, colorproxy).
//!
//! - Adds an rpath to libtorch's `lib/` and to the CUDA runtime/CUPTI wheels beside it, so binaries
//!   and tests run without LD_LIBRARY_PATH. A machine without those folders (e.g. a GPU machine that
//!   got the binary carried to it) finds its own PyTorch libraries through LD_LIBRARY_PATH instead.
//! - With the `cuda` feature, force-links `libtorch_cuda` (`--no-as-needed`): without it the linker
//!   drops the library and CUDA is never initialised (tch-rs issue 980).
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=../../build/libtorch_link.rs");
    let Ok(libtorch) = std::env::var("LIBTORCH") else {
        return;
    };
    let root = PathBuf::from(&libtorch);
    let root = root.canonicalize().unwrap_or(root);
    let mut dirs = vec![root.join("lib")];
    if let Some(site) = root.parent() {
        for sub in ["nvidia/cu13/lib", "nvidia/cuda_runtime/lib", "nvidia/cuda_cupti/lib"] {
            let d = site.join(sub);
            if d.is_dir() {
                dirs.push(d);
            }
        }
    }
    for d in &dirs {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", d.display());
    }
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        println!("cargo:rustc-link-search=native={}", root.join("lib").display());
        // libtorch_cuda's own NVIDIA dependencies are resolved at run time, not at link time.
        println!("cargo:rustc-link-arg=-Wl,--allow-shlib-undefined");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,-ltorch,--as-needed");
    }
}
