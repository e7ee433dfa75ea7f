//! SIGINT / SIGTERM in headless mode: training stops after the current step,
//! the test set is still evaluated, `--save` is honoured, and the exit code is
//! the one a shell expects (130 / 143).

use simdnet::checkpoint;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const EPOCHS: &str = "100000";

fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v.extend(data);
    v
}

/// `train` + `test` synthetic 8x8 images of 4 classes (class c brightens row c).
fn write_dataset(dir: &Path, train: usize, test: usize) {
    for (prefix, count) in [("train", train), ("t10k", test)] {
        let labels: Vec<u8> = (0..count).map(|i| (i * 7 % 4) as u8).collect();
        let mut pixels = vec![0u8; count * 64];
        for (i, img) in pixels.chunks_exact_mut(64).enumerate() {
            let row = labels[i] as usize * 2;
            for p in &mut img[row * 8..row * 8 + 8] {
                *p = 200;
            }
            img[(i * 13) % 64] = 90;
        }
        fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), idx(&[count as u32, 8, 8], &pixels)).unwrap();
        fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), idx(&[count as u32], &labels)).unwrap();
    }
}

/// Kills the child if the test fails before it exits (it would train for ages).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A training run that would last for ages, its stdout lines on a channel.
fn spawn(dir: &Path, save: &Path) -> (KillOnDrop, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_simdnet"))
        .args(["train", "--no-tui", "--threads", "1", "--epochs", EPOCHS, "--hidden", "16", "--data"])
        .arg(dir)
        .arg("--save")
        .arg(save)
        .arg("--metrics")
        .arg(dir.join("metrics.csv"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (KillOnDrop(child), rx)
}

/// Collects lines until one satisfies `done` (panics after `timeout`).
fn wait_for_line(rx: &mpsc::Receiver<String>, lines: &mut Vec<String>, timeout: Duration, done: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let hit = done(&line);
                lines.push(line);
                if hit {
                    return;
                }
            }
            Err(e) => panic!("no expected line within {timeout:?} ({e}); got {lines:?}"),
        }
    }
}

fn wait_exit(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            panic!("the run did not stop within {timeout:?} of the signal");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn send(signal: &str, child: &Child) {
    let ok = Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap().success();
    assert!(ok, "kill {signal} failed");
}

/// Starts a run, waits for `ready`, sends `signal`, and checks the clean stop.
fn stop_with(signal: &str, expected_code: i32, ready: impl Fn(&str) -> bool) {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), 5000, 500);
    let save = dir.path().join("stopped.safetensors");
    let (mut guard, rx) = spawn(dir.path(), &save);
    let child = &mut guard.0;
    let mut lines = Vec::new();
    wait_for_line(&rx, &mut lines, Duration::from_secs(120), ready);
    send(signal, child);
    let status = wait_exit(child, Duration::from_secs(60));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    lines.extend(rx.iter());

    assert_eq!(status.code(), Some(expected_code), "stdout: {lines:?}\nstderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let epochs = lines.iter().filter(|l| l.starts_with("Epoch ")).count();
    assert!(epochs < EPOCHS.parse().unwrap(), "it ran to the end");
    // The run still ends as a finished one: test metrics, then the save.
    assert!(lines.iter().any(|l| l.starts_with("test_accuracy: ")), "{lines:?}");
    assert!(lines.last().is_some_and(|l| l.starts_with("saved model to")), "{lines:?}");
    let loaded = checkpoint::load(&save).unwrap();
    assert_eq!(loaded.model.spec.classes(), 4);
    assert_eq!(loaded.model.spec.input_shape(), (8, 8));
    // The metrics file holds one whole record per finished epoch (header + rows).
    let metrics = fs::read_to_string(dir.path().join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), epochs + 1, "{metrics}");
    assert!(metrics.ends_with('\n'), "the last record is whole: {metrics:?}");
    // Only the model and the metrics: no temp file beside them.
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.iter().filter(|n| n.to_string_lossy().ends_with(".tmp")).count(), 0, "{names:?}");
}

#[test]
fn sigint_after_an_epoch_stops_saves_and_exits_130() {
    stop_with("-INT", 130, |l| l.starts_with("Epoch 2/"));
}

#[test]
fn sigterm_after_an_epoch_stops_saves_and_exits_143() {
    stop_with("-TERM", 143, |l| l.starts_with("Epoch 1/"));
}

#[test]
fn sigint_mid_epoch_right_after_start() {
    // The header is printed once the handlers are in place: a signal from then
    // on stops the run (likely inside the first epoch) instead of killing it.
    stop_with("-INT", 130, |l| l.starts_with("simdnet: "));
}
