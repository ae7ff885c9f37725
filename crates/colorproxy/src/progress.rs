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

impl colorproxy_nn::pretrain::TrainObserver for BarObserver {
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
