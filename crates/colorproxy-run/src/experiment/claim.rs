//! Claims on runs, so that several processes (or Slurm array tasks) can run one recipe into the
//! same `--out` folder side by side: before a run starts, its process creates `RUN.claim`
//! (exclusively) holding its host name and process id, and removes it when the run ends, however
//! it ends. Another process skips a run whose claim is held by a live process; a claim left by a
//! process that died (`kill -9`, a node lost) on this host is taken over. A claim from another
//! host cannot be checked directly: its holder touches the file every [`HEARTBEAT`], and a claim
//! from another host untouched for [`STALE_AFTER`] is taken over (a requeued Slurm task on
//! another node finds its run again). Several workers of one process (`experiment run --workers`,
//! the demo) claim as themselves: a claim names its worker too.
use std::cell::Cell;
use std::io::Write;
use std::path::{Path, PathBuf};

/// How often a holder touches its claim file.
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(30);
/// A claim from another host untouched this long is stale (its holder is gone).
pub const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(300);

/// The claim file of a run folder: `RUN.claim` beside it.
pub fn claim_path(run_dir: &Path) -> PathBuf {
    let mut p = run_dir.as_os_str().to_owned();
    p.push(".claim");
    PathBuf::from(p)
}

thread_local! {
    /// The worker of this process that the current thread runs for (0: the process itself).
    static WORKER: Cell<u32> = const { Cell::new(0) };
}

/// The claim files this process holds now (any worker). A file naming this host and process id
/// that is not among them was left by an earlier process that had the same id (a restarted
/// container's pid 1): stale.
static HELD: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

fn held_here(path: &Path) -> bool {
    HELD.lock().map(|h| h.iter().any(|p| p == path)).unwrap_or(false)
}

/// Makes the current thread claim as worker `n` of this process (runs side by side in threads).
pub fn set_worker(n: u32) {
    WORKER.with(|w| w.set(n));
}

/// This machine's host name (`/proc/sys/kernel/hostname`, else `HOSTNAME`, else "localhost").
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Who holds a claim: host, process id and worker, as written in the claim file ("HOST PID
/// WORKER"; a file without the worker is worker 0's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    pub worker: u32,
}

impl Holder {
    fn me() -> Holder {
        Holder { host: host_name(), pid: std::process::id(), worker: WORKER.with(Cell::get) }
    }

    fn parse(text: &str) -> Option<Holder> {
        let mut it = text.split_whitespace();
        let host = it.next()?.to_string();
        let pid = it.next()?.parse().ok()?;
        let worker = it.next().map_or(Some(0), |w| w.parse().ok())?;
        Some(Holder { host, pid, worker })
    }

    /// Whether the holder may still be running: this process holding `path` now, a process of
    /// this host that exists, or a process of another host whose claim file (`path`) was touched
    /// within [`STALE_AFTER`].
    fn alive(&self, path: &Path) -> bool {
        if self.host == host_name() && self.pid == std::process::id() {
            return held_here(path);
        }
        if self.host != host_name() {
            let age = std::fs::metadata(path).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
            return age.is_none_or(|a| a < STALE_AFTER);
        }
        // SAFETY: kill with signal 0 only checks that the process exists (and may be signalled).
        let r = unsafe { libc::kill(self.pid as libc::pid_t, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "process {} on {}", self.pid, self.host)?;
        if self.worker > 0 {
            write!(f, " (worker {})", self.worker)?;
        }
        Ok(())
    }
}

/// A held claim; a thread touches the file every [`HEARTBEAT`]; dropping it removes the file.
#[derive(Debug)]
pub struct Claim {
    path: PathBuf,
    /// Who made it (the claim is removed on drop only while it still names them).
    holder: Holder,
    stop: Option<std::sync::mpsc::Sender<()>>,
    heartbeat: Option<std::thread::JoinHandle<()>>,
}

impl Claim {
    fn new(path: PathBuf, holder: Holder) -> Claim {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let p = path.clone();
        let heartbeat = std::thread::spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(HEARTBEAT) {
                if let Ok(f) = std::fs::OpenOptions::new().append(true).open(&p) {
                    let _ = f.set_modified(std::time::SystemTime::now());
                }
            }
        });
        if let Ok(mut h) = HELD.lock() {
            h.push(path.clone());
        }
        Claim { path, holder, stop: Some(stop), heartbeat: Some(heartbeat) }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
        if let Ok(mut h) = HELD.lock() {
            if let Some(i) = h.iter().position(|p| *p == self.path) {
                h.swap_remove(i);
            }
        }
        // Only our own claim is removed (a stale-claim takeover by another process rewrote it).
        if std::fs::read_to_string(&self.path).ok().and_then(|t| Holder::parse(&t)).as_ref()
            == Some(&self.holder)
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The outcome of trying to claim a run.
#[derive(Debug)]
pub enum Outcome {
    /// This process holds the run until the claim is dropped.
    Held(Claim),
    /// Another live process holds it.
    Busy(Holder),
}

/// The live holder of a run's claim other than this worker of this process, if any.
pub fn holder(run_dir: &Path) -> Option<Holder> {
    let text = std::fs::read_to_string(claim_path(run_dir)).ok()?;
    Holder::parse(&text).filter(|h| h.alive(&claim_path(run_dir)) && *h != Holder::me())
}

/// Claims a run: creates `RUN.claim` exclusively, or takes over a claim whose holder is dead
/// (or unreadable: a process killed while writing it).
pub fn claim(run_dir: &Path) -> std::io::Result<Outcome> {
    let path = claim_path(run_dir);
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let me = Holder::me();
    for _ in 0..3 {
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                writeln!(f, "{} {} {}", me.host, me.pid, me.worker)?;
                f.sync_all()?;
                return Ok(Outcome::Held(Claim::new(path, me)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                match Holder::parse(&text) {
                    Some(h) if h == me => return Ok(Outcome::Held(Claim::new(path, me))),
                    Some(h) if h.alive(&path) => return Ok(Outcome::Busy(h)),
                    // Stale: its process is gone. Remove it and try again (two processes taking
                    // over at once: one creates the file, the other finds it held).
                    _ => {
                        let _ = std::fs::remove_file(&path);
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
    // Still contended after three takeovers: someone else is claiming it right now.
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    Ok(Holder::parse(&text)
        .map_or_else(|| Outcome::Busy(Holder { host: "?".into(), pid: 0, worker: 0 }), Outcome::Busy))
}

/// Claims `path`, waiting while another live process holds it (polling every second): for steps
/// every process needs done once, such as generating a data set, or not twice at a time, such
/// as writing the tables.
pub fn wait_for(path: &Path, what: &str) -> std::io::Result<Claim> {
    let mut told = false;
    loop {
        match claim(path)? {
            Outcome::Held(c) => return Ok(c),
            Outcome::Busy(h) => {
                if !told {
                    eprintln!("waiting for {h}: {what}");
                    told = true;
                }
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("colorproxy-claim-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d.join("run-a")
    }

    #[test]
    fn a_claim_is_exclusive_and_released_on_drop() {
        let run = tmp("exclusive");
        let c = match claim(&run).unwrap() {
            Outcome::Held(c) => c,
            Outcome::Busy(h) => panic!("busy: {h}"),
        };
        assert!(claim_path(&run).is_file());
        // A live holder of this host (pid 1 exists in any Linux pid namespace).
        std::fs::write(claim_path(&run), format!("{} 1\n", host_name())).unwrap();
        assert!(matches!(claim(&run).unwrap(), Outcome::Busy(Holder { pid: 1, .. })));
        assert_eq!(holder(&run).map(|h| h.pid), Some(1));
        // Not ours any more: dropping leaves the other holder's file.
        drop(c);
        assert!(claim_path(&run).is_file());
        std::fs::write(claim_path(&run), format!("{} {}\n", host_name(), std::process::id())).unwrap();
        let c = claim(&run).unwrap();
        assert!(matches!(c, Outcome::Held(_)));
        drop(c);
        assert!(!claim_path(&run).exists(), "our claim is removed on drop");
    }

    #[test]
    fn workers_of_one_process_claim_as_themselves() {
        let run = tmp("workers");
        let c = match claim(&run).unwrap() {
            Outcome::Held(c) => c,
            Outcome::Busy(h) => panic!("busy: {h}"),
        };
        let other = std::thread::spawn({
            let run = run.clone();
            move || {
                set_worker(2);
                let busy = matches!(claim(&run).unwrap(), Outcome::Busy(Holder { worker: 0, .. }));
                (busy, holder(&run).map(|h| h.worker))
            }
        });
        assert_eq!(other.join().unwrap(), (true, Some(0)), "worker 2 sees worker 0's claim as held");
        assert!(holder(&run).is_none(), "a worker's own claim has no other holder");
        drop(c);
        assert!(!claim_path(&run).exists());
        // A claim naming this process's id and another worker that this process does not hold
        // was left by an earlier process with the same id (a restarted container): taken over.
        std::fs::write(claim_path(&run), format!("{} {} 5\n", host_name(), std::process::id())).unwrap();
        assert!(holder(&run).is_none());
        assert!(matches!(claim(&run).unwrap(), Outcome::Held(_)));
        // A file of the format before workers ("HOST PID") is worker 0's.
        let h = Holder::parse("node7 42\n").unwrap();
        assert_eq!((h.host.as_str(), h.pid, h.worker), ("node7", 42, 0));
        assert_eq!(Holder::parse("node7 42 3").map(|h| h.worker), Some(3));
        assert!(Holder::parse("node7 42 x").is_none());
    }

    #[test]
    fn a_dead_holders_claim_is_taken_over_another_hosts_is_respected_while_touched() {
        let run = tmp("stale");
        // A process that has exited: its pid is free (the child is reaped by wait).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        std::fs::write(claim_path(&run), format!("{} {dead}\n", host_name())).unwrap();
        assert!(holder(&run).is_none());
        match claim(&run).unwrap() {
            Outcome::Held(c) => drop(c),
            Outcome::Busy(h) => panic!("a dead process's claim was kept: {h}"),
        }
        // Garbage (a process killed while writing): taken over too.
        std::fs::write(claim_path(&run), "").unwrap();
        assert!(matches!(claim(&run).unwrap(), Outcome::Held(_)));
        // Another host's claim: held while touched, taken over once untouched for STALE_AFTER.
        std::fs::write(claim_path(&run), "some-other-host 12345\n").unwrap();
        assert!(matches!(claim(&run).unwrap(), Outcome::Busy(Holder { pid: 12345, .. })));
        let old = std::time::SystemTime::now() - STALE_AFTER - std::time::Duration::from_secs(1);
        std::fs::File::options().append(true).open(claim_path(&run)).unwrap().set_modified(old).unwrap();
        assert!(holder(&run).is_none());
        assert!(matches!(claim(&run).unwrap(), Outcome::Held(_)));
    }
}
