//! The `simdnet` command: parses flags and dispatches to the subcommands.

use clap::Parser;
use simdnet::app::{self, Session};
use simdnet::cli::{Cli, Command, CompareArgs, SummaryArgs, TrainArgs};
use simdnet::compare::{self, HeadlessCompare};
use simdnet::error::{Error, Result};
use simdnet::evaluate;
use simdnet::events::FinishReason;
use simdnet::headless::{Headless, StopSignals};
use simdnet::summary::summary;
use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `simdnet` alone trains with every default.
    // `simdnet [train flags]` without a subcommand trains.
    let command = cli.command.unwrap_or(Command::Train(cli.train));
    let result = match command {
        Command::Train(args) => run_train(args),
        Command::Summary(args) => run_summary(args),
        Command::Eval(args) => evaluate::run_eval(&args, &mut std::io::stdout()).map(|()| ExitCode::SUCCESS),
        Command::Predict(args) => {
            let color = std::io::stdout().is_terminal();
            evaluate::run_predict(&args, &mut std::io::stdout(), color).map(|()| ExitCode::SUCCESS)
        }
        Command::Compare(args) => run_compare(args),
        Command::Bench(args) => simdnet::bench::run(&args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_summary(args: SummaryArgs) -> Result<ExitCode> {
    let data = app::open_data(&args.data)?;
    print!("{}", summary(&app::model_spec(&args.model, &data)));
    Ok(ExitCode::SUCCESS)
}

fn run_train(args: TrainArgs) -> Result<ExitCode> {
    let mut session = Session::from_args(&args)?;
    let (outcome, signal) = if !args.fit.no_tui && std::io::stdout().is_terminal() {
        simdnet::tui::run(&mut session)?
    } else {
        println!("{}", session.header());
        let signals = StopSignals::install().map_err(|e| Error::new(format!("cannot install signal handlers: {e}")))?;
        let mut monitor = Headless { signals: signals.clone(), quiet: false };
        (session.run(&mut monitor)?, signals.exit_code())
    };
    if outcome.history.finish == FinishReason::NonFiniteLoss {
        return Err(Error::new("training stopped: the loss became NaN or infinite (try a lower --lr)"));
    }
    Ok(signal.map_or(ExitCode::SUCCESS, ExitCode::from))
}

fn run_compare(args: CompareArgs) -> Result<ExitCode> {
    let configs = compare::configurations(&args)?;
    let signals = StopSignals::install().map_err(|e| Error::new(format!("cannot install signal handlers: {e}")))?;
    let names = configs.iter().map(|(n, _)| n.clone()).collect();
    let mut monitor = HeadlessCompare { names, signals: signals.clone() };
    let results = compare::run(&configs, &mut monitor)?;
    println!();
    print!("{}", compare::table(&results));
    Ok(signals.exit_code().map_or(ExitCode::SUCCESS, ExitCode::from))
}
