//! Command-line flags. Every value is validated here, so an impossible flag is
//! refused with clap's one-line message before anything runs.

use crate::arch::{self, Arch, LayerSpec};
use crate::gemm::Activation;
use crate::optim::OptimizerKind;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "simdnet",
    version,
    about = "Train small neural networks on the CPU with hand-written SIMD kernels, live in the terminal.",
    long_about = "Train small neural networks on the CPU with hand-written SIMD kernels, live in the terminal.\n\n\
                  Without a subcommand, `simdnet` trains the Keras tutorial model (784-100-10, relu, Adam) \
                  on the bundled Fashion-MNIST for 5 epochs."
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of `train`, for `simdnet` without a subcommand.
    #[command(flatten)]
    pub train: TrainArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a model (the default command).
    Train(TrainArgs),
    /// Print the model's layers and parameter counts, as Keras' model.summary().
    Summary(SummaryArgs),
    /// Evaluate a saved model on the test set: loss, accuracy, per-class accuracy, confusion matrix.
    Eval(EvalArgs),
    /// Draw one test image in the terminal with the saved model's top-3 predictions.
    Predict(PredictArgs),
    /// Train several configurations (comma-separated flag values) with the same seed and split, and compare them.
    Compare(CompareArgs),
    /// Measure GEMM GFLOP/s against this machine's FMA peak, and training samples/s.
    Bench(BenchArgs),
    /// Write PNGs of a saved model's filters, a test image's feature maps and the weight histograms (the book's 8-3).
    Inspect(InspectArgs),
    /// Draw the loss and accuracy curves of a --metrics file (.csv or .jsonl) as a PNG.
    Plot(PlotArgs),
}

/// Where the data comes from.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Directory holding train-images-idx3-ubyte, train-labels-idx1-ubyte,
    /// t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (each raw or .gz)
    /// [default: $SIMDNET_DATA, else the bundled data/fashion-mnist, looked for
    /// in the current directory, then beside the executable]
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Where .gz files are decompressed once [default: DIR/.cache]
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

/// The environment variable that names the data directory when `--data` is
/// not given.
pub const DATA_ENV: &str = "SIMDNET_DATA";

/// The bundled data set's directory, relative to a project checkout.
const BUNDLED: &str = "data/fashion-mnist";

impl DataArgs {
    /// The data directory: `--data`, else `$SIMDNET_DATA`, else the first of
    /// [`DataArgs::default_data_dirs`] that is a directory. When none is, the
    /// first is returned, so that the error names the current directory's
    /// `data/fashion-mnist` and says where else it looked.
    pub fn data_dir(&self) -> PathBuf {
        if let Some(d) = &self.data {
            return d.clone();
        }
        if let Some(d) = std::env::var_os(DATA_ENV).filter(|d| !d.is_empty()) {
            return PathBuf::from(d);
        }
        let candidates = Self::default_data_dirs();
        candidates.iter().find(|d| d.is_dir()).unwrap_or(&candidates[0]).clone()
    }

    /// Where the bundled data is looked for without `--data` or
    /// `$SIMDNET_DATA`, in order: the current directory's
    /// `data/fashion-mnist` (a checkout); beside the executable, two levels up
    /// (`target/release/simdnet` in a checkout) and in its own folder (a copied
    /// or installed binary with `data/` beside it); last, the sources the
    /// binary was built from, which a copied binary may no longer have.
    pub fn default_data_dirs() -> Vec<PathBuf> {
        let mut dirs = vec![PathBuf::from(BUNDLED)];
        if let Some(exe_dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(PathBuf::from)) {
            dirs.push(exe_dir.join("../..").join(BUNDLED));
            dirs.push(exe_dir.join(BUNDLED));
        }
        dirs.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(BUNDLED));
        dirs
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(|| self.data_dir().join(".cache"))
    }
}

/// The architecture.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// The model: `mlp` (the Keras tutorial's, shaped by --hidden, --activation and --dropout), `cnn` (the
    /// book's chapter-8 CNN: conv2d(32,3,relu,same),maxpool(2),conv2d(64,3,relu,same),maxpool(2),flatten,
    /// dense(100,relu),dropout(0.4),dense(10)) or such a layer list. Layers: conv2d(FILTERS,KERNEL[,ACT][,PADDING])
    /// with odd KERNEL 1-7, ACT relu|sigmoid|linear (default linear), PADDING same|valid (default valid);
    /// maxpool(POOL); flatten; dense(UNITS[,ACT]); dropout(RATE). The last layer is dense(CLASSES), its
    /// softmax part of the loss
    #[arg(long, value_name = "ARCH", default_value = "mlp", value_parser = parse_arch)]
    pub arch: Arch,
    /// Units of the hidden Dense layers of --arch mlp, comma-separated (e.g. 300,100) [default: 100]
    #[arg(long, value_name = "UNITS", value_parser = parse_hidden)]
    pub hidden: Option<Hidden>,
    /// Activation of the hidden layers of --arch mlp [default: relu]
    #[arg(long, value_enum)]
    pub activation: Option<ActivationArg>,
    /// Dropout rate after each hidden layer of --arch mlp, in [0, 1) [default: 0, no dropout]
    #[arg(long, value_name = "RATE", value_parser = parse_dropout, allow_negative_numbers = true)]
    pub dropout: Option<f32>,
}

impl ModelArgs {
    /// The layers these flags describe for `classes` classes, or why they
    /// don't fit together.
    pub fn layers(&self, classes: usize) -> Result<Vec<LayerSpec>, String> {
        let mlp_flags = self.hidden.is_some() || self.activation.is_some() || self.dropout.is_some();
        match &self.arch {
            Arch::Mlp => Ok(arch::mlp(
                self.hidden.as_ref().map_or(&[100][..], |h| &h.0),
                self.activation.unwrap_or(ActivationArg::Relu).into(),
                self.dropout.unwrap_or(0.0),
                classes,
            )),
            other if mlp_flags => Err(format!(
                "--hidden, --activation and --dropout shape --arch mlp only; with --arch {} write them into the layer list",
                match other {
                    Arch::Cnn => "cnn".to_string(),
                    _ => "LAYERS".to_string(),
                }
            )),
            Arch::Cnn => Ok(arch::cnn(classes)),
            Arch::Layers(layers) => Ok(layers.clone()),
        }
    }
}

pub fn parse_arch(s: &str) -> Result<Arch, String> {
    Arch::parse(s)
}

/// Hidden layer sizes (a newtype so clap takes the whole comma list as one value).
#[derive(Debug, Clone, PartialEq)]
pub struct Hidden(pub Vec<usize>);

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivationArg {
    Relu,
    Sigmoid,
}

impl From<ActivationArg> for Activation {
    fn from(a: ActivationArg) -> Activation {
        match a {
            ActivationArg::Relu => Activation::Relu,
            ActivationArg::Sigmoid => Activation::Sigmoid,
        }
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptimizerArg {
    Sgd,
    Adagrad,
    Rmsprop,
    Adam,
}

/// The optimizer, with Keras' defaults.
#[derive(Args, Debug, Clone)]
pub struct OptimArgs {
    /// Optimizer (Keras' update rules and defaults)
    #[arg(long, value_enum, default_value_t = OptimizerArg::Adam)]
    pub optimizer: OptimizerArg,
    /// Learning rate [default: 0.01 for sgd, 0.001 for the others, as Keras]
    #[arg(long, value_name = "LR", value_parser = parse_learning_rate, allow_negative_numbers = true)]
    pub lr: Option<f32>,
    /// Momentum for sgd, in [0, 1)
    #[arg(long, value_name = "M", value_parser = parse_momentum, allow_negative_numbers = true)]
    pub momentum: Option<f32>,
    /// Nesterov momentum for sgd
    #[arg(long)]
    pub nesterov: bool,
}

impl OptimArgs {
    /// The optimizer kind and learning rate, or a message for flags that don't fit.
    pub fn resolve(&self) -> Result<(OptimizerKind, f32), String> {
        let kind = match self.optimizer {
            OptimizerArg::Sgd => {
                // Nesterov's look-ahead is along the momentum: without one it
                // is plain SGD, which the flag would hide.
                if self.nesterov && self.momentum.is_none() {
                    return Err(
                        "--nesterov needs --momentum M (e.g. --momentum 0.9): without momentum it is plain SGD".into(),
                    );
                }
                OptimizerKind::Sgd { momentum: self.momentum.unwrap_or(0.0), nesterov: self.nesterov }
            }
            other => {
                if self.momentum.is_some() || self.nesterov {
                    return Err(format!(
                        "--momentum and --nesterov apply to --optimizer sgd only, not {}",
                        other.to_possible_value().expect("no skipped variants").get_name()
                    ));
                }
                match other {
                    OptimizerArg::Adagrad => OptimizerKind::adagrad(),
                    OptimizerArg::Rmsprop => OptimizerKind::rmsprop(),
                    _ => OptimizerKind::adam(),
                }
            }
        };
        Ok((kind, self.lr.unwrap_or(kind.default_learning_rate())))
    }
}

/// How to fit.
#[derive(Args, Debug, Clone)]
pub struct FitArgs {
    /// Number of epochs
    #[arg(long, default_value_t = 5, allow_negative_numbers = true, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub epochs: u32,
    /// Samples per training step
    #[arg(long, default_value_t = 32, allow_negative_numbers = true, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub batch_size: u32,
    /// Fraction of the training set held out for validation, in (0, 1)
    #[arg(long, value_name = "F", default_value_t = 0.2, value_parser = parse_validation_split, allow_negative_numbers = true)]
    pub validation_split: f64,
    /// Seed of the initialisation, the split, the shuffles and dropout; the split is
    /// scikit-learn's train_test_split(random_state=SEED), as the book's
    #[arg(long, default_value_t = 42, allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(..=u32::MAX as u64))]
    pub seed: u64,
    /// Worker threads for the kernels [default: all cores]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=512), allow_negative_numbers = true)]
    pub threads: Option<u32>,
    /// Print one line per epoch instead of opening the dashboard
    #[arg(long)]
    pub no_tui: bool,
}

#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub optim: OptimArgs,
    #[command(flatten)]
    pub fit: FitArgs,
    #[command(flatten)]
    pub callbacks: CallbackArgs,
    /// Save the trained model to PATH (safetensors)
    #[arg(long, value_name = "PATH")]
    pub save: Option<PathBuf>,
}

/// Keras-style callbacks and outputs of a training run.
#[derive(Args, Debug, Clone, Default)]
pub struct CallbackArgs {
    /// Stop when val_loss has not improved for PATIENCE epochs (Keras EarlyStopping)
    #[arg(long, value_name = "PATIENCE", value_parser = clap::value_parser!(u32).range(1..), allow_negative_numbers = true)]
    pub early_stopping: Option<u32>,
    /// Smallest decrease of val_loss that counts as an improvement
    #[arg(long, value_name = "DELTA", default_value_t = 0.0, value_parser = parse_min_delta, allow_negative_numbers = true)]
    pub min_delta: f32,
    /// At the end, put back the weights of the epoch with the best val_loss
    #[arg(long)]
    pub restore_best: bool,
    /// Save the model to PATH whenever val_loss improves (Keras ModelCheckpoint, save_best_only)
    #[arg(long, value_name = "PATH")]
    pub checkpoint: Option<PathBuf>,
    /// Write one record per epoch to PATH (.csv or .jsonl), flushed every epoch
    #[arg(long, value_name = "PATH", value_parser = parse_metrics_path)]
    pub metrics: Option<PathBuf>,
    /// Let --save and --checkpoint replace an existing file (without it, a
    /// run refuses to start rather than risk replacing a good model with a
    /// worse one)
    #[arg(long)]
    pub overwrite: bool,
}

#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// A model saved with --save or --checkpoint
    #[arg(long, value_name = "PATH")]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Args, Debug, Clone)]
pub struct PredictArgs {
    /// A model saved with --save or --checkpoint
    #[arg(long, value_name = "PATH")]
    pub model: PathBuf,
    /// Index of the test image
    #[arg(long, value_name = "N", default_value_t = 0, allow_negative_numbers = true)]
    pub index: usize,
    #[command(flatten)]
    pub data: DataArgs,
}

/// `compare`: the model, optimizer and fit flags, each taking a comma-separated
/// list of values; every combination is trained.
#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Models to compare: mlp, cnn or layer lists (see `train --help`), e.g. mlp,cnn; separate layer
    /// lists with '/' (e.g. mlp/flatten,dense(300,relu),dense(10))
    #[arg(long, value_name = "LIST", default_value = "mlp")]
    pub arch: String,
    /// Hidden layer sizes of the mlp; alternatives separated by '/' (e.g. 100/300,100)
    #[arg(long, value_name = "UNITS", default_value = "100")]
    pub hidden: String,
    /// Activations to compare (e.g. relu,sigmoid)
    #[arg(long, value_name = "LIST", default_value = "relu")]
    pub activation: String,
    /// Dropout rates to compare (e.g. 0,0.3)
    #[arg(long, value_name = "LIST", default_value = "0")]
    pub dropout: String,
    /// Optimizers to compare (e.g. sgd,adagrad,rmsprop,adam)
    #[arg(long, value_name = "LIST", default_value = "adam")]
    pub optimizer: String,
    /// Learning rates to compare [default: each optimizer's Keras default]
    #[arg(long, value_name = "LIST")]
    pub lr: Option<String>,
    /// Momentum values for sgd (e.g. 0,0.9)
    #[arg(long, value_name = "LIST")]
    pub momentum: Option<String>,
    /// Nesterov momentum for sgd
    #[arg(long)]
    pub nesterov: bool,
    #[command(flatten)]
    pub fit: FitArgs,
}

/// `simdnet inspect --model PATH [--image N] --out DIR`.
#[derive(Args, Debug, Clone)]
#[command(after_help = "Writes into DIR: filters.png (the first conv2d layer's filters, black -0.5 to white 0.5, \
                        as the book draws them; for an MLP the first dense layer's weight columns as images), \
                        feature_maps_<layer>.png for each conv2d layer (each map from its own minimum, black, to \
                        its maximum, white) and histograms.png (one histogram per layer with its mean and std). \
                        Prints each layer's statistics.")]
pub struct InspectArgs {
    /// A model saved with --save or --checkpoint
    #[arg(long, value_name = "PATH")]
    pub model: PathBuf,
    /// Index of the test image whose feature maps are drawn
    #[arg(long, value_name = "N", default_value_t = 0, allow_negative_numbers = true)]
    pub image: usize,
    #[command(flatten)]
    pub data: DataArgs,
    /// Directory for the PNG files (created if missing; files of the same names are replaced)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// `simdnet plot FILE [--out FILE.png]`.
#[derive(Args, Debug, Clone)]
pub struct PlotArgs {
    /// A metrics file written by --metrics (.csv with a header, or .jsonl); columns are found by name:
    /// epoch, loss, accuracy, val_loss, val_accuracy
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Where the PNG goes [default: FILE with the extension .png]
    #[arg(long, value_name = "FILE.png")]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Seconds to spend on each measurement, from 0.001 to 600
    #[arg(long, value_name = "S", default_value_t = 0.5, value_parser = parse_bench_seconds, allow_negative_numbers = true)]
    pub seconds: f32,
    /// Worker threads (one by default, so the figures compare with the one-core peak)
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=512), allow_negative_numbers = true)]
    pub threads: u32,
    /// Instead of the GEMM report, time this model layer by layer (forward, dW, dX, each against the FMA
    /// peak) and its whole training step at --batch-size, and print its workspace's memory: `cnn`, `mlp`
    /// or a layer list as for `train --arch`
    #[arg(long, value_name = "ARCH", value_parser = parse_arch)]
    pub arch: Option<Arch>,
    /// Batch size of the --arch report
    #[arg(long, value_name = "N", default_value_t = 32, requires = "arch", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch_size: u32,
}

#[derive(Args, Debug, Clone)]
pub struct SummaryArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub model: ModelArgs,
}

pub fn parse_hidden(s: &str) -> Result<Hidden, String> {
    let units: Result<Vec<usize>, String> = s
        .split(',')
        .map(|u| match u.trim().parse::<usize>() {
            Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
            _ => Err(format!("{u:?} is not a layer size (a whole number from 1 to 1000000)")),
        })
        .collect();
    units.map(Hidden)
}

fn parse_f32(s: &str) -> Result<f32, String> {
    let v: f32 = s.trim().parse().map_err(|_| format!("{s:?} is not a number"))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("{s} is not a finite number"))
    }
}

pub fn parse_learning_rate(s: &str) -> Result<f32, String> {
    let v = parse_f32(s)?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err(format!("{v} must be greater than 0"))
    }
}

/// `bench --seconds`: the report takes about 28 times this (the "about N s"
/// line it prints), so 600 already means hours; more cannot be a real
/// request (and 1e20 overflows a `Duration`).
fn parse_bench_seconds(s: &str) -> Result<f32, String> {
    let v = parse_f32(s)?;
    if (0.001..=600.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is outside [0.001, 600] seconds"))
    }
}

fn parse_unit_interval(s: &str, what: &str, zero_ok: bool) -> Result<f32, String> {
    let v = parse_f32(s)?;
    if (zero_ok && v == 0.0) || (v > 0.0 && v < 1.0) {
        Ok(v)
    } else {
        Err(format!("{v} is outside {} ({what})", if zero_ok { "[0, 1)" } else { "(0, 1)" }))
    }
}

fn parse_min_delta(s: &str) -> Result<f32, String> {
    let v = parse_f32(s)?;
    if v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("{v} must be 0 or more"))
    }
}

fn parse_metrics_path(s: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(s);
    crate::metrics::Format::from_path(&path).map(|_| path)
}

pub fn parse_dropout(s: &str) -> Result<f32, String> {
    parse_unit_interval(s, "a dropout rate", true)
}

pub fn parse_momentum(s: &str) -> Result<f32, String> {
    parse_unit_interval(s, "a momentum", true)
}

fn parse_validation_split(s: &str) -> Result<f64, String> {
    parse_unit_interval(s, "the fraction held out for validation", false)
        .map(f64::from)
        .and_then(|_| s.trim().parse::<f64>().map_err(|e| e.to_string()))
}
