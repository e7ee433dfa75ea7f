//! End to end: the `simdnet` binary under a real pseudo-terminal (tmux), on a
//! small synthetic data set. Drives the dashboard with keys, checks the exit
//! code and that the terminal left the alternate screen. Skipped, with a
//! notice, where tmux is not installed (`apt-get install -y tmux`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(90);

/// Writes the four IDX files: `train` + `test` 28×28 images whose class is a
/// bright bar at a class-dependent row, over faint noise.
fn write_data(dir: &Path, train: usize, test: usize) {
    let mut rng = fastrand::Rng::with_seed(7);
    for (prefix, n) in [("train", train), ("t10k", test)] {
        let mut images = Vec::with_capacity(16 + n * 784);
        images.extend_from_slice(&[0, 0, 8, 3]);
        for v in [n as u32, 28, 28] {
            images.extend_from_slice(&v.to_be_bytes());
        }
        let mut labels = vec![0, 0, 8, 1];
        labels.extend_from_slice(&(n as u32).to_be_bytes());
        for _ in 0..n {
            let class = rng.usize(0..10);
            labels.push(class as u8);
            let bar = 3 + 2 * class;
            for r in 0..28 {
                for c in 0..28 {
                    let on = (r == bar || r == bar + 1) && (4..24).contains(&c);
                    images.push(if on { rng.u8(180..=255) } else { rng.u8(0..30) });
                }
            }
        }
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), images).unwrap();
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), labels).unwrap();
    }
}

fn tmux_available() -> bool {
    Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success())
}

/// A private tmux server (own socket in a tempdir) running one pane.
struct Tmux {
    socket: PathBuf,
    dir: tempfile::TempDir,
    /// The program's process id.
    pid: u32,
}

impl Tmux {
    /// Starts `command` (argv) in a `width`×`height` pane, cwd = the tempdir;
    /// the pane stays after the command exits, so its status can be read.
    fn start(width: u16, height: u16, args: &[&str]) -> Tmux {
        Tmux::start_with_env(width, height, args, None)
    }

    /// As `start`, with `SIMDNET_FAULT=fault` in the program's environment.
    fn start_with_env(width: u16, height: u16, args: &[&str], fault: Option<&str>) -> Tmux {
        Tmux::spawn(width, height, "train", args, fault)
    }

    /// `simdnet <subcommand> args --data <generated>` in a fresh pane.
    fn spawn(width: u16, height: u16, subcommand: &str, args: &[&str], fault: Option<&str>) -> Tmux {
        let dir = tempfile::tempdir().unwrap();
        write_data(&dir.path().join("data").tap_create(), 2000, 300);
        std::fs::create_dir(dir.path().join("out")).unwrap();
        let socket = dir.path().join("tmux.sock");
        let conf = dir.path().join("tmux.conf");
        std::fs::write(&conf, "set -g remain-on-exit on\nset -g history-limit 20000\n").unwrap();
        let mut tmux = Tmux { socket, dir, pid: 0 };
        let data = tmux.dir.path().join("data");
        let mut cmd = vec![env!("CARGO_BIN_EXE_simdnet").to_string(), subcommand.into()];
        cmd.extend(args.iter().map(|s| s.to_string()));
        cmd.extend(["--data".into(), data.display().to_string()]);
        let (w, h) = (width.to_string(), height.to_string());
        let mut tmux_args = vec!["-f", conf.to_str().unwrap(), "new-session", "-d", "-s", "t", "-x", &w, "-y", &h];
        let cwd = tmux.dir.path().display().to_string();
        tmux_args.extend(["-c", &cwd]);
        let env = fault.map(|f| format!("SIMDNET_FAULT={f}"));
        if let Some(env) = &env {
            tmux_args.extend(["-e", env]);
        }
        tmux_args.extend(cmd.iter().map(|s| s.as_str()));
        let out = tmux.run(&tmux_args);
        assert!(out.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&out.stderr));
        tmux.pid = tmux.format("#{pane_pid}").parse().expect("the pane's process id");
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .env_remove("TMUX")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "t"]).stdout).into_owned()
    }

    fn format(&self, f: &str) -> String {
        String::from_utf8_lossy(&self.run(&["display-message", "-p", "-t", "t", f]).stdout).trim().to_string()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend(keys);
        assert!(self.run(&args).status.success());
    }

    /// Waits until `ok(screen)`; panics with the screen after `WAIT`.
    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            assert!(start.elapsed() < WAIT, "timed out waiting for {what}; screen:\n{screen}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the program to exit; returns its exit status.
    fn wait_exit(&self) -> i32 {
        let start = Instant::now();
        loop {
            // The status comes a moment after the pane's end of file.
            if self.format("#{pane_dead}") == "1" {
                if let Ok(status) = self.format("#{pane_dead_status}").parse() {
                    return status;
                }
                // tmux now and then leaves its child unreaped (a zombie):
                // the kernel still holds the wait status.
                if let Some(status) = zombie_status(self.pid) {
                    assert_eq!(status & 0x7f, 0, "killed by signal {}", status & 0x7f);
                    return status >> 8;
                }
            }
            assert!(start.elapsed() < WAIT, "still running; screen:\n{}", self.screen());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The wait status of process `pid` if it is a zombie (`/proc/PID/stat`
/// field 52, `exit_code`).
fn zombie_status(pid: u32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after "(comm)", which may hold spaces: state is field 3.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    (fields.first() == Some(&"Z")).then(|| fields.get(49)?.parse().ok()).flatten()
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

trait TapCreate {
    fn tap_create(self) -> Self;
}

impl TapCreate for PathBuf {
    fn tap_create(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}

/// `step 12/150` of the run gauge.
fn run_step(screen: &str) -> Option<String> {
    let line = screen.lines().find(|l| l.starts_with("Run "))?;
    let at = line.find("step ")?;
    Some(line[at..].split_whitespace().nth(1)?.to_string())
}

macro_rules! require_tmux {
    () => {
        if !tmux_available() {
            eprintln!(
                "SKIPPED: tmux is not installed (apt-get install -y tmux); the dashboard was not tested end to end"
            );
            return;
        }
    };
}

#[test]
fn dashboard_trains_pauses_saves_stops_and_restores_the_terminal() {
    require_tmux!();
    let t = Tmux::start(100, 30, &["--epochs", "100000", "--threads", "1"]);
    let screen = t.wait_for("the first throughput figures", |s| s.contains("samples/s") && s.contains("GFLOP/s"));
    assert!(screen.contains("784-100-10 relu") && screen.contains("Adam(lr=0.001)"), "{screen}");
    assert_eq!(t.format("#{alternate_on}"), "1", "the dashboard uses the alternate screen");

    // Pause: the trainer really stops (the step counter holds still).
    t.keys(&["Space"]);
    let screen = t.wait_for("paused", |s| s.contains(" paused ") && s.contains("(paused)"));
    let before = run_step(&screen).expect("a step counter");
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(run_step(&t.screen()).as_deref(), Some(before.as_str()), "steps advanced while paused");

    // Learning rate and save work while paused (the trainer serves commands).
    t.keys(&["+"]);
    t.wait_for("the new learning rate", |s| s.contains("learning rate set to 2.000e-3") && s.contains("lr=0.002"));
    t.keys(&["s"]);
    // Without --save, `s` writes into the current directory and the log says
    // so with the full path.
    let cwd = t.dir.path().canonicalize().unwrap();
    let announced = format!("saved model to {}", cwd.join("simdnet-model.safetensors").display());
    t.wait_for("the save", |s| s.contains(&announced));
    let saved = std::fs::metadata(t.dir.path().join("simdnet-model.safetensors")).expect("the saved model");
    assert!(saved.len() > 300_000, "784·100 + 100·10 weights, {} bytes", saved.len());

    // Resume: running again, and the step counter moves on. (Not the log's
    // "resumed" line: on this small data set an epoch takes ~10 ms, so its
    // lines push that one out of the log pane between two captures.)
    t.keys(&["Space"]);
    t.wait_for("resumed", |s| s.contains(" running ") && run_step(s).as_deref() != Some(before.as_str()));
    t.keys(&["Tab"]);
    t.wait_for("the confusion matrix", |s| s.contains("true\\pred") || s.contains("waiting for the first validation"));

    // Ctrl-C (as q) stops after the current step; the results stay until q.
    t.keys(&["C-c"]);
    let screen = t.wait_for("the final screen", |s| s.contains(" done ") && s.contains("test accuracy"));
    assert!(screen.contains("stopped"), "{screen}");
    assert_eq!(t.format("#{pane_dead}"), "0", "the dashboard stays open until q");
    t.keys(&["q"]);
    assert_eq!(t.wait_exit(), 0);
    assert_eq!(t.format("#{alternate_on}"), "0", "left the alternate screen");
    // The dashboard has gone; the run's lines stay, as the headless mode
    // prints them: the header, epoch lines, how it ended and the test line
    // (hundreds of epochs on this small set: the whole history).
    let out = String::from_utf8_lossy(&t.run(&["capture-pane", "-p", "-J", "-S", "-", "-t", "t"]).stdout).into_owned();
    assert!(!out.contains("q quit") && !out.contains("Curves"), "dashboard left on the normal screen:\n{out}");
    let header = out.lines().position(|l| l.starts_with("simdnet: 784-100-10 relu")).expect(&out);
    // (tmux's own "Pane is dead" line follows the program's.)
    let after: Vec<&str> =
        out.lines().skip(header + 1).filter(|l| !l.trim().is_empty() && !l.starts_with("Pane is dead")).collect();
    assert!(after.first().is_some_and(|l| l.starts_with("Epoch 1/100000 - 50/50")), "{out}");
    assert!(after.iter().any(|l| l.starts_with(&announced)), "{out}");
    assert!(after.contains(&"training stopped"), "{out}");
    assert!(after.last().is_some_and(|l| l.starts_with("test_accuracy: ")), "{out}");
}

#[test]
fn sigterm_stops_training_and_restores_the_terminal() {
    require_tmux!();
    let t = Tmux::start(80, 24, &["--epochs", "100000", "--threads", "1"]);
    t.wait_for("training", |s| s.contains("samples/s"));
    let kill = Command::new("kill").args(["-TERM", &t.pid.to_string()]).status().unwrap();
    assert!(kill.success());
    assert_eq!(t.wait_exit(), 143, "the shell's code for SIGTERM");
    assert_eq!(t.format("#{alternate_on}"), "0", "left the alternate screen");
}

#[test]
fn a_closed_terminal_ends_the_run() {
    require_tmux!();
    let t = Tmux::start(80, 24, &["--epochs", "100000", "--threads", "1"]);
    t.wait_for("training", |s| s.contains("samples/s"));
    let pid = t.pid;
    // The terminal goes away (SIGHUP, then end of file on the tty).
    t.run(&["kill-server"]);
    let stat = format!("/proc/{pid}/stat");
    let start = Instant::now();
    // Gone, or a zombie nobody reaps (tmux, its parent, has exited).
    while std::fs::read_to_string(&stat).is_ok_and(|s| s.split_whitespace().nth(2).is_none_or(|st| st != "Z")) {
        assert!(start.elapsed() < Duration::from_secs(30), "simdnet {pid} still runs after its terminal closed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn errors_print_after_the_terminal_is_restored() {
    require_tmux!();
    let t = Tmux::start(80, 24, &["--epochs", "100000", "--threads", "1", "--save", "out/model.safetensors"]);
    t.wait_for("training", |s| s.contains("samples/s"));
    // The final save fails: its directory is gone.
    std::fs::remove_dir(t.dir.path().join("out")).unwrap();
    t.keys(&["q"]);
    let screen = t.wait_for("the error on the dashboard", |s| s.contains(" error "));
    assert!(screen.contains("failed: ") && screen.contains("model.safetensors"), "{screen}");
    t.keys(&["q"]);
    assert_eq!(t.wait_exit(), 1);
    assert_eq!(t.format("#{alternate_on}"), "0", "left the alternate screen");
    // Wrapped lines joined, scrollback included (the error wraps at 80 columns).
    let out = t.run(&["capture-pane", "-p", "-J", "-S", "-100", "-t", "t"]);
    let screen = String::from_utf8_lossy(&out.stdout);
    let error = screen.lines().find(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("no error line:\n{screen}"));
    assert!(error.contains("model.safetensors"), "{error}");
}

#[test]
fn a_trainer_panic_shows_as_an_error_then_restores() {
    require_tmux!();
    let t = Tmux::start_with_env(100, 30, &["--epochs", "2", "--threads", "1"], Some("tui-trainer-panic"));
    let screen = t.wait_for("the failure on the dashboard", |s| s.contains(" error "));
    assert!(screen.contains("failed: the training thread panicked"), "{screen}");
    assert_eq!(t.format("#{alternate_on}"), "1", "the dashboard stays up to show it");
    t.keys(&["q"]);
    assert_eq!(t.wait_exit(), 1);
    assert_eq!(t.format("#{alternate_on}"), "0", "left the alternate screen");
    let out = t.run(&["capture-pane", "-p", "-J", "-S", "-100", "-t", "t"]);
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(screen.contains("error: the training thread panicked") && screen.contains("injected fault"), "{screen}");
}

#[test]
fn a_dashboard_panic_restores_the_terminal_first() {
    require_tmux!();
    let t = Tmux::start_with_env(100, 30, &["--epochs", "2", "--threads", "1"], Some("tui-ui-panic"));
    assert_eq!(t.wait_exit(), 101, "Rust's exit code for a panic");
    assert_eq!(t.format("#{alternate_on}"), "0", "left the alternate screen");
    let out = t.run(&["capture-pane", "-p", "-J", "-S", "-100", "-t", "t"]);
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(screen.contains("injected fault (SIMDNET_FAULT=tui-ui-panic)"), "{screen}");
    assert!(!screen.contains("samples/s"), "dashboard left on the normal screen:\n{screen}");
}

#[test]
fn no_tui_flag_keeps_the_headless_lines_in_a_terminal() {
    require_tmux!();
    let t = Tmux::start(100, 30, &["--epochs", "1", "--threads", "1", "--no-tui"]);
    assert_eq!(t.wait_exit(), 0);
    let screen = t.screen();
    assert!(screen.contains("Epoch 1/1 - 50/50"), "{screen}");
    assert!(screen.contains("test_accuracy: "), "{screen}");
    assert_eq!(t.format("#{alternate_on}"), "0");
}

/// The lines of the whole pane, scrollback included, wrapped lines joined.
fn scrollback(t: &Tmux) -> String {
    String::from_utf8_lossy(&t.run(&["capture-pane", "-p", "-J", "-S", "-200", "-t", "t"]).stdout).into_owned()
}

#[test]
fn compare_dashboard_runs_every_configuration_then_prints_the_table() {
    require_tmux!();
    let args = ["--optimizer", "sgd,adam", "--epochs", "2", "--threads", "1"];
    let t = Tmux::spawn(100, 30, "compare", &args, None);
    let screen = t.wait_for("the final table", |s| s.contains(" done  q quit") && s.contains("Finished"));
    assert_eq!(t.format("#{alternate_on}"), "1", "the dashboard uses the alternate screen");
    assert!(screen.contains("simdnet compare") && screen.contains("2 configurations"), "{screen}");
    assert!(screen.contains("val_accuracy") && screen.contains("test_accuracy"), "{screen}");
    // Legend, table row and log lines name both configurations.
    for name in ["optimizer=sgd", "optimizer=adam"] {
        assert!(screen.matches(name).count() >= 2, "{name}:\n{screen}");
    }
    assert!(!screen.contains("waiting") && !screen.contains("skipped"), "{screen}");
    assert_eq!(t.format("#{pane_dead}"), "0", "the dashboard stays open until q");
    t.keys(&["q"]);
    assert_eq!(t.wait_exit(), 0);
    assert_eq!(t.format("#{alternate_on}"), "0", "left the alternate screen");
    let out = scrollback(&t);
    let table: Vec<&str> = out.lines().skip_while(|l| !l.starts_with("configuration ")).collect();
    assert!(table.len() >= 3, "no table after the dashboard:\n{out}");
    assert!(table[0].contains("val_accuracy") && table[0].contains("epoch_time"), "{out}");
    for (row, name) in table[1..3].iter().zip(["optimizer=sgd", "optimizer=adam"]) {
        // configuration, val_accuracy, val_loss, test_accuracy, epoch_time: all measured.
        let fields: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(fields.len(), 5, "{row}");
        assert_eq!(fields[0], name);
        let numbers = [fields[1], fields[2], fields[3], fields[4].trim_end_matches('s')];
        assert!(numbers.iter().map(|f| f.parse::<f64>()).all(|v| v.is_ok_and(f64::is_finite)), "{row}");
    }
    assert!(!out.contains("samples/s") && !out.contains("Curves"), "dashboard left on the normal screen:\n{out}");
}

#[test]
fn compare_dashboard_stop_skips_the_remaining_configurations() {
    require_tmux!();
    let args = ["--optimizer", "sgd,adam", "--epochs", "100000", "--threads", "1"];
    let t = Tmux::spawn(80, 24, "compare", &args, None);
    t.wait_for("the first configuration training", |s| s.contains("Config 1/2") && s.contains("running…"));
    t.keys(&["q"]);
    let screen = t.wait_for("the final table", |s| s.contains(" done  q quit"));
    assert!(screen.contains("skipped") && screen.contains("(stopped)"), "{screen}");
    t.keys(&["q"]);
    assert_eq!(t.wait_exit(), 0);
    assert_eq!(t.format("#{alternate_on}"), "0", "left the alternate screen");
    let out = scrollback(&t);
    let table: Vec<&str> = out.lines().skip_while(|l| !l.starts_with("configuration ")).collect();
    assert!(table.get(1).is_some_and(|r| r.starts_with("optimizer=sgd") && r.ends_with("(stopped)")), "{out}");
    assert!(!table.iter().any(|r| r.starts_with("optimizer=adam")), "adam was skipped:\n{out}");
}

#[test]
fn compare_dashboard_sigterm_exits_143_with_the_table() {
    require_tmux!();
    let args = ["--optimizer", "sgd,adam", "--epochs", "100000", "--threads", "1"];
    let t = Tmux::spawn(80, 24, "compare", &args, None);
    t.wait_for("training", |s| s.contains("Config 1/2") && s.contains("running…"));
    let kill = Command::new("kill").args(["-TERM", &t.pid.to_string()]).status().unwrap();
    assert!(kill.success());
    assert_eq!(t.wait_exit(), 143, "the shell's code for SIGTERM");
    assert_eq!(t.format("#{alternate_on}"), "0", "left the alternate screen");
    let out = scrollback(&t);
    assert!(out.lines().any(|l| l.starts_with("optimizer=sgd") && l.ends_with("(stopped)")), "{out}");
}

#[test]
fn piped_output_stays_headless() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path(), 2000, 300);
    let out = Command::new(env!("CARGO_BIN_EXE_simdnet"))
        .args(["train", "--epochs", "1", "--threads", "1", "--data"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("simdnet: 784-100-10 relu"), "{stdout}");
    assert!(stdout.contains("Epoch 1/1 - 50/50"), "{stdout}");
    assert!(!stdout.contains('\x1b'), "no terminal escapes in a pipe: {stdout:?}");
}
