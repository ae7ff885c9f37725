//! One process's part of a training run, written once for every command that trains: the process
//! group of a data-parallel job (torchrun, Slurm or `colorproxy launch`), this rank's device, the
//! interrupt flag (SIGINT/SIGTERM checkpoint and stop), and rank 0's progress bar and messages
//! (the other ranks stay silent).
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use colorproxy_dist::{DistEnv, ProcessGroup};
use colorproxy_nn::run_dir::{Silent, TrainObserver};
use indicatif::ProgressBar;

use crate::progress::{self, BarObserver};
use crate::Context;

/// A process of a run: alone, or one rank of a data-parallel job.
pub struct Session {
    /// The job's process group (None: a single process).
    pub dist: Option<ProcessGroup>,
    /// This rank's device: `cuda:LOCAL_RANK` in a job on GPUs.
    pub device: tch::Device,
    /// Set by the first SIGINT or SIGTERM: the run checkpoints after the current step and stops.
    pub interrupt: Arc<AtomicBool>,
}

impl Session {
    /// Joins the job the environment describes (if any) on `device` (`cpu`, `cuda`, `cuda:N`;
    /// default: cuda if available) and installs the interrupt handlers.
    pub fn start(device: Option<&str>) -> crate::Result<Self> {
        let chosen = colorproxy_nn::parse_device(device)?;
        if device.is_none() && cfg!(feature = "cuda") && chosen == tch::Device::Cpu {
            eprintln!(
                "note: this is a CUDA build, but libtorch sees no usable GPU (check nvidia-smi, \
                 CUDA_VISIBLE_DEVICES and the driver); running on the CPU (--device cpu says so)"
            );
        }
        let (dist, device) = process_group(chosen)?;
        if let Some(pg) = &dist {
            // srun sets no OMP_NUM_THREADS: each rank takes its share of the CPUs.
            crate::threads::apply_for_rank(pg.rank(), pg.size());
        }
        if let Some(pg) = dist.as_ref().filter(|pg| pg.rank() != 0) {
            // One line per rank in a job's log (rank 0 reports progress; every rank its errors).
            eprintln!(
                "rank {} of {} on {}: joined over {}; rank 0 reports progress",
                pg.rank(),
                pg.size(),
                device_name(device),
                pg.backend()
            );
        }
        Ok(Self { dist, device, interrupt: progress::interrupt_flag() })
    }

    /// The device in words: `cpu`, `cuda:N`.
    pub fn device_name(&self) -> String {
        device_name(self.device)
    }

    /// A single process on `device` (the demo), with the interrupt handlers.
    pub fn local(device: tch::Device) -> Self {
        Self { dist: None, device, interrupt: progress::interrupt_flag() }
    }

    /// Rank 0 (or the only process): the one that prints, writes reports and shows progress.
    pub fn rank0(&self) -> bool {
        self.dist.as_ref().is_none_or(|pg| pg.rank() == 0)
    }

    /// A progress bar on rank 0, a hidden one elsewhere.
    pub fn bar(&self, len: usize, what: &str) -> ProgressBar {
        if self.rank0() {
            progress::bar(len as u64, what)
        } else {
            ProgressBar::hidden()
        }
    }

    /// A line above the bar, on rank 0 only.
    pub fn say(&self, pb: &ProgressBar, msg: &str) {
        if self.rank0() {
            pb.println(msg);
        }
    }

    /// The observer of a training loop: `pb` on rank 0, silence elsewhere.
    pub fn observer<M>(&self, pb: &ProgressBar) -> Box<dyn TrainObserver<M>> {
        if self.rank0() {
            Box::new(BarObserver::new(pb.clone()))
        } else {
            Box::new(Silent)
        }
    }

    /// After the training loop: on a rank other than 0, [`RunError::Interrupted`] if the run was
    /// interrupted and otherwise true (rank 0 alone reports); false on rank 0.
    ///
    /// [`RunError::Interrupted`]: crate::RunError::Interrupted
    pub fn other_rank_done(&self, interrupted: bool) -> crate::Result<bool> {
        if self.rank0() {
            return Ok(false);
        }
        if interrupted {
            return Err(interrupted_error());
        }
        Ok(true)
    }

    /// ` x N ranks (backend)` for a job, empty for a single process.
    pub fn describe(&self) -> String {
        self.dist.as_ref().map(|pg| format!(" x {} ranks ({})", pg.size(), pg.backend())).unwrap_or_default()
    }

    /// ` over gloo` / ` over nccl` for a job, empty for a single process.
    pub fn backend_note(&self) -> String {
        self.dist.as_ref().map(|pg| format!(" over {}", pg.backend())).unwrap_or_default()
    }
}

/// A device in words: `cpu`, `cuda:N`.
pub fn device_name(d: tch::Device) -> String {
    match d {
        tch::Device::Cuda(i) => format!("cuda:{i}"),
        tch::Device::Cpu => "cpu".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// The processes of the job the environment describes (torchrun, Slurm or `colorproxy launch`
/// variables), 1 outside one; read before joining it.
pub fn world_size() -> crate::Result<usize> {
    Ok(DistEnv::from_env()?.map_or(1, |e| e.world_size))
}

/// The error an interrupted run returns after writing its checkpoint: the binary exits with 130
/// (SIGINT) or 143 (SIGTERM), the Python package raises `KeyboardInterrupt`.
pub fn interrupted_error() -> crate::RunError {
    crate::RunError::Interrupted { code: progress::interrupt_exit_code() }
}

/// The process group of a data-parallel run (launched by torchrun, Slurm or `colorproxy
/// launch`), and the device of this rank: `cuda:LOCAL_RANK` when the run is on a GPU.
pub fn process_group(device: tch::Device) -> crate::Result<(Option<ProcessGroup>, tch::Device)> {
    let Some(env) = DistEnv::from_env()? else { return Ok((None, device)) };
    let (backend, device, cuda) = match device {
        tch::Device::Cuda(_) => ("nccl", tch::Device::Cuda(env.local_rank), Some(env.local_rank)),
        d => ("gloo", d, None),
    };
    let pg = ProcessGroup::new(backend, &env, env.timeout, cuda)
        .with_context(|| format!("joining the {}-rank job ({backend})", env.world_size))?;
    Ok((Some(pg), device))
}
