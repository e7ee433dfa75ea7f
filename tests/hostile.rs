//! Hostile input through the real command line: corrupt and lying data files,
//! unusable cache directories, impossible flags, a loss that blows up and a
//! crash in the middle of a save. Every case must end with a non-zero exit
//! code and one `error: …` line naming the file or flag and the problem, with
//! no panic and no partial output file. Model files are checked through
//! `checkpoint::load` (library level) and through `eval`.

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
    assert_eq!(loaded.model.spec.classes(), 3);
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
        (&["--seed", "4294967296"], "--seed", "4294967295"),
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
    // 60 images, held out as scikit-learn's train_test_split rounds (up):
    // 0.999 leaves none to train on, 0.001 still holds out one.
    f.fails(&["--validation-split", "0.999"], &["--validation-split", "0 training and 60 validation"]);
    assert!(f.train(&["--validation-split", "0.001"]).status.success());
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
        let out = f.train(&["--optimizer", optimizer, "--lr", "1e30", "--overwrite", "--save", save.to_str().unwrap()]);
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
    let out = f.train_env(
        &["--save", save.to_str().unwrap(), "--seed", "7", "--overwrite"],
        &[("SIMDNET_FAULT", "abort-mid-write")],
    );
    assert!(!out.status.success());
    assert_eq!(fs::read(&save).unwrap(), before, "the previous model changed");
    checkpoint::load(&save).unwrap();
    // The dead process's temp file is the only trace…
    let stale: Vec<String> = f.top_files().into_iter().filter(|n| n != "model.safetensors").collect();
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert!(stale[0].starts_with(".model.safetensors.") && stale[0].ends_with(".tmp"), "{stale:?}");

    // …and the next save of the same file clears it.
    let out = f.train(&["--save", save.to_str().unwrap(), "--seed", "7", "--overwrite"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(f.top_files(), ["model.safetensors"]);
    assert_ne!(fs::read(&save).unwrap(), before);
    checkpoint::load(&save).unwrap();
}

// ---- model files (library level) ----

fn tiny_model() -> (Model, Vec<String>) {
    let spec = ModelSpec::mlp((4, 4), &[5], simdnet::gemm::Activation::Relu, 3, 0.0).unwrap();
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
    let e = load_error(&crafted(
        |m| drop(m.insert("arch".into(), "flatten,dense(1000,relu),dense(3)".into())),
        &tiny_tensors(),
    ));
    assert!(e.contains("parameters") || e.contains("shape"), "{e}");
    // Metadata claims a huge model: refused without allocating it.
    let e = load_error(&crafted(
        |m| drop(m.insert("arch".into(), "flatten,dense(1000000,relu),dense(1000000,relu),dense(3)".into())),
        &tiny_tensors(),
    ));
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
    let e = load_error(&crafted(
        |m| drop(m.insert("arch".into(), "flatten,dense(5,relu),dropout(NaN),dense(3)".into())),
        &tiny_tensors(),
    ));
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
    let out = train_size_limited(&f, 2, &["--overwrite", "--save", save.to_str().unwrap()]);
    assert_error(&out, &["model.safetensors", "cannot write", "File too large"]);
    assert_eq!(fs::read(&save).unwrap(), b"previous model");
    assert_eq!(f.top_files(), ["model.safetensors"]);
}

// ---- issue #29: the hostile-input sweep ----

/// Kills the child if the test fails before it exits.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs `simdnet args`, killing it (and failing) if it has not ended within
/// `limit`: a hang must fail the test, not block it.
fn run_within(args: &[&std::ffi::OsStr], limit: std::time::Duration) -> Output {
    use std::process::Stdio;
    let child = Command::new(env!("CARGO_BIN_EXE_simdnet"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = KillOnDrop(child);
    let start = std::time::Instant::now();
    while guard.0.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < limit, "simdnet {args:?} still runs after {limit:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let child = std::mem::replace(&mut guard.0, Command::new("true").spawn().unwrap());
    child.wait_with_output().unwrap()
}

fn os(args: &[&str]) -> Vec<std::ffi::OsString> {
    args.iter().map(|a| a.into()).collect()
}

fn run_args(args: &[std::ffi::OsString], limit_s: u64) -> Output {
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    run_within(&refs, std::time::Duration::from_secs(limit_s))
}

fn files_in(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map_or_else(|_| Vec::new(), |d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
}

#[test]
fn gzip_bombs_are_refused_from_the_header_and_leave_no_cache() {
    let f = Fixture::new();
    let cache = f.path("cache");
    let good = fs::read(f.data().join(TRAIN_IMAGES)).unwrap();
    fs::remove_file(f.data().join(TRAIN_IMAGES)).unwrap();
    let gz_name = format!("{TRAIN_IMAGES}.gz");
    // A valid file followed by 256 MiB of zeros (a 250 KB .gz): refused at
    // the first byte past what the header describes.
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&good).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..256 {
        e.write_all(&zeros).unwrap();
    }
    f.write(&gz_name, &e.finish().unwrap());
    let start = std::time::Instant::now();
    f.fails(&[], &[TRAIN_IMAGES, "trailing data after the 960 bytes"]);
    assert!(start.elapsed().as_secs() < 30, "{:?}", start.elapsed());
    assert!(files_in(&cache).is_empty(), "{:?}", files_in(&cache));
    // Zeros with no header at all: refused from the first 4 bytes.
    f.write(&gz_name, &gzip(&vec![0u8; 64 << 20]));
    f.fails(&[], &[TRAIN_IMAGES, "unsupported IDX data type 0x00"]);
    assert!(files_in(&cache).is_empty(), "{:?}", files_in(&cache));
    // A header promising 4 GiB from a tiny .gz: refused before any data.
    f.write(&gz_name, &gzip(&idx(8, &[1, 65536, 65536], &[0; 4096])));
    f.fails(&[], &[TRAIN_IMAGES, "truncated data", "more than a", "gzip file can hold"]);
    assert!(files_in(&cache).is_empty(), "{:?}", files_in(&cache));
}

#[test]
fn an_invalid_cache_file_is_removed_and_redone() {
    // A cache file that does not validate (left by an older version, which
    // renamed it into place before checking the header) is not reused.
    let f = Fixture::new();
    gzip_all(&f);
    assert!(f.train(&[]).status.success());
    let cache = f.path("cache");
    let cached: Vec<String> = files_in(&cache).into_iter().filter(|n| n.starts_with(TRAIN_LABELS)).collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    fs::write(cache.join(&cached[0]), b"junk").unwrap();
    let out = f.train(&[]);
    assert_error(&out, &[TRAIN_LABELS, "not an IDX file"]);
    assert!(!cache.join(&cached[0]).exists());
    assert!(f.train(&[]).status.success(), "decompressed again");
}

#[test]
fn multi_member_gzip_loads() {
    // `cat a.gz b.gz > c.gz` is valid gzip (gzip -t accepts it, gzip -d
    // writes both): every member is part of the file.
    let f = Fixture::new();
    let raw = fs::read(f.data().join(TRAIN_IMAGES)).unwrap();
    let mut gz = Vec::new();
    for part in [&raw[..3], &raw[3..500], &raw[500..], &[][..]] {
        gz.extend(gzip(part));
    }
    fs::remove_file(f.data().join(TRAIN_IMAGES)).unwrap();
    f.write(&format!("{TRAIN_IMAGES}.gz"), &gz);
    let out = f.train(&[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    if Command::new("gzip").arg("--version").output().is_ok_and(|o| o.status.success()) {
        let t = Command::new("gzip").arg("-t").arg(f.data().join(format!("{TRAIN_IMAGES}.gz"))).status().unwrap();
        assert!(t.success(), "gzip -t refuses the test's own file");
    }
}

/// A 1 GiB training-image file as a 64-member .gz (~13 MB; each member
/// compresses 16 MiB of mostly zeros with a few random bytes per KiB, so the
/// header stays within what the .gz can hold).
fn big_gz() -> Vec<u8> {
    let mut rng = 1u64;
    let mut chunk = vec![0u8; 16 << 20];
    for k in chunk.chunks_mut(1024) {
        for b in &mut k[..8] {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            *b = (rng >> 56) as u8;
        }
    }
    let member = gzip(&chunk);
    let mut gz = gzip(&idx(8, &[1024, 1024, 1024], &[]));
    for _ in 0..64 {
        gz.extend(&member);
    }
    gz
}

/// Starts `args` on a data set whose training images are [`big_gz`], sends
/// `signal` once the cache's temporary file passes 32 MB, and checks that the
/// run ends within 2 s, with `code`, one error line and no cache file.
fn signal_during_decompression(args: &[&str], signal: &str, code: i32) {
    use std::process::Stdio;
    let f = Fixture::new();
    fs::remove_file(f.data().join(TRAIN_IMAGES)).unwrap();
    f.write(&format!("{TRAIN_IMAGES}.gz"), &big_gz());
    let cache = f.path("cache");
    let child = Command::new(env!("CARGO_BIN_EXE_simdnet"))
        .args(args)
        .arg("--data")
        .arg(f.data())
        .arg("--cache-dir")
        .arg(&cache)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = KillOnDrop(child);
    let start = std::time::Instant::now();
    let written =
        || -> u64 { fs::read_dir(&cache).map_or(0, |d| d.map(|e| e.unwrap().metadata().unwrap().len()).sum()) };
    while written() < 32 << 20 {
        assert!(guard.0.try_wait().unwrap().is_none(), "ended before the signal");
        assert!(start.elapsed().as_secs() < 120, "decompression never started");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let sent = std::time::Instant::now();
    assert!(Command::new("kill").args([signal, &guard.0.id().to_string()]).status().unwrap().success());
    while guard.0.try_wait().unwrap().is_none() {
        assert!(sent.elapsed().as_secs() < 10, "no exit 10 s after {signal}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let took = sent.elapsed();
    let child = std::mem::replace(&mut guard.0, Command::new("true").spawn().unwrap());
    let out = child.wait_with_output().unwrap();
    assert!(took.as_millis() < 2000, "{signal} answered after {took:?}");
    assert_eq!(out.status.code(), Some(code), "{}", String::from_utf8_lossy(&out.stderr));
    let line = assert_error_code(&out, &[TRAIN_IMAGES, &format!("interrupted by SIG{}", &signal[1..])]);
    assert!(line.contains("nothing was cached"), "{line}");
    assert!(files_in(&cache).is_empty(), "left behind: {:?}", files_in(&cache));
}

/// [`assert_error`] for a run whose exit code was checked already.
fn assert_error_code(out: &Output, needles: &[&str]) -> String {
    assert_error(out, needles)
}

#[test]
fn sigint_during_decompression_stops_at_once_and_leaves_nothing() {
    // Headless training: its own stop handlers are installed before the data loads.
    signal_during_decompression(&["train", "--no-tui", "--epochs", "1"], "-INT", 130);
}

#[test]
fn sigterm_during_decompression_of_summary_stops_at_once() {
    // A command without stop handlers of its own.
    signal_during_decompression(&["summary"], "-TERM", 143);
}

/// `mkfifo path`, or false where there is no mkfifo.
fn mkfifo(path: &Path) -> bool {
    Command::new("mkfifo").arg(path).status().is_ok_and(|s| s.success())
}

#[test]
fn fifos_and_devices_are_refused_without_blocking() {
    let f = Fixture::new();
    if !mkfifo(&f.path("fifo")) {
        eprintln!("skipped: no mkfifo");
        return;
    }
    // A FIFO in place of an IDX file, raw and .gz: before, open() blocked
    // for ever (and SIGTERM did not end it).
    fs::remove_file(f.data().join(TRAIN_LABELS)).unwrap();
    assert!(mkfifo(&f.data().join(TRAIN_LABELS)));
    let data = f.data();
    let train = |extra: &[&str]| {
        let mut a = os(&["train", "--no-tui", "--epochs", "1", "--data"]);
        a.push(data.clone().into());
        a.extend(os(extra));
        run_args(&a, 30)
    };
    assert_error(&train(&[]), &[TRAIN_LABELS, "is a FIFO (named pipe), not an IDX file"]);
    fs::remove_file(f.data().join(TRAIN_LABELS)).unwrap();
    assert!(mkfifo(&f.data().join(format!("{TRAIN_LABELS}.gz"))));
    assert_error(&train(&[]), &[TRAIN_LABELS, "is a FIFO (named pipe), not a gzip file"]);
    // A symlink to a regular file is fine.
    fs::remove_file(f.data().join(format!("{TRAIN_LABELS}.gz"))).unwrap();
    fs::write(f.path("labels"), idx(8, &[60], &labels(60, 3))).unwrap();
    std::os::unix::fs::symlink(f.path("labels"), f.data().join(TRAIN_LABELS)).unwrap();
    assert!(train(&[]).status.success());

    // Model files: a FIFO, and /dev/zero (which grew memory without limit).
    for (model, problem) in [
        (f.path("fifo"), "is a FIFO (named pipe), not a model file"),
        (PathBuf::from("/dev/zero"), "is a character device, not a model file"),
    ] {
        for cmd in ["eval", "predict"] {
            let mut a = os(&[cmd, "--model"]);
            a.push(model.clone().into());
            a.extend([std::ffi::OsString::from("--data"), data.clone().into()]);
            assert_error(&run_args(&a, 30), &[model.to_str().unwrap(), problem]);
        }
    }
}

#[test]
fn save_never_replaces_a_device_or_fifo() {
    let f = Fixture::new();
    let fifo = f.path("fifo");
    for target in ["/dev/null", fifo.to_str().unwrap()] {
        if target == fifo.to_str().unwrap() && !mkfifo(&fifo) {
            continue;
        }
        for flag in ["--save", "--checkpoint"] {
            let a = ["--overwrite", flag, target];
            assert_error(&f.train(&a), &[flag, target, "only a regular file can be replaced"]);
        }
    }
    use std::os::unix::fs::FileTypeExt;
    assert!(fs::metadata("/dev/null").unwrap().file_type().is_char_device());
    if fifo.exists() {
        assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
    }
}

#[test]
fn memory_check_uses_what_is_available() {
    // Under a 4 GiB address-space limit, 267 M weights (5.3 GB with
    // gradients and Adam's slots) cannot fit, however much RAM the machine
    // has: refused with the model to change, not `memory allocation failed`.
    let f = Fixture::new();
    let script = r#"ulimit -v 4194304 && exec "$0" "$@""#;
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_simdnet"))
        .args(["train", "--no-tui", "--epochs", "1", "--hidden", "1000000,250", "--data"])
        .arg(f.data())
        .output()
        .unwrap();
    assert_error(&out, &["the model 16-1000000-250-3 relu", "GB of memory", "is available"]);
}

#[test]
fn compare_caps_its_configurations() {
    let f = Fixture::new();
    let lrs: Vec<String> = (1..=4000).map(|i| format!("0.{i:04}")).collect();
    let momenta: Vec<String> = (0..4000).map(|i| format!("0.{i:04}")).collect();
    let mut a = os(&["compare", "--no-tui", "--optimizer", "sgd", "--lr", &lrs.join(","), "--momentum"]);
    a.push(momenta.join(",").into());
    a.extend([std::ffi::OsString::from("--data"), f.data().into()]);
    let out = run_args(&a, 30);
    assert_error(&out, &["16000000 configurations", "at most 64"]);
    // 65 is one too many; 64 is fine (checked without training: a bad
    // --activation value fails after the count).
    let hidden: Vec<String> = (1..=65).map(|h| h.to_string()).collect();
    let mut a = os(&["compare", "--no-tui", "--hidden"]);
    a.push(hidden.join("/").into());
    assert_error(&run_args(&a, 30), &["65 configurations", "at most 64"]);
    let mut a = os(&["compare", "--no-tui", "--activation", "tanh", "--hidden"]);
    a.push(hidden[..64].join("/").into());
    assert_error(&run_args(&a, 30), &["--activation", "tanh"]);
}

#[test]
fn data_truncated_during_training_does_not_kill_the_run() {
    // Another process truncates the training files mid-run: the data were
    // read into memory once, so training carries on (before: SIGBUS).
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let f = Fixture::new();
    write_dataset(&f.data(), 2000, 20);
    let child = Command::new(env!("CARGO_BIN_EXE_simdnet"))
        .args(["train", "--no-tui", "--threads", "1", "--epochs", "100000", "--hidden", "8", "--data"])
        .arg(f.data())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = KillOnDrop(child);
    let mut lines = BufReader::new(guard.0.stdout.take().unwrap()).lines().map_while(Result::ok);
    let mut epoch = |n: usize| {
        let want = format!("Epoch {n}/");
        assert!(lines.any(|l| l.starts_with(&want)), "no {want}");
    };
    epoch(1);
    for name in [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS] {
        fs::OpenOptions::new().write(true).open(f.data().join(name)).unwrap().set_len(0).unwrap();
    }
    epoch(4);
    assert!(Command::new("kill").args(["-TERM", &guard.0.id().to_string()]).status().unwrap().success());
    let status = guard.0.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.code(), Some(143), "{status:?} (signal {:?})", status.signal());
}

#[test]
fn an_existing_model_is_replaced_only_with_overwrite() {
    let f = Fixture::new();
    let good = b"a good model".to_vec();
    for flag in ["--save", "--checkpoint"] {
        let path = f.path(&format!("good{flag}.safetensors"));
        fs::write(&path, &good).unwrap();
        // A divergent run (finite loss, chance accuracy) must not replace it.
        let line = assert_error(
            &f.train(&["--optimizer", "sgd", "--lr", "1e6", flag, path.to_str().unwrap()]),
            &[flag, "already exists", "--overwrite"],
        );
        assert!(line.contains(path.to_str().unwrap()), "{line}");
        assert_eq!(fs::read(&path).unwrap(), good);
        let out = f.train(&["--overwrite", flag, path.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        checkpoint::load(&path).unwrap();
    }
}

#[test]
fn saving_a_model_that_never_beat_chance_warns() {
    // Blank images: nothing to learn, the model can only guess.
    let f = Fixture::new();
    f.write(TRAIN_IMAGES, &idx(8, &[60, 4, 4], &[0; 60 * 16]));
    let save = f.path("m.safetensors");
    let out = f.train(&["--save", save.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("warning: --save: the model never beat chance"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    checkpoint::load(&save).unwrap();
    // A model that learns does not warn.
    let f = Fixture::new();
    write_dataset(&f.data(), 600, 20);
    let out = f.train(&["--lr", "0.05", "--save", save.to_str().unwrap(), "--overwrite"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn bench_seconds_is_bounded() {
    for v in ["1e20", "601", "0", "0.0001", "inf", "-1"] {
        let out = Command::new(env!("CARGO_BIN_EXE_simdnet")).args(["bench", "--seconds", v]).output().unwrap();
        assert_flag_error(&out, "--seconds", v.trim_start_matches('-'));
    }
}

#[test]
fn a_stray_training_label_warns_about_the_class_count() {
    let f = Fixture::new();
    let mut l = labels(60, 3);
    l[17] = 255;
    f.write(TRAIN_LABELS, &idx(8, &[60], &l));
    let out = f.train(&[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr.lines().next().unwrap_or("");
    assert!(first.starts_with("warning: ") && first.contains(TRAIN_LABELS), "{stderr}");
    assert!(first.contains("label 3-254 of the 256 classes"), "{first}");
    // Contiguous labels: no warning.
    let f = Fixture::new();
    let out = f.train(&[]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn non_finite_weights_are_refused_naming_the_tensor() {
    let f = Fixture::new();
    let (mut model, names) = tiny_model();
    model.params[7] = f32::NAN;
    let path = f.path("nan.safetensors");
    checkpoint::save(&model, &names, &path).unwrap();
    for cmd in ["eval", "predict"] {
        let mut a = os(&[cmd, "--model"]);
        a.push(path.clone().into());
        a.extend([std::ffi::OsString::from("--data"), f.data().into()]);
        assert_error(
            &run_args(&a, 30),
            &["nan.safetensors", "tensor dense.kernel holds a non-finite value (NaN) at index 7"],
        );
    }
}
