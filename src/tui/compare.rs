//! The `simdnet compare` dashboard: the configurations train one after the
//! other on the trainer thread ([`compare::run`]); this view overlays their
//! validation curves, one colour each, and fills in the results table as they
//! finish. The terminal, input thread, signals and UI loop are the training
//! dashboard's (see the parent module).

use super::app::{finish_text, interval_means, push_point, SMOOTHING};
use super::shell::{Key, Shell};
use super::{catch_trainer_panic, drive, open_terminal, Input, Restore, Screen, Signals};
use crate::cli::TrainArgs;
use crate::compare::{self, CompareMonitor, RunResult};
use crate::error::{Error, Result};
use crate::events::{Command, EpochResult, Event, FinishReason, StepProgress};
use crossterm::event::KeyEvent;
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

/// The fixed facts of a comparison, shown in the header.
#[derive(Clone, Debug)]
pub struct CompareInfo {
    /// One per configuration, from [`compare::configurations`].
    pub names: Vec<String>,
    /// Data set name (its directory's name).
    pub data: String,
    pub epochs: usize,
    pub batch_size: usize,
    pub threads: usize,
    /// The GEMM path in use.
    pub isa: String,
}

impl CompareInfo {
    pub fn new(configs: &[(String, TrainArgs)], threads: usize) -> CompareInfo {
        let first = configs.first().map(|(_, a)| a);
        let data = first.map_or_else(String::new, |a| {
            let dir = a.data.data_dir();
            dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into())
        });
        CompareInfo {
            names: configs.iter().map(|(n, _)| n.clone()).collect(),
            data,
            epochs: first.map_or(0, |a| a.fit.epochs as usize),
            batch_size: first.map_or(0, |a| a.fit.batch_size as usize),
            threads,
            isa: crate::gemm::selected_isa().name().to_string(),
        }
    }
}

/// What one configuration has reported so far.
#[derive(Clone, Debug, Default)]
pub struct Series {
    pub epochs: Vec<EpochResult>,
    /// (epochs elapsed, smoothed training loss) every progress event.
    pub train_loss: Vec<(f64, f64)>,
    smoothed: Option<f64>,
    last: Option<StepProgress>,
    pub test: Option<(f64, f64)>,
    pub finish: Option<FinishReason>,
}

impl Series {
    /// (epoch, validation loss) points.
    pub fn val_loss(&self) -> Vec<(f64, f64)> {
        self.epochs.iter().filter_map(|e| e.val_loss.map(|v| (e.epoch as f64, v))).collect()
    }

    /// (epoch, validation accuracy) points.
    pub fn val_accuracy(&self) -> Vec<(f64, f64)> {
        self.epochs.iter().filter_map(|e| e.val_accuracy.map(|v| (e.epoch as f64, v))).collect()
    }

    fn on_progress(&mut self, p: StepProgress) {
        let (loss, _) = interval_means(self.last.as_ref(), &p);
        if loss.is_finite() {
            let l = self.smoothed.map_or(loss, |l| l + SMOOTHING * (loss - l));
            self.smoothed = Some(l);
            let x = (p.epoch - 1) as f64 + p.step as f64 / p.steps.max(1) as f64;
            push_point(&mut self.train_loss, (x, l));
        }
        self.last = Some(p);
    }
}

/// The compare dashboard's state. Pure (no terminal), so it is unit-tested.
pub struct CompareApp {
    pub info: CompareInfo,
    /// One per configuration.
    pub series: Vec<Series>,
    /// Filled in as the configurations finish.
    pub results: Vec<Option<RunResult>>,
    /// The configuration training now (or last).
    pub current: Option<usize>,
    /// The current configuration's latest progress.
    pub progress: Option<StepProgress>,
    /// Status, log, help overlay and leaving (shared with the training dashboard).
    pub shell: Shell,
    started: Instant,
    finished_at: Option<Instant>,
}

impl CompareApp {
    pub fn new(info: CompareInfo) -> CompareApp {
        let n = info.names.len();
        CompareApp {
            info,
            series: vec![Series::default(); n],
            results: vec![None; n],
            current: None,
            progress: None,
            shell: Shell::default(),
            started: Instant::now(),
            finished_at: None,
        }
    }

    /// Configuration `index`'s name (`?` for an index out of range).
    pub fn name(&self, index: usize) -> &str {
        self.info.names.get(index).map_or("?", String::as_str)
    }

    /// Wall time since the start, until the trainer ended.
    pub fn elapsed(&self) -> Duration {
        self.finished_at.unwrap_or_else(Instant::now).saturating_duration_since(self.started)
    }

    /// Configuration `index` starts; `header` describes its run.
    pub fn on_begin(&mut self, index: usize, header: &str) {
        self.current = Some(index);
        self.progress = None;
        self.shell.push_log(format!("[{}] {header}", self.name(index)));
    }

    /// Takes in one event of configuration `index`.
    pub fn on_event(&mut self, index: usize, event: Event) {
        if index >= self.series.len() {
            return;
        }
        let name = self.name(index).to_string();
        match event {
            Event::Progress(p) => {
                self.shell.on_progress();
                self.current = Some(index);
                self.series[index].on_progress(p.clone());
                self.progress = Some(p);
            }
            Event::Epoch(r) => {
                self.shell.push_log(format!("[{name}] {}", crate::headless::epoch_line(&r)));
                self.series[index].epochs.push(r);
            }
            Event::Log(line) => self.shell.push_log(format!("[{name}] {line}")),
            Event::Paused(paused) => self.shell.on_paused(paused),
            Event::Finished { reason } => {
                self.shell.push_log(format!("[{name}] training {}", finish_text(&reason)));
                self.series[index].finish = Some(reason);
            }
            Event::Test { loss, accuracy } => {
                self.shell.push_log(format!("[{name}] test_accuracy: {accuracy:.4} - test_loss: {loss:.4}"));
                self.series[index].test = Some((loss, accuracy));
            }
            Event::Confusion(_) | Event::Samples(_) | Event::Snapshot(_) => {}
        }
    }

    /// Configuration `index` has finished: its table row.
    pub fn on_result(&mut self, index: usize, result: RunResult) {
        if let Some(slot) = self.results.get_mut(index) {
            *slot = Some(result);
        }
    }

    /// The trainer thread has ended, with its error if it failed.
    pub fn on_trainer_done(&mut self, error: Option<String>) {
        self.finished_at.get_or_insert_with(Instant::now);
        self.progress = None;
        if error.is_none() {
            let done = self.results.iter().flatten().count();
            self.shell.push_log(format!("comparison done: {done} of {} configurations", self.results.len()));
        }
        self.shell.on_trainer_done(error);
    }

    /// The finished configuration with the highest validation accuracy (of
    /// equal ones, the lowest validation loss; then the first).
    pub fn best(&self) -> Option<usize> {
        let key = |r: &RunResult| {
            let accuracy = r.val_accuracy.filter(|a| a.is_finite())?;
            Some((accuracy, r.val_loss.filter(|l| l.is_finite()).unwrap_or(f64::INFINITY)))
        };
        self.results
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some((i, key(r.as_ref()?)?)))
            .fold(None, |best: Option<(usize, (f64, f64))>, (i, (a, l))| match best {
                Some((_, (ba, bl))) if ba > a || (ba == a && bl <= l) => best,
                _ => Some((i, (a, l))),
            })
            .map(|(i, _)| i)
    }

    /// Configurations finished, and the whole comparison's progress in [0, 1].
    pub fn overall(&self) -> (usize, f64) {
        let done = self.results.iter().flatten().count();
        let n = self.results.len().max(1) as f64;
        let current = match (&self.progress, self.current) {
            (Some(p), Some(i)) if self.results.get(i).is_some_and(Option::is_none) => {
                ((p.epoch - 1) as f64 + p.step as f64 / p.steps.max(1) as f64) / p.epochs.max(1) as f64
            }
            _ => 0.0,
        };
        (done, ((done as f64 + current.clamp(0.0, 1.0)) / n).min(1.0))
    }

    /// Handles one key press and returns the command for the trainer, if any:
    /// the shared keys only (`q` also skips the configurations not yet run).
    pub fn on_key(&mut self, key: KeyEvent) -> Option<Command> {
        let stopping = "stopping after the current step, skipping the rest… (q again to leave when done)";
        match self.shell.on_key(key, stopping) {
            Key::Shared(command) => command,
            Key::Own(_) => None,
        }
    }
}

/// What the compare trainer thread (and the input thread) send the UI thread.
#[derive(Debug)]
pub enum CompareMsg {
    Begin(usize, String),
    Event(usize, Event),
    Result(usize, Box<RunResult>),
    /// `compare::run` returned (with its error's message, if it failed).
    Done(Option<String>),
    Input(Input),
}

impl From<Input> for CompareMsg {
    fn from(input: Input) -> CompareMsg {
        CompareMsg::Input(input)
    }
}

/// The trainer's side of the channels.
struct ChannelCompare {
    events: Sender<CompareMsg>,
    commands: Receiver<Command>,
}

impl CompareMonitor for ChannelCompare {
    fn begin(&mut self, index: usize, _name: &str, header: &str) {
        let _ = self.events.send(CompareMsg::Begin(index, header.to_string()));
    }

    fn event(&mut self, index: usize, event: Event) {
        // The dashboard gone (it failed): nothing to tell; poll stops training.
        let _ = self.events.send(CompareMsg::Event(index, event));
    }

    fn end(&mut self, index: usize, result: &RunResult) {
        let _ = self.events.send(CompareMsg::Result(index, Box::new(result.clone())));
    }

    fn poll(&mut self) -> Option<Command> {
        super::poll_commands(&self.commands)
    }

    fn wait(&mut self) -> Option<Command> {
        self.commands.recv().ok()
    }
}

struct Comparing<'a> {
    app: &'a mut CompareApp,
}

impl Screen for Comparing<'_> {
    type Message = CompareMsg;

    fn on_message(&mut self, message: CompareMsg, commands: &Sender<Command>) -> Result<bool> {
        match message {
            CompareMsg::Begin(i, header) => self.app.on_begin(i, &header),
            CompareMsg::Event(i, e) => self.app.on_event(i, e),
            CompareMsg::Result(i, r) => self.app.on_result(i, *r),
            CompareMsg::Done(error) => self.app.on_trainer_done(error),
            CompareMsg::Input(Input::Key(key)) => {
                if let Some(c) = self.app.on_key(key) {
                    let _ = commands.send(c);
                }
            }
            CompareMsg::Input(Input::Resize) => return Ok(true),
            CompareMsg::Input(Input::Error(e)) => {
                return Err(Error::new(format!("dashboard: cannot read the terminal: {e}")))
            }
        }
        Ok(false)
    }

    fn shell(&mut self) -> &mut Shell {
        &mut self.app.shell
    }

    fn draw(&self, frame: &mut ratatui::Frame) {
        frame.render_widget(&*self.app, frame.area());
    }
}

/// Trains `configs` behind the compare dashboard. Returns the results of the
/// configurations that ran and, when a signal ended the run, the exit code
/// the shell expects.
pub fn run(configs: &[(String, TrainArgs)]) -> Result<(Vec<RunResult>, Option<u8>)> {
    // A data set that cannot be read is reported on the normal screen, not
    // on a dashboard that has to be closed first.
    if let Some((_, args)) = configs.first() {
        crate::app::open_data(&args.data)?;
    }
    // The pool the sessions will use (only the first call takes effect).
    let threads = crate::app::init_threads(configs.first().and_then(|(_, a)| a.fit.threads))?;
    let mut app = CompareApp::new(CompareInfo::new(configs, threads));
    let signals = Signals::install().map_err(|e| Error::new(format!("cannot install signal handlers: {e}")))?;
    let mut terminal = open_terminal().map_err(|e| Error::new(format!("cannot open the dashboard: {e}")))?;
    let restore = Restore;
    terminal.draw(|f| f.render_widget(&app, f.area())).map_err(super::draw_error)?;
    let mut screen = Comparing { app: &mut app };
    let results = drive(&mut terminal, &mut screen, &signals, |events, commands| {
        let mut monitor = ChannelCompare { events, commands };
        let result = catch_trainer_panic(|| compare::run(configs, &mut monitor));
        let _ = monitor.events.send(CompareMsg::Done(result.as_ref().err().map(|e| e.to_string())));
        result
    });
    drop(terminal);
    drop(restore);
    Ok((results?, signals.exit_code()))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::train::History;
    use crate::tui::Status;
    use crossterm::event::{KeyCode, KeyModifiers};

    pub(crate) fn info(n: usize) -> CompareInfo {
        let names = ["optimizer=sgd", "optimizer=adam", "optimizer=rmsprop", "optimizer=adagrad"];
        CompareInfo {
            names: names[..n].iter().map(|s| s.to_string()).collect(),
            data: "fashion-mnist".into(),
            epochs: 2,
            batch_size: 32,
            threads: 1,
            isa: "reference".into(),
        }
    }

    pub(crate) fn epoch(epoch: usize, val_loss: f64, val_accuracy: f64) -> EpochResult {
        EpochResult {
            epoch,
            epochs: 2,
            steps: 10,
            loss: val_loss + 0.1,
            accuracy: val_accuracy - 0.05,
            val_loss: Some(val_loss),
            val_accuracy: Some(val_accuracy),
            learning_rate: 0.01,
            train_seconds: 0.3,
            wall_seconds: 0.4,
            samples_per_second: 1000.0,
        }
    }

    fn progress(epoch: usize, step: usize, loss: f64) -> Event {
        Event::Progress(StepProgress {
            epoch,
            epochs: 2,
            step,
            steps: 10,
            loss,
            accuracy: 0.5,
            samples_per_second: 1000.0,
            seconds_per_step: 0.03,
            learning_rate: 0.01,
        })
    }

    pub(crate) fn result(name: &str, val_accuracy: f64, finish: FinishReason) -> RunResult {
        RunResult {
            name: name.into(),
            val_loss: Some(1.0 - val_accuracy),
            val_accuracy: Some(val_accuracy),
            test_loss: Some(1.1 - val_accuracy),
            test_accuracy: Some(val_accuracy - 0.01),
            epoch_seconds: 0.4,
            history: History { epochs: vec![epoch(1, 1.0 - val_accuracy, val_accuracy)], finish },
        }
    }

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    #[test]
    fn events_update_their_configurations_series() {
        let mut app = CompareApp::new(info(3));
        app.on_begin(1, "simdnet: 784-100-10 relu …");
        app.on_event(1, progress(1, 5, 2.0));
        app.on_event(1, progress(1, 10, 1.5));
        app.on_event(1, Event::Epoch(epoch(1, 0.9, 0.7)));
        assert_eq!(app.shell.status, Status::Running);
        assert_eq!(app.current, Some(1));
        assert!(app.series[0].epochs.is_empty() && app.series[2].epochs.is_empty());
        assert_eq!(app.series[1].val_loss(), vec![(1.0, 0.9)]);
        assert_eq!(app.series[1].val_accuracy(), vec![(1.0, 0.7)]);
        // Interval mean of steps 6-10: (1.5·10 − 2.0·5)/5 = 1.0; smoothed 2.0 + 0.2·(1.0 − 2.0).
        assert_eq!(app.series[1].train_loss.len(), 2);
        let (x, l) = app.series[1].train_loss[1];
        assert!((x - 1.0).abs() < 1e-12 && (l - 1.8).abs() < 1e-12, "{x} {l}");
        app.on_event(1, Event::Test { loss: 0.8, accuracy: 0.72 });
        assert_eq!(app.series[1].test, Some((0.8, 0.72)));
        assert!(app.shell.log.iter().any(|l| l.starts_with("[optimizer=adam] Epoch 1/2")), "{:?}", app.shell.log);
        // Out of range: ignored, no panic.
        app.on_event(7, progress(1, 1, 1.0));
    }

    #[test]
    fn results_fill_the_table_and_the_best_is_the_highest_val_accuracy() {
        let mut app = CompareApp::new(info(3));
        assert_eq!(app.best(), None);
        app.on_result(0, result("optimizer=sgd", 0.61, FinishReason::Completed));
        app.on_result(1, result("optimizer=adam", 0.83, FinishReason::Completed));
        assert!(app.results[2].is_none());
        assert_eq!(app.best(), Some(1));
        assert_eq!(app.overall().0, 2);
        app.on_result(2, result("optimizer=rmsprop", 0.80, FinishReason::Completed));
        assert_eq!(app.best(), Some(1));
        assert_eq!(app.overall(), (3, 1.0));
        // A tie in accuracy goes to the lower validation loss.
        let mut tie = result("optimizer=rmsprop", 0.83, FinishReason::Completed);
        tie.val_loss = Some(0.01);
        app.on_result(2, tie);
        assert_eq!(app.best(), Some(2));
    }

    #[test]
    fn overall_progress_counts_the_running_configuration() {
        let mut app = CompareApp::new(info(2));
        app.on_result(0, result("optimizer=sgd", 0.6, FinishReason::Completed));
        app.on_begin(1, "");
        // Epoch 2 of 2, step 5 of 10: three quarters of configuration 2.
        app.on_event(1, progress(2, 5, 1.0));
        let (done, ratio) = app.overall();
        assert_eq!(done, 1);
        assert!((ratio - 0.875).abs() < 1e-12, "{ratio}");
    }

    #[test]
    fn q_stops_then_the_table_stays_until_q() {
        let mut app = CompareApp::new(info(2));
        app.on_event(0, progress(1, 1, 2.0));
        assert_eq!(app.on_key(key(KeyCode::Char('q'))), Some(Command::Stop));
        assert_eq!(app.shell.status, Status::Stopping);
        app.on_event(0, Event::Finished { reason: FinishReason::Stopped });
        assert_eq!(app.shell.status, Status::Stopping, "a configuration's end is not the comparison's");
        app.on_result(0, result("optimizer=sgd", 0.5, FinishReason::Stopped));
        app.on_trainer_done(None);
        assert!(!app.shell.quit, "the final table stays on screen");
        assert_eq!(app.on_key(key(KeyCode::Char('q'))), None);
        assert!(app.shell.quit);
    }

    #[test]
    fn ctrl_c_twice_leaves_when_done_and_space_pauses() {
        let mut app = CompareApp::new(info(2));
        assert_eq!(app.on_key(key(KeyCode::Char(' '))), Some(Command::Pause));
        app.on_event(0, Event::Paused(true));
        assert!(app.shell.paused());
        assert_eq!(app.on_key(key(KeyCode::Char(' '))), Some(Command::Resume));
        app.on_event(0, Event::Paused(false));
        assert_eq!(app.shell.status, Status::Running);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(app.on_key(ctrl_c), Some(Command::Stop));
        assert_eq!(app.on_key(ctrl_c), None);
        assert!(app.shell.quit_when_done && !app.shell.quit);
        app.on_trainer_done(Some("boom".into()));
        assert!(app.shell.quit);
        assert_eq!(app.shell.status, Status::Done(Some("boom".into())));
    }

    #[test]
    fn help_opens_and_any_key_closes_it() {
        let mut app = CompareApp::new(info(2));
        app.on_key(key(KeyCode::Char('?')));
        assert!(app.shell.show_help);
        assert_eq!(app.on_key(key(KeyCode::Char(' '))), None);
        assert!(!app.shell.show_help);
    }
}
