//! Ranks started the way `srun` starts them, without `OMP_NUM_THREADS`, on a 2-CPU affinity mask:
//! each takes its share of the CPUs (1 intra-op thread), says so, and trains.
mod common;

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use common::{make_images, tiny_config, KillOnDrop};

#[test]
fn srun_style_ranks_without_omp_num_threads_take_their_share_of_the_cpus() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("images");
    make_images(&data, 6);
    let cfg = tiny_config(tmp.path(), 4);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let spawn = |rank: usize| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_colorproxy"));
        c.arg("pretrain")
            .arg("--config")
            .arg(&cfg)
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(tmp.path().join("run"))
            .env_remove("OMP_NUM_THREADS")
            .env_remove("RANK")
            .env_remove("WORLD_SIZE")
            .env_remove("LOCAL_RANK")
            .env_remove("LOCAL_WORLD_SIZE")
            .env_remove("SLURM_CPUS_PER_TASK")
            .env_remove("SLURM_NTASKS_PER_NODE")
            .envs([
                ("SLURM_PROCID", rank.to_string()),
                ("SLURM_NTASKS", "2".into()),
                ("SLURM_LOCALID", rank.to_string()),
                ("SLURM_STEP_TASKS_PER_NODE", "2".into()),
                ("MASTER_ADDR", "127.0.0.1".into()),
                ("MASTER_PORT", port.to_string()),
                ("COLORPROXY_DIST_TIMEOUT", "60".into()),
                ("CI", "1".into()),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: sched_setaffinity in the child between fork and exec: CPUs 0 and 1.
        unsafe {
            c.pre_exec(|| {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(0, &mut set);
                libc::CPU_SET(1, &mut set);
                // A machine with one CPU keeps its mask (the share is then 1 all the same).
                let _ = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
                Ok(())
            });
        }
        c.spawn().unwrap()
    };
    let mut ranks = KillOnDrop(vec![spawn(0), spawn(1)]);
    let mut outputs = vec![];
    for child in ranks.0.drain(..) {
        outputs.push(child.wait_with_output().unwrap());
    }
    for (rank, o) in outputs.iter().enumerate() {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "rank {rank}: {err}");
        let want = format!("rank {rank}: 1 intra-op thread(s) (");
        assert!(err.contains(&want), "rank {rank}: {err}");
        assert!(err.contains("ranks on this machine (Slurm's tasks per node)"), "rank {rank}: {err}");
    }
    assert!(String::from_utf8_lossy(&outputs[0].stdout).contains("done at iteration 4"));
}
