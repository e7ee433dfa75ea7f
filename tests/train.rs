//! End to end through the real binary: a few thousand Fashion-MNIST images
//! train headless and accuracy rises far above chance; `summary` prints the
//! tutorial model's table; `--help` documents the defaults.

use simdnet::dataset::{Dataset, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS};
use simdnet::idx::{MAGIC_IMAGES, MAGIC_LABELS};
use std::path::{Path, PathBuf};
use std::process::Command;

fn bundled() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mnist")
}

fn idx(magic: u32, dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for &d in dims {
        v.extend((d as u32).to_be_bytes());
    }
    v.extend(data);
    v
}

/// Writes the first `n_train` / `n_test` images of the bundled set as raw IDX files.
fn subset(dir: &Path, n_train: usize, n_test: usize) {
    let data = Dataset::open(&bundled(), &bundled().join(".cache")).unwrap();
    for (split, n, img, lab) in
        [(&data.train, n_train, TRAIN_IMAGES, TRAIN_LABELS), (&data.test, n_test, TEST_IMAGES, TEST_LABELS)]
    {
        let d = split.image_len();
        std::fs::write(dir.join(img), idx(MAGIC_IMAGES, &[n, split.rows, split.cols], &split.pixels()[..n * d]))
            .unwrap();
        std::fs::write(dir.join(lab), idx(MAGIC_LABELS, &[n], &split.labels()[..n])).unwrap();
    }
}

fn simdnet(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_simdnet")).args(args).output().unwrap()
}

/// The value after `key: ` in a Keras-style line.
fn metric(line: &str, key: &str) -> f64 {
    let start = line.find(&format!("{key}: ")).unwrap_or_else(|| panic!("no {key} in {line:?}")) + key.len() + 2;
    line[start..].split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn headless_training_learns_far_above_chance() {
    let dir = tempfile::tempdir().unwrap();
    subset(dir.path(), 3000, 1000);
    let out =
        simdnet(&["train", "--no-tui", "--data", dir.path().to_str().unwrap(), "--epochs", "3", "--threads", "1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    let epochs: Vec<&str> = stdout.lines().filter(|l| l.starts_with("Epoch ")).collect();
    assert_eq!(epochs.len(), 3, "{stdout}");
    // 3000 images, validation split 0.2: 2400 train → 75 steps of 32.
    assert!(epochs[0].starts_with("Epoch 1/3 - 75/75 - "), "{}", epochs[0]);
    let first_loss = metric(epochs[0], "loss");
    let last = epochs[2];
    assert!(metric(last, "loss") < first_loss, "loss must fall: {stdout}");
    assert!(metric(last, "val_accuracy") > 0.65, "10 classes: chance is 0.1; {last}");
    let test = stdout.lines().find(|l| l.starts_with("test_accuracy: ")).expect("a test line");
    assert!(metric(test, "test_accuracy") > 0.65, "{test}");
    assert!(metric(test, "test_loss") < 1.2, "{test}");
}

#[test]
fn same_seed_same_run_other_seed_other_run() {
    let dir = tempfile::tempdir().unwrap();
    subset(dir.path(), 600, 100);
    let d = dir.path().to_str().unwrap();
    let run = |seed: &str| {
        let out = simdnet(&["--no-tui", "--data", d, "--epochs", "1", "--seed", seed, "--threads", "1"]);
        assert!(out.status.success());
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        // Drop the timing fields, keep the metrics.
        s.lines().filter_map(|l| l.find("accuracy").map(|i| l[i..].to_string())).collect::<Vec<_>>()
    };
    assert_eq!(run("1"), run("1"));
    assert_ne!(run("1"), run("2"));
}

#[test]
fn summary_prints_the_tutorial_model() {
    let out = simdnet(&["summary"]);
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "Layer (type)",
        "Output Shape",
        "Param #",
        "│ flatten (Flatten)               │ (None, 784)            │             0 │",
        "│ dense (Dense)                   │ (None, 100)            │        78,500 │",
        "│ dense_1 (Dense)                 │ (None, 10)             │         1,010 │",
        " Total params: 79,510 (310.59 KB)",
        " Trainable params: 79,510 (310.59 KB)",
        " Non-trainable params: 0 (0.00 B)",
    ] {
        assert!(s.contains(expected), "missing {expected:?} in\n{s}");
    }
    let out = simdnet(&["summary", "--hidden", "300,100", "--dropout", "0.2"]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("dense_2 (Dense)") && s.contains("dropout_1 (Dropout)"), "{s}");
    // 784*300+300 + 300*100+100 + 100*10+10 = 266,610 (Keras' figure for this model).
    assert!(s.contains("Total params: 266,610"), "{s}");
}

#[test]
fn help_documents_every_flag_with_its_default() {
    let out = simdnet(&["train", "--help"]);
    let s = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--data",
        "--cache-dir",
        "--hidden",
        "--activation",
        "--dropout",
        "--optimizer",
        "--lr",
        "--momentum",
        "--nesterov",
        "--epochs",
        "--batch-size",
        "--validation-split",
        "--seed",
        "--threads",
        "--no-tui",
        "--save",
    ] {
        assert!(s.contains(flag), "--help lacks {flag}");
    }
    for default in [
        "[default: 100]",
        "[default: relu]",
        "[default: adam]",
        "[default: 5]",
        "[default: 32]",
        "[default: 0.2]",
        "[default: 42]",
    ] {
        assert!(s.contains(default), "--help lacks {default}");
    }
}

#[test]
fn impossible_flags_are_refused() {
    for (args, needle) in [
        (vec!["--batch-size", "0"], "--batch-size"),
        (vec!["--lr", "0"], "--lr"),
        (vec!["--lr", "-0.1"], "--lr"),
        (vec!["--lr", "NaN"], "--lr"),
        (vec!["--validation-split", "0"], "--validation-split"),
        (vec!["--validation-split", "1.5"], "--validation-split"),
        (vec!["--dropout", "1"], "--dropout"),
        (vec!["--epochs", "0"], "--epochs"),
        (vec!["--threads", "0"], "--threads"),
        (vec!["--hidden", "100,,10"], "--hidden"),
        (vec!["--optimizer", "adamw"], "--optimizer"),
        (vec!["--optimizer", "rmsprop", "--nesterov"], "--nesterov"),
    ] {
        let mut full = vec!["train", "--no-tui"];
        full.extend(&args);
        let out = simdnet(&full);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(err.contains(needle) && !err.contains("panicked"), "{args:?}: {err}");
    }
}

/// `simdnet bench --seconds 0.01` on a subset of `n_train` training
/// images; its stdout, once it has succeeded without a panic.
fn bench_on_subset(n_train: usize) -> String {
    let dir = tempfile::tempdir().unwrap();
    subset(dir.path(), n_train, 16);
    let out = simdnet(&["bench", "--data", dir.path().to_str().unwrap(), "--seconds", "0.01"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !stderr.contains("panicked"), "bench failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The samples/s of `bench`'s training row for `batch`.
fn training_samples(stdout: &str, batch: &str) -> f64 {
    let row = stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(batch))
        .unwrap_or_else(|| panic!("no training row for batch {batch}:\n{stdout}"));
    row.split_whitespace().nth(1).unwrap().parse().unwrap_or_else(|e| panic!("{row}: {e}"))
}

/// A training set smaller than a batch (here 40 images against batches of
/// up to 256): `bench` repeats images to fill its batches instead of
/// panicking.
#[test]
fn bench_fills_batches_from_a_small_training_set() {
    let stdout = bench_on_subset(40);
    assert!(training_samples(&stdout, "256") > 0.0, "{stdout}");
}

/// `simdnet bench` end to end on a small subset (quick budget): every GEMM
/// shape gets a row with a positive GFLOP/s, a share of the measured peak
/// and its lane ceiling, and every batch size a positive samples/s.
#[test]
fn bench_reports_every_shape_and_batch_size() {
    let stdout = bench_on_subset(1024);
    assert!(stdout.contains("FP32 FMA peak, one core"), "{stdout}");
    for &(m, n, k, _, what) in simdnet::bench::SHAPES {
        let row = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{m}×{n}×{k} ")) && l.contains(what))
            .unwrap_or_else(|| panic!("no row for {m}×{n}×{k} {what}:\n{stdout}"));
        let nums: Vec<f64> = row.split_whitespace().filter_map(|w| w.trim_end_matches('%').parse().ok()).collect();
        let [.., gflops, pct, ceiling] = nums[..] else { panic!("{row}") };
        assert!(gflops > 0.0 && pct > 0.0 && ceiling > 0.0 && ceiling <= 100.0, "{row}");
    }
    for batch in ["32", "128", "256"] {
        assert!(training_samples(&stdout, batch) > 0.0, "{stdout}");
    }
}
