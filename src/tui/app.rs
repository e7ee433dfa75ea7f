//! The dashboard's state: what the trainer has reported so far, which view is
//! shown, and what the keys do. Pure (no terminal), so it is unit-tested.

use super::inside::{Inside, Palette};
use super::shell::{Key, Shell, Status};
use crate::app::Session;
use crate::events::{Command, Confusion, EpochResult, Event, FinishReason, SamplePrediction, StepProgress};
use crate::optim::OptimizerKind;
use crossterm::event::{KeyCode, KeyEvent};
use ratatui::symbols::Marker;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where `s` saves when `--save` is not given.
pub const DEFAULT_SAVE_PATH: &str = "simdnet-model.safetensors";
/// Samples/s values kept for the sparkline.
const RATE_HISTORY: usize = 240;
/// Points kept per training curve (older ones are thinned out).
const CURVE_POINTS: usize = 4000;
/// Weight of the newest interval in the smoothed training curves.
pub(super) const SMOOTHING: f64 = 0.2;

/// The fixed facts of a run, shown in the header.
#[derive(Clone, Debug)]
pub struct Info {
    /// Data set name (its directory's name).
    pub data: String,
    /// e.g. `784-100-10 relu`.
    pub model: String,
    pub optimizer: OptimizerKind,
    pub learning_rate: f32,
    pub batch_size: usize,
    pub threads: usize,
    /// The GEMM path in use (`gemm::selected_isa().name()`).
    pub isa: String,
    pub seed: u64,
    pub train_count: usize,
    pub val_count: usize,
    pub test_count: usize,
    pub epochs: usize,
    pub steps_per_epoch: usize,
    pub flops_per_sample: u64,
    pub class_names: Vec<String>,
    /// Where `s` saves.
    pub save_path: PathBuf,
}

impl Info {
    pub fn from_session(s: &Session) -> Info {
        let batch_size = s.cfg.batch_size.max(1);
        Info {
            data: s
                .data
                .dir
                .file_name()
                .map_or_else(|| s.data.dir.display().to_string(), |n| n.to_string_lossy().into()),
            model: s.model.spec.describe(),
            optimizer: s.opt.kind,
            learning_rate: s.opt.learning_rate,
            batch_size,
            threads: s.threads,
            isa: crate::gemm::selected_isa().name().to_string(),
            seed: s.cfg.seed,
            train_count: s.train_idx.len(),
            val_count: s.val_idx.len(),
            test_count: s.data.test.count,
            epochs: s.cfg.epochs,
            steps_per_epoch: s.train_idx.len().div_ceil(batch_size),
            flops_per_sample: s.model.spec.train_flops_per_sample(),
            class_names: s.class_names.clone(),
            save_path: s.save.clone().unwrap_or_else(default_save_path),
        }
    }
}

/// Where `s` saves without `--save`: the current directory, spelt out in
/// full so that the log says where the file went.
fn default_save_path() -> PathBuf {
    std::env::current_dir().map_or_else(|_| PathBuf::from(DEFAULT_SAVE_PATH), |d| d.join(DEFAULT_SAVE_PATH))
}

/// The switchable panel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Curves,
    Confusion,
    Samples,
    Log,
    /// Filters, weight histograms and feature maps (the book's 8-3).
    Inside,
}

impl View {
    pub const ALL: [View; 5] = [View::Curves, View::Confusion, View::Samples, View::Log, View::Inside];

    pub fn title(self) -> &'static str {
        match self {
            View::Curves => "Curves",
            View::Confusion => "Confusion",
            View::Samples => "Samples",
            View::Log => "Log",
            View::Inside => "Inside",
        }
    }

    fn index(self) -> usize {
        View::ALL.iter().position(|&v| v == self).unwrap_or(0)
    }

    pub fn next(self) -> View {
        View::ALL[(self.index() + 1) % View::ALL.len()]
    }

    pub fn previous(self) -> View {
        View::ALL[(self.index() + View::ALL.len() - 1) % View::ALL.len()]
    }
}

/// The dashboard's state.
pub struct App {
    pub info: Info,
    /// Peak of the threads in use, GFLOP/s (measured at startup).
    pub peak_gflops: Option<f64>,
    /// Status, log, help overlay and leaving (shared with the compare dashboard).
    pub shell: Shell,
    pub view: View,
    /// Marker of the curves (`m` cycles).
    pub marker: Marker,
    /// How `fit` ended, once it has.
    pub finish: Option<FinishReason>,
    pub progress: Option<StepProgress>,
    pub learning_rate: f32,
    pub epochs: Vec<EpochResult>,
    /// (epochs elapsed, smoothed value) every progress event.
    pub train_loss: Vec<(f64, f64)>,
    pub train_accuracy: Vec<(f64, f64)>,
    smoothed: Option<(f64, f64)>,
    /// Samples/s of recent progress events.
    pub rates: VecDeque<u64>,
    /// Seconds per step, smoothed (for the ETA).
    pub seconds_per_step: Option<f64>,
    pub confusion: Option<Confusion>,
    pub samples: Vec<SamplePrediction>,
    /// The Inside panel's weights, views and picks.
    pub inside: Inside,
    pub test: Option<(f64, f64)>,
    /// Scroll offset of the log (lines from the end) and of the samples (rows).
    pub scroll: usize,
    /// What the headless mode would have printed (epoch, trainer log and
    /// test lines) and how training ended: printed once the dashboard has
    /// gone, so that the run stays in the scrollback.
    pub transcript: Vec<String>,
    started: Instant,
    /// When `fit` returned (the clock stops).
    finished_at: Option<Instant>,
    paused_since: Option<Instant>,
    paused_total: Duration,
}

impl App {
    pub fn new(info: Info) -> App {
        App {
            learning_rate: info.learning_rate,
            info,
            peak_gflops: None,
            shell: Shell::default(),
            view: View::Curves,
            marker: Marker::HalfBlock,
            finish: None,
            progress: None,
            epochs: Vec::new(),
            train_loss: Vec::new(),
            train_accuracy: Vec::new(),
            smoothed: None,
            rates: VecDeque::new(),
            seconds_per_step: None,
            confusion: None,
            samples: Vec::new(),
            inside: Inside::new(Palette::detect()),
            test: None,
            scroll: 0,
            transcript: Vec::new(),
            started: Instant::now(),
            finished_at: None,
            paused_since: None,
            paused_total: Duration::ZERO,
        }
    }

    /// Training time so far (until `fit` returned), pauses excluded.
    pub fn elapsed(&self) -> Duration {
        let now = self.finished_at.unwrap_or_else(Instant::now);
        let paused = self.paused_total + self.paused_since.map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        now.saturating_duration_since(self.started).saturating_sub(paused)
    }

    /// Takes in one trainer event.
    pub fn on_event(&mut self, event: Event) {
        match event {
            Event::Progress(p) => self.on_progress(p),
            Event::Epoch(r) => {
                self.learning_rate = r.learning_rate;
                let line = crate::headless::epoch_line(&r);
                self.transcript.push(line.clone());
                self.shell.push_log(line);
                self.epochs.push(r);
            }
            Event::Confusion(c) => self.confusion = Some(c),
            Event::Samples(s) => self.samples = s,
            Event::Snapshot(s) => self.inside.on_snapshot(*s, self.view == View::Inside),
            Event::Log(line) => {
                self.transcript.push(line.clone());
                self.shell.push_log(line);
            }
            Event::Paused(true) => {
                self.paused_since.get_or_insert_with(Instant::now);
                self.shell.on_paused(true);
            }
            Event::Paused(false) => {
                self.end_pause();
                self.shell.on_paused(false);
            }
            Event::Finished { reason } => {
                self.end_pause();
                self.finished_at.get_or_insert_with(Instant::now);
                let line = format!("training {}", finish_text(&reason));
                self.transcript.push(line.clone());
                self.shell.push_log(line);
                if !self.shell.trainer_done() {
                    self.shell.status = Status::Finished(reason.clone());
                }
                self.finish = Some(reason);
            }
            Event::Test { loss, accuracy } => {
                let line = format!("test_accuracy: {accuracy:.4} - test_loss: {loss:.4}");
                self.transcript.push(line.clone());
                self.shell.push_log(line);
                self.test = Some((loss, accuracy));
            }
        }
    }

    /// Stops the pause clock, if it runs.
    fn end_pause(&mut self) {
        if let Some(t) = self.paused_since.take() {
            self.paused_total += t.elapsed();
        }
    }

    fn on_progress(&mut self, p: StepProgress) {
        self.shell.on_progress();
        self.learning_rate = p.learning_rate;
        let (loss, accuracy) = interval_means(self.progress.as_ref(), &p);
        if loss.is_finite() && accuracy.is_finite() {
            let (l, a) = match self.smoothed {
                Some((l, a)) => (l + SMOOTHING * (loss - l), a + SMOOTHING * (accuracy - a)),
                None => (loss, accuracy),
            };
            self.smoothed = Some((l, a));
            let x = (p.epoch - 1) as f64 + p.step as f64 / p.steps.max(1) as f64;
            push_point(&mut self.train_loss, (x, l));
            push_point(&mut self.train_accuracy, (x, a.clamp(0.0, 1.0)));
        }
        if p.samples_per_second.is_finite() {
            if self.rates.len() == RATE_HISTORY {
                self.rates.pop_front();
            }
            self.rates.push_back(p.samples_per_second.max(0.0) as u64);
        }
        if p.seconds_per_step.is_finite() && p.seconds_per_step > 0.0 {
            self.seconds_per_step = Some(match self.seconds_per_step {
                Some(s) => s + 0.3 * (p.seconds_per_step - s),
                None => p.seconds_per_step,
            });
        }
        self.progress = Some(p);
    }

    /// The trainer thread has ended, with its error if it failed.
    pub fn on_trainer_done(&mut self, error: Option<String>) {
        self.finished_at.get_or_insert_with(Instant::now);
        self.shell.on_trainer_done(error);
    }

    /// Steps done in the whole run, and the total.
    pub fn run_steps(&self) -> (usize, usize) {
        let total = self.info.epochs * self.info.steps_per_epoch;
        let done = match (&self.progress, self.epochs.last()) {
            (Some(p), Some(e)) if e.epoch >= p.epoch => e.epoch * self.info.steps_per_epoch,
            (Some(p), _) => (p.epoch - 1) * self.info.steps_per_epoch + p.step,
            (None, Some(e)) => e.epoch * self.info.steps_per_epoch,
            (None, None) => 0,
        };
        (done.min(total), total)
    }

    /// Seconds left, validation passes included.
    pub fn eta_seconds(&self) -> Option<f64> {
        if !self.shell.training() {
            return None;
        }
        let per_step = self.seconds_per_step?;
        let (done, total) = self.run_steps();
        let epochs_done = self.epochs.len();
        let epochs_left = self.info.epochs.saturating_sub(epochs_done) as f64;
        // Validation per epoch: measured once an epoch has ended; before,
        // estimated as a forward pass (a third of a training step's work).
        let validation = match self.epochs.last() {
            Some(e) => (e.wall_seconds - e.train_seconds).max(0.0),
            None => self.info.val_count as f64 / self.info.batch_size as f64 * per_step / 3.0,
        };
        Some(total.saturating_sub(done) as f64 * per_step + epochs_left * validation)
    }

    /// Live throughput: (samples/s, ms/step, GFLOP/s, % of peak).
    pub fn throughput(&self) -> Option<(f64, f64, f64, Option<f64>)> {
        let p = self.progress.as_ref()?;
        let gflops = p.samples_per_second * self.info.flops_per_sample as f64 / 1e9;
        let peak = self.peak_gflops.filter(|&p| p > 0.0).map(|peak| 100.0 * gflops / peak);
        Some((p.samples_per_second, p.seconds_per_step * 1e3, gflops, peak))
    }

    /// The epoch with the lowest validation loss (1-based) and that loss.
    pub fn best_epoch(&self) -> Option<(usize, f64)> {
        self.epochs
            .iter()
            .filter_map(|e| e.val_loss.filter(|l| l.is_finite()).map(|l| (e.epoch, l)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// Handles one key press and returns the command for the trainer, if any.
    pub fn on_key(&mut self, key: KeyEvent) -> Option<Command> {
        let code = match self.shell.on_key(key, "stopping after the current step… (q again to leave when done)") {
            Key::Shared(Some(Command::Stop)) => {
                self.end_pause();
                return Some(Command::Stop);
            }
            Key::Shared(command) => return command,
            Key::Own(code) => code,
        };
        let training = self.shell.training();
        match code {
            KeyCode::Char('+') | KeyCode::Char('=') if training => Some(self.scale_learning_rate(2.0)),
            KeyCode::Char('-') | KeyCode::Char('_') if training => Some(self.scale_learning_rate(0.5)),
            KeyCode::Char('s') => {
                self.shell.push_log(format!("saving to {}…", self.info.save_path.display()));
                Some(Command::Save(self.info.save_path.clone()))
            }
            KeyCode::Char('m') => {
                self.marker = match self.marker {
                    Marker::HalfBlock => Marker::Braille,
                    Marker::Braille => Marker::Dot,
                    Marker::Dot => Marker::Block,
                    _ => Marker::HalfBlock,
                };
                None
            }
            // In the Inside panel the arrows pick the test image, `l` the layer.
            KeyCode::Right if self.view == View::Inside => {
                self.inside.step_image(1);
                None
            }
            KeyCode::Left if self.view == View::Inside => {
                self.inside.step_image(-1);
                None
            }
            KeyCode::Char('l') if self.view == View::Inside => {
                self.inside.next_layer();
                None
            }
            KeyCode::Tab | KeyCode::Right => {
                self.set_view(self.view.next());
                None
            }
            KeyCode::BackTab | KeyCode::Left => {
                self.set_view(self.view.previous());
                None
            }
            KeyCode::Char(c @ '1'..='5') => {
                self.set_view(View::ALL[c as usize - '1' as usize]);
                None
            }
            KeyCode::Up => {
                self.scroll = self.scroll.saturating_add(1);
                None
            }
            KeyCode::Down => {
                self.scroll = self.scroll.saturating_sub(1);
                None
            }
            _ => None,
        }
    }

    /// Switches the panel (the Inside panel's views catch up as it shows).
    fn set_view(&mut self, view: View) {
        self.view = view;
        self.scroll = 0;
        if view == View::Inside {
            self.inside.show();
        }
    }

    /// The trainer applies every scale it receives (also while paused): show
    /// the new rate at once rather than at the next progress event.
    fn scale_learning_rate(&mut self, factor: f32) -> Command {
        self.learning_rate *= factor;
        Command::ScaleLearningRate(factor)
    }
}

/// "completed", "stopped", ….
pub fn finish_text(reason: &FinishReason) -> &'static str {
    match reason {
        FinishReason::Completed => "completed",
        FinishReason::Stopped => "stopped",
        FinishReason::EarlyStopped => "stopped early",
        FinishReason::NonFiniteLoss => "failed: non-finite loss",
    }
}

/// The mean loss and accuracy of the steps since `prev`: the event carries
/// the epoch's running means, from which the interval's own is recovered.
pub(super) fn interval_means(prev: Option<&StepProgress>, p: &StepProgress) -> (f64, f64) {
    match prev {
        Some(prev) if prev.epoch == p.epoch && prev.step < p.step => {
            let n = (p.step - prev.step) as f64;
            let of = |now: f64, before: f64| (now * p.step as f64 - before * prev.step as f64) / n;
            (of(p.loss, prev.loss), of(p.accuracy, prev.accuracy))
        }
        _ => (p.loss, p.accuracy),
    }
}

/// Appends a point, halving the resolution of the older half when full.
pub(super) fn push_point(points: &mut Vec<(f64, f64)>, p: (f64, f64)) {
    if points.len() >= CURVE_POINTS {
        let half = points.len() / 2;
        let thinned: Vec<_> = points[..half].iter().step_by(2).copied().chain(points[half..].iter().copied()).collect();
        *points = thinned;
    }
    points.push(p);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::OptimizerKind;
    use crossterm::event::KeyModifiers;

    pub(crate) fn info() -> Info {
        Info {
            data: "fashion-mnist".into(),
            model: "784-100-10 relu".into(),
            optimizer: OptimizerKind::Sgd { momentum: 0.0, nesterov: false },
            learning_rate: 0.01,
            batch_size: 32,
            threads: 1,
            isa: "reference".into(),
            seed: 42,
            train_count: 320,
            val_count: 80,
            test_count: 100,
            epochs: 2,
            steps_per_epoch: 10,
            flops_per_sample: 1_000_000,
            class_names: (0..10).map(|c| c.to_string()).collect(),
            save_path: PathBuf::from("m.safetensors"),
        }
    }

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    fn progress(epoch: usize, step: usize, loss: f64, accuracy: f64) -> Event {
        Event::Progress(StepProgress {
            epoch,
            epochs: 2,
            step,
            steps: 10,
            loss,
            accuracy,
            samples_per_second: 1000.0,
            seconds_per_step: 0.032,
            learning_rate: 0.01,
        })
    }

    #[test]
    fn space_pauses_and_resumes_through_the_trainer() {
        let mut app = App::new(info());
        assert_eq!(app.on_key(key(KeyCode::Char(' '))), Some(Command::Pause));
        // Nothing changes until the trainer confirms.
        assert_eq!(app.shell.status, Status::Starting);
        app.on_event(Event::Paused(true));
        assert!(app.shell.paused());
        assert_eq!(app.on_key(key(KeyCode::Char(' '))), Some(Command::Resume));
        app.on_event(Event::Paused(false));
        assert_eq!(app.shell.status, Status::Running);
    }

    #[test]
    fn plus_and_minus_scale_the_learning_rate() {
        let mut app = App::new(info());
        assert_eq!(app.on_key(key(KeyCode::Char('+'))), Some(Command::ScaleLearningRate(2.0)));
        assert_eq!(app.learning_rate, 0.02, "shown at once");
        assert_eq!(app.on_key(key(KeyCode::Char('-'))), Some(Command::ScaleLearningRate(0.5)));
        assert_eq!(app.learning_rate, 0.01);
        app.on_event(Event::Finished { reason: FinishReason::Completed });
        assert_eq!(app.on_key(key(KeyCode::Char('+'))), None, "no trainer to scale after the end");
    }

    #[test]
    fn q_stops_first_then_leaves_once_done() {
        let mut app = App::new(info());
        assert_eq!(app.on_key(key(KeyCode::Char('q'))), Some(Command::Stop));
        assert_eq!(app.shell.status, Status::Stopping);
        assert!(!app.shell.quit);
        app.on_event(Event::Finished { reason: FinishReason::Stopped });
        app.on_trainer_done(None);
        assert!(!app.shell.quit, "the final results stay on screen");
        assert_eq!(app.on_key(key(KeyCode::Char('q'))), None);
        assert!(app.shell.quit);
    }

    #[test]
    fn ctrl_c_acts_as_q_and_a_second_q_leaves_when_done() {
        let mut app = App::new(info());
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(app.on_key(ctrl_c), Some(Command::Stop));
        assert_eq!(app.on_key(ctrl_c), None);
        assert!(app.shell.quit_when_done && !app.shell.quit);
        app.on_trainer_done(None);
        assert!(app.shell.quit);
    }

    #[test]
    fn tab_and_arrows_cycle_the_views() {
        let mut app = App::new(info());
        assert_eq!(app.view, View::Curves);
        app.on_key(key(KeyCode::Tab));
        assert_eq!(app.view, View::Confusion);
        app.on_key(key(KeyCode::Right));
        assert_eq!(app.view, View::Samples);
        app.on_key(key(KeyCode::Left));
        app.on_key(key(KeyCode::Left));
        app.on_key(key(KeyCode::BackTab));
        assert_eq!(app.view, View::Inside);
        app.on_key(key(KeyCode::BackTab));
        assert_eq!(app.view, View::Log);
        app.on_key(key(KeyCode::Char('3')));
        assert_eq!(app.view, View::Samples);
        app.on_key(key(KeyCode::Char('5')));
        assert_eq!(app.view, View::Inside);
        // There the arrows pick the image; tab still leaves.
        app.on_key(key(KeyCode::Right));
        assert_eq!(app.view, View::Inside);
        app.on_key(key(KeyCode::Tab));
        assert_eq!(app.view, View::Curves);
    }

    #[test]
    fn s_saves_to_the_save_path() {
        let mut app = App::new(info());
        assert_eq!(app.on_key(key(KeyCode::Char('s'))), Some(Command::Save(PathBuf::from("m.safetensors"))));
    }

    #[test]
    fn help_overlay_opens_and_any_key_closes_it() {
        let mut app = App::new(info());
        app.on_key(key(KeyCode::Char('?')));
        assert!(app.shell.show_help);
        assert_eq!(app.on_key(key(KeyCode::Char(' '))), None, "the closing key does nothing else");
        assert!(!app.shell.show_help);
    }

    #[test]
    fn progress_feeds_curves_rates_and_counters() {
        let mut app = App::new(info());
        app.on_event(progress(1, 2, 2.0, 0.2));
        app.on_event(progress(1, 4, 1.5, 0.4));
        assert_eq!(app.shell.status, Status::Running);
        assert_eq!(app.rates.len(), 2);
        assert_eq!(app.run_steps(), (4, 20));
        // Interval mean of steps 3-4: (1.5·4 − 2.0·2)/2 = 1.0; smoothed 2.0 + 0.2·(1.0 − 2.0).
        let (x, l) = *app.train_loss.last().unwrap();
        assert!((x - 0.4).abs() < 1e-12 && (l - 1.8).abs() < 1e-12, "{x} {l}");
        let (sps, ms, gflops, peak) = app.throughput().unwrap();
        assert_eq!((sps, ms, gflops, peak), (1000.0, 32.0, 1.0, None));
        app.peak_gflops = Some(4.0);
        assert_eq!(app.throughput().unwrap().3, Some(25.0));
    }

    #[test]
    fn eta_counts_remaining_steps_and_validation() {
        let mut app = App::new(info());
        assert_eq!(app.eta_seconds(), None);
        app.on_event(progress(1, 10, 1.0, 0.5));
        app.on_event(Event::Epoch(EpochResult {
            epoch: 1,
            epochs: 2,
            steps: 10,
            loss: 1.0,
            accuracy: 0.5,
            val_loss: Some(0.9),
            val_accuracy: Some(0.6),
            learning_rate: 0.01,
            train_seconds: 0.32,
            wall_seconds: 0.42,
            samples_per_second: 1000.0,
        }));
        assert_eq!(app.run_steps(), (10, 20));
        // 10 steps · 0.032 s + one validation pass of 0.1 s.
        let eta = app.eta_seconds().unwrap();
        assert!((eta - 0.42).abs() < 1e-9, "{eta}");
        assert_eq!(app.best_epoch(), Some((1, 0.9)));
    }

    #[test]
    fn curves_stay_bounded() {
        let mut points = Vec::new();
        for i in 0..3 * CURVE_POINTS {
            push_point(&mut points, (i as f64, 0.0));
        }
        assert!(points.len() <= CURVE_POINTS);
        assert_eq!(points.last().unwrap().0, (3 * CURVE_POINTS - 1) as f64);
        assert!(points.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
