//! `simdnet plot FILE`: the loss and accuracy curves of a `--metrics` file
//! (CSV with a header, or JSON lines) as a PNG, as the book plots Keras'
//! `history.history`. Columns are found by name (`epoch`, `loss`,
//! `accuracy`, `val_loss`, `val_accuracy`), so files with other or
//! reordered columns (Keras' CSVLogger's) read too.

use crate::cli::PlotArgs;
use crate::error::{Error, Result};
use crate::picture::{self, Raster, Series};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The largest metrics file read (64 MiB: millions of epochs).
const MAX_FILE_BYTES: u64 = 64 << 20;

/// The columns a plot uses, one value per epoch (`None`: empty or absent).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    pub epoch: Vec<f64>,
    pub loss: Vec<Option<f64>>,
    pub accuracy: Vec<Option<f64>>,
    pub val_loss: Vec<Option<f64>>,
    pub val_accuracy: Vec<Option<f64>>,
}

const NAMES: [&str; 4] = ["loss", "accuracy", "val_loss", "val_accuracy"];

impl History {
    fn column_mut(&mut self, i: usize) -> &mut Vec<Option<f64>> {
        match i {
            0 => &mut self.loss,
            1 => &mut self.accuracy,
            2 => &mut self.val_loss,
            _ => &mut self.val_accuracy,
        }
    }

    /// A metric's (epoch, value) points.
    pub fn points(&self, values: &[Option<f64>]) -> Vec<(f64, f64)> {
        self.epoch.iter().zip(values).filter_map(|(&e, v)| v.map(|v| (e, v))).collect()
    }
}

/// Parses a CSV metrics file's text: a header naming the columns, then one
/// row per epoch. Without an `epoch` column, rows count 1, 2, ….
pub fn parse_csv(text: &str) -> std::result::Result<History, String> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or("empty: no header line")?;
    let columns: Vec<&str> = header.split(',').map(str::trim).collect();
    let find = |name: &str| columns.iter().position(|c| *c == name);
    let epoch_col = find("epoch");
    let metric_cols: Vec<Option<usize>> = NAMES.iter().map(|n| find(n)).collect();
    if metric_cols.iter().all(Option::is_none) {
        return Err(format!("the header {header:?} names none of {}", NAMES.join(", ")));
    }
    let mut h = History::default();
    for (n, line) in lines {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != columns.len() {
            return Err(format!("line {}: {} fields, the header has {}", n + 1, fields.len(), columns.len()));
        }
        let number = |col: usize| -> std::result::Result<Option<f64>, String> {
            match fields[col] {
                "" => Ok(None),
                f => f
                    .parse::<f64>()
                    .map(Some)
                    .map_err(|_| format!("line {}: {} = {f:?} is not a number", n + 1, columns[col])),
            }
        };
        let epoch = match epoch_col {
            Some(c) => number(c)?.ok_or_else(|| format!("line {}: no epoch", n + 1))?,
            None => (h.epoch.len() + 1) as f64,
        };
        h.epoch.push(epoch);
        for (i, col) in metric_cols.iter().enumerate() {
            let v = match col {
                Some(c) => number(*c)?,
                None => None,
            };
            h.column_mut(i).push(v);
        }
    }
    if h.epoch.is_empty() {
        return Err("no rows after the header".into());
    }
    Ok(h)
}

/// Parses a JSON-lines metrics file's text (one object per epoch; `null`
/// or an absent key is no value).
pub fn parse_jsonl(text: &str) -> std::result::Result<History, String> {
    let mut h = History::default();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("line {}: not JSON: {e}", n + 1))?;
        let obj = value.as_object().ok_or_else(|| format!("line {}: not a JSON object", n + 1))?;
        let get = |k: &str| obj.get(k).and_then(serde_json::Value::as_f64);
        h.epoch.push(get("epoch").unwrap_or((h.epoch.len() + 1) as f64));
        for (i, name) in NAMES.iter().enumerate() {
            h.column_mut(i).push(get(name));
        }
    }
    if h.epoch.is_empty() {
        return Err("empty: no records".into());
    }
    if [&h.loss, &h.accuracy, &h.val_loss, &h.val_accuracy].iter().all(|c| c.iter().all(Option::is_none)) {
        return Err(format!("no record holds any of {}", NAMES.join(", ")));
    }
    Ok(h)
}

/// The two charts: loss (and val_loss), accuracy (and val_accuracy);
/// `2·CHART_W × CHART_H` pixels.
pub fn picture(h: &History) -> Raster {
    let chart = |title: &str, train: &[Option<f64>], val: &[Option<f64>], name: &str| {
        let mut series = Vec::new();
        for (label, values, colour) in
            [(name.to_string(), train, picture::TRAIN), (format!("val_{name}"), val, picture::VAL)]
        {
            let points = h.points(values);
            if !points.is_empty() {
                series.push(Series { name: label, colour, points });
            }
        }
        (title.to_string(), series)
    };
    picture::charts(&[
        chart("loss", &h.loss, &h.val_loss, "loss"),
        chart("accuracy", &h.accuracy, &h.val_accuracy, "accuracy"),
    ])
}

/// Reads and parses a metrics file (`.jsonl` as JSON lines, else CSV).
pub fn read(path: &Path) -> Result<History> {
    use std::io::Read;
    let (file, len) = crate::files::open_regular(path, "a metrics file").map_err(|p| Error::file(path, p))?;
    if len > MAX_FILE_BYTES {
        return Err(Error::file(path, format!("{len} bytes is too large for a metrics file")));
    }
    let mut text = String::new();
    file.take(len).read_to_string(&mut text).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => Error::file(path, "not a text file (invalid UTF-8)"),
        _ => Error::file(path, crate::files::io_problem(&e)),
    })?;
    let jsonl = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("jsonl"));
    if jsonl { parse_jsonl(&text) } else { parse_csv(&text) }.map_err(|p| Error::file(path, p))
}

/// Where the PNG goes: `--out`, else the metrics file's path with `.png`.
pub fn out_path(args: &PlotArgs) -> PathBuf {
    args.out.clone().unwrap_or_else(|| args.file.with_extension("png"))
}

/// `simdnet plot`.
pub fn run_plot(args: &PlotArgs, out: &mut dyn Write) -> Result<()> {
    let history = read(&args.file)?;
    let path = out_path(args);
    if path == args.file {
        return Err(Error::file(&path, "--out would replace the metrics file itself"));
    }
    picture(&history).write_png(&path)?;
    let epochs = history.epoch.len();
    let text = format!("wrote {} ({epochs} epoch{})\n", path.display(), if epochs == 1 { "" } else { "s" });
    crate::error::printed(out.write_all(text.as_bytes()).and_then(|()| out.flush()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_columns_are_found_by_name() {
        let text =
            "epoch,loss,accuracy,val_loss,val_accuracy,learning_rate\n1,0.5,0.8,0.45,0.83,0.001\n2,0.4,0.85,,,0.001\n";
        let h = parse_csv(text).unwrap();
        assert_eq!(h.epoch, vec![1.0, 2.0]);
        assert_eq!(h.loss, vec![Some(0.5), Some(0.4)]);
        assert_eq!(h.val_accuracy, vec![Some(0.83), None]);
        assert_eq!(h.points(&h.val_loss), vec![(1.0, 0.45)]);
        // Keras' CSVLogger order, no epoch column.
        let keras = parse_csv("accuracy,loss\n0.7,0.9\n0.8,0.6\n").unwrap();
        assert_eq!((keras.epoch, keras.loss), (vec![1.0, 2.0], vec![Some(0.9), Some(0.6)]));
    }

    #[test]
    fn malformed_csv_names_the_line() {
        assert_eq!(parse_csv("").unwrap_err(), "empty: no header line");
        assert!(parse_csv("a,b\n1,2\n").unwrap_err().contains("names none of loss"));
        assert_eq!(parse_csv("epoch,loss\n1,0.5,3\n").unwrap_err(), "line 2: 3 fields, the header has 2");
        assert_eq!(parse_csv("epoch,loss\n1,x\n").unwrap_err(), "line 2: loss = \"x\" is not a number");
        assert_eq!(parse_csv("epoch,loss\n").unwrap_err(), "no rows after the header");
    }

    #[test]
    fn jsonl_reads_like_csv() {
        let h = parse_jsonl("{\"epoch\":1,\"loss\":0.5,\"val_loss\":null}\n{\"epoch\":2,\"loss\":0.4}\n").unwrap();
        assert_eq!((h.epoch, h.loss, h.val_loss), (vec![1.0, 2.0], vec![Some(0.5), Some(0.4)], vec![None, None]));
        assert!(parse_jsonl("{\"x\":1}\n").unwrap_err().contains("no record holds"));
        assert!(parse_jsonl("[1]\n").unwrap_err().contains("line 1: not a JSON object"));
    }

    #[test]
    fn the_picture_has_two_charts() {
        let h = parse_csv("epoch,loss\n1,0.5\n").unwrap();
        let r = picture(&h);
        assert_eq!((r.width, r.height), (2 * picture::CHART_W, picture::CHART_H));
    }
}
