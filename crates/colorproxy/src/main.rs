//! `colorproxy`: colorization as a proxy task for visual understanding (Larsson et al., 2017).
//!
//! The binary is thin: `cli` parses arguments, each command module validates them into a resolved
//! config and calls into the library crates.
mod bench;
mod bench_dist;
mod cli;
mod cmd_analyse;
mod cmd_colorize;
mod cmd_data;
mod cmd_demo;
mod cmd_export;
mod cmd_frozen;
mod cmd_launch;
mod cmd_pretrain;
mod cmd_targets;
mod cmd_transfer;
mod draw;
mod experiment;
mod progress;
mod report;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: cli::Cli) -> anyhow::Result<()> {
    use cli::{AnalyseWhat, BenchWhat, Command, DataWhat, ExperimentWhat};
    match args.command {
        Command::Targets(a) => cmd_targets::run(a),
        Command::Data { what: DataWhat::Check(a) } => cmd_data::check(a),
        Command::Data { what: DataWhat::Generate(a) } => cmd_demo::generate(a),
        Command::Demo(a) => cmd_demo::run(a),
        Command::Pretrain(a) => cmd_pretrain::run(a),
        Command::Colorize(a) => cmd_colorize::run(a),
        Command::Finetune(a) => cmd_transfer::finetune(a),
        Command::PretrainSupervised(a) => cmd_transfer::supervised(a),
        Command::Experiment { what: ExperimentWhat::Run(a) } => experiment::run(a),
        Command::Eval(a) => cmd_transfer::eval(a),
        Command::Export(a) => cmd_export::export(a),
        Command::Launch(a) => cmd_launch::run(a),
        Command::Analyse { what: AnalyseWhat::Shift(a) } => cmd_analyse::shift(a),
        Command::Analyse { what: AnalyseWhat::Top(a) } => cmd_analyse::top(a),
        Command::Analyse { what: AnalyseWhat::Probe(a) } => cmd_analyse::probe(a),
        Command::Analyse { what: AnalyseWhat::Frozen(a) } => cmd_frozen::run(a),
        Command::Features(a) => cmd_export::features(a),
        Command::Bench { what: BenchWhat::Data(a) } => bench::data(a),
        Command::Bench { what: BenchWhat::Pretrain(a) } => bench::pretrain(a),
        Command::Bench { what: BenchWhat::Parity(a) } => bench::parity(a),
        Command::Bench { what: BenchWhat::Allreduce(a) } => bench_dist::allreduce(a),
    }
}
