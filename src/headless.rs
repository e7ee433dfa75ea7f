//! Headless front end: one Keras-style line per epoch on stdout, log lines as
//! they come; SIGINT / SIGTERM stop training after the current step.

use crate::events::{Command, EpochResult, Event, StepProgress};
use crate::train::Monitor;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `228_431.0` → `228k`; `4_082.0` → `4.08k`; `1_234_567.0` → `1.23M`.
pub fn human_rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 1e3 {
        format!("{:.2}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// Seconds per step as Keras shows it: `140us/step`, `2ms/step`.
pub fn per_step(seconds: f64) -> String {
    if seconds < 1e-3 {
        format!("{:.0}us/step", seconds * 1e6)
    } else if seconds < 1.0 {
        format!("{:.0}ms/step", seconds * 1e3)
    } else {
        format!("{seconds:.1}s/step")
    }
}

/// `Epoch 3/5 - 1500/1500 - 0.21s - 140us/step - 228k samples/s - accuracy: … - loss: … - val_accuracy: … - val_loss: …`
pub fn epoch_line(r: &EpochResult) -> String {
    let mut s = format!(
        "Epoch {}/{} - {}/{} - {:.2}s - {} - {} samples/s - accuracy: {:.4} - loss: {:.4}",
        r.epoch,
        r.epochs,
        r.steps,
        r.steps,
        r.wall_seconds,
        per_step(r.train_seconds / r.steps.max(1) as f64),
        human_rate(r.samples_per_second),
        r.accuracy,
        r.loss
    );
    if let (Some(va), Some(vl)) = (r.val_accuracy, r.val_loss) {
        s += &format!(" - val_accuracy: {va:.4} - val_loss: {vl:.4}");
    }
    s
}

/// Signals that ask a headless run to stop: set by SIGINT / SIGTERM handlers.
#[derive(Clone, Default)]
pub struct StopSignals {
    pub interrupt: Arc<AtomicBool>,
    pub terminate: Arc<AtomicBool>,
}

impl StopSignals {
    /// Installs the handlers (after this, Ctrl-C no longer kills the process:
    /// the trainer stops after its current step).
    pub fn install() -> std::io::Result<StopSignals> {
        let s = StopSignals::default();
        signal_hook::flag::register(signal_hook::consts::SIGINT, s.interrupt.clone())?;
        signal_hook::flag::register(signal_hook::consts::SIGTERM, s.terminate.clone())?;
        Ok(s)
    }

    /// The exit code a shell expects after this signal: 130 (SIGINT), 143 (SIGTERM).
    pub fn exit_code(&self) -> Option<u8> {
        if self.interrupt.load(Ordering::Relaxed) {
            Some(130)
        } else if self.terminate.load(Ordering::Relaxed) {
            Some(143)
        } else {
            None
        }
    }
}

/// `Epoch 2/20 - 600/1500 - ETA: 6s - 4,120 samples/s - accuracy: 0.8812 - loss: 0.3342`:
/// an epoch's progress so far, for epochs long enough to wait on (a CNN's).
pub fn progress_line(p: &StepProgress) -> String {
    let eta = p.seconds_per_step * p.steps.saturating_sub(p.step) as f64;
    format!(
        "Epoch {}/{} - {}/{} - ETA: {} - {} samples/s - accuracy: {:.4} - loss: {:.4}",
        p.epoch,
        p.epochs,
        p.step,
        p.steps,
        if eta < 60.0 { format!("{eta:.0}s") } else { format!("{}m{:02.0}s", (eta / 60.0) as u64, eta % 60.0) },
        human_rate(p.samples_per_second),
        p.accuracy,
        p.loss
    )
}

/// How often a long epoch reports its progress: in place on a terminal,
/// as a line of its own in a log (a pipe, CI).
const TTY_PROGRESS: Duration = Duration::from_millis(250);
const LOG_PROGRESS: Duration = Duration::from_secs(5);

/// Prints epochs and logs to stdout (`quiet` prints nothing: used by `compare`).
/// Epochs that take longer than a second also show their progress and ETA:
/// rewritten in place where stdout is a terminal, else a line every 5 s.
pub struct Headless {
    pub signals: StopSignals,
    pub quiet: bool,
    tty: bool,
    /// When this epoch started (its first progress event), and when progress was last shown.
    epoch_start: Option<Instant>,
    last_shown: Option<Instant>,
    /// A progress line is on screen without its newline.
    partial: bool,
}

impl Headless {
    pub fn new(signals: StopSignals, quiet: bool) -> Headless {
        Headless {
            signals,
            quiet,
            tty: std::io::stdout().is_terminal(),
            epoch_start: None,
            last_shown: None,
            partial: false,
        }
    }

    fn on_progress(&mut self, p: &StepProgress) -> Option<String> {
        let now = Instant::now();
        let start = *self.epoch_start.get_or_insert(now);
        if p.step == p.steps {
            self.epoch_start = None; // the epoch line follows
            return None;
        }
        let every = if self.tty { TTY_PROGRESS } else { LOG_PROGRESS };
        let due = self
            .last_shown
            .map_or(now.duration_since(start) >= Duration::from_secs(1), |t| now.duration_since(t) >= every);
        if !due {
            return None;
        }
        self.last_shown = Some(now);
        Some(progress_line(p))
    }
}

impl Monitor for Headless {
    fn event(&mut self, event: Event) {
        if self.quiet {
            return;
        }
        let line = match event {
            Event::Progress(p) => match self.on_progress(&p) {
                Some(line) if self.tty => {
                    let mut out = std::io::stdout().lock();
                    // \r and erase-to-end: the line is rewritten where it stands.
                    let _ = write!(out, "\r{line}\x1b[K");
                    let _ = out.flush();
                    self.partial = true;
                    return;
                }
                Some(line) => line,
                None => return,
            },
            Event::Epoch(r) => {
                self.last_shown = None;
                epoch_line(&r)
            }
            Event::Log(s) => s,
            Event::Test { loss, accuracy } => {
                format!("test_accuracy: {accuracy:.4} - test_loss: {loss:.4}")
            }
            _ => return,
        };
        let mut out = std::io::stdout().lock();
        if std::mem::take(&mut self.partial) {
            let _ = write!(out, "\r\x1b[K");
        }
        // A closed pipe (e.g. `| head`) must not kill training with a panic.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    fn poll(&mut self) -> Option<Command> {
        self.signals.exit_code().map(|_| Command::Stop)
    }
}
