//! SIGINT / SIGTERM for long steps that must stop cleanly (decompressing a
//! `.gz` into the cache): such a step polls [`requested`] and, when it is
//! set, removes what it was writing and fails.
//!
//! The `simdnet` binary calls [`install`] first thing. The handlers keep the
//! default behaviour (the process dies) outside a [`Section`], until
//! [`handled_elsewhere`] says a front end (the headless trainer's
//! `StopSignals`, the dashboard) now answers signals itself. A library user
//! that never calls [`install`] sees no handler and [`requested`] stays false.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

struct Handlers {
    interrupt: Arc<AtomicBool>,
    terminate: Arc<AtomicBool>,
    /// Read by the handlers: when set, a signal does its default action
    /// (terminates the process), as if no handler were installed.
    die: Arc<AtomicBool>,
}

static HANDLERS: OnceLock<Handlers> = OnceLock::new();

/// Open sections, and whether a front end handles signals for good.
static STATE: Mutex<(usize, bool)> = Mutex::new((0, false));

/// Installs the SIGINT / SIGTERM handlers (once per process; later calls do
/// nothing). Until a [`Section`] opens, a signal still kills the process.
pub fn install() -> std::io::Result<()> {
    if HANDLERS.get().is_some() {
        return Ok(());
    }
    use signal_hook::consts::{SIGINT, SIGTERM};
    let h = Handlers {
        interrupt: Arc::new(AtomicBool::new(false)),
        terminate: Arc::new(AtomicBool::new(false)),
        die: Arc::new(AtomicBool::new(true)),
    };
    // The flags first: a signal during a section is recorded; the
    // conditional default then kills the process only when `die` is set.
    signal_hook::flag::register(SIGINT, h.interrupt.clone())?;
    signal_hook::flag::register(SIGTERM, h.terminate.clone())?;
    signal_hook::flag::register_conditional_default(SIGINT, h.die.clone())?;
    signal_hook::flag::register_conditional_default(SIGTERM, h.die.clone())?;
    let _ = HANDLERS.set(h);
    update(|_| {});
    Ok(())
}

fn update(f: impl FnOnce(&mut (usize, bool))) {
    let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
    f(&mut state);
    if let Some(h) = HANDLERS.get() {
        h.die.store(state.0 == 0 && !state.1, Ordering::SeqCst);
    }
}

/// From now on another handler (registered through signal-hook) answers
/// SIGINT / SIGTERM: they no longer kill the process outside a section.
pub fn handled_elsewhere() {
    update(|s| s.1 = true);
}

/// While alive, SIGINT / SIGTERM set [`requested`] instead of killing the
/// process.
pub struct Section(());

impl Section {
    pub fn enter() -> Section {
        update(|s| s.0 += 1);
        Section(())
    }
}

impl Drop for Section {
    fn drop(&mut self) {
        update(|s| s.0 -= 1);
    }
}

/// The signal received since [`install`], if any: "SIGINT" or "SIGTERM".
pub fn requested() -> Option<&'static str> {
    let h = HANDLERS.get()?;
    if h.interrupt.load(Ordering::Relaxed) {
        Some("SIGINT")
    } else if h.terminate.load(Ordering::Relaxed) {
        Some("SIGTERM")
    } else {
        None
    }
}

/// The exit code a shell expects after the signal received: 130 (SIGINT),
/// 143 (SIGTERM).
pub fn exit_code() -> Option<u8> {
    requested().map(|s| if s == "SIGINT" { 130 } else { 143 })
}
