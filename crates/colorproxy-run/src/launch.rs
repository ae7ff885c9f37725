//! `colorproxy launch --nproc N -- COMMAND...`: a data-parallel job on one machine without
//! Python. Spawns N copies of this binary with torchrun's variables (RANK, WORLD_SIZE,
//! LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT), each in its own process
//! group so that a Ctrl-C reaches them once, through the launcher, which forwards SIGINT/SIGTERM
//! (the ranks checkpoint and stop together). If a rank fails, the others are stopped (SIGTERM,
//! then SIGKILL after a grace period) and the launcher exits non-zero naming the rank.
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::{bail, Context};

/// Seconds the other ranks get to stop after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(10);

fn free_port() -> crate::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on a child's pid; harmless if it already exited.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

fn describe(s: ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(sig)) => format!("signal {sig}{}", if sig == 9 { " (SIGKILL)" } else { "" }),
        _ => "an unknown status".into(),
    }
}

/// Runs `command` (colorproxy's arguments) as `nproc` ranks on this machine; returns when all
/// succeeded, fails naming the first rank that did not.
pub fn launch(nproc: usize, master_port: Option<u16>, command: &[String]) -> crate::Result<()> {
    if nproc == 0 {
        bail!("--nproc must be at least 1");
    }
    if command.is_empty() {
        bail!(
            "nothing to launch: give the command after --, e.g. colorproxy launch --nproc 2 -- pretrain ..."
        );
    }
    let exe = std::env::current_exe().context("locating the colorproxy binary")?;
    let port = match master_port {
        Some(p) => p,
        None => free_port()?,
    };
    let interrupt = crate::progress::interrupt_flag();
    let mut children: Vec<Child> = Vec::new();
    for rank in 0..nproc {
        let mut cmd = Command::new(&exe);
        cmd.args(command)
            .env("RANK", rank.to_string())
            .env("WORLD_SIZE", nproc.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("LOCAL_WORLD_SIZE", nproc.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string())
            .env_remove("TORCHELASTIC_USE_AGENT_STORE")
            .process_group(0);
        if std::env::var_os("OMP_NUM_THREADS").is_none() {
            // As torchrun: one libtorch thread per rank unless told otherwise.
            cmd.env("OMP_NUM_THREADS", "1");
        }
        children.push(cmd.spawn().with_context(|| format!("starting rank {rank}"))?);
    }
    eprintln!("launch: {} ranks on 127.0.0.1:{port}: {}", nproc, command.join(" "));
    let mut status: Vec<Option<ExitStatus>> = vec![None; children.len()];
    let mut forwarded = 0;
    loop {
        let flagged = interrupt.load(Ordering::SeqCst) as usize;
        if flagged > forwarded {
            for c in &children {
                signal(c, crate::progress::interrupt_exit_code() - 128);
            }
            forwarded = flagged;
        }
        for (r, c) in children.iter_mut().enumerate() {
            if status[r].is_none() {
                status[r] = c.try_wait().with_context(|| format!("waiting for rank {r}"))?;
            }
        }
        if let Some((r, s)) =
            status.iter().enumerate().find_map(|(r, s)| s.filter(|s| !s.success()).map(|s| (r, s)))
        {
            if status.iter().all(Option::is_some) {
                // All done; one or more failed (or all were interrupted together).
                if let Some(code) = s.code().filter(|c| *c == 130 || *c == 143) {
                    std::process::exit(code);
                }
                bail!("rank {r} failed with {}", describe(s));
            }
            if forwarded == 0 {
                eprintln!("launch: rank {r} ended with {}; stopping the other ranks", describe(s));
                stop_others(&mut children, &mut status);
                bail!("rank {r} failed with {}", describe(s));
            }
        }
        if status.iter().all(|s| s.is_some_and(|s| s.success())) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM to the ranks still running, SIGKILL to those still running after [`GRACE`].
fn stop_others(children: &mut [Child], status: &mut [Option<ExitStatus>]) {
    for (c, s) in children.iter().zip(status.iter()) {
        if s.is_none() {
            signal(c, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline && status.iter().any(Option::is_none) {
        for (c, s) in children.iter_mut().zip(status.iter_mut()) {
            if s.is_none() {
                *s = c.try_wait().ok().flatten();
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for (c, s) in children.iter_mut().zip(status.iter_mut()) {
        if s.is_none() {
            let _ = c.kill();
            *s = c.wait().ok();
        }
    }
}
