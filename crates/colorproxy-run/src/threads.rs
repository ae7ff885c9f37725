//! libtorch's intra-op threads of one rank when several ranks share a machine. `torchrun` and
//! `colorproxy launch` set `OMP_NUM_THREADS` for their ranks; `srun` does not, and without it each
//! rank starts a thread per CPU on the same cores (2 ranks on 2 cores trained 7.5x slower). A rank
//! then takes its share: `SLURM_CPUS_PER_TASK` when Slurm gives it, else the CPUs it may run on
//! (its affinity mask) divided by the ranks on this machine.
use std::collections::HashMap;

/// What a rank runs with, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankThreads {
    /// Intra-op threads.
    pub threads: usize,
    /// How they were chosen, e.g. `2 CPUs allowed / 2 ranks on this machine`.
    pub why: String,
    /// More ranks on this machine than CPUs they may use.
    pub oversubscribed: bool,
}

/// The first count of a Slurm task list such as `4(x2),3` (tasks on this job's first nodes).
fn first_count(v: &str) -> Option<usize> {
    v.split([',', '(']).next()?.trim().parse().ok()
}

/// The ranks of a job of `world_size` on this machine: `LOCAL_WORLD_SIZE` (torchrun), Slurm's
/// tasks per node, else the job's ranks spread over `SLURM_NNODES` nodes, else all of them.
fn local_ranks(vars: &HashMap<String, String>, world_size: usize) -> (usize, &'static str) {
    let num = |k: &str| vars.get(k).and_then(|v| v.trim().parse::<usize>().ok()).filter(|&n| n > 0);
    if let Some(n) = num("LOCAL_WORLD_SIZE") {
        return (n, "LOCAL_WORLD_SIZE");
    }
    if let Some(n) = num("SLURM_NTASKS_PER_NODE") {
        return (n, "SLURM_NTASKS_PER_NODE");
    }
    for k in ["SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE"] {
        if let Some(n) = vars.get(k).and_then(|v| first_count(v)).filter(|&n| n > 0) {
            return (n, "Slurm's tasks per node");
        }
    }
    if let Some(nodes) = num("SLURM_NNODES").or(num("SLURM_JOB_NUM_NODES")) {
        return (world_size.div_ceil(nodes), "the job's ranks over its nodes");
    }
    (world_size, "all ranks assumed on this machine")
}

/// The threads of a rank of a `world_size`-rank job that may run on `allowed_cpus` CPUs; `None`
/// when `OMP_NUM_THREADS` is set (the user's or the launcher's choice stands) or the process runs
/// alone.
pub fn rank_threads(
    vars: &HashMap<String, String>,
    world_size: usize,
    allowed_cpus: usize,
) -> Option<RankThreads> {
    if world_size < 2 || vars.get("OMP_NUM_THREADS").is_some_and(|v| !v.trim().is_empty()) {
        return None;
    }
    let allowed = allowed_cpus.max(1);
    let (local, from) = local_ranks(vars, world_size);
    let per_task =
        vars.get("SLURM_CPUS_PER_TASK").and_then(|v| v.trim().parse::<usize>().ok()).filter(|&n| n > 0);
    let (threads, why) = match per_task {
        Some(n) => (n.min(allowed), format!("SLURM_CPUS_PER_TASK={n}, {allowed} CPUs allowed")),
        None => (
            (allowed / local).max(1),
            format!("{allowed} CPUs allowed / {local} ranks on this machine ({from})"),
        ),
    };
    Some(RankThreads { threads, why, oversubscribed: per_task.is_none() && local > allowed })
}

/// The CPUs this process may run on (its affinity mask), else the machine's.
pub fn allowed_cpus() -> usize {
    // SAFETY: sched_getaffinity fills the zeroed set it is given; CPU_COUNT reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            return (libc::CPU_COUNT(&set) as usize).max(1);
        }
    }
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// For a rank of a `world_size`-rank job: sets libtorch's intra-op threads to the rank's share
/// and says so on stderr (with a warning when the machine is oversubscribed).
pub fn apply_for_rank(rank: usize, world_size: usize) {
    let vars: HashMap<String, String> = std::env::vars().collect();
    let Some(t) = rank_threads(&vars, world_size, allowed_cpus()) else { return };
    tch::set_num_threads(t.threads as i32);
    eprintln!(
        "rank {rank}: {} intra-op thread(s) ({}; OMP_NUM_THREADS unset; set it to choose)",
        tch::get_num_threads(),
        t.why
    );
    if t.oversubscribed {
        eprintln!(
            "warning: rank {rank}: more ranks on this machine than CPUs they may use; training will be slow \
             (srun --cpus-per-task, fewer tasks per node)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn each_rank_takes_its_share_of_the_cpus_it_may_use() {
        // srun, 2 tasks on a 2-CPU machine, no OMP_NUM_THREADS: 1 each.
        let srun = vars(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "2"), ("SLURM_STEP_TASKS_PER_NODE", "2")]);
        let t = rank_threads(&srun, 2, 2).unwrap();
        assert_eq!((t.threads, t.oversubscribed), (1, false));
        // 8 tasks over 2 nodes of 32 CPUs: 4 per node, 8 threads each.
        let two = vars(&[("SLURM_NTASKS", "8"), ("SLURM_TASKS_PER_NODE", "4(x2)")]);
        assert_eq!(rank_threads(&two, 8, 32).unwrap().threads, 8);
        let nodes = vars(&[("SLURM_NTASKS", "8"), ("SLURM_NNODES", "2")]);
        assert_eq!(rank_threads(&nodes, 8, 32).unwrap().threads, 8);
        // --cpus-per-task wins (within the mask).
        let cpt = vars(&[("SLURM_CPUS_PER_TASK", "6"), ("SLURM_NTASKS_PER_NODE", "4")]);
        assert_eq!(rank_threads(&cpt, 8, 32).unwrap().threads, 6);
        assert_eq!(rank_threads(&cpt, 8, 4).unwrap().threads, 4);
        // More ranks than CPUs: 1 each, and said.
        let t = rank_threads(&vars(&[("LOCAL_WORLD_SIZE", "4")]), 4, 2).unwrap();
        assert_eq!((t.threads, t.oversubscribed), (1, true));
        // OMP_NUM_THREADS set, or one process: left alone.
        assert_eq!(rank_threads(&vars(&[("OMP_NUM_THREADS", "3")]), 2, 2), None);
        assert_eq!(rank_threads(&vars(&[]), 1, 2), None);
    }
}
