//! The `simdnet` command: parses flags and dispatches to the subcommands.

use clap::Parser;
use simdnet::app::{self, Session};
use simdnet::callbacks;
use simdnet::cli::{Cli, Command, CompareArgs, SummaryArgs, TrainArgs};
use simdnet::compare::{self, HeadlessCompare};
use simdnet::error::{Error, Result};
use simdnet::evaluate;
use simdnet::events::FinishReason;
use simdnet::headless::{Headless, StopSignals};
use simdnet::summary::summary;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before any file is read: a signal while a `.gz` decompresses stops it
    // cleanly (no temporary file left); elsewhere signals act as before.
    if let Err(e) = simdnet::interrupt::install() {
        let _ = writeln!(std::io::stderr(), "error: cannot install signal handlers: {e}");
        return ExitCode::FAILURE;
    }
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
        Command::Inspect(args) => {
            simdnet::inspect::run_inspect(&args, &mut std::io::stdout()).map(|()| ExitCode::SUCCESS)
        }
        Command::Plot(args) => simdnet::plot::run_plot(&args, &mut std::io::stdout()).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e}");
            // An error caused by SIGINT / SIGTERM exits as the shell expects.
            simdnet::interrupt::exit_code().map_or(ExitCode::FAILURE, ExitCode::from)
        }
    }
}

fn run_summary(args: SummaryArgs) -> Result<ExitCode> {
    let data = app::open_data(&args.data)?;
    warn(data.class_gaps());
    // A closed stdout (`| head`) must not turn into a panic.
    let _ = write!(std::io::stdout(), "{}", summary(&app::model_spec(&args.model, &data)?));
    Ok(ExitCode::SUCCESS)
}

/// Prints `warning: …` lines on stderr (a closed stderr is no reason to stop).
fn warn(warnings: impl IntoIterator<Item = String>) {
    for w in warnings {
        let _ = writeln!(std::io::stderr(), "warning: {w}");
    }
}

/// Warns when the model about to be kept (`--save`) never beat chance.
fn warn_chance(args: &TrainArgs, session: &Session, outcome: &app::Outcome) {
    // Only a run that saved (not one stopped by a non-finite loss).
    if args.save.is_some() && outcome.test.is_some() {
        let idx = if session.val_idx.is_empty() { &session.train_idx } else { &session.val_idx };
        let chance = callbacks::chance_accuracy(session.data.train.labels(), idx);
        warn(callbacks::never_beat_chance(&outcome.history, chance).map(|w| format!("--save: {w}")));
    }
}

fn run_train(args: TrainArgs) -> Result<ExitCode> {
    callbacks::check_outputs(args.save.as_deref(), &args.callbacks)?;
    if !args.fit.no_tui && std::io::stdout().is_terminal() {
        let mut session = Session::from_args(&args)?;
        // Before the dashboard: the terminal's own screen comes back after it.
        warn(session.data.class_gaps());
        // The dashboard installs its own handlers.
        simdnet::interrupt::handled_elsewhere();
        let (outcome, signal) = simdnet::tui::run(&mut session)?;
        warn_chance(&args, &session, &outcome);
        return finish(outcome, signal);
    }
    // Handlers first: a signal while the data loads stops the run cleanly at
    // its first step instead of killing it.
    let signals = StopSignals::install().map_err(|e| Error::new(format!("cannot install signal handlers: {e}")))?;
    simdnet::interrupt::handled_elsewhere();
    let mut session = Session::from_args(&args)?;
    warn(session.data.class_gaps());
    let _ = writeln!(std::io::stdout(), "{}", session.header());
    let mut monitor = Headless::new(signals.clone(), false);
    let outcome = app::run_in_pool(|| session.run(&mut monitor))?;
    warn_chance(&args, &session, &outcome);
    finish(outcome, signals.exit_code())
}

/// The exit of a training run: an error after a non-finite loss, 130 / 143
/// after SIGINT / SIGTERM, else success.
fn finish(outcome: app::Outcome, signal: Option<u8>) -> Result<ExitCode> {
    if outcome.history.finish == FinishReason::NonFiniteLoss {
        return Err(Error::new("training stopped: the loss became NaN or infinite (try a lower --lr)"));
    }
    Ok(signal.map_or(ExitCode::SUCCESS, ExitCode::from))
}

fn run_compare(args: CompareArgs) -> Result<ExitCode> {
    let configs = compare::configurations(&args)?;
    if !args.fit.no_tui && std::io::stdout().is_terminal() {
        // The dashboard installs its own handlers (the data loads after it).
        simdnet::interrupt::handled_elsewhere();
        let (results, signal) = simdnet::tui::compare::run(&configs)?;
        // Printed after the dashboard has gone, so that it stays in the scrollback.
        let _ = write!(std::io::stdout(), "{}", compare::table(&results));
        return Ok(signal.map_or(ExitCode::SUCCESS, ExitCode::from));
    }
    let signals = StopSignals::install().map_err(|e| Error::new(format!("cannot install signal handlers: {e}")))?;
    simdnet::interrupt::handled_elsewhere();
    let names = configs.iter().map(|(n, _)| n.clone()).collect();
    let mut monitor = HeadlessCompare { names, signals: signals.clone() };
    let results = app::run_in_pool(|| compare::run(&configs, &mut monitor))?;
    // A closed stdout (`| head`) must not turn into a panic.
    let _ = write!(std::io::stdout(), "\n{}", compare::table(&results));
    Ok(signals.exit_code().map_or(ExitCode::SUCCESS, ExitCode::from))
}
