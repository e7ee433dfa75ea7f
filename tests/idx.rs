//! IDX parsing and the four-file data set: valid files, and every way a file
//! can be wrong, each rejected with a message naming the file and the problem.

use simdnet::dataset::{Dataset, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS};
use simdnet::idx::{parse_header, IdxFile, MAGIC_IMAGES, MAGIC_LABELS};
use std::io::Write;
use std::path::Path;

fn idx_bytes(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v.extend(data);
    v
}

fn images(n: u32, rows: u32, cols: u32) -> Vec<u8> {
    let data: Vec<u8> = (0..n * rows * cols).map(|i| (i % 251) as u8).collect();
    idx_bytes(MAGIC_IMAGES, &[n, rows, cols], &data)
}

fn labels(values: &[u8]) -> Vec<u8> {
    idx_bytes(MAGIC_LABELS, &[values.len() as u32], values)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn write_gz(dir: &Path, name: &str, bytes: &[u8]) {
    let f = std::fs::File::create(dir.join(format!("{name}.gz"))).unwrap();
    let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap();
}

/// A valid four-file set: 20 train and 10 test 4x3 images, 3 classes.
fn valid_set(dir: &Path) {
    write(dir, TRAIN_IMAGES, &images(20, 4, 3));
    write(dir, TRAIN_LABELS, &labels(&(0..20).map(|i| (i % 3) as u8).collect::<Vec<_>>()));
    write(dir, TEST_IMAGES, &images(10, 4, 3));
    write(dir, TEST_LABELS, &labels(&(0..10).map(|i| (i % 3) as u8).collect::<Vec<_>>()));
}

fn open_err(dir: &Path) -> String {
    match Dataset::open(dir, &dir.join(".cache")) {
        Ok(_) => panic!("expected an error for {}", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn valid_header_parses() {
    let h = parse_header(&images(2, 3, 4), MAGIC_IMAGES).unwrap();
    assert_eq!(h.dims, vec![2, 3, 4]);
    assert_eq!(h.data_offset, 16);
    assert_eq!(h.data_len, 24);
    let h = parse_header(&labels(&[1, 2, 3]), MAGIC_LABELS).unwrap();
    assert_eq!((h.dims, h.data_offset, h.data_len), (vec![3], 8, 3));
}

#[test]
fn wrong_magic_is_rejected() {
    let e = parse_header(&labels(&[1, 2]), MAGIC_IMAGES).unwrap_err();
    assert!(e.contains("wrong magic 0x00000801"), "{e}");
    let mut bad = images(1, 2, 2);
    bad[0] = 0x1f; // e.g. a gzip file that was not named .gz
    assert!(parse_header(&bad, MAGIC_IMAGES).unwrap_err().contains("not an IDX file"));
}

#[test]
fn non_u8_type_is_rejected() {
    let mut f = images(1, 2, 2);
    f[2] = 0x0d; // float
    assert!(parse_header(&f, MAGIC_IMAGES).unwrap_err().contains("unsupported IDX data type 0x0d"));
}

#[test]
fn truncated_header_is_rejected() {
    let f = images(1, 2, 2);
    for len in [0, 3, 4, 9, 15] {
        let e = parse_header(&f[..len], MAGIC_IMAGES).unwrap_err();
        assert!(e.contains("truncated header"), "len {len}: {e}");
    }
}

#[test]
fn truncated_data_is_rejected() {
    let f = images(3, 2, 2);
    let e = parse_header(&f[..f.len() - 1], MAGIC_IMAGES).unwrap_err();
    assert!(e.contains("truncated data") && e.contains("need 12 bytes, the file has 11"), "{e}");
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut f = images(1, 2, 2);
    f.push(0);
    assert!(parse_header(&f, MAGIC_IMAGES).unwrap_err().contains("1 trailing bytes"));
}

#[test]
fn huge_and_overflowing_dimensions_are_rejected_without_allocating() {
    // 4e9 x 4e9 x 4e9 overflows usize; 60000 x 60000 x 60000 does not but the file is tiny.
    let e = parse_header(&idx_bytes(MAGIC_IMAGES, &[u32::MAX, u32::MAX, u32::MAX], &[]), MAGIC_IMAGES).unwrap_err();
    assert!(e.contains("overflow"), "{e}");
    let e = parse_header(&idx_bytes(MAGIC_IMAGES, &[60000, 60000, 60000], &[1, 2]), MAGIC_IMAGES).unwrap_err();
    assert!(e.contains("truncated data"), "{e}");
}

#[test]
fn from_bytes_names_the_file() {
    let e = IdxFile::from_bytes(vec![0, 0, 8], MAGIC_LABELS, Path::new("x/labels.idx")).err().unwrap();
    assert!(e.to_string().starts_with("x/labels.idx: truncated header"), "{e}");
}

#[test]
fn valid_raw_and_gz_sets_open_and_agree() {
    let raw = tempfile::tempdir().unwrap();
    valid_set(raw.path());
    let a = Dataset::open(raw.path(), &raw.path().join(".cache")).unwrap();
    assert_eq!((a.train.count, a.train.rows, a.train.cols, a.test.count, a.classes), (20, 4, 3, 10, 3));
    assert!(!raw.path().join(".cache").exists(), "raw files are mapped directly, never cached");

    let gz = tempfile::tempdir().unwrap();
    for name in [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS] {
        write_gz(gz.path(), name, &std::fs::read(raw.path().join(name)).unwrap());
    }
    let cache = gz.path().join("cache");
    let b = Dataset::open(gz.path(), &cache).unwrap();
    assert_eq!(b.train.pixels(), a.train.pixels());
    assert_eq!(b.test.labels(), a.test.labels());
    let cached: Vec<_> = std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(cached.len(), 4, "one decompressed file per .gz, no temporary left: {cached:?}");
    // A second open reuses the cache (same files, nothing new).
    let c = Dataset::open(gz.path(), &cache).unwrap();
    assert_eq!(c.train.image(19), a.train.image(19));
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 4);
}

#[test]
fn image_and_label_counts_must_agree() {
    let d = tempfile::tempdir().unwrap();
    valid_set(d.path());
    write(d.path(), TRAIN_LABELS, &labels(&[0, 1, 2]));
    let e = open_err(d.path());
    assert!(e.contains(TRAIN_LABELS) && e.contains("3 labels but") && e.contains("20 images"), "{e}");
}

#[test]
fn label_beyond_class_count_is_rejected() {
    let d = tempfile::tempdir().unwrap();
    valid_set(d.path());
    let mut test_labels = vec![0u8; 10];
    test_labels[7] = 3; // training labels go up to 2: 3 classes
    write(d.path(), TEST_LABELS, &labels(&test_labels));
    let e = open_err(d.path());
    assert!(e.contains(TEST_LABELS) && e.contains("label 3 at index 7 is out of range"), "{e}");
}

#[test]
fn missing_file_and_empty_set_are_rejected() {
    let d = tempfile::tempdir().unwrap();
    valid_set(d.path());
    std::fs::remove_file(d.path().join(TEST_IMAGES)).unwrap();
    let e = open_err(d.path());
    assert!(e.contains("missing t10k-images-idx3-ubyte"), "{e}");

    let d = tempfile::tempdir().unwrap();
    valid_set(d.path());
    write(d.path(), TRAIN_IMAGES, &images(0, 4, 3));
    write(d.path(), TRAIN_LABELS, &labels(&[]));
    assert!(open_err(d.path()).contains("empty"));
}

#[test]
fn corrupt_gzip_is_rejected_and_leaves_no_cache_file() {
    let d = tempfile::tempdir().unwrap();
    valid_set(d.path());
    std::fs::remove_file(d.path().join(TRAIN_IMAGES)).unwrap();
    write_gz(d.path(), TRAIN_IMAGES, &images(20, 4, 3));
    let gz = d.path().join(format!("{TRAIN_IMAGES}.gz"));
    let bytes = std::fs::read(&gz).unwrap();
    std::fs::write(&gz, &bytes[..bytes.len() / 2]).unwrap();
    let e = open_err(d.path());
    assert!(e.contains(&format!("{TRAIN_IMAGES}.gz")) && e.contains("corrupt gzip"), "{e}");
    let cache = d.path().join(".cache");
    let left = std::fs::read_dir(&cache).map(|r| r.count()).unwrap_or(0);
    assert_eq!(left, 0, "no partial cache file");
}

#[test]
fn concurrent_first_opens_share_the_cache_safely() {
    // Several threads decompressing the same .gz set into one empty cache at
    // once (as parallel tests do on a fresh clone) must all succeed.
    let raw = tempfile::tempdir().unwrap();
    valid_set(raw.path());
    let gz = tempfile::tempdir().unwrap();
    for name in [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS] {
        write_gz(gz.path(), name, &std::fs::read(raw.path().join(name)).unwrap());
    }
    let cache = gz.path().join("cache");
    std::thread::scope(|s| {
        let handles: Vec<_> =
            (0..6).map(|_| s.spawn(|| Dataset::open(gz.path(), &cache).map(|d| d.train.count))).collect();
        for h in handles {
            assert_eq!(h.join().unwrap().unwrap(), 20);
        }
    });
    let names: Vec<_> = std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 4, "one file per .gz and no temporary left: {names:?}");
}
