//! The four-file IDX data set (train/test images and labels), validated as a
//! whole: counts agree, labels fit the class count, images are non-empty.

use crate::error::{Error, Result};
use crate::idx::{IdxFile, MAGIC_IMAGES, MAGIC_LABELS};
use std::path::{Path, PathBuf};

pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

/// Fashion-MNIST's class names, used when a data set has exactly 10 classes
/// and looks like Fashion-MNIST (the default data set).
pub const FASHION_CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/// Images `[count, rows, cols]` of u8 and their labels, memory-mapped.
pub struct Split {
    images: IdxFile,
    labels: IdxFile,
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
}

impl Split {
    /// Pairs an image file with a label file and checks that they agree.
    pub fn new(images: IdxFile, labels: IdxFile) -> Result<Split> {
        let d = &images.header.dims;
        if d.len() != 3 {
            return Err(Error::file(&images.path, format!("images need 3 dimensions, found {}", d.len())));
        }
        let (count, rows, cols) = (d[0], d[1], d[2]);
        if rows == 0 || cols == 0 {
            return Err(Error::file(&images.path, format!("empty images ({rows}x{cols} pixels)")));
        }
        let n_labels = labels.header.dims[0];
        if n_labels != count {
            return Err(Error::file(
                &labels.path,
                format!("{n_labels} labels but {} holds {count} images", images.path.display()),
            ));
        }
        Ok(Split { images, labels, count, rows, cols })
    }

    /// The images are about to be read in shuffled order: see
    /// [`IdxFile::prefer_huge_pages`].
    pub fn prefer_huge_pages(&mut self) {
        self.images.prefer_huge_pages();
    }

    /// Pixels per image.
    pub fn image_len(&self) -> usize {
        self.rows * self.cols
    }

    /// All pixels, `[count, rows * cols]` u8.
    pub fn pixels(&self) -> &[u8] {
        self.images.data()
    }

    /// Image `i`'s pixels.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels()[i * n..(i + 1) * n]
    }

    /// All labels, `[count]` u8.
    pub fn labels(&self) -> &[u8] {
        self.labels.data()
    }

    pub fn label_path(&self) -> &Path {
        &self.labels.path
    }
}

/// A training and a test split with a shared image size and class count.
pub struct Dataset {
    pub dir: PathBuf,
    pub train: Split,
    pub test: Split,
    /// Class count: one more than the largest training label (labels are
    /// bytes, so at most 256); see [`Dataset::class_gaps`].
    pub classes: usize,
}

/// `dir/name`, or `dir/name.gz` where only that exists.
pub fn find_file(dir: &Path, name: &str) -> Result<PathBuf> {
    let raw = dir.join(name);
    if raw.exists() {
        return Ok(raw);
    }
    let gz = dir.join(format!("{name}.gz"));
    if gz.exists() {
        return Ok(gz);
    }
    Err(Error::file(dir, format!("missing {name} (or {name}.gz)")))
}

impl Dataset {
    /// Opens the four standard files in `dir`; `.gz` files are decompressed
    /// once into `cache_dir`.
    pub fn open(dir: &Path, cache_dir: &Path) -> Result<Dataset> {
        if !dir.exists() {
            return Err(Error::file(dir, "does not exist (--data DIR or SIMDNET_DATA=DIR names a directory holding the four IDX files; without either, simdnet looks for data/fashion-mnist in the current directory, beside its executable and in its sources)"));
        }
        if !dir.is_dir() {
            return Err(Error::file(dir, "not a directory (--data needs a directory holding the four IDX files)"));
        }
        let open = |name: &str, magic| IdxFile::open(&find_file(dir, name)?, magic, cache_dir);
        let train = Split::new(open(TRAIN_IMAGES, MAGIC_IMAGES)?, open(TRAIN_LABELS, MAGIC_LABELS)?)?;
        let test = Split::new(open(TEST_IMAGES, MAGIC_IMAGES)?, open(TEST_LABELS, MAGIC_LABELS)?)?;
        Self::from_splits(dir.to_path_buf(), train, test)
    }

    /// Checks that two splits form a data set and derives the class count.
    pub fn from_splits(dir: PathBuf, train: Split, test: Split) -> Result<Dataset> {
        if train.count == 0 {
            return Err(Error::file(&train.images.path, "the training set is empty (0 images)"));
        }
        if test.count == 0 {
            return Err(Error::file(&test.images.path, "the test set is empty (0 images)"));
        }
        if (test.rows, test.cols) != (train.rows, train.cols) {
            return Err(Error::file(
                &test.images.path,
                format!(
                    "images are {}x{}, the training images are {}x{}",
                    test.rows, test.cols, train.rows, train.cols
                ),
            ));
        }
        let classes = *train.labels().iter().max().unwrap_or(&0) as usize + 1;
        if classes < 2 {
            return Err(Error::file(train.label_path(), "needs at least 2 classes, all labels are 0"));
        }
        check_labels(&test, classes)?;
        Ok(Dataset { dir, train, test, classes })
    }

    /// A warning when some class below [`Dataset::classes`] has no training
    /// label: the class count is one more than the largest label, so a
    /// stray 255 in a 10-class set makes a 256-class model.
    pub fn class_gaps(&self) -> Option<String> {
        let mut seen = [false; 256];
        for &l in self.train.labels() {
            seen[l as usize] = true;
        }
        let missing: Vec<usize> = (0..self.classes).filter(|&c| !seen[c]).collect();
        if missing.is_empty() {
            return None;
        }
        // Runs of missing classes, as "3-254" or "7".
        let mut runs: Vec<String> = Vec::new();
        let mut i = 0;
        while i < missing.len() {
            let mut j = i;
            while j + 1 < missing.len() && missing[j + 1] == missing[j] + 1 {
                j += 1;
            }
            runs.push(if i == j { missing[i].to_string() } else { format!("{}-{}", missing[i], missing[j]) });
            i = j + 1;
        }
        Some(format!(
            "{}: no training image has label {} of the {} classes (one more than the largest label, {}): \
             is a label wrong?",
            self.train.label_path().display(),
            runs.join(", "),
            self.classes,
            self.classes - 1
        ))
    }

    /// Class names: Fashion-MNIST's for a 10-class set in a directory whose
    /// path names it "fashion", else "0", "1", ….
    pub fn class_names(&self) -> Vec<String> {
        let fashion = self.dir.to_string_lossy().to_lowercase().contains("fashion");
        default_class_names(self.classes, fashion)
    }
}

pub fn default_class_names(classes: usize, fashion: bool) -> Vec<String> {
    if classes == 10 && fashion {
        FASHION_CLASSES.iter().map(|s| s.to_string()).collect()
    } else {
        (0..classes).map(|c| c.to_string()).collect()
    }
}

/// Every label of `split` must be below `classes`.
pub fn check_labels(split: &Split, classes: usize) -> Result<()> {
    if let Some((i, &l)) = split.labels().iter().enumerate().find(|(_, &l)| l as usize >= classes) {
        return Err(Error::file(
            split.label_path(),
            format!("label {l} at index {i} is out of range: the model has {classes} classes (0..{})", classes - 1),
        ));
    }
    Ok(())
}
