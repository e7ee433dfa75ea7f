//! Headless front end: one Keras-style line per epoch on stdout, log lines as
//! they come; SIGINT / SIGTERM stop training after the current step.

use crate::events::{Command, EpochResult, Event};
use crate::train::Monitor;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// `228_431.0` → `228k`; `1_234_567.0` → `1.23M`.
pub fn human_rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0}k", v / 1e3)
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

/// Prints epochs and logs to stdout (`quiet` prints nothing: used by `compare`).
pub struct Headless {
    pub signals: StopSignals,
    pub quiet: bool,
}

impl Monitor for Headless {
    fn event(&mut self, event: Event) {
        if self.quiet {
            return;
        }
        let line = match event {
            Event::Epoch(r) => epoch_line(&r),
            Event::Log(s) => s,
            Event::Test { loss, accuracy } => {
                format!("test_accuracy: {accuracy:.4} - test_loss: {loss:.4}")
            }
            _ => return,
        };
        let mut out = std::io::stdout().lock();
        // A closed pipe (e.g. `| head`) must not kill training with a panic.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    fn poll(&mut self) -> Option<Command> {
        self.signals.exit_code().map(|_| Command::Stop)
    }
}
