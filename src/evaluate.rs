//! `simdnet eval` (test loss, accuracy, per-class accuracy, confusion matrix of
//! a saved model) and `simdnet predict` (one test image drawn in the terminal
//! with the model's top-3 classes).

use crate::app;
use crate::batch::Batch;
use crate::checkpoint::{self, Loaded};
use crate::cli::{DataArgs, EvalArgs, PredictArgs};
use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::events::Confusion;
use crate::loss;
use crate::model::Workspace;
use crate::train::{self, Evaluation};
use std::io::Write;
use std::path::Path;

/// Loads the model at `path` and the data set, and checks that they fit each
/// other (image size, class count); errors name the model file.
pub fn open(path: &Path, data: &DataArgs) -> Result<(Loaded, Dataset)> {
    let loaded = checkpoint::load(path)?;
    let data = app::open_data(data)?;
    check_fits(path, &loaded, &data)?;
    Ok((loaded, data))
}

/// The model's input shape and class count must be the data set's.
pub fn check_fits(path: &Path, loaded: &Loaded, data: &Dataset) -> Result<()> {
    let spec = &loaded.model.spec;
    let (rows, cols) = (data.test.rows, data.test.cols);
    if spec.input_shape() != (rows, cols) {
        return Err(Error::file(
            path,
            format!(
                "the model takes {}x{} images, the data in {} has {rows}x{cols}",
                spec.input_shape().0,
                spec.input_shape().1,
                data.dir.display()
            ),
        ));
    }
    if spec.classes() != data.classes {
        return Err(Error::file(
            path,
            format!(
                "the model has {} classes, the data in {} has {}",
                spec.classes(),
                data.dir.display(),
                data.classes
            ),
        ));
    }
    Ok(())
}

/// Evaluates the model on the whole test split.
pub fn evaluate_test(loaded: &Loaded, data: &Dataset) -> Evaluation {
    let spec = &loaded.model.spec;
    let mut ws = Workspace::new(spec, spec.eval_batch(), 0);
    let mut batch = Batch::new(spec.eval_batch(), data.test.image_len());
    train::evaluate(&loaded.model, &data.test, None, &mut ws, &mut batch)
}

/// `simdnet eval`.
pub fn run_eval(args: &EvalArgs, out: &mut dyn Write) -> Result<()> {
    app::init_threads(None)?;
    let (loaded, data) = open(&args.model, &args.data)?;
    let ev = evaluate_test(&loaded, &data);
    let text = format!(
        "model: {} ({})\ntest set: {} ({} images)\n{}",
        args.model.display(),
        loaded.model.spec.describe(),
        data.dir.display(),
        data.test.count,
        report(&ev, &loaded.class_names)
    );
    write_out(out, &text)
}

/// Prints the report (a closed pipe stops it quietly, see `error::printed`).
fn write_out(out: &mut dyn Write, text: &str) -> Result<()> {
    crate::error::printed(out.write_all(text.as_bytes()).and_then(|()| out.flush()))
}

/// Loss and accuracy, then per-class accuracy and the confusion matrix.
pub fn report(ev: &Evaluation, class_names: &[String]) -> String {
    let mut s = format!("test_loss: {:.4} - test_accuracy: {:.4}\n\nper-class accuracy:\n", ev.loss, ev.accuracy);
    let c = &ev.confusion;
    let name_w = (0..c.classes).map(|t| label(class_names, t).chars().count()).max().unwrap_or(0);
    for (t, acc) in c.per_class_accuracy().into_iter().enumerate() {
        let total: u32 = (0..c.classes).map(|p| c.get(t, p)).sum();
        let acc = acc.map_or_else(|| "   -  ".to_string(), |a| format!("{a:.4}"));
        s += &format!("  {:<name_w$}  {acc}  ({}/{total})\n", label(class_names, t), c.get(t, t));
    }
    s += "\n";
    s += &confusion_table(c);
    s
}

/// The matrix with true classes as rows and predicted classes as columns.
pub fn confusion_table(c: &Confusion) -> String {
    let w = c.counts.iter().max().map_or(1, |m| m.to_string().len()).max(c.classes.to_string().len()).max(3);
    let mut s = "confusion matrix (rows: true class, columns: predicted class):\n".to_string();
    s += &format!("{:>6}", "");
    for p in 0..c.classes {
        s += &format!(" {p:>w$}");
    }
    s += "\n";
    for t in 0..c.classes {
        s += &format!("  {t:>2}: ");
        for p in 0..c.classes {
            s += &format!(" {:>w$}", c.get(t, p));
        }
        s += "\n";
    }
    s
}

/// `Ankle boot (9)`, or `9` where the class is named by its number.
pub fn label(names: &[String], class: usize) -> String {
    match names.get(class) {
        Some(n) if *n != class.to_string() => format!("{n} ({class})"),
        _ => class.to_string(),
    }
}

/// The `k` most probable classes, most probable first (ties: lower class first).
pub fn top_k(probs: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut order: Vec<(usize, f32)> = probs.iter().copied().enumerate().collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    order.truncate(k);
    order
}

/// Softmax probabilities of test image `index`.
pub fn predict_probs(loaded: &Loaded, data: &Dataset, index: usize) -> Result<Vec<f32>> {
    let test = &data.test;
    if index >= test.count {
        return Err(Error::new(format!(
            "--index {index} is out of range: the test set in {} has {} images (0..{})",
            data.dir.display(),
            test.count,
            test.count.saturating_sub(1)
        )));
    }
    let spec = &loaded.model.spec;
    let mut ws = Workspace::new(spec, 1, 0);
    let mut batch = Batch::new(1, test.image_len());
    batch.gather(test, &[index as u32]);
    let logits = loaded.model.forward(&mut ws, batch.inputs(test.image_len()), 1);
    let mut probs = vec![0.0; spec.classes()];
    loss::softmax(logits, &mut probs);
    Ok(probs)
}

/// `simdnet predict`; `color`: draw with ANSI greys (stdout is a terminal).
pub fn run_predict(args: &PredictArgs, out: &mut dyn Write, color: bool) -> Result<()> {
    app::init_threads(None)?;
    let (loaded, data) = open(&args.model, &args.data)?;
    let probs = predict_probs(&loaded, &data, args.index)?;
    let test = &data.test;
    let truth = test.labels()[args.index] as usize;
    let names = &loaded.class_names;
    let mut s = format!("test image {} of {} in {}\n", args.index, test.count, data.dir.display());
    s += &draw(test.image(args.index), test.rows, test.cols, color);
    s += &format!("true label: {}\n", label(names, truth));
    let top = top_k(&probs, 3);
    let name_w = top.iter().map(|&(c, _)| label(names, c).chars().count()).max().unwrap_or(0);
    for (rank, &(c, p)) in top.iter().enumerate() {
        let mark = if c == truth { "  <- true label" } else { "" };
        s += &format!("  {}. {:<name_w$}  {:>6.2}%{mark}\n", rank + 1, label(names, c), p * 100.0);
    }
    write_out(out, &s)
}

/// Density ramp for plain output, light to dark ink.
const RAMP: &[u8] = b" .:-=+*#%@";

/// Draws `rows × cols` grey pixels two rows per text line: with `color`, as
/// half blocks (▀ with the upper pixel's grey as foreground and the lower's as
/// background, █ where both agree) in the ANSI 256-colour grey ramp; without,
/// one density character per pixel pair.
pub fn draw(pixels: &[u8], rows: usize, cols: usize, color: bool) -> String {
    let mut s = String::new();
    for r in (0..rows).step_by(2) {
        for c in 0..cols {
            let top = pixels[r * cols + c];
            let bottom = if r + 1 < rows { pixels[(r + 1) * cols + c] } else { 0 };
            if color {
                let (t, b) = (grey(top), grey(bottom));
                if t == b {
                    s += &format!("\x1b[38;5;{t}m\x1b[48;5;{b}m█");
                } else {
                    s += &format!("\x1b[38;5;{t}m\x1b[48;5;{b}m▀");
                }
            } else {
                let mean = (top as usize + bottom as usize) / 2;
                s.push(RAMP[(mean * (RAMP.len() - 1) + 127) / 255] as char);
            }
        }
        if color {
            s += "\x1b[0m";
        }
        s += "\n";
    }
    s
}

/// A pixel (0 black … 255 white) as one of the 24 greys 232..=255.
fn grey(v: u8) -> u32 {
    232 + (v as u32 * 23 + 127) / 255
}
