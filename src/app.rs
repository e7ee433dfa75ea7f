//! A training session assembled from the command line, independent of the
//! front end: the headless printer and the dashboard both drive [`Session::run`].

use crate::arch::Arch;
use crate::batch::{holdout, Batch};
use crate::callbacks;
use crate::checkpoint;
use crate::cli::{CallbackArgs, DataArgs, ModelArgs, TrainArgs};
use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::events::{Event, FinishReason};
use crate::model::{Model, ModelSpec, Workspace};
use crate::optim::Optimizer;
use crate::train::{self, Evaluation, FitConfig, History, Monitor};
use std::path::{Path, PathBuf};

/// The architecture the flags describe, fitted to the data; errors say which
/// layer does not fit and why.
pub fn model_spec(args: &ModelArgs, data: &Dataset) -> Result<ModelSpec> {
    let layers = args.layers(data.classes).map_err(Error::new)?;
    let flags = match (&args.arch, &args.hidden) {
        (Arch::Mlp, Some(h)) => format!("--hidden {}", h.0.iter().map(|u| u.to_string()).collect::<Vec<_>>().join(",")),
        _ => "--arch".to_string(),
    };
    let spec =
        ModelSpec::new((data.train.rows, data.train.cols), &layers).map_err(|e| Error::new(format!("{flags}: {e}")))?;
    if spec.classes() != data.classes {
        return Err(Error::new(format!(
            "{flags}: the last layer has {} units, the data in {} has {} classes",
            spec.classes(),
            data.dir.display(),
            data.classes
        )));
    }
    Ok(spec)
}

/// Opens the data set the flags name.
pub fn open_data(args: &DataArgs) -> Result<Dataset> {
    Dataset::open(&args.data_dir(), &args.cache_dir())
}

/// Stack of each worker thread of the global pool.
const WORKER_STACK_BYTES: usize = 32 << 20;

/// Starts the global rayon pool with `threads` workers (all cores by default)
/// and returns the count. Only the first call in a process takes effect.
pub fn init_threads(threads: Option<u32>) -> Result<usize> {
    let n = threads.map_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()), |t| t as usize);
    match rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        // An unoptimised (`cargo build`) binary's kernel frames overflow
        // rayon's 2 MiB default on the CNN's shapes; this is address space,
        // touched only as deep as a call goes.
        .stack_size(WORKER_STACK_BYTES)
        .start_handler(|_| crate::fpu::flush_denormals_to_zero())
        .build_global()
    {
        Ok(()) => Ok(n),
        // Already built (a second session in one process, e.g. tests): keep it.
        Err(_) if rayon::current_num_threads() > 0 => Ok(rayon::current_num_threads()),
        Err(e) => Err(Error::new(format!("--threads {n}: cannot start the thread pool: {e}"))),
    }
}

/// Runs `f` on a thread of the global pool and waits for it. The kernels'
/// parallel loops, called from a pool thread, queue their tasks on that
/// thread's own deque; called from any other thread, every parallel call goes
/// through rayon's global injector, which allocates a block every 63 jobs and
/// so breaks "no allocation in a training step".
pub fn run_in_pool<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    rayon::scope(|_| f())
}

/// Refuses an output path whose directory does not exist or that names a
/// directory, before training rather than after.
pub fn check_output_path(flag: &str, path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Error::new(format!("{flag} {}: its directory does not exist", path.display())));
    }
    if path.is_dir() {
        return Err(Error::new(format!("{flag} {}: is a directory", path.display())));
    }
    Ok(())
}

/// Bytes of memory a training run of `spec` needs, roughly: the parameters,
/// two gradient buffers and up to two optimizer slots (5 × params), plus the
/// workspaces of a training and an evaluation batch and their f32 inputs.
pub fn training_bytes(spec: &ModelSpec, batch_size: usize) -> f64 {
    let per_sample = spec.workspace_bytes_per_sample() as f64 + 4.0 * spec.input_dim() as f64;
    4.0 * 5.0 * spec.param_count() as f64 + (batch_size + spec.eval_batch()) as f64 * per_sample
}

/// Bytes of memory this process can still allocate (Linux), if known: the
/// least of the kernel's estimate of memory available without swapping
/// (`MemAvailable`, not `MemTotal`: other processes hold the rest), what the
/// cgroup (a container's limit) leaves, and what the address-space limit
/// (`ulimit -v`) leaves.
pub fn available_memory() -> Option<f64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| meminfo_available(&s));
    let read_u64 = |p: &str| std::fs::read_to_string(p).ok().and_then(|s| s.trim().parse::<f64>().ok());
    // cgroup v2; "max" (no limit) does not parse and counts as none.
    let cgroup = read_u64("/sys/fs/cgroup/memory.max")
        .zip(read_u64("/sys/fs/cgroup/memory.current"))
        .map(|(max, used)| (max - used).max(0.0));
    let address_space = address_space_left();
    [meminfo, cgroup, address_space].into_iter().flatten().reduce(f64::min)
}

/// `MemAvailable` of /proc/meminfo's text, in bytes.
pub fn meminfo_available(meminfo: &str) -> Option<f64> {
    let kb: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024.0)
}

/// RLIMIT_AS less this process's current address space (VmSize), if limited.
fn address_space_left() -> Option<f64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct it is given, which lives here.
    if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut limit) } != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 =
        status.lines().find_map(|l| l.strip_prefix("VmSize:"))?.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some((limit.rlim_cur as f64 - kb * 1024.0).max(0.0))
}

/// Refuses a model or batch that cannot fit in the memory this process can
/// still use, before allocating it (an allocation that fails aborts the
/// process).
pub fn check_memory(args: &TrainArgs, spec: &ModelSpec) -> Result<()> {
    let need = training_bytes(spec, args.fit.batch_size as usize);
    match available_memory() {
        Some(have) if need > have => Err(Error::new(format!(
            "the model {} with --batch-size {} needs about {:.1} GB of memory, \
             only {:.1} GB is available (use a smaller model or --batch-size)",
            spec.describe(),
            args.fit.batch_size,
            need / 1e9,
            have / 1e9
        ))),
        _ => Ok(()),
    }
}

/// Everything one training run needs.
pub struct Session {
    pub data: Dataset,
    pub class_names: Vec<String>,
    pub model: Model,
    pub opt: Optimizer,
    pub train_idx: Vec<u32>,
    pub val_idx: Vec<u32>,
    pub cfg: FitConfig,
    pub threads: usize,
    pub save: Option<PathBuf>,
    pub callbacks: CallbackArgs,
}

/// What a run produced.
pub struct Outcome {
    pub history: History,
    /// Test-set evaluation (absent after a non-finite loss).
    pub test: Option<Evaluation>,
}

impl Session {
    pub fn from_args(args: &TrainArgs) -> Result<Session> {
        let (kind, lr) = args.optim.resolve().map_err(Error::new)?;
        for (flag, path) in [
            ("--save", &args.save),
            ("--checkpoint", &args.callbacks.checkpoint),
            ("--metrics", &args.callbacks.metrics),
        ] {
            if let Some(p) = path {
                check_output_path(flag, p)?;
            }
        }
        let mut data = open_data(&args.data)?;
        data.train.prefer_huge_pages();
        let threads = init_threads(args.fit.threads)?;
        let spec = model_spec(&args.model, &data)?;
        check_memory(args, &spec)?;
        let seed = args.fit.seed;
        let (train_idx, val_idx) = holdout(
            data.train.count,
            args.fit.validation_split,
            u32::try_from(seed).map_err(|_| Error::new(format!("--seed {seed}: must be at most {}", u32::MAX)))?,
        );
        if train_idx.is_empty() || val_idx.is_empty() {
            return Err(Error::new(format!(
                "--validation-split {}: leaves {} training and {} validation images out of {}",
                args.fit.validation_split,
                train_idx.len(),
                val_idx.len(),
                data.train.count
            )));
        }
        Ok(Session {
            class_names: data.class_names(),
            model: Model::new(spec.clone(), seed),
            opt: Optimizer::new(kind, lr, spec.param_count()),
            data,
            train_idx,
            val_idx,
            cfg: FitConfig {
                epochs: args.fit.epochs as usize,
                batch_size: args.fit.batch_size as usize,
                seed,
                ..FitConfig::default()
            },
            threads,
            save: args.save.clone(),
            callbacks: args.callbacks.clone(),
        })
    }

    /// One line describing the run (printed first by the headless mode).
    pub fn header(&self) -> String {
        format!(
            "simdnet: {} on {} ({} train / {} validation / {} test), {}, batch {}, {} thread{}, seed {}",
            self.model.spec.describe(),
            self.data.dir.display(),
            self.train_idx.len(),
            self.val_idx.len(),
            self.data.test.count,
            self.opt.kind.describe(self.opt.learning_rate),
            self.cfg.batch_size,
            self.threads,
            if self.threads == 1 { "" } else { "s" },
            self.cfg.seed
        )
    }

    /// Trains, evaluates on the test set and saves (where asked).
    pub fn run(&mut self, monitor: &mut dyn Monitor) -> Result<Outcome> {
        let names = self.class_names.clone();
        let mut save = |m: &Model, p: &Path| checkpoint::save(m, &names, p);
        let mut cbs = callbacks::build(&self.callbacks, &self.class_names)?;
        let mut cb_refs: Vec<&mut dyn train::Callback> =
            cbs.iter_mut().map(|c| &mut **c as &mut dyn train::Callback).collect();
        let history = train::fit(
            &mut self.model,
            &mut self.opt,
            &self.data.train,
            &self.train_idx,
            &self.val_idx,
            Some(&self.data.test),
            &self.cfg,
            &mut cb_refs,
            monitor,
            &mut save,
        )?;
        if history.finish == FinishReason::NonFiniteLoss {
            return Ok(Outcome { history, test: None });
        }
        let eval_batch = self.model.spec.eval_batch();
        let mut ws = Workspace::new(&self.model.spec, eval_batch, self.cfg.seed);
        let mut batch = Batch::new(eval_batch, self.data.test.image_len());
        let test = train::evaluate(&self.model, &self.data.test, None, &mut ws, &mut batch);
        monitor.event(Event::Test { loss: test.loss, accuracy: test.accuracy });
        if let Some(path) = &self.save {
            checkpoint::save(&self.model, &self.class_names, path)?;
            monitor.event(Event::Log(format!("saved model to {}", path.display())));
        }
        Ok(Outcome { history, test: Some(test) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_available_not_total_memory() {
        let info = "MemTotal:       24683772 kB\nMemFree:         1000000 kB\nMemAvailable:    2000000 kB\n";
        assert_eq!(meminfo_available(info), Some(2000000.0 * 1024.0));
        assert_eq!(meminfo_available("MemTotal:       24683772 kB\n"), None);
        // On this machine: known, and no more than the total.
        if let Ok(info) = std::fs::read_to_string("/proc/meminfo") {
            let total: f64 = info
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .unwrap()
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .unwrap();
            let have = available_memory().unwrap();
            assert!(have > 0.0 && have <= total * 1024.0, "{have} of {total} kB");
        }
    }
}
