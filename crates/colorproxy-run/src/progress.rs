//! Progress bars (indicatif), hidden when stderr is not a terminal or under CI.
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

use colorproxy_nn::run_dir::TrainObserver;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use signal_hook::consts::{SIGINT, SIGTERM};

/// A bar over `len` items with a message prefix.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec} ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_prefix(what.to_string());
    if std::env::var_os("CI").is_some() {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb
}

/// Bars drawn together (runs side by side), hidden like [`bar`] under CI.
pub fn multi() -> MultiProgress {
    match std::env::var_os("CI") {
        Some(_) => MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
        None => MultiProgress::new(),
    }
}

/// A line above the bar on a terminal, on stderr when the bar is hidden (output redirected, CI).
pub fn note(pb: &ProgressBar, msg: &str) {
    if pb.is_hidden() {
        eprintln!("{msg}");
    } else {
        pb.println(msg);
    }
}

/// Shows a training loop's progress on a bar: position, loss and images/s, messages above it.
pub struct BarObserver(pub ProgressBar);

impl<M> TrainObserver<M> for BarObserver {
    fn start(&mut self, start: usize, total: usize) {
        self.0.set_length(total as u64);
        self.0.set_position(start as u64);
        self.0.reset_eta();
    }
    fn step(&mut self, it: usize, loss: f64, ips: f64) {
        self.0.set_position(it as u64);
        self.0.set_message(format!("loss {loss:.4} | {ips:.1} img/s"));
    }
    /// Above the bar on a terminal; on stderr when the bar is hidden (redirected output, CI), so
    /// that every skipped file is named whatever the terminal.
    fn message(&mut self, msg: &str) {
        note(&self.0, msg);
    }
}

/// A [`BarObserver`] whose messages name their run (runs side by side, each with its bar).
pub struct PrefixedBarObserver {
    pub inner: BarObserver,
    pub prefix: String,
}

impl<M> TrainObserver<M> for PrefixedBarObserver {
    fn start(&mut self, start: usize, total: usize) {
        TrainObserver::<M>::start(&mut self.inner, start, total)
    }
    fn step(&mut self, it: usize, loss: f64, ips: f64) {
        TrainObserver::<M>::step(&mut self.inner, it, loss, ips)
    }
    fn message(&mut self, msg: &str) {
        note(&self.inner.0, &format!("{}{msg}", self.prefix));
    }
}

static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// The interrupt flag of a training command. The first SIGINT (Ctrl-C) or SIGTERM (what Slurm,
/// Kubernetes and `timeout` send) sets it: the run writes a checkpoint after the current step and
/// the command exits with [`interrupt_exit_code`] (130 or 143). A second signal exits at once with
/// 128 + its number, without running destructors (the other threads may be inside libtorch);
/// checkpoints are replaced atomically, so none is left half-written.
pub fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    match signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
        Ok(mut signals) => {
            std::thread::spawn(move || {
                for sig in signals.forever() {
                    let name = if sig == SIGTERM { "SIGTERM" } else { "interrupt" };
                    if f.swap(true, Ordering::SeqCst) {
                        eprintln!("{name} again: exiting now (the last checkpoint is intact)");
                        // SAFETY: _exit ends the process at once; no Rust state is touched.
                        unsafe { libc::_exit(128 + sig) };
                    }
                    SIGNAL.store(sig, Ordering::SeqCst);
                    eprintln!(
                        "{name}: writing a checkpoint after the current step (send it again to exit now)"
                    );
                }
            });
        }
        Err(e) => eprintln!("warning: cannot install signal handlers ({e}); Ctrl-C will not checkpoint"),
    }
    flag
}

/// The exit status of a run stopped by a signal: 128 + the signal (130 for SIGINT, 143 for
/// SIGTERM).
pub fn interrupt_exit_code() -> i32 {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => 130,
        s => 128 + s,
    }
}
