//! Progress bars (indicatif), hidden when stderr is not a terminal or under CI.
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Once, OnceLock};
use std::time::{Duration, Instant};

use colorproxy_nn::run_dir::TrainObserver;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

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
        return pb;
    }
    // Bars of runs side by side in one process (`experiment run --workers`, the demo) stack.
    static BARS: OnceLock<MultiProgress> = OnceLock::new();
    BARS.get_or_init(MultiProgress::new).add(pb)
}

/// A line above the bar on a terminal, on stderr when the bar is hidden (output redirected, CI).
pub fn note(pb: &ProgressBar, msg: &str) {
    if pb.is_hidden() {
        eprintln!("{msg}");
    } else {
        pb.println(msg);
    }
}

/// Seconds between progress lines where there is no terminal (`COLORPROXY_LOG_SECONDS`, default
/// 30; 0 turns them off).
pub fn log_period() -> Option<Duration> {
    let secs = std::env::var("COLORPROXY_LOG_SECONDS")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(30.0);
    (secs.is_finite() && secs > 0.0).then(|| Duration::from_secs_f64(secs))
}

/// `1h02m03s` style.
pub fn hms(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec:02}s"),
        (h, m, sec) => format!("{h}h{m:02}m{sec:02}s"),
    }
}

/// Shows a training loop's progress on a bar: position, loss and images/s, messages above it.
/// Where the bar is hidden (output to a file, as in a Slurm log, or CI), a line every
/// [`log_period`] says the iteration, loss, learning rate, images/s and ETA instead.
pub struct BarObserver {
    pb: ProgressBar,
    lines: Option<Duration>,
    /// (start iteration, total, when started, last line).
    span: (usize, usize, Instant, Instant),
    lr: Option<f64>,
}

impl BarObserver {
    pub fn new(pb: ProgressBar) -> Self {
        let now = Instant::now();
        Self { pb, lines: log_period(), span: (0, 0, now, now), lr: None }
    }

    /// The progress line of iteration `it` (without a terminal).
    fn line(&self, it: usize, loss: f64, ips: f64) -> String {
        let (start, total, t0, _) = self.span;
        let elapsed = t0.elapsed().as_secs_f64();
        let done = it.saturating_sub(start).max(1) as f64;
        let eta = elapsed / done * total.saturating_sub(it) as f64;
        let lr = self.lr.map(|l| format!(" | lr {l:.3e}")).unwrap_or_default();
        format!(
            "{} {it}/{total} ({:.1}%) | loss {loss:.4}{lr} | {ips:.1} img/s | {} elapsed, ETA {}",
            self.pb.prefix(),
            100.0 * it as f64 / total.max(1) as f64,
            hms(elapsed),
            hms(eta)
        )
    }
}

impl<M> TrainObserver<M> for BarObserver {
    fn start(&mut self, start: usize, total: usize) {
        self.pb.set_length(total as u64);
        self.pb.set_position(start as u64);
        self.pb.reset_eta();
        let now = Instant::now();
        self.span = (start, total, now, now);
    }
    fn lr(&mut self, lr: f64) {
        self.lr = Some(lr);
    }
    fn step(&mut self, it: usize, loss: f64, ips: f64) {
        self.pb.set_position(it as u64);
        self.pb.set_message(format!("loss {loss:.4} | {ips:.1} img/s"));
        if let Some(period) = self.lines.filter(|_| self.pb.is_hidden()) {
            if self.span.3.elapsed() >= period || it == self.span.1 {
                eprintln!("{}", self.line(it, loss, ips));
                self.span.3 = Instant::now();
            }
        }
    }
    /// Above the bar on a terminal; on stderr when the bar is hidden (redirected output, CI), so
    /// that every skipped file is named whatever the terminal.
    fn message(&mut self, msg: &str) {
        note(&self.pb, msg);
    }
}

static SIGNAL: AtomicI32 = AtomicI32::new(0);
static INTERRUPT: OnceLock<Arc<AtomicBool>> = OnceLock::new();
static ARMED: AtomicBool = AtomicBool::new(false);
static WATCHER: Once = Once::new();
static HOST_SIGNALS: AtomicBool = AtomicBool::new(false);

/// SIGINT and SIGTERM, as a signal set.
fn interrupt_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a plain C struct we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

/// Routes SIGINT and SIGTERM to one watcher thread: the signals are blocked in the calling thread
/// (and so in every thread it starts afterwards: libtorch's, OpenMP's, the data workers') and the
/// watcher takes them with `sigwait`. No signal handler ever runs inside another thread, so a
/// signal cannot land in the middle of libtorch's or the allocator's work (a handler that did
/// caused heap corruption on Ctrl-C in 2 of 23 runs). Call it first in `main`, before any thread
/// starts; [`interrupt_flag`] calls it too (for library users). Until a training command arms the
/// flag, a signal ends the process at once with 128 + its number, as the default action would.
/// Child processes start with an empty signal mask (Rust's `Command` resets it).
pub fn route_signals() {
    WATCHER.call_once(|| {
        let set = interrupt_signals();
        // SAFETY: changes this thread's signal mask only; `set` is a valid sigset.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        let spawned = std::thread::Builder::new().name("colorproxy-signals".into()).spawn(move || loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: sigwait on a valid set, writing the signal number into `sig`.
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                continue;
            }
            let name = if sig == libc::SIGTERM { "SIGTERM" } else { "interrupt" };
            let flag = INTERRUPT.get().filter(|_| ARMED.load(Ordering::SeqCst));
            let Some(flag) = flag else {
                // Nothing to checkpoint: end now, as the default action would.
                exit_now(128 + sig);
            };
            if flag.swap(true, Ordering::SeqCst) {
                eprintln!(
                    "{name} again: exiting now (checkpoints already written are intact; the steps since the \
                     last one are not saved)"
                );
                exit_now(128 + sig);
            }
            SIGNAL.store(sig, Ordering::SeqCst);
            eprintln!(
                "{name}: stopping; a checkpoint is written once the current step completes (send it again to \
                 exit now)"
            );
        });
        if let Err(e) = spawned {
            // SAFETY: as above; without a watcher the signals keep their default action.
            unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
            eprintln!("warning: cannot start the signal thread ({e}); Ctrl-C will not checkpoint");
        }
    });
}

/// Ends the process at once with `code`, after flushing stdout and stderr, without running
/// destructors or `atexit` handlers (other threads may be inside libtorch); every file a run
/// writes is replaced atomically, so none is left half-written.
pub fn exit_now(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: _exit ends the process; nothing of Rust's state is used afterwards.
    unsafe { libc::_exit(code) }
}

/// The interrupt flag of a training command. The first SIGINT (Ctrl-C) or SIGTERM (what Slurm,
/// Kubernetes and `timeout` send) sets it: the run writes a checkpoint after the current step and
/// the command exits with [`interrupt_exit_code`] (130 or 143). A second signal exits at once with
/// 128 + its number ([`exit_now`]); checkpoints are replaced atomically, so none is left
/// half-written. One flag per process (every run of a process shares it).
pub fn interrupt_flag() -> Arc<AtomicBool> {
    if !HOST_SIGNALS.load(Ordering::SeqCst) {
        route_signals();
    }
    let flag = INTERRUPT.get_or_init(|| Arc::new(AtomicBool::new(false))).clone();
    ARMED.store(true, Ordering::SeqCst);
    flag
}

/// For a host process that owns its signals (the Python package: Python's own SIGINT handler raises
/// `KeyboardInterrupt`): [`interrupt_flag`] leaves the signal mask alone and the host stops a run
/// with [`request_interrupt`]. Call it before the first run.
pub fn host_owns_signals() {
    HOST_SIGNALS.store(true, Ordering::SeqCst);
}

/// Asks the running training loop to write its checkpoint after the current step and stop, as the
/// first SIGINT would (`sig`: the signal to report, e.g. `libc::SIGINT`).
pub fn request_interrupt(sig: i32) {
    SIGNAL.store(sig, Ordering::SeqCst);
    INTERRUPT.get_or_init(|| Arc::new(AtomicBool::new(false))).store(true, Ordering::SeqCst);
}

/// Whether an interrupt (the first SIGINT or SIGTERM, or [`request_interrupt`]) is pending: for
/// loops that wait between runs.
pub fn interrupt_requested() -> bool {
    INTERRUPT.get().is_some_and(|f| f.load(Ordering::SeqCst))
}

/// Clears a served interrupt request, so that the host's next run starts uninterrupted.
pub fn clear_interrupt() {
    SIGNAL.store(0, Ordering::SeqCst);
    if let Some(f) = INTERRUPT.get() {
        f.store(false, Ordering::SeqCst);
    }
}

/// The exit status of a run stopped by a signal: 128 + the signal (130 for SIGINT, 143 for
/// SIGTERM).
pub fn interrupt_exit_code() -> i32 {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => 130,
        s => 128 + s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_progress_line_says_iteration_loss_lr_speed_and_eta() {
        let mut o = BarObserver::new(ProgressBar::hidden());
        o.pb.set_prefix("pretrain");
        <BarObserver as TrainObserver<()>>::start(&mut o, 100, 1100);
        <BarObserver as TrainObserver<()>>::lr(&mut o, 0.01);
        o.span.2 -= Duration::from_secs(50);
        // 200 of 1,000 remaining iterations in 50 s: 800 more take 200 s.
        let l = o.line(300, 1.23456, 64.0);
        assert_eq!(
            l,
            "pretrain 300/1100 (27.3%) | loss 1.2346 | lr 1.000e-2 | 64.0 img/s | 50s elapsed, ETA 3m20s"
        );
        assert_eq!(hms(3723.0), "1h02m03s");
    }
}
