//! `simdnet compare`: trains every combination of comma-separated flag values
//! with the same seed and split, then prints one table row per configuration.
//!
//! [`configurations`] expands the flags into named [`TrainArgs`]; [`run`]
//! trains them one after the other through [`Session`], sending each run's
//! events, tagged with its index, to a [`CompareMonitor`] (the headless
//! printer here, the dashboard's curve overlay in `tui::compare`).

use crate::app::Session;
use crate::arch::Arch;
use crate::cli::{
    parse_dropout, parse_hidden, parse_learning_rate, parse_momentum, ActivationArg, CallbackArgs, CompareArgs, Hidden,
    ModelArgs, OptimArgs, OptimizerArg, TrainArgs,
};
use crate::error::{Error, Result};
use crate::events::{Command, Event, FinishReason};
use crate::headless::{epoch_line, StopSignals};
use crate::train::{History, Monitor};
use clap::ValueEnum;
use std::io::Write;

/// `--arch` alternatives are separated by '/' where a list has one, else by
/// commas when every comma-separated item is a preset (`mlp,cnn`); otherwise
/// the whole value is one layer list.
fn arch_separator(list: &str) -> char {
    if list.contains('/') || !list.split(',').all(|a| matches!(a.trim().to_ascii_lowercase().as_str(), "mlp" | "cnn")) {
        '/'
    } else {
        ','
    }
}

/// Splits `list` at `sep` and parses each value; errors name the flag.
fn values<T>(
    flag: &str,
    list: &str,
    sep: char,
    parse: impl Fn(&str) -> std::result::Result<T, String>,
) -> Result<Vec<(String, T)>> {
    let mut out: Vec<(String, T)> = Vec::new();
    for raw in list.split(sep) {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(Error::new(format!("{flag} {list:?}: empty value in the list")));
        }
        if out.iter().any(|(r, _)| r == raw) {
            return Err(Error::new(format!("{flag} {list:?}: {raw} is listed twice")));
        }
        let v = parse(raw).map_err(|e| Error::new(format!("{flag} {list:?}: {e}")))?;
        out.push((raw.to_string(), v));
    }
    Ok(out)
}

fn value_enum<T: ValueEnum>(s: &str) -> std::result::Result<T, String> {
    T::from_str(s, true).map_err(|_| {
        let names: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value())
            .map(|p| p.get_name().to_string())
            .collect();
        format!("{s:?} is not one of {}", names.join(", "))
    })
}

/// The most configurations one `compare` trains: each is a full training
/// run, and all are built before the first starts.
pub const MAX_CONFIGURATIONS: usize = 64;

/// Refuses lists whose combinations exceed [`MAX_CONFIGURATIONS`], counted
/// from the raw lists before any value is parsed or any configuration built
/// (4000 × 4000 values would otherwise build 16 million of them).
fn check_configuration_count(args: &CompareArgs) -> Result<()> {
    let count = |list: &str, sep: char| list.split(sep).count();
    let opt_count = |list: &Option<String>| list.as_deref().map_or(1, |l| count(l, ','));
    // Momentum multiplies the sgd configurations only.
    let momenta = opt_count(&args.momentum);
    let per_lr: usize = args
        .optimizer
        .split(',')
        .map(|o| if o.trim().eq_ignore_ascii_case("sgd") { momenta } else { 1 })
        .fold(0, usize::saturating_add);
    let total = [
        count(&args.arch, arch_separator(&args.arch)),
        count(&args.hidden, '/'),
        count(&args.activation, ','),
        count(&args.dropout, ','),
        opt_count(&args.lr),
        per_lr,
    ]
    .into_iter()
    .fold(1, usize::saturating_mul);
    if total > MAX_CONFIGURATIONS {
        return Err(Error::new(format!(
            "--arch, --hidden, --activation, --dropout, --optimizer, --lr and --momentum list {total} configurations, \
             at most {MAX_CONFIGURATIONS} can be compared in one run (shorten the lists)"
        )));
    }
    Ok(())
}

/// Every combination of the listed values (hidden × activation × dropout ×
/// optimizer × learning rate × momentum), named by the values of the flags
/// that vary (e.g. `optimizer=sgd lr=0.1`). Momentum and Nesterov apply to
/// the sgd configurations only.
pub fn configurations(args: &CompareArgs) -> Result<Vec<(String, TrainArgs)>> {
    check_configuration_count(args)?;
    let archs: Vec<(String, Arch)> = values("--arch", &args.arch, arch_separator(&args.arch), Arch::parse)?;
    let hidden: Vec<(String, Hidden)> = values("--hidden", &args.hidden, '/', parse_hidden)?;
    let activations: Vec<(String, ActivationArg)> = values("--activation", &args.activation, ',', value_enum)?;
    let dropouts = values("--dropout", &args.dropout, ',', parse_dropout)?;
    let optimizers: Vec<(String, OptimizerArg)> = values("--optimizer", &args.optimizer, ',', value_enum)?;
    let lrs: Vec<Option<(String, f32)>> = match &args.lr {
        None => vec![None],
        Some(l) => values("--lr", l, ',', parse_learning_rate)?.into_iter().map(Some).collect(),
    };
    let momenta: Vec<Option<(String, f32)>> = match &args.momentum {
        None => vec![None],
        Some(m) => values("--momentum", m, ',', parse_momentum)?.into_iter().map(Some).collect(),
    };
    let has_sgd = optimizers.iter().any(|(_, o)| *o == OptimizerArg::Sgd);
    if (args.momentum.is_some() || args.nesterov) && !has_sgd {
        return Err(Error::new("--momentum and --nesterov apply to sgd, which --optimizer does not list"));
    }
    let no_momentum = [None];
    let mut out = Vec::new();
    // --hidden, --activation and --dropout shape the mlp only: other
    // architectures run once per optimizer setting, with those flags unset.
    let mut models: Vec<(&str, &Arch, Option<MlpChoice>)> = Vec::new();
    for (arch_name, arch) in &archs {
        if *arch != Arch::Mlp {
            models.push((arch_name, arch, None));
            continue;
        }
        for hidden in &hidden {
            for activation in &activations {
                for dropout in &dropouts {
                    models.push((arch_name, arch, Some(MlpChoice { hidden, activation, dropout })));
                }
            }
        }
    }
    for &(arch_name, arch, mlp) in &models {
        for (o_name, o) in &optimizers {
            let sgd = *o == OptimizerArg::Sgd;
            for lr in &lrs {
                // Momentum is an sgd flag: other optimizers run once.
                let momenta: &[Option<(String, f32)>] = if sgd { &momenta } else { &no_momentum };
                for m in momenta {
                    let mut name = Vec::new();
                    let mut part = |varies: bool, flag: &str, v: &str| {
                        if varies {
                            name.push(format!("{flag}={v}"));
                        }
                    };
                    part(archs.len() > 1, "arch", arch_name);
                    if let Some(c) = mlp {
                        part(hidden.len() > 1, "hidden", &c.hidden.0);
                        part(activations.len() > 1, "activation", &c.activation.0);
                        part(dropouts.len() > 1, "dropout", &c.dropout.0);
                    }
                    let o_label = if sgd && args.nesterov { format!("{o_name}+nesterov") } else { o_name.clone() };
                    part(optimizers.len() > 1, "optimizer", &o_label);
                    if let Some((l_name, _)) = lr {
                        part(lrs.len() > 1, "lr", l_name);
                    }
                    if let Some((m_name, _)) = m {
                        part(momenta.len() > 1, "momentum", m_name);
                    }
                    if name.is_empty() {
                        name.push(format!("optimizer={o_label}"));
                    }
                    let train = TrainArgs {
                        data: args.data.clone(),
                        model: ModelArgs {
                            arch: arch.clone(),
                            hidden: mlp.map(|c| c.hidden.1.clone()),
                            activation: mlp.map(|c| c.activation.1),
                            dropout: mlp.map(|c| c.dropout.1),
                        },
                        optim: OptimArgs {
                            optimizer: *o,
                            lr: lr.as_ref().map(|l| l.1),
                            momentum: m.as_ref().map(|m| m.1),
                            nesterov: sgd && args.nesterov,
                        },
                        fit: args.fit.clone(),
                        callbacks: CallbackArgs::default(),
                        save: None,
                    };
                    train.optim.resolve().map_err(Error::new)?;
                    out.push((name.join(" "), train));
                }
            }
        }
    }
    Ok(out)
}

/// One mlp configuration's --hidden, --activation and --dropout, each as
/// (the value as listed, the value).
#[derive(Clone, Copy)]
struct MlpChoice<'a> {
    hidden: &'a (String, Hidden),
    activation: &'a (String, ActivationArg),
    dropout: &'a (String, f32),
}

/// A front end for several runs: every event carries its configuration's index.
pub trait CompareMonitor {
    /// Configuration `index` named `name` starts; `header` describes the run.
    fn begin(&mut self, _index: usize, _name: &str, _header: &str) {}
    fn event(&mut self, index: usize, event: Event);
    /// Configuration `index` has finished (its test pass included).
    fn end(&mut self, _index: usize, _result: &RunResult) {}
    fn poll(&mut self) -> Option<Command> {
        None
    }
    fn wait(&mut self) -> Option<Command> {
        None
    }
}

/// Adapts a [`CompareMonitor`] to one run's [`Monitor`].
struct Tagged<'a> {
    index: usize,
    inner: &'a mut dyn CompareMonitor,
}

impl Monitor for Tagged<'_> {
    fn event(&mut self, event: Event) {
        self.inner.event(self.index, event);
    }
    fn poll(&mut self) -> Option<Command> {
        self.inner.poll()
    }
    fn wait(&mut self) -> Option<Command> {
        self.inner.wait()
    }
}

/// One configuration's outcome: the last epoch's validation metrics and the test set.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub name: String,
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    pub test_loss: Option<f64>,
    pub test_accuracy: Option<f64>,
    /// Mean wall seconds per epoch (validation included).
    pub epoch_seconds: f64,
    /// Every epoch, for plotting curves side by side.
    pub history: History,
}

/// Trains each configuration in turn with `monitor` as its front end. A stop
/// (Ctrl-C, `q`) ends the comparison after the current run; a run whose loss
/// became non-finite is reported as such and the next one starts.
pub fn run(configs: &[(String, TrainArgs)], monitor: &mut dyn CompareMonitor) -> Result<Vec<RunResult>> {
    let mut results = Vec::new();
    for (index, (name, args)) in configs.iter().enumerate() {
        let mut session = Session::from_args(args).map_err(|e| Error::new(format!("{name}: {e}")))?;
        monitor.begin(index, name, &session.header());
        let outcome = session.run(&mut Tagged { index, inner: monitor })?;
        let h = &outcome.history;
        let last = h.epochs.last();
        let epoch_seconds = h.epochs.iter().map(|e| e.wall_seconds).sum::<f64>() / h.epochs.len().max(1) as f64;
        let result = RunResult {
            name: name.clone(),
            val_loss: last.and_then(|e| e.val_loss),
            val_accuracy: last.and_then(|e| e.val_accuracy),
            test_loss: outcome.test.as_ref().map(|t| t.loss),
            test_accuracy: outcome.test.as_ref().map(|t| t.accuracy),
            epoch_seconds,
            history: outcome.history.clone(),
        };
        monitor.end(index, &result);
        results.push(result);
        if outcome.history.finish == FinishReason::Stopped {
            break;
        }
    }
    Ok(results)
}

/// The comparison table: one row per run.
pub fn table(results: &[RunResult]) -> String {
    let w = results.iter().map(|r| r.name.chars().count()).chain([13]).max().unwrap_or(13);
    let num = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"));
    let mut s = format!(
        "{:<w$}  {:>12}  {:>8}  {:>13}  {:>10}\n",
        "configuration", "val_accuracy", "val_loss", "test_accuracy", "epoch_time"
    );
    for r in results {
        let mut row = format!(
            "{:<w$}  {:>12}  {:>8}  {:>13}  {:>9.2}s",
            r.name,
            num(r.val_accuracy),
            num(r.val_loss),
            num(r.test_accuracy),
            r.epoch_seconds
        );
        match r.history.finish {
            FinishReason::NonFiniteLoss => row += "  (loss became NaN)",
            FinishReason::Stopped => row += "  (stopped)",
            FinishReason::EarlyStopped => row += "  (early stopped)",
            FinishReason::Completed => {}
        }
        s += &row;
        s += "\n";
    }
    s
}

/// Headless compare: each run's lines prefixed by `[configuration]`.
pub struct HeadlessCompare {
    pub names: Vec<String>,
    pub signals: StopSignals,
}

impl HeadlessCompare {
    fn print(&self, index: usize, line: &str) {
        let mut out = std::io::stdout().lock();
        // A closed pipe must not kill training with a panic.
        let _ = writeln!(out, "[{}] {line}", self.names.get(index).map_or("?", String::as_str));
        let _ = out.flush();
    }
}

impl CompareMonitor for HeadlessCompare {
    fn begin(&mut self, index: usize, _name: &str, header: &str) {
        self.print(index, header);
    }

    fn event(&mut self, index: usize, event: Event) {
        let line = match event {
            Event::Epoch(r) => epoch_line(&r),
            Event::Log(s) => s,
            Event::Test { loss, accuracy } => format!("test_accuracy: {accuracy:.4} - test_loss: {loss:.4}"),
            _ => return,
        };
        self.print(index, &line);
    }

    fn poll(&mut self) -> Option<Command> {
        self.signals.exit_code().map(|_| Command::Stop)
    }
}
