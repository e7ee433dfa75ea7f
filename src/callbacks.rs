//! Keras callbacks: EarlyStopping (with restore_best_weights) and
//! ModelCheckpoint (save_best_only), both monitoring val_loss, and the
//! per-epoch metrics file ([`crate::metrics`]). Their messages are Keras'.

use crate::checkpoint;
use crate::cli::CallbackArgs;
use crate::error::{Error, Result};
use crate::events::EpochResult;
use crate::metrics::MetricsWriter;
use crate::model::Model;
use crate::train::{Callback, Flow, History};
use std::path::{Path, PathBuf};

/// The callbacks the flags ask for: the metrics file first (so an epoch's
/// record is written whatever follows), then the checkpoint, then early
/// stopping. `--restore-best` without `--early-stopping` keeps the best
/// weights without ever stopping.
pub fn build(args: &CallbackArgs, class_names: &[String]) -> Result<Vec<Box<dyn Callback>>> {
    let mut out: Vec<Box<dyn Callback>> = Vec::new();
    if let Some(path) = &args.metrics {
        out.push(Box::new(MetricsWriter::create(path)?));
    }
    if let Some(path) = &args.checkpoint {
        out.push(Box::new(ModelCheckpoint::new(path.clone(), class_names.to_vec())));
    }
    if args.early_stopping.is_some() || args.restore_best {
        out.push(Box::new(EarlyStopping::new(args.early_stopping, args.min_delta as f64, args.restore_best)));
    }
    Ok(out)
}

/// `--save` and `--checkpoint` replace their file when they write: refused
/// before training when the path is not a regular file (a device node, a
/// FIFO), and, without `--overwrite`, when a file is already there (a run
/// that diverges, even to a finite loss, would replace a good model with a
/// worse one).
pub fn check_outputs(save: Option<&Path>, args: &CallbackArgs) -> Result<()> {
    for (flag, path) in [("--save", save), ("--checkpoint", args.checkpoint.as_deref())] {
        let Some(path) = path else { continue };
        crate::files::check_replaceable(path).map_err(|p| Error::new(format!("{flag} {}: {p}", path.display())))?;
        if !args.overwrite && path.exists() {
            return Err(Error::new(format!(
                "{flag} {}: already exists; pass --overwrite to let this run replace it",
                path.display()
            )));
        }
    }
    Ok(())
}

/// The accuracy of always answering the most common label among `idx` of
/// `labels`: the chance level a model has to beat.
pub fn chance_accuracy(labels: &[u8], idx: &[u32]) -> f64 {
    let mut counts = [0usize; 256];
    for &i in idx {
        counts[labels[i as usize] as usize] += 1;
    }
    counts.iter().max().map_or(0.0, |&c| c as f64 / idx.len().max(1) as f64)
}

/// A warning for a model about to be saved that never did clearly better
/// than `chance` (see [`chance_accuracy`]): no epoch's validation accuracy
/// (training accuracy without validation) covered a tenth of the way from
/// chance to perfect. `None` when one did.
pub fn never_beat_chance(history: &History, chance: f64) -> Option<String> {
    let best = history.epochs.iter().map(|e| e.val_accuracy.unwrap_or(e.accuracy)).fold(f64::NAN, f64::max);
    let bar = chance + 0.1 * (1.0 - chance);
    if best.is_nan() || best >= bar {
        return None;
    }
    Some(format!(
        "the model never beat chance: best accuracy {best:.4}, always answering the most common class scores \
         {chance:.4} (did training diverge? try a lower --lr)"
    ))
}

const NO_VAL_LOSS: &str = "val_loss is not available (no validation data): callbacks monitoring it do nothing";

/// Keras' `EarlyStopping(monitor="val_loss", mode="min", patience, min_delta,
/// restore_best_weights)`: an epoch improves when `val_loss + min_delta <
/// best`; after `patience` epochs in a row without improvement, training
/// stops. With `restore_best`, the best epoch's weights are put back at the
/// end of training, whether or not it stopped early.
pub struct EarlyStopping {
    /// `None`: never stop (only track the best weights).
    pub patience: Option<u32>,
    pub min_delta: f64,
    pub restore_best: bool,
    /// Epochs since the last improvement.
    wait: u32,
    best: f64,
    /// 1-based; 0 before the first epoch.
    best_epoch: usize,
    best_weights: Option<Vec<f32>>,
    stopped_epoch: Option<usize>,
    warned: bool,
}

impl EarlyStopping {
    pub fn new(patience: Option<u32>, min_delta: f64, restore_best: bool) -> EarlyStopping {
        EarlyStopping {
            patience,
            min_delta: min_delta.abs(),
            restore_best,
            wait: 0,
            best: f64::INFINITY,
            best_epoch: 0,
            best_weights: None,
            stopped_epoch: None,
            warned: false,
        }
    }

    /// The best val_loss so far and its (1-based) epoch.
    pub fn best(&self) -> (f64, usize) {
        (self.best, self.best_epoch)
    }

    /// The epoch at which training was stopped, if it was.
    pub fn stopped_epoch(&self) -> Option<usize> {
        self.stopped_epoch
    }
}

impl Callback for EarlyStopping {
    fn on_epoch_end(&mut self, result: &EpochResult, model: &Model, log: &mut dyn FnMut(String)) -> Result<Flow> {
        let Some(current) = result.val_loss else {
            if !std::mem::replace(&mut self.warned, true) {
                log(format!("Early stopping: {NO_VAL_LOSS}"));
            }
            return Ok(Flow::Continue);
        };
        // As Keras 3: until an epoch improves, the current weights are the best.
        if self.restore_best && self.best_weights.is_none() {
            self.best_weights = Some(model.params.clone());
            self.best_epoch = result.epoch;
        }
        self.wait += 1;
        if current + self.min_delta < self.best {
            self.best = current;
            self.best_epoch = result.epoch;
            if let Some(w) = self.best_weights.as_mut() {
                w.copy_from_slice(&model.params);
            }
            self.wait = 0;
            return Ok(Flow::Continue);
        }
        if self.patience.is_some_and(|p| self.wait >= p) {
            self.stopped_epoch = Some(result.epoch);
            return Ok(Flow::Stop);
        }
        Ok(Flow::Continue)
    }

    fn on_train_end(&mut self, model: &mut Model, log: &mut dyn FnMut(String)) -> Result<()> {
        if let Some(e) = self.stopped_epoch {
            log(format!("Epoch {e}: early stopping"));
        }
        if self.restore_best {
            if let Some(w) = &self.best_weights {
                log(format!("Restoring model weights from the end of the best epoch: {}.", self.best_epoch));
                model.params.copy_from_slice(w);
            }
        }
        Ok(())
    }
}

/// Keras' `ModelCheckpoint(path, monitor="val_loss", save_best_only=True)`:
/// saves the model (atomically) whenever val_loss goes below its best so far.
pub struct ModelCheckpoint {
    pub path: PathBuf,
    class_names: Vec<String>,
    best: f64,
    warned: bool,
}

impl ModelCheckpoint {
    pub fn new(path: PathBuf, class_names: Vec<String>) -> ModelCheckpoint {
        ModelCheckpoint { path, class_names, best: f64::INFINITY, warned: false }
    }
}

impl Callback for ModelCheckpoint {
    fn on_epoch_end(&mut self, result: &EpochResult, model: &Model, log: &mut dyn FnMut(String)) -> Result<Flow> {
        let Some(current) = result.val_loss else {
            if !std::mem::replace(&mut self.warned, true) {
                log(format!("Model checkpoint: {NO_VAL_LOSS}"));
            }
            return Ok(Flow::Continue);
        };
        if current < self.best {
            log(format!(
                "Epoch {}: val_loss improved from {:.4} to {current:.4}, saving model to {}",
                result.epoch,
                self.best,
                self.path.display()
            ));
            self.best = current;
            checkpoint::save(model, &self.class_names, &self.path)?;
        } else {
            log(format!("Epoch {}: val_loss did not improve from {:.4}", result.epoch, self.best));
        }
        Ok(Flow::Continue)
    }
}
