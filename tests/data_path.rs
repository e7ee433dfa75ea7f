//! Where the binary finds its data without `--data` (`$SIMDNET_DATA`, the
//! current directory, beside the executable), the messages for a data path
//! that does not exist or is a file, and flags that contradict each other.
//! Each case runs the real binary on a small synthetic data set.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

const FILES: [&str; 4] =
    ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

/// IDX bytes: magic `00 00 08 <ndims>`, the dimensions, the data.
fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v.extend(data);
    v
}

/// A 4×4, 3-class data set (60 training, 20 test images) in `dir`, created.
fn write_dataset(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    for (i, count) in [(0, 60usize), (2, 20)] {
        let labels: Vec<u8> = (0..count).map(|j| (j % 3) as u8).collect();
        let images: Vec<u8> =
            (0..count * 16).map(|p| if p % 16 == labels[p / 16] as usize { 255 } else { 0 }).collect();
        fs::write(dir.join(FILES[i]), idx(&[count as u32, 4, 4], &images)).unwrap();
        fs::write(dir.join(FILES[i + 1]), idx(&[count as u32], &labels)).unwrap();
    }
}

/// A temporary directory, its path canonical (as `current_exe` reports it).
fn tempdir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().canonicalize().unwrap();
    (dir, path)
}

/// `simdnet train --no-tui --epochs 1 --threads 1 ARGS` run by `exe` in
/// `cwd`, with `SIMDNET_DATA` as given (removed when `None`).
fn train(exe: &Path, cwd: &Path, env: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(exe);
    cmd.args(["train", "--no-tui", "--epochs", "1", "--threads", "1"]).args(args).current_dir(cwd);
    match env {
        Some(dir) => cmd.env("SIMDNET_DATA", dir),
        None => cmd.env_remove("SIMDNET_DATA"),
    };
    run(&mut cmd)
}

/// Runs `cmd` to its end, started under the lock that copies binaries: a
/// child forked while another test still holds a copy open for writing keeps
/// that descriptor until its exec, and the copy's own exec then fails with
/// "Text file busy" (ETXTBSY). `spawn` returns once the child has exec'd.
fn run(cmd: &mut Command) -> Output {
    let child = {
        let _held = SPAWN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    };
    child.wait_with_output().unwrap()
}

/// Serialises copying executables with starting processes (see `train`).
static SPAWN_LOCK: Mutex<()> = Mutex::new(());

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_simdnet"))
}

/// The run's header line: `simdnet: … on DIR (…`.
fn header(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "failed: {}{stdout}", String::from_utf8_lossy(&out.stderr));
    stdout.lines().next().unwrap_or_default().to_string()
}

/// The one `error: …` line of a failed run.
fn error_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one error line expected: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    lines[0].to_string()
}

/// `exe` copied to `dir/rel` (a binary moved away from its sources).
fn copy_binary(dir: &Path, rel: &str) -> PathBuf {
    let exe = dir.join(rel);
    fs::create_dir_all(exe.parent().unwrap()).unwrap();
    let _held = SPAWN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    fs::copy(bin(), &exe).unwrap();
    exe
}

#[test]
fn simdnet_data_names_the_data_directory() {
    let (_t, tmp) = tempdir();
    let data = tmp.join("my-set");
    write_dataset(&data);
    let out = train(&bin(), &tmp, Some(&data), &[]);
    assert!(header(&out).contains(&format!(" on {} (", data.display())), "{}", header(&out));
}

#[test]
fn data_flag_wins_over_simdnet_data() {
    let (_t, tmp) = tempdir();
    let data = tmp.join("flag-set");
    write_dataset(&data);
    let out = train(&bin(), &tmp, Some(&tmp.join("nowhere")), &["--data", data.to_str().unwrap()]);
    assert!(header(&out).contains(&format!(" on {} (", data.display())), "{}", header(&out));
}

#[test]
fn a_copied_binary_finds_the_data_beside_it() {
    let (_t, tmp) = tempdir();
    let exe = copy_binary(&tmp, "app/bin/simdnet");
    let data = tmp.join("app/bin/data/fashion-mnist");
    write_dataset(&data);
    let elsewhere = tmp.join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let out = train(&exe, &elsewhere, None, &[]);
    assert!(header(&out).contains(&format!(" on {} (", data.display())), "{}", header(&out));
}

#[test]
fn a_release_binary_finds_its_checkouts_data() {
    // target/release/simdnet in a checkout, run from another directory.
    let (_t, tmp) = tempdir();
    let exe = copy_binary(&tmp, "checkout/target/release/simdnet");
    write_dataset(&tmp.join("checkout/data/fashion-mnist"));
    let elsewhere = tmp.join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let out = train(&exe, &elsewhere, None, &[]);
    let expected = tmp.join("checkout/target/release/../../data/fashion-mnist");
    assert!(header(&out).contains(&format!(" on {} (", expected.display())), "{}", header(&out));
}

#[test]
fn the_current_directory_comes_before_the_executables() {
    let (_t, tmp) = tempdir();
    let exe = copy_binary(&tmp, "app/bin/simdnet");
    write_dataset(&tmp.join("app/bin/data/fashion-mnist"));
    let project = tmp.join("project");
    write_dataset(&project.join("data/fashion-mnist"));
    let out = train(&exe, &project, None, &[]);
    assert!(header(&out).contains(" on data/fashion-mnist ("), "{}", header(&out));
}

#[test]
fn a_missing_data_directory_says_it_does_not_exist() {
    let (_t, tmp) = tempdir();
    let missing = tmp.join("nowhere");
    let line = error_line(&train(&bin(), &tmp, None, &["--data", missing.to_str().unwrap()]));
    assert!(line.contains(&format!("{}: does not exist", missing.display())), "{line}");
    // The same through the environment variable.
    let line = error_line(&train(&bin(), &tmp, Some(&missing), &[]));
    assert!(
        line.contains(&format!("{}: does not exist", missing.display())) && line.contains("SIMDNET_DATA"),
        "{line}"
    );
}

#[test]
fn a_file_as_data_directory_says_it_is_not_one() {
    let (_t, tmp) = tempdir();
    let file = tmp.join("a-file");
    fs::write(&file, b"x").unwrap();
    let line = error_line(&train(&bin(), &tmp, None, &["--data", file.to_str().unwrap()]));
    assert!(line.contains(&format!("{}: not a directory", file.display())), "{line}");
}

#[test]
fn nesterov_without_momentum_is_refused() {
    let (_t, tmp) = tempdir();
    let data = tmp.join("set");
    write_dataset(&data);
    let d = data.to_str().unwrap();
    let line = error_line(&train(&bin(), &tmp, None, &["--data", d, "--optimizer", "sgd", "--nesterov"]));
    assert!(line.contains("--nesterov needs --momentum"), "{line}");
    // compare refuses it as train does.
    let out = run(Command::new(bin()).args([
        "compare",
        "--no-tui",
        "--epochs",
        "1",
        "--optimizer",
        "sgd,adam",
        "--nesterov",
        "--data",
        d,
    ]));
    assert!(error_line(&out).contains("--nesterov needs --momentum"));
    // With a momentum it trains.
    let out = train(&bin(), &tmp, None, &["--data", d, "--optimizer", "sgd", "--momentum", "0.9", "--nesterov"]);
    assert!(header(&out).contains("nesterov"), "{}", header(&out));
}
