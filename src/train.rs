//! The training loop (Keras' `fit`): batches → train_step → metrics → events,
//! with validation each epoch, callbacks, and commands from the front end.

use crate::batch::Batch;
use crate::dataset::Split;
use crate::error::Result;
use crate::events::{Command, Confusion, EpochResult, Event, FinishReason, SamplePrediction, Snapshot, StepProgress};
use crate::loss;
use crate::model::{Model, Workspace};
use crate::optim::Optimizer;
use std::time::{Duration, Instant};

/// Options of one `fit`.
#[derive(Clone, Debug)]
pub struct FitConfig {
    pub epochs: usize,
    pub batch_size: usize,
    /// Seeds the per-epoch shuffles and dropout.
    pub seed: u64,
    /// Minimum time between two progress events.
    pub progress_interval: Duration,
    /// How many test images to predict after each epoch for the samples panel (0 = none).
    pub sample_predictions: usize,
    /// Minimum time between two weight snapshots for the Inside panel, sent
    /// between steps (never inside one), before the first step and at each
    /// epoch's end; `None` (the default, headless) sends none.
    pub snapshot_interval: Option<Duration>,
}

impl Default for FitConfig {
    fn default() -> Self {
        FitConfig {
            epochs: 5,
            batch_size: 32,
            seed: 42,
            progress_interval: Duration::from_millis(100),
            sample_predictions: 0,
            snapshot_interval: None,
        }
    }
}

/// Where events go and commands come from: the headless printer or the dashboard.
pub trait Monitor {
    fn event(&mut self, event: Event);
    /// A command, if one is waiting (never blocks).
    fn poll(&mut self) -> Option<Command> {
        None
    }
    /// Blocks until the next command (used while paused). `None`: no front
    /// end any more, stop.
    fn wait(&mut self) -> Option<Command> {
        None
    }
}

/// What a callback tells the loop after an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// Keras-style callbacks: early stopping, checkpoints, metrics files.
pub trait Callback {
    /// After validation of each epoch. `log` sends a line to the log pane / stdout.
    fn on_epoch_end(&mut self, _result: &EpochResult, _model: &Model, _log: &mut dyn FnMut(String)) -> Result<Flow> {
        Ok(Flow::Continue)
    }
    /// Once, after the last epoch (also after a stop), except on a non-finite loss.
    fn on_train_end(&mut self, _model: &mut Model, _log: &mut dyn FnMut(String)) -> Result<()> {
        Ok(())
    }
}

/// Saves the model when the front end asks (`s` in the dashboard, SIGINT with --save).
pub type SaveFn<'a> = dyn FnMut(&Model, &std::path::Path) -> Result<()> + 'a;

/// Loss, accuracy and confusion matrix of a pass over a split.
#[derive(Clone, Debug)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: f64,
    pub confusion: Confusion,
}

/// Evaluates `model` on `indices` of `split` (all images where `None`),
/// `batch` images at a time.
pub fn evaluate(
    model: &Model,
    split: &Split,
    indices: Option<&[u32]>,
    ws: &mut Workspace,
    batch: &mut Batch,
) -> Evaluation {
    let classes = model.spec.classes();
    let d = split.image_len();
    let mut confusion = Confusion::new(classes);
    let mut loss_sum = 0.0;
    let all: Vec<u32>;
    let indices = match indices {
        Some(i) => i,
        None => {
            all = (0..split.count as u32).collect();
            &all
        }
    };
    for chunk in indices.chunks(ws.capacity.min(batch.y.len())) {
        batch.gather(split, chunk);
        let logits = model.forward(ws, batch.inputs(d), chunk.len());
        let (l, _) = loss::softmax_cross_entropy(logits, batch.labels(), classes, None);
        loss_sum += l;
        for (row, &y) in logits.chunks_exact(classes).zip(batch.labels()) {
            confusion.add(y as usize, loss::argmax(row));
        }
    }
    let n = indices.len().max(1) as f64;
    let correct: u32 = (0..classes).map(|c| confusion.get(c, c)).sum();
    Evaluation { loss: loss_sum / n, accuracy: correct as f64 / n, confusion }
}

/// Predictions for the first `n` images of `split`, misclassified first.
pub fn sample_predictions(
    model: &Model,
    split: &Split,
    n: usize,
    ws: &mut Workspace,
    batch: &mut Batch,
) -> Vec<SamplePrediction> {
    let n = n.min(split.count).min(ws.capacity).min(batch.y.len());
    let indices: Vec<u32> = (0..n as u32).collect();
    batch.gather(split, &indices);
    let classes = model.spec.classes();
    let logits = model.forward(ws, batch.inputs(split.image_len()), n);
    let mut probs = vec![0.0; classes];
    let mut out: Vec<SamplePrediction> = logits
        .chunks_exact(classes)
        .enumerate()
        .map(|(i, row)| {
            loss::softmax(row, &mut probs);
            let predicted = loss::argmax(row);
            SamplePrediction {
                index: i,
                pixels: split.image(i).to_vec(),
                rows: split.rows,
                cols: split.cols,
                truth: batch.y[i] as usize,
                predicted,
                confidence: probs[predicted],
            }
        })
        .collect();
    out.sort_by_key(|s| (s.truth == s.predicted, s.index));
    out
}

/// The weights as they are after `step` steps of `epoch`.
fn snapshot(model: &Model, epoch: usize, step: usize) -> Event {
    Event::Snapshot(Box::new(Snapshot { epoch, step, spec: model.spec.clone(), params: model.params.clone() }))
}

/// The outcome of a fit.
#[derive(Clone, Debug)]
pub struct History {
    pub epochs: Vec<EpochResult>,
    pub finish: FinishReason,
}

/// Trains `model` on `train_idx` of `split`, validating on `val_idx` after
/// each epoch (skipped when empty), and reports through `monitor`.
#[allow(clippy::too_many_arguments)]
pub fn fit(
    model: &mut Model,
    opt: &mut Optimizer,
    split: &Split,
    train_idx: &[u32],
    val_idx: &[u32],
    test_split: Option<&Split>,
    cfg: &FitConfig,
    callbacks: &mut [&mut dyn Callback],
    monitor: &mut dyn Monitor,
    save: &mut SaveFn,
) -> Result<History> {
    crate::fpu::flush_denormals_to_zero();
    let d = split.image_len();
    let batch_size = cfg.batch_size.max(1);
    let mut ws = Workspace::new(&model.spec, batch_size, cfg.seed);
    let mut batch = Batch::new(batch_size, d);
    let eval_capacity = model.spec.eval_batch();
    let mut eval_ws = Workspace::new(&model.spec, eval_capacity, cfg.seed);
    let mut eval_batch = Batch::new(eval_capacity, d);
    let mut order = train_idx.to_vec();
    let mut rng = fastrand::Rng::with_seed(cfg.seed.wrapping_add(1));
    let steps = train_idx.len().div_ceil(batch_size);
    let mut history = History { epochs: Vec::new(), finish: FinishReason::Completed };
    let mut paused = false;
    // When the last weight snapshot was sent (the first goes before training).
    let mut last_snapshot = Instant::now();
    if cfg.snapshot_interval.is_some() {
        monitor.event(snapshot(model, 1, 0));
    }
    'epochs: for epoch in 1..=cfg.epochs {
        let epoch_start = Instant::now();
        let mut train_time = Duration::ZERO;
        rng.shuffle(&mut order);
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        let mut last_report = (Instant::now(), 0usize);
        for (step, chunk) in order.chunks(batch_size).enumerate() {
            // Commands between steps: the current step always completes.
            loop {
                let command = if paused { monitor.wait() } else { monitor.poll() };
                match command {
                    None if paused => {
                        history.finish = FinishReason::Stopped;
                        break 'epochs;
                    }
                    None => break,
                    Some(Command::Pause) => {
                        paused = true;
                        monitor.event(Event::Paused(true));
                    }
                    Some(Command::Resume) => {
                        paused = false;
                        monitor.event(Event::Paused(false));
                        last_report = (Instant::now(), seen);
                    }
                    Some(Command::ScaleLearningRate(f)) => {
                        opt.learning_rate *= f;
                        monitor.event(Event::Log(format!("learning rate set to {:.3e}", opt.learning_rate)));
                    }
                    Some(Command::Stop) => {
                        history.finish = FinishReason::Stopped;
                        break 'epochs;
                    }
                    Some(Command::Save(path)) => match save(model, &path) {
                        Ok(()) => monitor.event(Event::Log(format!("saved model to {}", path.display()))),
                        Err(e) => monitor.event(Event::Log(format!("save failed: {e}"))),
                    },
                }
            }
            let t0 = Instant::now();
            batch.gather(split, chunk);
            let (l, c) = model.train_step(opt, &mut ws, batch.inputs(d), batch.labels());
            train_time += t0.elapsed();
            if !l.is_finite() {
                monitor.event(Event::Log(format!("Batch {step}: Invalid loss, terminating training")));
                history.finish = FinishReason::NonFiniteLoss;
                monitor.event(Event::Finished { reason: history.finish.clone() });
                return Ok(history);
            }
            loss_sum += l;
            correct += c;
            seen += chunk.len();
            let now = Instant::now();
            if now.duration_since(last_report.0) >= cfg.progress_interval || step + 1 == steps {
                let dt = now.duration_since(last_report.0).as_secs_f64().max(1e-9);
                let samples = (seen - last_report.1) as f64;
                monitor.event(Event::Progress(StepProgress {
                    epoch,
                    epochs: cfg.epochs,
                    step: step + 1,
                    steps,
                    loss: loss_sum / seen as f64,
                    accuracy: correct as f64 / seen as f64,
                    samples_per_second: samples / dt,
                    seconds_per_step: dt * batch_size as f64 / samples.max(1.0),
                    learning_rate: opt.learning_rate,
                }));
                last_report = (now, seen);
            }
            // Between steps: a copy of the weights a few times a second.
            if cfg.snapshot_interval.is_some_and(|every| now.duration_since(last_snapshot) >= every) {
                monitor.event(snapshot(model, epoch, step + 1));
                last_snapshot = now;
            }
        }
        if cfg.snapshot_interval.is_some() {
            monitor.event(snapshot(model, epoch, steps));
            last_snapshot = Instant::now();
        }
        let (val_loss, val_accuracy) = if val_idx.is_empty() {
            (None, None)
        } else {
            let ev = evaluate(model, split, Some(val_idx), &mut eval_ws, &mut eval_batch);
            monitor.event(Event::Confusion(ev.confusion));
            (Some(ev.loss), Some(ev.accuracy))
        };
        if cfg.sample_predictions > 0 {
            if let Some(test) = test_split {
                let samples = sample_predictions(model, test, cfg.sample_predictions, &mut eval_ws, &mut eval_batch);
                monitor.event(Event::Samples(samples));
            }
        }
        let train_seconds = train_time.as_secs_f64();
        let result = EpochResult {
            epoch,
            epochs: cfg.epochs,
            steps,
            loss: loss_sum / seen.max(1) as f64,
            accuracy: correct as f64 / seen.max(1) as f64,
            val_loss,
            val_accuracy,
            learning_rate: opt.learning_rate,
            train_seconds,
            wall_seconds: epoch_start.elapsed().as_secs_f64(),
            samples_per_second: seen as f64 / train_seconds.max(1e-9),
        };
        monitor.event(Event::Epoch(result.clone()));
        history.epochs.push(result.clone());
        let mut flow = Flow::Continue;
        for cb in callbacks.iter_mut() {
            let mut log = |s: String| monitor.event(Event::Log(s));
            if cb.on_epoch_end(&result, model, &mut log)? == Flow::Stop {
                flow = Flow::Stop;
            }
        }
        if flow == Flow::Stop {
            history.finish = FinishReason::EarlyStopped;
            break;
        }
    }
    for cb in callbacks.iter_mut() {
        let mut log = |s: String| monitor.event(Event::Log(s));
        cb.on_train_end(model, &mut log)?;
    }
    monitor.event(Event::Finished { reason: history.finish.clone() });
    Ok(history)
}
