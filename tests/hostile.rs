//! Hostile input through the real command line: corrupt and lying data files,
//! unusable cache directories, impossible flags, a loss that blows up and a
//! crash in the middle of a save. Every case must end with a non-zero exit
//! code and one `error: …` line naming the file or flag and the problem, with
//! no panic and no partial output file. Model files are checked through
//! `checkpoint::load` (library level), as `eval` is not in this branch.

use simdnet::checkpoint;
use simdnet::model::{Model, ModelSpec};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

/// IDX bytes: magic `00 00 <ty> <ndims>`, the dimensions, the data.
fn idx(ty: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, ty, dims.len() as u8];
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v.extend(data);
    v
}

fn images(count: usize, rows: usize, cols: usize, labels: &[u8]) -> Vec<u8> {
    // Class c lights up pixel c (mod the image), so there is something to learn.
    let n = rows * cols;
    let mut data = vec![0u8; count * n];
    for (i, img) in data.chunks_exact_mut(n).enumerate() {
        img[labels[i] as usize % n] = 255;
        img[(i * 7) % n] = img[(i * 7) % n].max(40);
    }
    idx(8, &[count as u32, rows as u32, cols as u32], &data)
}

fn labels(count: usize, classes: u8) -> Vec<u8> {
    (0..count).map(|i| (i % classes as usize) as u8).collect()
}

/// A valid 4x4, 3-class data set of `train` + `test` images in `dir`.
fn write_dataset(dir: &Path, train: usize, test: usize) {
    let (lt, ls) = (labels(train, 3), labels(test, 3));
    fs::write(dir.join(TRAIN_IMAGES), images(train, 4, 4, &lt)).unwrap();
    fs::write(dir.join(TRAIN_LABELS), idx(8, &[train as u32], &lt)).unwrap();
    fs::write(dir.join(TEST_IMAGES), images(test, 4, 4, &ls)).unwrap();
    fs::write(dir.join(TEST_LABELS), idx(8, &[test as u32], &ls)).unwrap();
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A temp dir holding `data/` (a valid data set) and `cache/`.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("data")).unwrap();
        write_dataset(&dir.path().join("data"), 60, 20);
        Fixture { dir }
    }
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn write(&self, name: &str, bytes: &[u8]) {
        fs::write(self.data().join(name), bytes).unwrap();
    }
    /// `simdnet train --no-tui --epochs 1 --data data --cache-dir cache` plus `args`.
    fn train(&self, args: &[&str]) -> Output {
        self.train_env(args, &[])
    }
    fn train_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_simdnet"));
        cmd.arg("train").args(["--no-tui", "--epochs", "1"]);
        cmd.arg("--data").arg(self.data()).arg("--cache-dir").arg(self.path("cache"));
        cmd.args(args).envs(env.iter().copied());
        cmd.output().unwrap()
    }
    /// Runs `train` with `args` and `--save`, expects the error, and checks
    /// that neither the model nor a temporary file appeared.
    fn fails(&self, args: &[&str], needles: &[&str]) -> String {
        let before = self.top_files();
        let save = self.path("out.safetensors");
        let mut all = args.to_vec();
        all.extend(["--save", save.to_str().unwrap()]);
        let line = assert_error(&self.train(&all), needles);
        assert_eq!(self.top_files(), before, "output files appeared");
        line
    }
    /// Files in the fixture's top directory (where --save outputs go).
    fn top_files(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "data" && n != "cache")
            .collect();
        v.sort();
        v
    }
}

/// Non-zero exit, no panic, and stderr is exactly one `error:` line holding
/// every one of `needles`. Returns that line.
fn assert_error(out: &Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, got success; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {stderr}");
    let line = lines[0];
    assert!(line.starts_with("error: "), "not an error line: {line}");
    for n in needles {
        assert!(line.contains(n), "error line lacks {n:?}: {line}");
    }
    line.to_string()
}

/// As [`assert_error`] for a flag clap refuses: exit code 2, the first line
/// names the flag, the rest is clap's usage hint.
fn assert_flag_error(out: &Output, flag: &str, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let first = stderr.lines().next().unwrap_or("");
    assert!(first.starts_with("error: ") && first.contains(flag) && first.contains(needle), "{stderr}");
}

// ---- the data set ----

#[test]
fn valid_fixture_trains() {
    // The baseline every hostile case departs from must itself work.
    let f = Fixture::new();
    let save = f.path("model.safetensors");
    let out = f.train(&["--save", save.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let loaded = checkpoint::load(&save).unwrap();
    assert_eq!(loaded.model.spec.classes, 3);
    assert_eq!(f.top_files(), ["model.safetensors"]);
}

#[test]
fn truncated_gz() {
    let f = Fixture::new();
    let full = gzip(&fs::read(f.data().join(TRAIN_IMAGES)).unwrap());
    fs::remove_file(f.data().join(TRAIN_IMAGES)).unwrap();
    f.write(&format!("{TRAIN_IMAGES}.gz"), &full[..full.len() / 2]);
    let save = f.path("m.safetensors");
    let line = assert_error(&f.train(&["--save", save.to_str().unwrap()]), &[TRAIN_IMAGES, "gzip"]);
    assert!(line.contains(".gz"), "{line}");
    assert!(f.top_files().is_empty(), "{:?}", f.top_files());
    // No partial cache file either.
    let cache: Vec<_> = fs::read_dir(f.path("cache")).map(|d| d.collect()).unwrap_or_default();
    assert!(cache.is_empty(), "{cache:?}");
}

#[test]
fn corrupt_gz_body() {
    let f = Fixture::new();
    let mut gz = gzip(&fs::read(f.data().join(TRAIN_LABELS)).unwrap());
    let mid = gz.len() / 2;
    for b in &mut gz[12..mid] {
        *b ^= 0x5a;
    }
    fs::remove_file(f.data().join(TRAIN_LABELS)).unwrap();
    f.write(&format!("{TRAIN_LABELS}.gz"), &gz);
    f.fails(&[], &[TRAIN_LABELS, "gzip"]);
}

#[test]
fn gz_that_is_not_gzip() {
    let f = Fixture::new();
    fs::remove_file(f.data().join(TEST_LABELS)).unwrap();
    f.write(&format!("{TEST_LABELS}.gz"), b"this is plain text, not gzip\n");
    f.fails(&[], &[TEST_LABELS, "gzip"]);
}

#[test]
fn gz_with_bad_checksum() {
    let f = Fixture::new();
    let mut gz = gzip(&fs::read(f.data().join(TEST_IMAGES)).unwrap());
    let n = gz.len();
    gz[n - 8] ^= 0xff; // the CRC32 in the trailer
    fs::remove_file(f.data().join(TEST_IMAGES)).unwrap();
    f.write(&format!("{TEST_IMAGES}.gz"), &gz);
    f.fails(&[], &[TEST_IMAGES, "gzip"]);
}

#[test]
fn wrong_magic() {
    let f = Fixture::new();
    // A label file where images belong.
    f.write(TRAIN_IMAGES, &idx(8, &[60], &labels(60, 3)));
    f.fails(&[], &[TRAIN_IMAGES, "wrong magic 0x00000801"]);
    // Not IDX at all.
    f.write(TRAIN_IMAGES, b"GIF89a.......");
    f.fails(&[], &[TRAIN_IMAGES, "not an IDX file"]);
}

#[test]
fn non_u8_data_type() {
    let f = Fixture::new();
    // 0x0D: IDX float data.
    f.write(TRAIN_IMAGES, &idx(0x0d, &[60, 4, 4], &vec![0; 60 * 16 * 4]));
    f.fails(&[], &[TRAIN_IMAGES, "unsupported IDX data type 0x0d"]);
}

/// Runs `train` under a 1 GiB address-space limit, so that an allocation
/// sized from a lying header would fail loudly instead of swapping.
fn train_limited(f: &Fixture) -> Output {
    let script = r#"ulimit -v 1048576 && exec "$0" "$@""#;
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_simdnet"))
        .args(["train", "--no-tui", "--epochs", "1", "--data"])
        .arg(f.data())
        .arg("--cache-dir")
        .arg(f.path("cache"))
        .output()
        .unwrap()
}

#[test]
fn huge_dimensions_allocate_nothing() {
    let f = Fixture::new();
    // 4 billion images of 65535x65535 pixels, backed by 64 bytes.
    f.write(TRAIN_IMAGES, &idx(8, &[u32::MAX >> 2, 65535, 65535], &[7; 64]));
    assert_error(&train_limited(&f), &[TRAIN_IMAGES, "truncated data"]);
    // Same through a .gz (whose decompressed size is what counts).
    let bytes = fs::read(f.data().join(TRAIN_IMAGES)).unwrap();
    fs::remove_file(f.data().join(TRAIN_IMAGES)).unwrap();
    f.write(&format!("{TRAIN_IMAGES}.gz"), &gzip(&bytes));
    assert_error(&train_limited(&f), &[TRAIN_IMAGES, "truncated data"]);
    // A huge label count.
    f.write(TRAIN_LABELS, &idx(8, &[u32::MAX], &[1; 10]));
    fs::write(f.data().join(TRAIN_IMAGES), images(60, 4, 4, &labels(60, 3))).unwrap();
    assert_error(&train_limited(&f), &[TRAIN_LABELS, "truncated data"]);
}

#[test]
fn dimensions_whose_product_overflows() {
    let f = Fixture::new();
    f.write(TRAIN_IMAGES, &idx(8, &[u32::MAX, u32::MAX, u32::MAX], &[0; 32]));
    assert_error(&train_limited(&f), &[TRAIN_IMAGES, "overflow"]);
}

#[test]
fn huge_but_consistent_image_size_is_refused_before_allocating() {
    // One 1000x1000 image (1 MB, valid): batches of 65536 such images would
    // need 262 GB of f32 inputs. Refused up front with the flags to change.
    let f = Fixture::new();
    let (lt, ls) = (labels(4, 2), labels(2, 2));
    f.write(TRAIN_IMAGES, &images(4, 1000, 1000, &lt));
    f.write(TRAIN_LABELS, &idx(8, &[4], &lt));
    f.write(TEST_IMAGES, &images(2, 1000, 1000, &ls));
    f.write(TEST_LABELS, &idx(8, &[2], &ls));
    let out = f.train(&["--batch-size", "65536", "--validation-split", "0.5"]);
    assert_error(&out, &["--batch-size", "memory"]);
}

#[test]
fn huge_hidden_layers_are_refused_before_allocating() {
    let f = Fixture::new();
    f.fails(&["--hidden", "1000000,1000000"], &["--hidden", "memory"]);
}

#[test]
fn trailing_garbage() {
    let f = Fixture::new();
    let mut bytes = fs::read(f.data().join(TEST_LABELS)).unwrap();
    bytes.extend(b"junk");
    f.write(TEST_LABELS, &bytes);
    f.fails(&[], &[TEST_LABELS, "4 trailing bytes"]);
}

#[test]
fn image_and_label_counts_differ() {
    let f = Fixture::new();
    f.write(TRAIN_LABELS, &idx(8, &[59], &labels(59, 3)));
    f.fails(&[], &[TRAIN_LABELS, "59 labels", "60 images"]);
}

#[test]
fn test_label_beyond_the_training_classes() {
    let f = Fixture::new();
    let mut l = labels(20, 3);
    l[13] = 7;
    f.write(TEST_LABELS, &idx(8, &[20], &l));
    f.fails(&[], &[TEST_LABELS, "label 7 at index 13", "3 classes"]);
}

#[test]
fn a_single_class() {
    let f = Fixture::new();
    f.write(TRAIN_LABELS, &idx(8, &[60], &[0; 60]));
    f.fails(&[], &[TRAIN_LABELS, "at least 2 classes"]);
}

#[test]
fn empty_training_set() {
    let f = Fixture::new();
    f.write(TRAIN_IMAGES, &idx(8, &[0, 4, 4], &[]));
    f.write(TRAIN_LABELS, &idx(8, &[0], &[]));
    f.fails(&[], &[TRAIN_IMAGES, "empty"]);
}

#[test]
fn empty_test_set() {
    let f = Fixture::new();
    f.write(TEST_IMAGES, &idx(8, &[0, 4, 4], &[]));
    f.write(TEST_LABELS, &idx(8, &[0], &[]));
    f.fails(&[], &[TEST_IMAGES, "empty"]);
}

#[test]
fn empty_file() {
    let f = Fixture::new();
    f.write(TEST_IMAGES, &[]);
    f.fails(&[], &[TEST_IMAGES, "truncated header: 0 bytes"]);
}

#[test]
fn zero_pixel_images() {
    let f = Fixture::new();
    f.write(TRAIN_IMAGES, &idx(8, &[60, 0, 4], &[]));
    f.fails(&[], &[TRAIN_IMAGES, "empty images"]);
}

#[test]
fn test_images_of_another_size() {
    let f = Fixture::new();
    f.write(TEST_IMAGES, &images(20, 5, 5, &labels(20, 3)));
    f.fails(&[], &[TEST_IMAGES, "5x5", "4x4"]);
}

#[test]
fn a_missing_file() {
    let f = Fixture::new();
    fs::remove_file(f.data().join(TEST_LABELS)).unwrap();
    f.fails(&[], &["missing t10k-labels-idx1-ubyte"]);
}

#[test]
fn data_dir_missing_or_a_file() {
    let f = Fixture::new();
    let out = Command::new(env!("CARGO_BIN_EXE_simdnet"))
        .args(["train", "--no-tui", "--data"])
        .arg(f.path("nowhere"))
        .output()
        .unwrap();
    assert_error(&out, &["nowhere", "does not exist"]);
}

/// Whether permission bits stop this process (not as root).
fn permissions_apply(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let probe = dir.join("probe");
    fs::write(&probe, b"x").unwrap();
    fs::set_permissions(&probe, fs::Permissions::from_mode(0o000)).unwrap();
    let blocked = fs::read(&probe).is_err();
    fs::remove_file(&probe).unwrap();
    blocked
}

#[test]
fn an_unreadable_file() {
    let f = Fixture::new();
    if permissions_apply(f.dir.path()) {
        use std::os::unix::fs::PermissionsExt;
        let p = f.data().join(TRAIN_LABELS);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o000)).unwrap();
        f.fails(&[], &[TRAIN_LABELS, "permission denied"]);
    } else {
        eprintln!("running as root: chmod 000 does not block reads; testing a directory in the file's place instead");
    }
    // Unreadable as anyone: a directory where the file should be (raw and .gz).
    let f = Fixture::new();
    fs::remove_file(f.data().join(TRAIN_LABELS)).unwrap();
    fs::create_dir(f.data().join(TRAIN_LABELS)).unwrap();
    f.fails(&[], &[TRAIN_LABELS, "is a directory"]);
    fs::remove_dir(f.data().join(TRAIN_LABELS)).unwrap();
    fs::create_dir(f.data().join(format!("{TRAIN_LABELS}.gz"))).unwrap();
    f.fails(&[], &[TRAIN_LABELS, "is a directory"]);
}

/// Gzips every file of the fixture, so that a cache is needed.
fn gzip_all(f: &Fixture) {
    for name in [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS] {
        let raw = fs::read(f.data().join(name)).unwrap();
        fs::remove_file(f.data().join(name)).unwrap();
        f.write(&format!("{name}.gz"), &gzip(&raw));
    }
}

#[test]
fn cache_dir_under_a_regular_file() {
    // What a read-only cache looks like to root: the directory cannot be
    // created (ENOTDIR), whatever the permissions.
    let f = Fixture::new();
    gzip_all(&f);
    fs::write(f.path("afile"), b"x").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_simdnet"))
        .args(["train", "--no-tui", "--epochs", "1", "--data"])
        .arg(f.data())
        .arg("--cache-dir")
        .arg(f.path("afile/cache"))
        .output()
        .unwrap();
    assert_error(&out, &["afile/cache", "cannot create cache directory", "--cache-dir"]);
}

#[test]
fn cache_dir_in_proc() {
    // /proc refuses new directories even to root: a cache that cannot be written.
    if !Path::new("/proc/self").exists() {
        eprintln!("skipped: no /proc");
        return;
    }
    let f = Fixture::new();
    gzip_all(&f);
    let out = Command::new(env!("CARGO_BIN_EXE_simdnet"))
        .args(["train", "--no-tui", "--epochs", "1", "--data"])
        .arg(f.data())
        .args(["--cache-dir", "/proc/simdnet-cache"])
        .output()
        .unwrap();
    assert_error(&out, &["/proc/simdnet-cache", "cache", "--cache-dir"]);
}

#[test]
fn read_only_cache_dir() {
    let f = Fixture::new();
    if !permissions_apply(f.dir.path()) {
        eprintln!("skipped: running as root, a read-only directory is writable (see cache_dir_under_a_regular_file)");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    gzip_all(&f);
    fs::create_dir(f.path("cache")).unwrap();
    fs::set_permissions(f.path("cache"), fs::Permissions::from_mode(0o555)).unwrap();
    f.fails(&[], &["cache", "cannot write cache", "permission denied"]);
}

// ---- flags ----

#[test]
fn nonsensical_flags() {
    let f = Fixture::new();
    let save = f.path("m.safetensors");
    let cases: &[(&[&str], &str, &str)] = &[
        (&["--batch-size", "0"], "--batch-size", "0"),
        (&["--batch-size", "-5"], "--batch-size", "-5"),
        (&["--lr", "-0.1"], "--lr", "greater than 0"),
        (&["--lr", "0"], "--lr", "greater than 0"),
        (&["--lr", "NaN"], "--lr", "not a finite number"),
        (&["--lr", "inf"], "--lr", "not a finite number"),
        (&["--lr", "fast"], "--lr", "not a number"),
        (&["--dropout", "1"], "--dropout", "[0, 1)"),
        (&["--dropout", "1.5"], "--dropout", "[0, 1)"),
        (&["--dropout", "-0.1"], "--dropout", "[0, 1)"),
        (&["--validation-split", "0"], "--validation-split", "(0, 1)"),
        (&["--validation-split", "1"], "--validation-split", "(0, 1)"),
        (&["--validation-split", "-0.2"], "--validation-split", "(0, 1)"),
        (&["--validation-split", "NaN"], "--validation-split", "finite"),
        (&["--threads", "0"], "--threads", "0"),
        (&["--threads", "1000000"], "--threads", "1000000"),
        (&["--threads", "-1"], "--threads", "-1"),
        (&["--epochs", "0"], "--epochs", "0"),
        (&["--seed", "-1"], "--seed", "-1"),
        (&["--early-stopping", "-2"], "--early-stopping", "-2"),
        (&["--hidden", "0"], "--hidden", "layer size"),
        (&["--hidden", "100,,10"], "--hidden", "layer size"),
        (&["--momentum", "1"], "--momentum", "[0, 1)"),
        (&["--optimizer", "lbfgs"], "--optimizer", "lbfgs"),
    ];
    for (args, flag, needle) in cases {
        let mut all = args.to_vec();
        all.extend(["--save", save.to_str().unwrap()]);
        // Without the fixture's own --epochs: each flag appears once.
        let out = Command::new(env!("CARGO_BIN_EXE_simdnet"))
            .args(["train", "--no-tui", "--data"])
            .arg(f.data())
            .args(&all)
            .output()
            .unwrap();
        assert_flag_error(&out, flag, needle);
    }
    assert!(!save.exists());
    assert!(f.top_files().is_empty(), "{:?}", f.top_files());
}

#[test]
fn flags_that_conflict_after_parsing() {
    let f = Fixture::new();
    f.fails(&["--momentum", "0.9"], &["--momentum", "sgd only"]);
    // 60 images: a split of 0.001 holds out none of them.
    f.fails(&["--validation-split", "0.001"], &["--validation-split", "0 validation"]);
    // 0.999 of 60 still leaves one image to train on: that works.
    assert!(f.train(&["--validation-split", "0.999"]).status.success());
}

#[test]
fn save_to_a_missing_directory_or_a_directory() {
    let f = Fixture::new();
    let bad = f.path("no/such/dir/m.safetensors");
    assert_error(&f.train(&["--save", bad.to_str().unwrap()]), &["--save", "directory does not exist"]);
    let dir = f.path("adir");
    fs::create_dir(&dir).unwrap();
    assert_error(&f.train(&["--save", dir.to_str().unwrap()]), &["--save", "is a directory"]);
    assert_flag_error(&f.train(&["--save", ""]), "--save", "a value is required");
    assert_eq!(f.top_files(), ["adir"]);
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
}

// ---- training faults ----

#[test]
fn non_finite_loss_stops_and_keeps_the_last_good_model() {
    let f = Fixture::new();
    let save = f.path("good.safetensors");
    let before = b"the last good checkpoint".to_vec();
    fs::write(&save, &before).unwrap();
    for optimizer in ["sgd", "adam"] {
        let out = f.train(&["--optimizer", optimizer, "--lr", "1e30", "--save", save.to_str().unwrap()]);
        assert_error(&out, &["NaN or infinite", "--lr"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("Invalid loss, terminating training"), "{stdout}");
        assert!(!stdout.contains("test_accuracy"), "{stdout}");
        assert_eq!(fs::read(&save).unwrap(), before);
        assert_eq!(f.top_files(), ["good.safetensors"]);
    }
}

#[test]
fn abort_mid_save_leaves_the_previous_file_intact() {
    let f = Fixture::new();
    let save = f.path("model.safetensors");
    let out = f.train(&["--save", save.to_str().unwrap()]);
    assert!(out.status.success());
    let before = fs::read(&save).unwrap();

    // The process dies (SIGABRT) with half the new model in the temp file.
    let out = f.train_env(&["--save", save.to_str().unwrap(), "--seed", "7"], &[("SIMDNET_FAULT", "abort-mid-write")]);
    assert!(!out.status.success());
    assert_eq!(fs::read(&save).unwrap(), before, "the previous model changed");
    checkpoint::load(&save).unwrap();
    // The dead process's temp file is the only trace…
    let stale: Vec<String> = f.top_files().into_iter().filter(|n| n != "model.safetensors").collect();
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert!(stale[0].starts_with(".model.safetensors.") && stale[0].ends_with(".tmp"), "{stale:?}");

    // …and the next save of the same file clears it.
    let out = f.train(&["--save", save.to_str().unwrap(), "--seed", "7"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(f.top_files(), ["model.safetensors"]);
    assert_ne!(fs::read(&save).unwrap(), before);
    checkpoint::load(&save).unwrap();
}

// ---- model files (library level) ----

fn tiny_model() -> (Model, Vec<String>) {
    let spec = ModelSpec {
        input_shape: (4, 4),
        hidden: vec![5],
        activation: simdnet::gemm::Activation::Relu,
        classes: 3,
        dropout: 0.0,
    };
    (Model::new(spec, 1), vec!["a".into(), "b".into(), "c".into()])
}

/// Loads `bytes` as `name` and returns the error, which must name the file.
fn load_error(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.safetensors");
    fs::write(&p, bytes).unwrap();
    let e = checkpoint::load(&p).expect_err("a bad model loaded").to_string();
    assert!(e.starts_with(&p.display().to_string()), "{e}");
    assert!(!e.contains('\n'), "{e}");
    e
}

/// A safetensors file with the tiny model's metadata (edited by `meta`) and
/// tensors `tensors` (name, dtype, shape, bytes).
fn crafted(
    meta: impl Fn(&mut serde_json::Map<String, serde_json::Value>),
    tensors: &[(&str, &str, Vec<usize>, usize)],
) -> Vec<u8> {
    let (model, names) = tiny_model();
    let good = checkpoint::to_bytes(&model, &names).unwrap();
    let n = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&good[8..8 + n]).unwrap();
    let mut m = header["__metadata__"].as_object().unwrap().clone();
    meta(&mut m);
    let mut h = serde_json::Map::new();
    h.insert("__metadata__".into(), m.into());
    let mut offset = 0;
    for (name, dtype, shape, len) in tensors {
        h.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len]}),
        );
        offset += len;
    }
    let hs = serde_json::to_vec(&serde_json::Value::Object(h)).unwrap();
    let mut out = (hs.len() as u64).to_le_bytes().to_vec();
    out.extend(hs);
    out.extend(vec![0u8; offset]);
    out
}

fn tiny_tensors() -> Vec<(&'static str, &'static str, Vec<usize>, usize)> {
    vec![
        ("dense.kernel", "F32", vec![16, 5], 16 * 5 * 4),
        ("dense.bias", "F32", vec![5], 20),
        ("dense_1.kernel", "F32", vec![5, 3], 60),
        ("dense_1.bias", "F32", vec![3], 12),
    ]
}

#[test]
fn model_file_round_trip_and_crafted_baseline() {
    let (model, names) = tiny_model();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.safetensors");
    checkpoint::save(&model, &names, &p).unwrap();
    let loaded = checkpoint::load(&p).unwrap();
    assert_eq!(loaded.model.params, model.params);
    // The crafting helper itself produces a loadable file.
    checkpoint::from_bytes(&crafted(|_| {}, &tiny_tensors())).unwrap();
}

#[test]
fn model_file_truncated() {
    let (model, names) = tiny_model();
    let good = checkpoint::to_bytes(&model, &names).unwrap();
    for cut in [0, 4, 8, 20, good.len() / 2, good.len() - 1] {
        let e = load_error(&good[..cut]);
        assert!(e.contains("safetensors"), "cut {cut}: {e}");
    }
}

#[test]
fn model_file_header_lies() {
    // Header length beyond the file.
    let mut bytes = (1u64 << 40).to_le_bytes().to_vec();
    bytes.extend(b"{}");
    assert!(load_error(&bytes).contains("not a safetensors file"));
    // Metadata claims 1000 hidden units the tensors do not hold.
    let e = load_error(&crafted(|m| drop(m.insert("hidden".into(), "1000".into())), &tiny_tensors()));
    assert!(e.contains("parameters") || e.contains("shape"), "{e}");
    // Metadata claims a huge model: refused without allocating it.
    let e = load_error(&crafted(|m| drop(m.insert("hidden".into(), "4000000000,4000000000".into())), &tiny_tensors()));
    assert!(e.contains("parameters") || e.contains("overflow"), "{e}");
    // Tensor offsets past the end of the data.
    let mut t = tiny_tensors();
    t[3].3 = 12;
    let mut bytes = crafted(|_| {}, &t);
    bytes.truncate(bytes.len() - 4);
    assert!(load_error(&bytes).contains("safetensors"));
    // Class names that disagree with the class count.
    let e = load_error(&crafted(|m| drop(m.insert("class_names".into(), "[\"a\"]".into())), &tiny_tensors()));
    assert!(e.contains("1 class names for 3 classes"), "{e}");
    // Not our metadata.
    let e = load_error(&crafted(|m| drop(m.insert("format".into(), "pytorch".into())), &tiny_tensors()));
    assert!(e.contains("unknown format"), "{e}");
    let e = load_error(&crafted(|m| drop(m.insert("dropout".into(), "NaN".into())), &tiny_tensors()));
    assert!(e.contains("dropout"), "{e}");
    let e = load_error(&crafted(|m| drop(m.remove("classes")), &tiny_tensors()));
    assert!(e.contains("lacks \"classes\""), "{e}");
}

#[test]
fn model_file_wrong_shapes_or_dtype() {
    let mut t = tiny_tensors();
    t[0].2 = vec![5, 16];
    assert!(load_error(&crafted(|_| {}, &t)).contains("tensor dense.kernel has shape [5, 16], expected [16, 5]"));
    let mut t = tiny_tensors();
    t[1] = ("dense.bias", "F64", vec![5], 40);
    assert!(load_error(&crafted(|_| {}, &t)).contains("dense.bias has dtype F64"));
    let mut t = tiny_tensors();
    t[2].0 = "dense_2.kernel";
    assert!(load_error(&crafted(|_| {}, &t)).contains("missing tensor dense_1.kernel"));
    let mut t = tiny_tensors();
    t.pop();
    assert!(load_error(&crafted(|_| {}, &t)).contains("3 tensors, the architecture has 4"));
}

#[test]
fn model_file_missing_or_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let e = checkpoint::load(&dir.path().join("none.safetensors")).unwrap_err().to_string();
    assert!(e.contains("none.safetensors") && e.contains("No such file"), "{e}");
    let e = checkpoint::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("is a directory"), "{e}");
}

// ---- closed output streams ----

#[test]
fn closed_stdout_and_stderr_do_not_panic() {
    // `simdnet … | head -0`: every write to stdout fails with EPIPE. Training
    // carries on and saves; errors still give a non-zero exit code.
    let f = Fixture::new();
    let save = f.path("m.safetensors");
    let run = |args: &[&str]| {
        let (r1, w1) = std::io::pipe().unwrap();
        let (r2, w2) = std::io::pipe().unwrap();
        drop((r1, r2));
        Command::new(env!("CARGO_BIN_EXE_simdnet"))
            .args(args)
            .arg("--data")
            .arg(f.data())
            .stdout(w1)
            .stderr(w2)
            .status()
            .unwrap()
    };
    let status = run(&["train", "--no-tui", "--epochs", "1", "--save", save.to_str().unwrap()]);
    assert!(status.success(), "{status:?}");
    checkpoint::load(&save).unwrap();
    assert!(run(&["summary"]).success());
    assert!(run(&["bench", "--seconds", "0.01"]).success());
    assert!(run(&["compare", "--no-tui", "--epochs", "1", "--optimizer", "sgd,adam"]).success());
    // As `bench` and `compare`: a closed pipe stops the report quietly.
    for args in [["eval", "--model", save.to_str().unwrap()], ["predict", "--model", save.to_str().unwrap()]] {
        let status = run(&args);
        assert!(status.success(), "{args:?}: {status:?}");
    }
    // A failing run (missing --save directory) still fails, quietly.
    let status = run(&["train", "--no-tui", "--save", "/nonexistent/m.safetensors"]);
    assert_eq!(status.code(), Some(1));
}

// ---- a full disk ----

/// Runs `train` with a file-size limit of `blocks` (RLIMIT_FSIZE, `ulimit -f`)
/// and SIGXFSZ ignored: a write past the limit fails with EFBIG, as a write to
/// a full disk fails with ENOSPC, without needing a size-limited mount.
fn train_size_limited(f: &Fixture, blocks: u32, args: &[&str]) -> Output {
    let script = format!(r#"trap '' XFSZ; ulimit -f {blocks} && exec "$0" "$@""#);
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_simdnet"))
        .args(["train", "--no-tui", "--epochs", "1", "--data"])
        .arg(f.data())
        .arg("--cache-dir")
        .arg(f.path("cache"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn full_disk_while_writing_the_cache() {
    let f = Fixture::new();
    write_dataset(&f.data(), 600, 20); // ~10 KB of training images
    gzip_all(&f);
    let line = assert_error(&train_size_limited(&f, 2, &[]), &["cache", "cannot write cache", "File too large"]);
    assert!(line.contains(f.path("cache").to_str().unwrap()), "{line}");
    // No partial cache file: the next run decompresses again, from scratch.
    assert_eq!(fs::read_dir(f.path("cache")).unwrap().count(), 0);
    assert!(f.train(&[]).status.success());
}

#[test]
fn full_disk_while_saving_keeps_the_previous_model() {
    let f = Fixture::new();
    let save = f.path("model.safetensors");
    fs::write(&save, b"previous model").unwrap();
    // The model (16-100-3: ~8 KB) does not fit under the limit.
    let out = train_size_limited(&f, 2, &["--save", save.to_str().unwrap()]);
    assert_error(&out, &["model.safetensors", "cannot write", "File too large"]);
    assert_eq!(fs::read(&save).unwrap(), b"previous model");
    assert_eq!(f.top_files(), ["model.safetensors"]);
}
