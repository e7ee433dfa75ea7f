//! The `simdnet` command: parses flags and dispatches to the subcommands.

use clap::Parser;
use simdnet::app::{self, Session};
use simdnet::cli::{Cli, Command, SummaryArgs, TrainArgs};
use simdnet::error::{Error, Result};
use simdnet::events::FinishReason;
use simdnet::headless::{Headless, StopSignals};
use simdnet::summary::summary;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `simdnet` alone trains with every default.
    // `simdnet [train flags]` without a subcommand trains.
    let command = cli.command.unwrap_or(Command::Train(cli.train));
    let result = match command {
        Command::Train(args) => run_train(args),
        Command::Summary(args) => run_summary(args),
        Command::Eval(_) | Command::Predict(_) | Command::Compare(_) | Command::Bench(_) => {
            Err(Error::new("this command is not available yet"))
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_summary(args: SummaryArgs) -> Result<ExitCode> {
    let data = app::open_data(&args.data)?;
    // A closed stdout (`| head`) must not turn into a panic.
    let _ = write!(std::io::stdout(), "{}", summary(&app::model_spec(&args.model, &data)));
    Ok(ExitCode::SUCCESS)
}

fn run_train(args: TrainArgs) -> Result<ExitCode> {
    // Handlers first: a signal while the data loads stops the run cleanly at
    // its first step instead of killing it.
    let signals = StopSignals::install().map_err(|e| Error::new(format!("cannot install signal handlers: {e}")))?;
    let mut session = Session::from_args(&args)?;
    let _ = writeln!(std::io::stdout(), "{}", session.header());
    let mut monitor = Headless { signals: signals.clone(), quiet: false };
    let outcome = session.run(&mut monitor)?;
    if outcome.history.finish == FinishReason::NonFiniteLoss {
        return Err(Error::new("training stopped: the loss became NaN or infinite (try a lower --lr)"));
    }
    Ok(signals.exit_code().map_or(ExitCode::SUCCESS, ExitCode::from))
}
