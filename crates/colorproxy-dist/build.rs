//! Builds the c10d shim (csrc/, adapted from ../shared/reference/c10d-from-tch) against the
//! libtorch that tch links (env LIBTORCH, set by the workspace's .cargo/config.toml to .libtorch).
//!
//! - C++17, the wheel's C++ ABI (`-D_GLIBCXX_USE_CXX11_ABI=1`, override: LIBTORCH_CXX11_ABI=0).
//! - `-DUSE_C10D_GLOO`: ProcessGroupGloo.hpp is `#ifdef USE_C10D_GLOO`; it includes gloo headers,
//!   which the PyPI wheel does not ship, so third_party/gloo-include provides them (header-only
//!   copy of pytorch/gloo + hand-written config.h). The Gloo code that runs is libtorch_cpu.so's.
//! - Feature `nccl`: also compiles csrc/c10d_nccl.cpp with `-DUSE_C10D_NCCL -DUSE_CUDA`, the CUDA
//!   headers (CUDA_INCLUDE path list, or site-packages/nvidia/cu13/include + .deps/*) and nccl.h
//!   (NCCL_INCLUDE, or site-packages/nvidia/nccl/include), and force-links libtorch_cuda.
//! - Adds an rpath to libtorch's lib/ (and the CUDA wheels' lib/ dirs).
use std::path::{Path, PathBuf};

fn first_dir(cands: &[PathBuf]) -> Option<PathBuf> {
    cands.iter().find(|d| d.is_dir()).cloned()
}

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    println!("cargo:rerun-if-env-changed=NCCL_INCLUDE");
    println!("cargo:rerun-if-env-changed=CUDA_INCLUDE");
    for f in [
        "csrc/c10d_shim.h",
        "csrc/c10d_shim.cpp",
        "csrc/c10d_sync_bn.cpp",
        "csrc/c10d_nccl.cpp",
        "third_party/gloo-include",
    ] {
        println!("cargo:rerun-if-changed={f}");
    }

    let Ok(libtorch) = std::env::var("LIBTORCH") else {
        panic!("colorproxy-dist: LIBTORCH is not set (run scripts/setup.sh: .cargo/config.toml points it at .libtorch)");
    };
    let root = PathBuf::from(&libtorch);
    let root = root.canonicalize().unwrap_or(root);
    let lib = root.join("lib");
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let nccl = std::env::var_os("CARGO_FEATURE_NCCL").is_some();
    let site = root.parent().map(Path::to_path_buf);

    let mut b = cc::Build::new();
    b.cpp(true)
        .pic(true)
        .warnings(false)
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .define("USE_C10D_GLOO", None)
        .define("GLOG_USE_GLOG_EXPORT", None)
        .flag_if_supported("-w")
        .include(manifest.join("csrc"))
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .include(manifest.join("third_party/gloo-include"))
        .file("csrc/c10d_shim.cpp")
        .file("csrc/c10d_sync_bn.cpp");

    if nccl {
        // ProcessGroupNCCL.hpp pulls in ATen/cuda/CUDAContext.h, i.e. cuda_runtime_api.h,
        // crt/host_config.h, nv/target (CCCL), cusparse.h, cublas_v2.h, cublasLt.h, cusolverDn.h,
        // plus nccl.h. With the cu13 PyPI wheels these all land in site-packages/nvidia/cu13/include
        // (torch's own deps bring cudart/cublas/cusparse/cusolver; crt and cccl are extra:
        // `pip install nvidia-cuda-crt==13.0.88 nvidia-cuda-cccl==13.0.85`), nccl.h in
        // site-packages/nvidia/nccl/include (nvidia-nccl-cu13==2.28.9, a torch dep).
        let mut incs: Vec<PathBuf> = match std::env::var_os("CUDA_INCLUDE") {
            Some(v) => std::env::split_paths(&v).collect(),
            None => {
                let mut c = Vec::new();
                if let Some(s) = &site {
                    c.push(s.join("nvidia/cu13/include"));
                    c.push(s.join("nvidia/cuda_runtime/include"));
                }
                for d in ["crt", "cccl", "cudahdr"] {
                    c.push(manifest.join(".deps").join(d).join("nvidia/cu13/include"));
                }
                c.into_iter().filter(|d| d.is_dir()).collect()
            }
        };
        match std::env::var_os("NCCL_INCLUDE") {
            Some(v) => incs.extend(std::env::split_paths(&v)),
            None => {
                let mut c = vec![manifest.join(".deps/nccl/nvidia/nccl/include")];
                if let Some(s) = &site {
                    c.insert(0, s.join("nvidia/nccl/include"));
                }
                incs.extend(first_dir(&c));
            }
        }
        for h in [
            "cuda_runtime_api.h",
            "crt/host_config.h",
            "nv/target",
            "cusparse.h",
            "cublas_v2.h",
            "cusolverDn.h",
            "nccl.h",
        ] {
            if !incs.iter().any(|d| d.join(h).exists()) {
                panic!(
                    "feature nccl: {h} not found in {incs:?}; set CUDA_INCLUDE / NCCL_INCLUDE (path lists)"
                );
            }
        }
        b.define("C10D_SHIM_NCCL", None)
            .define("USE_C10D_NCCL", None)
            .define("USE_CUDA", None)
            .includes(&incs)
            .file("csrc/c10d_nccl.cpp");
    }
    b.compile("c10d_shim");

    // The shim's references into libtorch: keep these after the static shim in link order.
    println!("cargo:rustc-link-search=native={}", lib.display());
    if nccl {
        // libtorch_cuda's own NVIDIA deps (libnccl.so.2, cudart, ...) resolve at run time.
        println!("cargo:rustc-link-arg=-Wl,--allow-shlib-undefined");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,-lc10_cuda,--as-needed");
        // Link args of a library's build script do not reach the final binary; libraries do.
        println!("cargo:rustc-link-lib=dylib=torch_cuda");
        println!("cargo:rustc-link-lib=dylib=c10_cuda");
    }
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");

    let mut rpaths = vec![lib];
    if let Some(s) = &site {
        for sub in ["nvidia/cu13/lib", "nvidia/cuda_runtime/lib", "nvidia/cuda_cupti/lib", "nvidia/nccl/lib"]
        {
            if s.join(sub).is_dir() {
                rpaths.push(s.join(sub));
            }
        }
    }
    for d in rpaths {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", d.display());
    }
}
