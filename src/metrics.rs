//! The per-epoch metrics file (`--metrics PATH.csv` or `PATH.jsonl`), as
//! Keras' CSVLogger: one record per epoch, written and flushed as the epoch
//! ends, so a killed run keeps every epoch it finished. It is a log, appended
//! to an open file, not an atomically replaced one.

use crate::error::{Error, Result};
use crate::events::EpochResult;
use crate::model::Model;
use crate::train::{Callback, Flow};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Columns, in order (`epoch` is 1-based, as the printed lines).
pub const COLUMNS: [&str; 8] =
    ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "samples_per_second", "wall_seconds"];

/// The file format, chosen by the extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    /// `.csv` or `.jsonl` (any case); anything else is refused.
    pub fn from_path(path: &Path) -> std::result::Result<Format, String> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("csv") => Ok(Format::Csv),
            Some("jsonl") => Ok(Format::Jsonl),
            _ => Err(format!("{}: the metrics file must end in .csv or .jsonl", path.display())),
        }
    }
}

/// The f32 learning rate as the f64 with the same shortest decimal spelling
/// (0.001, not 0.0010000000474974513).
fn lr_f64(lr: f32) -> f64 {
    lr.to_string().parse().unwrap_or(lr as f64)
}

/// One record as a line (with its newline).
pub fn record(format: Format, r: &EpochResult) -> String {
    match format {
        Format::Csv => {
            let opt = |v: Option<f64>| v.map_or_else(String::new, |v| v.to_string());
            format!(
                "{},{},{},{},{},{},{},{}\n",
                r.epoch,
                r.loss,
                r.accuracy,
                opt(r.val_loss),
                opt(r.val_accuracy),
                r.learning_rate,
                r.samples_per_second,
                r.wall_seconds
            )
        }
        Format::Jsonl => {
            // Non-finite numbers have no JSON spelling: they become null.
            let num =
                |v: f64| serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number);
            let mut obj = serde_json::Map::new();
            obj.insert(COLUMNS[0].into(), r.epoch.into());
            obj.insert(COLUMNS[1].into(), num(r.loss));
            obj.insert(COLUMNS[2].into(), num(r.accuracy));
            obj.insert(COLUMNS[3].into(), r.val_loss.map_or(serde_json::Value::Null, num));
            obj.insert(COLUMNS[4].into(), r.val_accuracy.map_or(serde_json::Value::Null, num));
            obj.insert(COLUMNS[5].into(), num(lr_f64(r.learning_rate)));
            obj.insert(COLUMNS[6].into(), num(r.samples_per_second));
            obj.insert(COLUMNS[7].into(), num(r.wall_seconds));
            format!("{}\n", serde_json::Value::Object(obj))
        }
    }
}

/// Writes one record per epoch to a file created (truncated) at the start.
pub struct MetricsWriter {
    path: PathBuf,
    format: Format,
    file: File,
}

impl MetricsWriter {
    /// Creates `path` (a CSV file gets its header line at once).
    pub fn create(path: &Path) -> Result<MetricsWriter> {
        let format = Format::from_path(path).map_err(|e| Error::new(format!("--metrics {e}")))?;
        let file = File::create(path).map_err(|e| Error::file(path, format!("cannot create: {e}")))?;
        let mut w = MetricsWriter { path: path.to_path_buf(), format, file };
        if format == Format::Csv {
            w.write(&format!("{}\n", COLUMNS.join(",")))?;
        }
        Ok(w)
    }

    /// Appends `line` in one write and flushes it to the operating system.
    fn write(&mut self, line: &str) -> Result<()> {
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|e| Error::file(&self.path, format!("cannot write: {e}")))
    }
}

impl Callback for MetricsWriter {
    fn on_epoch_end(&mut self, result: &EpochResult, _model: &Model, _log: &mut dyn FnMut(String)) -> Result<Flow> {
        self.write(&record(self.format, result))?;
        Ok(Flow::Continue)
    }
}
