//! The live training dashboard. Training runs on its own thread and sends
//! [`Event`]s over a channel; this (the UI) thread owns the [`App`] state,
//! redraws at most ~15 times a second and sends [`Command`]s back.
//!
//! The terminal is restored on every exit: normal end, `q`, Ctrl-C, SIGTERM,
//! an error (returned after the restore, so it prints on the normal screen)
//! and a panic. A panic of the UI thread restores at once (panic hook); one of
//! the trainer is caught and shown on the dashboard as an error, reported
//! again after the restore.
//!
//! `simdnet compare` has its own view ([`compare`]) on the same machinery:
//! terminal, input thread, signals and UI loop (`Screen`, `drive`). Both
//! dashboards embed a [`Shell`] (status, log, help, the keys that pause, stop
//! and leave, the signal reaction) and draw its parts with [`widgets`].

pub mod app;
pub mod compare;
mod compare_ui;
pub mod inside;
pub mod shell;
pub mod ui;
pub mod widgets;

pub use app::{App, Info, View};
pub use shell::{Shell, Status};

use crate::app::{Outcome, Session};
use crate::atomic::FAULT_ENV;
use crate::checkpoint;
use crate::error::{Error, Result};
use crate::events::{Command, Event};
use crate::train::Monitor;
use crossterm::event::{self as term, Event as TermEvent};
use crossterm::terminal::{self, EnterAlternateScreen, LeaveAlternateScreen};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use std::io::{Stdout, Write};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

/// Shortest time between two frames (~15 per second).
const FRAME: Duration = Duration::from_millis(66);
/// Longest time between two frames (the clocks move on).
const IDLE_FRAME: Duration = Duration::from_millis(500);
/// Test images predicted after each epoch for the samples panel.
pub const SAMPLES: usize = 16;
/// Test images the Inside panel picks from (←/→).
pub const INSIDE_IMAGES: usize = 16;
/// Shortest time between two weight snapshots for the Inside panel.
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_millis(250);
/// And at least this long per parameter, so that a large model's copies
/// (about a nanosecond a parameter) cost training a few percent at most.
const SNAPSHOT_NANOS_PER_PARAM: u64 = 40;

/// The time between two weight snapshots of a model of `params` parameters:
/// 250 ms up to 6.25 million (the book's CNN has 333,526), longer above.
pub fn snapshot_interval(params: usize) -> Duration {
    SNAPSHOT_INTERVAL.max(Duration::from_nanos(SNAPSHOT_NANOS_PER_PARAM.saturating_mul(params as u64)))
}
/// How often the input thread checks whether the dashboard has closed.
const INPUT_POLL: Duration = Duration::from_millis(100);
/// How often the UI thread checks the signal flags while idle.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);
/// How long the FMA peak is measured at startup.
const PEAK_MEASURE: Duration = Duration::from_millis(300);
/// The windows it is timed in: the live rates are averages over longer
/// spans than that, which the host's interrupts cost as they cost the peak
/// (see `gemm::fma_peak_gflops_over`).
const PEAK_WINDOW: Duration = Duration::from_millis(50);

/// What the trainer thread sends to the UI thread.
#[derive(Debug)]
pub enum Msg {
    Event(Event),
    /// `Session::run` returned (with its error's message, if it failed); the
    /// thread keeps serving `Save` until the dashboard closes.
    Done(Option<String>),
    /// From the input thread.
    Key(crossterm::event::KeyEvent),
    Resize,
    InputError(String),
}

/// The trainer's side of the channels: events out, commands in.
pub struct ChannelMonitor {
    pub events: Sender<Msg>,
    pub commands: Receiver<Command>,
    /// Fault injection (tests): panic at the first progress event.
    pub panic_on_progress: bool,
}

impl Monitor for ChannelMonitor {
    fn event(&mut self, event: Event) {
        if self.panic_on_progress && matches!(event, Event::Progress(_)) {
            panic!("injected fault ({FAULT_ENV}=tui-trainer-panic)");
        }
        // The dashboard gone (it failed): nothing to tell; poll stops training.
        let _ = self.events.send(Msg::Event(event));
    }

    fn poll(&mut self) -> Option<Command> {
        poll_commands(&self.commands)
    }

    fn wait(&mut self) -> Option<Command> {
        self.commands.recv().ok()
    }
}

/// A trainer's `Monitor::poll` (both dashboards'): the next command if one
/// waits; the dashboard gone stops training.
fn poll_commands(commands: &Receiver<Command>) -> Option<Command> {
    match commands.try_recv() {
        Ok(c) => Some(c),
        Err(TryRecvError::Empty) => None,
        Err(TryRecvError::Disconnected) => Some(Command::Stop),
    }
}

/// SIGTERM / SIGINT / SIGHUP: stop training and leave once the trainer is done.
#[derive(Clone, Default)]
struct Signals {
    terminate: Arc<AtomicBool>,
    interrupt: Arc<AtomicBool>,
    hangup: Arc<AtomicBool>,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let s = Signals::default();
        signal_hook::flag::register(SIGTERM, s.terminate.clone())?;
        signal_hook::flag::register(SIGINT, s.interrupt.clone())?;
        signal_hook::flag::register(SIGHUP, s.hangup.clone())?;
        Ok(s)
    }

    /// The shell's exit code for the signal received, if any.
    fn exit_code(&self) -> Option<u8> {
        [(&self.hangup, 129), (&self.interrupt, 130), (&self.terminate, 143)]
            .into_iter()
            .find(|(flag, _)| flag.load(Ordering::Relaxed))
            .map(|(_, code)| code)
    }
}

type Tty = Terminal<CrosstermBackend<Stdout>>;

/// The thread that draws, while the dashboard is up.
static UI_THREAD: Mutex<Option<ThreadId>> = Mutex::new(None);
/// The message of the latest panic outside the UI thread (the trainer's, or
/// a kernel worker's), kept for the error report instead of printed over
/// the dashboard.
static PANIC_MESSAGE: Mutex<Option<String>> = Mutex::new(None);

/// Chains a hook before the existing one (once per process): a panic in the
/// UI thread restores the terminal before the message prints; any other
/// while the dashboard is up is kept quiet (the trainer catches it).
fn install_panic_hook() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let ui = *UI_THREAD.lock().unwrap_or_else(|e| e.into_inner());
            match ui {
                Some(id) if id != std::thread::current().id() => {
                    *PANIC_MESSAGE.lock().unwrap_or_else(|e| e.into_inner()) = Some(info.to_string());
                }
                Some(_) => {
                    restore_terminal();
                    previous(info);
                }
                None => previous(info),
            }
        }));
    });
}

fn restore_terminal() {
    let _ = terminal::disable_raw_mode();
    let _ = crossterm::execute!(std::io::stdout(), LeaveAlternateScreen, crossterm::cursor::Show);
}

/// Raw mode, the alternate screen, and this thread as the UI thread.
fn open_terminal() -> std::io::Result<Tty> {
    install_panic_hook();
    *UI_THREAD.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::thread::current().id());
    terminal::enable_raw_mode()?;
    let mut stdout = std::io::stdout();
    if let Err(e) = crossterm::execute!(stdout, EnterAlternateScreen) {
        restore_terminal();
        return Err(e);
    }
    Terminal::new(CrosstermBackend::new(stdout)).inspect_err(|_| restore_terminal())
}

/// Leaves the alternate screen and raw mode when dropped (also on an error
/// return or an unwinding panic of the UI thread).
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        restore_terminal();
        *UI_THREAD.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// `SIMDNET_FAULT=tui-trainer-panic` / `tui-ui-panic`: panic at the first
/// progress event, in the trainer or the UI thread (tests of the restore).
fn fault(name: &str) -> bool {
    std::env::var(FAULT_ENV).is_ok_and(|v| v == name)
}

/// Trains `session` behind the dashboard. Returns the outcome and, when a
/// signal ended the run, the exit code the shell expects.
pub fn run(session: &mut Session) -> Result<(Outcome, Option<u8>)> {
    session.cfg.sample_predictions = SAMPLES;
    session.cfg.snapshot_interval = Some(snapshot_interval(session.model.spec.param_count()));
    let mut app = App::new(Info::from_session(session));
    let test = &session.data.test;
    let shown = test.count.min(INSIDE_IMAGES);
    let images = (0..shown).map(|i| test.image(i).to_vec()).collect();
    app.inside.set_images(images, test.labels()[..shown].to_vec(), test.rows, test.cols);
    let signals = Signals::install().map_err(|e| Error::new(format!("cannot install signal handlers: {e}")))?;
    let mut terminal = open_terminal().map_err(|e| Error::new(format!("cannot open the dashboard: {e}")))?;
    let restore = Restore;
    terminal.draw(|f| f.render_widget(&app, f.area())).map_err(draw_error)?;
    // Measured before training starts, so that neither disturbs the other.
    app.peak_gflops = Some(crate::gemm::fma_peak_gflops_over(PEAK_MEASURE, PEAK_WINDOW) * session.threads as f64);
    let mut screen = Training { app: &mut app, ui_panic: fault("tui-ui-panic") };
    let trained = drive(&mut terminal, &mut screen, &signals, |events, commands| train(session, events, commands));
    drop(terminal);
    drop(restore);
    // Printed after the dashboard has gone, as `compare` prints its table,
    // so that the run's lines stay on the screen and in the scrollback. A
    // closed terminal (SIGHUP) must not turn into a panic.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", session.header());
    for line in &app.transcript {
        let _ = writeln!(out, "{line}");
    }
    let _ = out.flush();
    drop(out);
    Ok((trained?, signals.exit_code()))
}

fn draw_error(e: std::io::Error) -> Error {
    Error::new(format!("cannot draw the dashboard: {e}"))
}

/// A dashboard the UI loop drives: takes the trainer's and the terminal's
/// messages and draws itself; its [`Shell`] reacts to a signal and says when
/// to leave.
trait Screen {
    type Message: From<Input> + Send + 'static;
    /// Takes one message; `Ok(true)` asks for a full redraw (a resize).
    fn on_message(&mut self, message: Self::Message, commands: &Sender<Command>) -> Result<bool>;
    fn shell(&mut self) -> &mut Shell;
    fn draw(&self, frame: &mut ratatui::Frame);
}

/// Runs `trainer` on its own thread behind `screen` until the screen quits,
/// then closes the command channel (which stops a trainer still training)
/// and returns the trainer's result; a trainer panic becomes an error.
fn drive<S: Screen, T: Send>(
    terminal: &mut Tty,
    screen: &mut S,
    signals: &Signals,
    trainer: impl FnOnce(Sender<S::Message>, Receiver<Command>) -> Result<T> + Send,
) -> Result<T> {
    let (message_tx, message_rx) = mpsc::channel();
    let (command_tx, command_rx) = mpsc::channel();
    let stop_input = Arc::new(AtomicBool::new(false));
    spawn_input(message_tx.clone(), stop_input.clone()).map_err(|e| Error::new(format!("dashboard: {e}")))?;
    let (ui, trained) = std::thread::scope(|scope| {
        // The trainer runs on a thread of the kernels' pool (see app::run_in_pool).
        let trainer = scope.spawn(move || crate::app::run_in_pool(move || trainer(message_tx, command_rx)));
        let ui = ui_loop(terminal, screen, &message_rx, &command_tx, signals);
        stop_input.store(true, Ordering::Relaxed);
        // Closing the command channel stops the trainer after its step (if
        // the UI failed) or ends its save service.
        drop(command_tx);
        (ui, trainer.join())
    });
    ui?;
    match trained {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(Error::new(format!("the training thread panicked: {what}")))
        }
    }
}

/// Runs `f` (a trainer's work), turning a panic into an error the dashboard
/// shows (the hook kept it quiet).
fn catch_trainer_panic<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        let message = PANIC_MESSAGE.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or_default();
        Err(Error::new(format!("the training thread panicked: {message}")))
    })
}

/// The trainer thread: runs the session, then saves on request until the
/// dashboard closes the command channel.
fn train(session: &mut Session, events: Sender<Msg>, commands: Receiver<Command>) -> Result<Outcome> {
    let mut monitor = ChannelMonitor { events, commands, panic_on_progress: fault("tui-trainer-panic") };
    let result = catch_trainer_panic(|| session.run(&mut monitor));
    let _ = monitor.events.send(Msg::Done(result.as_ref().err().map(|e| e.to_string())));
    while let Ok(command) = monitor.commands.recv() {
        if let Command::Save(path) = command {
            let line = match checkpoint::save(&session.model, &session.class_names, &path) {
                Ok(()) => format!("saved model to {}", path.display()),
                Err(e) => format!("save failed: {e}"),
            };
            let _ = monitor.events.send(Msg::Event(Event::Log(line)));
        }
    }
    result
}

/// What the input thread reads from the terminal.
#[derive(Debug)]
pub enum Input {
    Key(crossterm::event::KeyEvent),
    Resize,
    Error(String),
}

impl From<Input> for Msg {
    fn from(input: Input) -> Msg {
        match input {
            Input::Key(key) => Msg::Key(key),
            Input::Resize => Msg::Resize,
            Input::Error(e) => Msg::InputError(e),
        }
    }
}

/// Reads the terminal on its own thread, so that the UI thread sleeps on
/// one channel and wakes for a key or a trainer event alike. Detached: a
/// hung-up terminal can keep crossterm's reader from returning (it spins on
/// end of file), and that must not keep the dashboard from closing. Ends at
/// `stop` (checked every poll) or when the dashboard has gone.
fn spawn_input<M: From<Input> + Send + 'static>(messages: Sender<M>, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    std::thread::Builder::new().name("simdnet-input".into()).spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let input = match term::poll(INPUT_POLL) {
                Ok(false) => continue,
                Ok(true) => match term::read() {
                    Ok(TermEvent::Key(key)) => Input::Key(key),
                    Ok(TermEvent::Resize(..)) => Input::Resize,
                    Ok(_) => continue,
                    Err(e) => Input::Error(e.to_string()),
                },
                Err(e) => Input::Error(e.to_string()),
            };
            let failed = matches!(input, Input::Error(_));
            if messages.send(M::from(input)).is_err() || failed {
                return;
            }
        }
    })?;
    Ok(())
}

/// The training dashboard as a [`Screen`].
struct Training<'a> {
    app: &'a mut App,
    /// Fault injection (tests): panic at the first progress event.
    ui_panic: bool,
}

impl Screen for Training<'_> {
    type Message = Msg;

    fn on_message(&mut self, message: Msg, commands: &Sender<Command>) -> Result<bool> {
        match message {
            Msg::Event(Event::Progress(_)) if self.ui_panic => panic!("injected fault ({FAULT_ENV}=tui-ui-panic)"),
            Msg::Event(e) => self.app.on_event(e),
            Msg::Done(error) => self.app.on_trainer_done(error),
            Msg::Key(key) => {
                if let Some(c) = self.app.on_key(key) {
                    // The trainer gone (finishing): nothing to do.
                    let _ = commands.send(c);
                }
            }
            Msg::Resize => return Ok(true),
            Msg::InputError(e) => return Err(Error::new(format!("dashboard: cannot read the terminal: {e}"))),
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

fn ui_loop<S: Screen>(
    terminal: &mut Tty,
    screen: &mut S,
    messages: &Receiver<S::Message>,
    commands: &Sender<Command>,
    signals: &Signals,
) -> Result<()> {
    let io = |e: std::io::Error| Error::new(format!("dashboard: {e}"));
    let mut last_draw: Option<Instant> = None;
    let mut dirty = true;
    let mut signalled = false;
    loop {
        // Sleep until a message, the next frame or the next signal check.
        let since = last_draw.map_or(Duration::MAX, |t| t.elapsed());
        let wait = if dirty { FRAME.saturating_sub(since) } else { IDLE_FRAME.saturating_sub(since).min(SIGNAL_CHECK) };
        let mut next = messages.recv_timeout(wait).ok();
        while let Some(message) = next {
            if screen.on_message(message, commands)? {
                last_draw = None;
            }
            dirty = true;
            next = messages.try_recv().ok();
        }
        if !signalled && signals.exit_code().is_some() {
            signalled = true;
            dirty = true;
            // SIGINT / SIGTERM / SIGHUP: stop training, leave when done.
            if let Some(c) = screen.shell().on_signal() {
                // The trainer gone (finishing): nothing to do.
                let _ = commands.send(c);
            }
        }
        if screen.shell().quit {
            return Ok(());
        }
        let since = last_draw.map_or(Duration::MAX, |t| t.elapsed());
        if (dirty && since >= FRAME) || since >= IDLE_FRAME {
            terminal.draw(|f| screen.draw(f)).map_err(io)?;
            last_draw = Some(Instant::now());
            dirty = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_stops_when_the_dashboard_is_gone() {
        let (tx, _rx) = mpsc::channel();
        let (ctx, crx) = mpsc::channel();
        let mut m = ChannelMonitor { events: tx, commands: crx, panic_on_progress: false };
        assert_eq!(m.poll(), None);
        ctx.send(Command::Pause).unwrap();
        assert_eq!(m.poll(), Some(Command::Pause));
        ctx.send(Command::Resume).unwrap();
        assert_eq!(m.wait(), Some(Command::Resume));
        drop(ctx);
        assert_eq!(m.poll(), Some(Command::Stop));
        assert_eq!(m.wait(), None);
    }

    #[test]
    fn large_models_are_copied_less_often() {
        assert_eq!(snapshot_interval(333_526), SNAPSHOT_INTERVAL);
        assert_eq!(snapshot_interval(6_250_000), SNAPSHOT_INTERVAL);
        assert_eq!(snapshot_interval(100_000_000), Duration::from_secs(4));
    }

    #[test]
    fn events_reach_the_ui_side() {
        let (tx, rx) = mpsc::channel();
        let (_ctx, crx) = mpsc::channel();
        let mut m = ChannelMonitor { events: tx, commands: crx, panic_on_progress: false };
        m.event(Event::Log("hello".into()));
        assert!(matches!(rx.try_recv(), Ok(Msg::Event(Event::Log(s))) if s == "hello"));
    }
}
