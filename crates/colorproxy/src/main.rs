//! `colorproxy`: colorization as a proxy task for visual understanding (Larsson et al., 2017).
//!
//! A thin shell: `cli` parses the arguments (clap), converts them into the library's typed
//! requests (`colorproxy_run::request`) and calls the library. The small tools that only wrap one
//! library call (targets, colorize, export, features, data check) live here.
// The `cli` doc comments are the `--help` texts, shown as written (`DATA/<split>/<class>`), not
// rendered as HTML.
#![allow(rustdoc::invalid_html_tags)]
mod cli;
mod cmd_colorize;
mod cmd_data;
mod cmd_export;
mod cmd_targets;

use colorproxy_run as lib;

fn main() {
    // Before any thread starts: SIGINT/SIGTERM go to one watcher thread, never into libtorch's.
    lib::progress::route_signals();
    // Out of memory is reported as an error by the training step, without a panic's backtrace.
    colorproxy_nn::out_of_memory::quiet_panic_hook();
    let args = cli::Cli::parse_with_negative_numbers();
    let code = match run(args) {
        Ok(()) => 0,
        Err(e) => match e.downcast_ref::<lib::RunError>() {
            // The run said how to continue; exit as a process stopped by the signal would.
            Some(lib::RunError::Interrupted { code }) => *code,
            _ => {
                eprintln!("error: {}", error_chain(&e));
                1
            }
        },
    };
    // Without destructors or atexit handlers: libtorch's and OpenMP's threads may still run.
    lib::progress::exit_now(code)
}

fn run(args: cli::Cli) -> anyhow::Result<()> {
    use cli::{AnalyseWhat, BenchWhat, Command, DataWhat, ExperimentWhat};
    match args.command {
        Command::Targets(a) => cmd_targets::run(a),
        Command::Data { what: DataWhat::Check(a) } => cmd_data::check(a),
        Command::Colorize(a) => cmd_colorize::run(a),
        Command::Export(a) => cmd_export::export(a),
        Command::Features(a) => cmd_export::features(a),
        Command::Data { what: DataWhat::Generate(a) } => Ok(lib::demo::generate(a.into())?),
        Command::Data { what: DataWhat::Batches(a) } => Ok(lib::batches::write(a.into())?),
        Command::Demo(a) => Ok(lib::demo::run(a.into())?),
        Command::Pretrain(a) => lib::pretrain::run(a.into()).map(drop).map_err(Into::into),
        Command::Finetune(a) => Ok(lib::finetune::finetune(a.into())?),
        Command::PretrainSupervised(a) => Ok(lib::finetune::supervised(a.into())?),
        Command::Experiment { what: ExperimentWhat::Run(a) } => Ok(lib::experiment::run(a.into())?),
        Command::Eval(a) => Ok(lib::evaluate::eval(a.into())?),
        Command::Launch(a) => Ok(lib::launch::launch(a.nproc, a.master_port, &a.command)?),
        Command::Analyse { what: AnalyseWhat::Shift(a) } => Ok(lib::analyse::shift(a.into())?),
        Command::Analyse { what: AnalyseWhat::Top(a) } => Ok(lib::analyse::top(a.into())?),
        Command::Analyse { what: AnalyseWhat::Probe(a) } => Ok(lib::analyse::probe(a.into())?),
        Command::Analyse { what: AnalyseWhat::Frozen(a) } => Ok(lib::frozen::run(a.into())?),
        Command::Bench { what: BenchWhat::Data(a) } => Ok(lib::bench::data(a.into())?),
        Command::Bench { what: BenchWhat::Pretrain(a) } => Ok(lib::bench::pretrain(a.into())?),
        Command::Bench { what: BenchWhat::Parity(a) } => Ok(lib::bench::parity(a.into())?),
        Command::Bench { what: BenchWhat::Allreduce(a) } => Ok(lib::bench_dist::allreduce(a.into())?),
        Command::Bench { what: BenchWhat::Cost(a) } => Ok(lib::cost::bench_cost(a.into())?),
    }
}

/// An error and its causes as one line, `a: b: c`, without repeating a cause that its context
/// already says (`invalid config: invalid config: ...`) or a leading `error:`.
fn error_chain(e: &anyhow::Error) -> String {
    let mut out: Vec<String> = vec![];
    for cause in e.chain() {
        let text = cause.to_string();
        let text = text.strip_prefix("error: ").unwrap_or(&text).to_string();
        if out.last().is_some_and(|prev| prev.ends_with(&text) || prev.contains(&text)) {
            continue;
        }
        out.push(text);
    }
    let mut line = out.join(": ");
    for doubled in ["invalid config: invalid config: ", "error: error: "] {
        while let Some(i) = line.find(doubled) {
            line.replace_range(i..i + doubled.len(), &doubled[..doubled.len() / 2]);
        }
    }
    line
}
