//! The `simdnet` command: parses flags, opens the data, and hands training to
//! the headless printer or the dashboard.

use clap::Parser;
use simdnet::batch::{holdout, Batch};
use simdnet::checkpoint;
use simdnet::cli::{Cli, Command, ModelArgs, TrainArgs};
use simdnet::dataset::Dataset;
use simdnet::error::{Error, Result};
use simdnet::events::{Event, FinishReason};
use simdnet::headless::{Headless, StopSignals};
use simdnet::model::{Model, ModelSpec, Workspace};
use simdnet::optim::Optimizer;
use simdnet::summary::summary;
use simdnet::train::{self, FitConfig, Monitor};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or_else(|| {
        // `simdnet` alone trains with every default.
        match Cli::parse_from(["simdnet", "train"]).command {
            Some(c) => c,
            None => unreachable!("train was given"),
        }
    });
    let result = match command {
        Command::Train(args) => run_train(args),
        Command::Summary(args) => run_summary(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn model_spec(args: &ModelArgs, data: &Dataset) -> ModelSpec {
    ModelSpec {
        input_shape: (data.train.rows, data.train.cols),
        hidden: args.hidden.0.clone(),
        activation: args.activation.into(),
        classes: data.classes,
        dropout: args.dropout,
    }
}

fn run_summary(args: simdnet::cli::SummaryArgs) -> Result<ExitCode> {
    let data = Dataset::open(&args.data.data_dir(), &args.data.cache_dir())?;
    print!("{}", summary(&model_spec(&args.model, &data)));
    Ok(ExitCode::SUCCESS)
}

fn build_thread_pool(threads: Option<u32>) -> Result<usize> {
    let n = threads.map_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()), |t| t as usize);
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .map_err(|e| Error::new(format!("--threads {n}: cannot start the thread pool: {e}")))?;
    Ok(n)
}

fn run_train(args: TrainArgs) -> Result<ExitCode> {
    let (kind, lr) = args.optim.resolve().map_err(Error::new)?;
    if let Some(path) = &args.save {
        check_writable_target(path)?;
    }
    let data = Dataset::open(&args.data.data_dir(), &args.data.cache_dir())?;
    let threads = build_thread_pool(args.fit.threads)?;
    let spec = model_spec(&args.model, &data);
    let class_names = data.class_names();
    let seed = args.fit.seed;
    let mut model = Model::new(spec.clone(), seed);
    let mut opt = Optimizer::new(kind, lr, spec.param_count());
    let (train_idx, val_idx) = holdout(data.train.count, args.fit.validation_split, seed);
    if train_idx.is_empty() {
        return Err(Error::new(format!(
            "--validation-split {}: leaves no training images out of {}",
            args.fit.validation_split, data.train.count
        )));
    }
    let cfg = FitConfig {
        epochs: args.fit.epochs as usize,
        batch_size: args.fit.batch_size as usize,
        seed,
        ..FitConfig::default()
    };
    println!(
        "simdnet: {} on {} ({} train / {} validation / {} test), {}, batch {}, {} thread{}, seed {}",
        spec.describe(),
        data.dir.display(),
        train_idx.len(),
        val_idx.len(),
        data.test.count,
        kind.describe(lr),
        cfg.batch_size,
        threads,
        if threads == 1 { "" } else { "s" },
        seed
    );
    let signals = StopSignals::install().map_err(|e| Error::new(format!("cannot install signal handlers: {e}")))?;
    let mut monitor = Headless { signals: signals.clone(), quiet: false };
    let names = class_names.clone();
    let mut save = |m: &Model, p: &std::path::Path| checkpoint::save(m, &names, p);
    let history =
        train::fit(&mut model, &mut opt, &data.train, &train_idx, &val_idx, Some(&data.test), &cfg, &mut [], &mut monitor, &mut save)?;
    if history.finish == FinishReason::NonFiniteLoss {
        return Err(Error::new("training stopped: the loss became NaN or infinite (try a lower --lr)"));
    }
    if let Some(code) = signals.exit_code() {
        if let Some(path) = &args.save {
            checkpoint::save(&model, &class_names, path)?;
            monitor.event(Event::Log(format!("saved model to {}", path.display())));
        }
        return Ok(ExitCode::from(code));
    }
    let mut ws = Workspace::new(&spec, train::EVAL_BATCH, seed);
    let mut batch = Batch::new(train::EVAL_BATCH, data.test.image_len());
    let test = train::evaluate(&model, &data.test, None, &mut ws, &mut batch);
    monitor.event(Event::Test { loss: test.loss, accuracy: test.accuracy });
    if let Some(path) = &args.save {
        checkpoint::save(&model, &class_names, path)?;
        monitor.event(Event::Log(format!("saved model to {}", path.display())));
    }
    Ok(ExitCode::SUCCESS)
}

/// Refuses a --save path whose directory does not exist, before training
/// rather than after.
fn check_writable_target(path: &std::path::Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Error::file(path, "its directory does not exist"));
    }
    if path.is_dir() {
        return Err(Error::file(path, "is a directory"));
    }
    Ok(())
}
