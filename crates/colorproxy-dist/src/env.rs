//! Who this process is in a distributed job, from the variables its launcher set:
//!
//! - torchrun (and `colorproxy launch`): `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`,
//!   `MASTER_PORT`; with `TORCHELASTIC_USE_AGENT_STORE=True` torchrun's agent hosts the TCPStore
//!   and keys live under `/worker/attempt_<TORCHELASTIC_RESTART_COUNT>`.
//! - Slurm (`srun colorproxy ...`): `SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_LOCALID`, with
//!   `MASTER_ADDR` / `MASTER_PORT` exported by the batch script.
//!
//! `COLORPROXY_DIST_TIMEOUT` (seconds, default 300) bounds the rendezvous and every collective.
use std::collections::HashMap;
use std::time::Duration;

use crate::DistError;

/// Which launcher's variables were found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launcher {
    /// torchrun or `colorproxy launch` (the same variables).
    Torchrun,
    Slurm,
}

/// This process's place in the job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistEnv {
    pub rank: usize,
    pub world_size: usize,
    /// The rank on this machine (the GPU it uses).
    pub local_rank: usize,
    pub master_addr: String,
    pub master_port: u16,
    /// torchrun's agent hosts the store (`TORCHELASTIC_USE_AGENT_STORE=True`).
    pub agent_store: bool,
    pub restart_count: u32,
    pub launcher: Launcher,
    pub timeout: Duration,
}

/// The default timeout of the rendezvous and of every collective.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

impl DistEnv {
    /// From the process environment: `None` for a single process (no launcher variables, or a
    /// world of 1).
    pub fn from_env() -> Result<Option<Self>, DistError> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// From a variable map (testable without touching the process environment).
    pub fn from_vars(v: &HashMap<String, String>) -> Result<Option<Self>, DistError> {
        let get = |k: &str| v.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
        let num = |k: &str| -> Result<Option<usize>, DistError> {
            get(k)
                .map(|s| s.parse::<usize>().map_err(|_| DistError::Env(format!("{k}={s:?} is not a number"))))
                .transpose()
        };
        let (launcher, rank, world, local) = if get("WORLD_SIZE").is_some() || get("RANK").is_some() {
            let world = num("WORLD_SIZE")?
                .ok_or_else(|| DistError::Env("RANK is set but WORLD_SIZE is not".into()))?;
            let rank =
                num("RANK")?.ok_or_else(|| DistError::Env("WORLD_SIZE is set but RANK is not".into()))?;
            (Launcher::Torchrun, rank, world, num("LOCAL_RANK")?.unwrap_or(rank))
        } else if let Some(world) = num("SLURM_NTASKS")? {
            let rank = num("SLURM_PROCID")?
                .ok_or_else(|| DistError::Env("SLURM_NTASKS without SLURM_PROCID".into()))?;
            (Launcher::Slurm, rank, world, num("SLURM_LOCALID")?.unwrap_or(0))
        } else {
            return Ok(None);
        };
        // A world of 1 is a group only when a launcher set a rendezvous (torchrun / `launch
        // --nproc 1`: the same code path as N ranks); a 1-task Slurm job is a plain process.
        if world == 0 || (world == 1 && (launcher == Launcher::Slurm || get("MASTER_PORT").is_none())) {
            return Ok(None);
        }
        if rank >= world {
            return Err(DistError::Env(format!("rank {rank} is not below the world size {world}")));
        }
        let hint = match launcher {
            Launcher::Slurm => " (in the batch script: export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n1) MASTER_PORT=29500)",
            Launcher::Torchrun => "",
        };
        let master_addr = get("MASTER_ADDR")
            .map(str::to_string)
            .ok_or_else(|| DistError::Env(format!("MASTER_ADDR is not set{hint}")))?;
        let master_port = get("MASTER_PORT")
            .ok_or_else(|| DistError::Env(format!("MASTER_PORT is not set{hint}")))?
            .parse::<u16>()
            .map_err(|_| DistError::Env("MASTER_PORT is not a port number".into()))?;
        let timeout = match get("COLORPROXY_DIST_TIMEOUT") {
            Some(s) => Duration::from_secs_f64(
                s.parse::<f64>().ok().filter(|t| *t > 0.0 && t.is_finite()).ok_or_else(|| {
                    DistError::Env(format!("COLORPROXY_DIST_TIMEOUT={s:?}: expected seconds > 0"))
                })?,
            ),
            None => DEFAULT_TIMEOUT,
        };
        Ok(Some(Self {
            rank,
            world_size: world,
            local_rank: local,
            master_addr,
            master_port,
            agent_store: get("TORCHELASTIC_USE_AGENT_STORE") == Some("True"),
            restart_count: num("TORCHELASTIC_RESTART_COUNT")?.unwrap_or(0) as u32,
            launcher,
            timeout,
        }))
    }

    /// Rank 0 hosts the TCPStore unless torchrun's agent does.
    pub fn hosts_store(&self) -> bool {
        self.rank == 0 && !self.agent_store
    }

    /// The store key prefix: torchrun's `/worker/attempt_<n>` with its agent store, else none.
    pub fn store_prefix(&self) -> String {
        if self.agent_store {
            format!("/worker/attempt_{}", self.restart_count)
        } else {
            String::new()
        }
    }

    /// Rank `rank`'s share of a global batch of `batch` images: slots `[start, end)`. The
    /// global batch must divide evenly, so every rank's gradient has the same weight.
    pub fn shard(&self, batch: usize) -> Result<std::ops::Range<usize>, DistError> {
        if !batch.is_multiple_of(self.world_size) {
            return Err(DistError::Env(format!(
                "the global batch of {batch} images does not split evenly over {} ranks",
                self.world_size
            )));
        }
        let per = batch / self.world_size;
        Ok(self.rank * per..(self.rank + 1) * per)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn torchrun_slurm_and_single_process() {
        assert_eq!(DistEnv::from_vars(&vars(&[])).unwrap(), None);
        assert_eq!(DistEnv::from_vars(&vars(&[("RANK", "0"), ("WORLD_SIZE", "1")])).unwrap(), None);
        let one =
            [("RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29500")];
        assert_eq!(DistEnv::from_vars(&vars(&one)).unwrap().unwrap().world_size, 1);
        assert_eq!(DistEnv::from_vars(&vars(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "1")])).unwrap(), None);
        let t = DistEnv::from_vars(&vars(&[
            ("RANK", "3"),
            ("WORLD_SIZE", "8"),
            ("LOCAL_RANK", "1"),
            ("MASTER_ADDR", "node0"),
            ("MASTER_PORT", "29500"),
            ("TORCHELASTIC_USE_AGENT_STORE", "True"),
            ("TORCHELASTIC_RESTART_COUNT", "2"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!((t.rank, t.world_size, t.local_rank, t.master_port), (3, 8, 1, 29500));
        assert!(!t.hosts_store() && t.store_prefix() == "/worker/attempt_2");
        assert_eq!(t.shard(64).unwrap(), 24..32);
        assert!(t.shard(60).is_err());
        let s = DistEnv::from_vars(&vars(&[
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "16"),
            ("SLURM_LOCALID", "0"),
            ("MASTER_ADDR", "n1"),
            ("MASTER_PORT", "1234"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!((s.launcher, s.rank, s.world_size), (Launcher::Slurm, 0, 16));
        assert!(s.hosts_store() && s.store_prefix().is_empty());
        let e = DistEnv::from_vars(&vars(&[("SLURM_PROCID", "1"), ("SLURM_NTASKS", "2")])).unwrap_err();
        assert!(e.to_string().contains("MASTER_ADDR") && e.to_string().contains("scontrol"), "{e}");
        let e = DistEnv::from_vars(&vars(&[("RANK", "2"), ("WORLD_SIZE", "2")])).unwrap_err();
        assert!(e.to_string().contains("not below"), "{e}");
    }
}
