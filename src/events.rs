//! What the trainer tells its front end (headless lines or the dashboard), and
//! what the front end can ask of the trainer.

use crate::model::ModelSpec;
use std::path::PathBuf;

/// Per-epoch results, as Keras' `History` records them.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochResult {
    /// 1-based.
    pub epoch: usize,
    pub epochs: usize,
    pub steps: usize,
    pub loss: f64,
    pub accuracy: f64,
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    pub learning_rate: f32,
    /// Seconds spent in training steps (validation excluded).
    pub train_seconds: f64,
    /// Seconds for the whole epoch, validation included.
    pub wall_seconds: f64,
    pub samples_per_second: f64,
}

/// Live progress, sent every few steps.
#[derive(Clone, Debug, PartialEq)]
pub struct StepProgress {
    pub epoch: usize,
    pub epochs: usize,
    /// Steps done in this epoch.
    pub step: usize,
    pub steps: usize,
    /// Running mean over this epoch so far.
    pub loss: f64,
    pub accuracy: f64,
    /// Since the last progress event.
    pub samples_per_second: f64,
    pub seconds_per_step: f64,
    pub learning_rate: f32,
}

/// A validation (or test) pass's confusion matrix: `counts[true][predicted]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Confusion {
    pub classes: usize,
    pub counts: Vec<u32>,
}

impl Confusion {
    pub fn new(classes: usize) -> Confusion {
        Confusion { classes, counts: vec![0; classes * classes] }
    }
    pub fn add(&mut self, truth: usize, predicted: usize) {
        self.counts[truth * self.classes + predicted] += 1;
    }
    pub fn get(&self, truth: usize, predicted: usize) -> u32 {
        self.counts[truth * self.classes + predicted]
    }
    /// Accuracy of each true class (None where the class has no sample).
    pub fn per_class_accuracy(&self) -> Vec<Option<f64>> {
        (0..self.classes)
            .map(|t| {
                let row = &self.counts[t * self.classes..(t + 1) * self.classes];
                let total: u32 = row.iter().sum();
                (total > 0).then(|| row[t] as f64 / total as f64)
            })
            .collect()
    }
    /// Off-diagonal (truth, predicted, count), largest first.
    pub fn most_confused(&self, n: usize) -> Vec<(usize, usize, u32)> {
        let mut pairs: Vec<_> = (0..self.classes)
            .flat_map(|t| (0..self.classes).map(move |p| (t, p)))
            .filter(|&(t, p)| t != p)
            .map(|(t, p)| (t, p, self.get(t, p)))
            .filter(|&(_, _, c)| c > 0)
            .collect();
        pairs.sort_by(|a, b| b.2.cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
        pairs.truncate(n);
        pairs
    }
    pub fn total(&self) -> u32 {
        self.counts.iter().sum()
    }
}

/// One test image's prediction, for the dashboard's sample panel.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplePrediction {
    pub index: usize,
    /// `rows × cols` u8 pixels.
    pub pixels: Vec<u8>,
    pub rows: usize,
    pub cols: usize,
    pub truth: usize,
    pub predicted: usize,
    pub confidence: f32,
}

/// The model's parameters at one point of training, for the dashboard's
/// Inside panel (filters, weight histograms, feature maps).
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// 1-based; step 0 is before the epoch's first step.
    pub epoch: usize,
    pub step: usize,
    pub spec: ModelSpec,
    pub params: Vec<f32>,
}

/// Everything the trainer reports.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Progress(StepProgress),
    Epoch(EpochResult),
    /// The latest validation pass.
    Confusion(Confusion),
    Samples(Vec<SamplePrediction>),
    /// The weights, at most every `FitConfig::snapshot_interval` and at
    /// each epoch's end (only when that is set).
    Snapshot(Box<Snapshot>),
    Log(String),
    Paused(bool),
    /// Training ended (normally, stopped, early-stopped or failed).
    Finished {
        reason: FinishReason,
    },
    /// Final evaluation on the test set.
    Test {
        loss: f64,
        accuracy: f64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FinishReason {
    Completed,
    Stopped,
    EarlyStopped,
    NonFiniteLoss,
}

/// What a front end can ask of a running trainer.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Pause,
    Resume,
    /// Multiply the learning rate (e.g. 2.0 or 0.5).
    ScaleLearningRate(f32),
    /// Stop after the current step.
    Stop,
    /// Save the model now to this path.
    Save(PathBuf),
}
