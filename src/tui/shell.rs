//! What both dashboards (training and compare) share around their own
//! panels: where the run stands, the log, the help overlay, and the keys and
//! signals that pause, stop and leave. Pure (no terminal), so it is
//! unit-tested; each dashboard's `App` embeds one [`Shell`].

use crate::events::{Command, FinishReason};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use std::collections::VecDeque;

/// Log lines kept.
const LOG_LINES: usize = 1000;

/// Where the run stands.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Status {
    #[default]
    Starting,
    Running,
    Paused,
    /// Stop asked; the trainer finishes its step (and the test pass).
    Stopping,
    /// `fit` returned; the test pass and the final save may still run.
    Finished(FinishReason),
    /// The trainer thread has ended (with the given error, if any).
    Done(Option<String>),
}

/// What a key press was, to the shell.
#[derive(Debug, PartialEq)]
pub enum Key {
    /// A shared key (help, pause, stop, quit, or any key closing the help),
    /// with the command for the trainer, if any.
    Shared(Option<Command>),
    /// A key for the dashboard itself.
    Own(KeyCode),
}

/// The state and the keys both dashboards share.
#[derive(Debug, Default)]
pub struct Shell {
    pub status: Status,
    pub log: VecDeque<String>,
    pub show_help: bool,
    /// Leave the dashboard.
    pub quit: bool,
    /// Leave as soon as the trainer thread ends (`q` twice, SIGTERM).
    pub quit_when_done: bool,
}

impl Shell {
    /// Whether the trainer is still training (commands reach it).
    pub fn training(&self) -> bool {
        matches!(self.status, Status::Starting | Status::Running | Status::Paused)
    }

    pub fn paused(&self) -> bool {
        self.status == Status::Paused
    }

    pub fn trainer_done(&self) -> bool {
        matches!(self.status, Status::Done(_))
    }

    pub fn push_log(&mut self, line: impl Into<String>) {
        if self.log.len() == LOG_LINES {
            self.log.pop_front();
        }
        self.log.push_back(line.into());
    }

    /// A progress event: the run is under way.
    pub fn on_progress(&mut self) {
        if self.status == Status::Starting {
            self.status = Status::Running;
        }
    }

    /// The trainer has paused (`true`) or resumed.
    pub fn on_paused(&mut self, paused: bool) {
        if paused {
            if self.training() {
                self.status = Status::Paused;
            }
            self.push_log("paused");
        } else {
            if self.status == Status::Paused {
                self.status = Status::Running;
            }
            self.push_log("resumed");
        }
    }

    /// The trainer thread has ended, with its error if it failed.
    pub fn on_trainer_done(&mut self, error: Option<String>) {
        if let Some(e) = &error {
            self.push_log(format!("error: {e}"));
        }
        self.status = Status::Done(error);
        if self.quit_when_done {
            self.quit = true;
        }
    }

    /// Handles the shared keys: any key closes the help (`q` and Ctrl-C also
    /// act), `?`/`h` help, space/`p` pause and resume, `q`/Ctrl-C stop and
    /// then leave (`stopping` is the log line for the stop). Key releases are
    /// shared keys that do nothing; anything else is the dashboard's own.
    pub fn on_key(&mut self, key: KeyEvent, stopping: &str) -> Key {
        if key.kind == KeyEventKind::Release {
            return Key::Shared(None);
        }
        let ctrl_c = key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c');
        if self.show_help && !ctrl_c {
            // Any key closes the overlay; `q` also acts.
            self.show_help = false;
            if key.code != KeyCode::Char('q') {
                return Key::Shared(None);
            }
        }
        if ctrl_c {
            return Key::Shared(self.quit_or_stop(stopping));
        }
        match key.code {
            KeyCode::Char('q') => Key::Shared(self.quit_or_stop(stopping)),
            KeyCode::Char('?') | KeyCode::Char('h') => {
                self.show_help = true;
                Key::Shared(None)
            }
            KeyCode::Char(' ') | KeyCode::Char('p') => Key::Shared(match self.status {
                Status::Running | Status::Starting => Some(Command::Pause),
                Status::Paused => Some(Command::Resume),
                _ => None,
            }),
            code => Key::Own(code),
        }
    }

    /// `q` / Ctrl-C: stop training first; once the trainer is done, leave.
    fn quit_or_stop(&mut self, stopping: &str) -> Option<Command> {
        if self.trainer_done() {
            self.quit = true;
            return None;
        }
        if self.training() {
            self.status = Status::Stopping;
            self.push_log(stopping);
            return Some(Command::Stop);
        }
        // Already stopping or finishing (test pass, final save): leave when done.
        self.quit_when_done = true;
        self.push_log("leaving when the trainer is done…");
        None
    }

    /// SIGINT / SIGTERM / SIGHUP arrived: stop training (the command for the
    /// trainer, if it still trains) and leave once the trainer is done.
    pub fn on_signal(&mut self) -> Option<Command> {
        self.push_log("signal received: stopping");
        self.quit_when_done = true;
        let stop = self.training().then(|| {
            self.status = Status::Stopping;
            Command::Stop
        });
        if self.trainer_done() {
            self.quit = true;
        }
        stop
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    #[test]
    fn other_keys_are_the_dashboards_own() {
        let mut shell = Shell::default();
        assert_eq!(shell.on_key(key(KeyCode::Tab), "stopping"), Key::Own(KeyCode::Tab));
        assert_eq!(shell.on_key(key(KeyCode::Char('s')), "stopping"), Key::Own(KeyCode::Char('s')));
        // While the help shows, a key only closes it.
        shell.show_help = true;
        assert_eq!(shell.on_key(key(KeyCode::Tab), "stopping"), Key::Shared(None));
        assert!(!shell.show_help);
        let mut release = key(KeyCode::Tab);
        release.kind = KeyEventKind::Release;
        assert_eq!(shell.on_key(release, "stopping"), Key::Shared(None));
    }

    #[test]
    fn q_logs_the_dashboards_stop_line() {
        let mut shell = Shell::default();
        assert_eq!(shell.on_key(key(KeyCode::Char('q')), "stopping now"), Key::Shared(Some(Command::Stop)));
        assert_eq!(shell.status, Status::Stopping);
        assert_eq!(shell.log.back().map(String::as_str), Some("stopping now"));
    }

    #[test]
    fn a_signal_stops_training_and_leaves_when_done() {
        let mut shell = Shell::default();
        assert_eq!(shell.on_signal(), Some(Command::Stop));
        assert_eq!(shell.status, Status::Stopping);
        assert!(shell.quit_when_done && !shell.quit);
        shell.on_trainer_done(None);
        assert!(shell.quit);
        // After the trainer has ended: leave at once, nothing to stop.
        let mut shell = Shell::default();
        shell.on_trainer_done(Some("boom".into()));
        assert_eq!(shell.log.back().map(String::as_str), Some("error: boom"));
        assert!(!shell.quit);
        assert_eq!(shell.on_signal(), None);
        assert!(shell.quit);
    }

    #[test]
    fn log_keeps_the_latest_lines() {
        let mut shell = Shell::default();
        for i in 0..LOG_LINES + 5 {
            shell.push_log(i.to_string());
        }
        assert_eq!(shell.log.len(), LOG_LINES);
        assert_eq!(shell.log.front().map(String::as_str), Some("5"));
    }
}
