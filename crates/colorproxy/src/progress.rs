//! Progress bars (indicatif), hidden when stderr is not a terminal or under CI.
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

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

/// Shows a training loop's progress on a bar: position, loss and images/s, messages above it.
pub struct BarObserver(pub ProgressBar);

impl colorproxy_nn::run_dir::TrainObserver for BarObserver {
    fn start(&mut self, start: usize, total: usize) {
        self.0.set_length(total as u64);
        self.0.set_position(start as u64);
        self.0.reset_eta();
    }
    fn step(&mut self, it: usize, loss: f64, ips: f64) {
        self.0.set_position(it as u64);
        self.0.set_message(format!("loss {loss:.4} | {ips:.1} img/s"));
    }
    fn message(&mut self, msg: &str) {
        self.0.println(msg);
    }
}

/// The Ctrl-C flag of a training command: the first Ctrl-C sets it (the run checkpoints and
/// stops after the current iteration); a second one exits at once with status 130 (checkpoint
/// files are replaced atomically, so none is left half-written).
pub fn ctrl_c_flag() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let flag = std::sync::Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    let _ = ctrlc::set_handler(move || {
        if f.swap(true, Ordering::SeqCst) {
            eprintln!("interrupted again: exiting without a final checkpoint");
            std::process::exit(130);
        }
        eprintln!("interrupt: checkpointing after the current step (Ctrl-C again to exit now)");
    });
    flag
}
