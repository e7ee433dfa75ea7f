//! IDX header and data parser, and the data-set checks on top of it.
//!
//! Input: up to four IDX files separated by [`SEP`]: train images, train
//! labels, test images, test labels (missing ones reuse the train files). The
//! seeds are real Fashion-MNIST files cut to a few images.
#![no_main]

use libfuzzer_sys::fuzz_target;
use simdnet::dataset::{check_labels, Dataset, Split};
use simdnet::idx::{parse_header, IdxFile, MAGIC_IMAGES, MAGIC_LABELS};
use std::path::{Path, PathBuf};

/// Separates the files in one input (0xff never starts an IDX magic).
const SEP: &[u8] = b"\xffIDX";

fn split_files(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while parts.len() < 3 {
        match rest.windows(SEP.len()).position(|w| w == SEP) {
            Some(p) => {
                parts.push(&rest[..p]);
                rest = &rest[p + SEP.len()..];
            }
            None => break,
        }
    }
    parts.push(rest);
    parts
}

/// The pure parser: any header it accepts describes exactly the bytes given.
fn check_header(bytes: &[u8], magic: u32) {
    if let Ok(h) = parse_header(bytes, magic) {
        assert_eq!(h.data_offset, 4 + 4 * h.dims.len());
        assert_eq!(h.data_offset + h.data_len, bytes.len());
        assert_eq!(h.dims.iter().product::<usize>(), h.data_len);
        assert_eq!(h.dims.len(), (magic & 0xff) as usize);
    }
}

fn open_split(images: &[u8], labels: &[u8], name: &str) -> Option<Split> {
    let images = IdxFile::from_bytes(images.to_vec(), MAGIC_IMAGES, Path::new(name)).ok()?;
    let labels = IdxFile::from_bytes(labels.to_vec(), MAGIC_LABELS, Path::new(name)).ok()?;
    let split = Split::new(images, labels).ok()?;
    // Every image and label the split admits to is readable.
    assert_eq!(split.pixels().len(), split.count * split.image_len());
    assert_eq!(split.labels().len(), split.count);
    for i in 0..split.count {
        assert_eq!(split.image(i).len(), split.rows * split.cols);
    }
    Some(split)
}

fuzz_target!(|data: &[u8]| {
    let files = split_files(data);
    for f in &files {
        check_header(f, MAGIC_IMAGES);
        check_header(f, MAGIC_LABELS);
    }
    let pick = |i: usize| files.get(i).or(files.get(i % 2)).copied().unwrap_or(&[]);
    let (Some(train), Some(test)) = (open_split(pick(0), pick(1), "train"), open_split(pick(2), pick(3), "test"))
    else {
        return;
    };
    if let Ok(ds) = Dataset::from_splits(PathBuf::from("fuzz"), train, test) {
        assert!(ds.classes >= 2 && ds.classes <= 256);
        assert!(ds.train.count > 0 && ds.test.count > 0);
        assert!(ds.train.labels().iter().all(|&l| (l as usize) < ds.classes));
        assert!(check_labels(&ds.test, ds.classes).is_ok());
        assert_eq!(ds.class_names().len(), ds.classes);
    }
});
