//! The Keras tutorial's extras: dropout, save/load, callbacks, metrics files,
//! eval/predict and compare, on tiny synthetic data sets.

use clap::Parser;
use safetensors::tensor::{Dtype, TensorView};
use simdnet::callbacks::{EarlyStopping, ModelCheckpoint};
use simdnet::checkpoint;
use simdnet::cli::{Cli, Command as CliCommand, CompareArgs};
use simdnet::compare::{self, CompareMonitor};
use simdnet::events::{EpochResult, Event};
use simdnet::gemm::Activation;
use simdnet::metrics::{MetricsWriter, COLUMNS};
use simdnet::model::{fill_dropout_mask, Model, ModelSpec, Workspace};
use simdnet::train::{Callback, Flow};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

// ---------------------------------------------------------------- helpers

/// Writes a learnable IDX data set: class c lights up row band c (plus noise).
fn write_dataset(dir: &Path, train: usize, test: usize, classes: usize, rows: usize, cols: usize, seed: u64) {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = fastrand::Rng::with_seed(seed);
    for (prefix, n) in [("train", train), ("t10k", test)] {
        let mut images = vec![0, 0, 8, 3];
        for d in [n, rows, cols] {
            images.extend((d as u32).to_be_bytes());
        }
        let mut labels = vec![0, 0, 8, 1];
        labels.extend((n as u32).to_be_bytes());
        for i in 0..n {
            // Every class appears (labels cycle), shuffled pixels within.
            let c = (i + rng.usize(0..classes)) % classes;
            labels.push(c as u8);
            let band_height = (rows / classes).max(1);
            for r in 0..rows {
                for _ in 0..cols {
                    let lit = r / band_height == c && rng.f32() < 0.6;
                    images.push(if lit { rng.u8(150..=255) } else { rng.u8(0..90) });
                }
            }
        }
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), images).unwrap();
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), labels).unwrap();
    }
}

fn simdnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_simdnet")).args(args).output().expect("runs the simdnet binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn spec(hidden: &[usize], activation: Activation, dropout: f32) -> ModelSpec {
    ModelSpec::mlp((4, 4), hidden, activation, 3, dropout).unwrap()
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|c| format!("class {c}")).collect()
}

fn epoch(epoch: usize, val_loss: Option<f64>) -> EpochResult {
    EpochResult {
        epoch,
        epochs: 10,
        steps: 5,
        loss: 0.5 / epoch as f64,
        accuracy: 0.5 + epoch as f64 / 100.0,
        val_loss,
        val_accuracy: val_loss.map(|v| 1.0 - v / 2.0),
        learning_rate: 0.001,
        train_seconds: 0.25,
        wall_seconds: 0.5,
        samples_per_second: 1234.5,
    }
}

/// Runs `cb` over `val_losses` (epochs 1, 2, …), first setting every
/// parameter to the epoch number; returns the logged lines and the epoch
/// that returned Stop.
fn drive(cb: &mut dyn Callback, model: &mut Model, val_losses: &[f64]) -> (Vec<String>, Option<usize>) {
    let mut lines = Vec::new();
    let mut stopped = None;
    for (i, &v) in val_losses.iter().enumerate() {
        model.params.fill((i + 1) as f32);
        let flow = cb.on_epoch_end(&epoch(i + 1, Some(v)), model, &mut |s| lines.push(s)).unwrap();
        if flow == Flow::Stop {
            stopped = Some(i + 1);
            break;
        }
    }
    cb.on_train_end(model, &mut |s| lines.push(s)).unwrap();
    (lines, stopped)
}

fn inputs(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n).map(|_| rng.f32()).collect()
}

// ---------------------------------------------------------------- dropout

#[test]
fn dropout_drops_the_rate_and_scales_survivors() {
    for rate in [0.1f32, 0.3, 0.5] {
        // An odd length: the last factor comes from a draw of its own.
        let n = 200_001;
        let mut mask = vec![f32::NAN; n];
        fill_dropout_mask(&mut mask, rate, &mut fastrand::Rng::with_seed(3));
        let dropped = mask.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
        assert!((dropped - rate as f64).abs() < 0.01, "rate {rate}: dropped {dropped}");
        let scale = 1.0 / (1.0 - rate);
        assert!(mask.iter().all(|&v| v == 0.0 || v == scale), "survivors are scaled by 1/(1-rate)");
        let mean = mask.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        assert!((mean - 1.0).abs() < 0.02, "rate {rate}: mean {mean} not preserved");
        // Neighbours (the two halves of one random number) are independent.
        let both = mask.chunks_exact(2).filter(|p| p[0] == 0.0 && p[1] == 0.0).count() as f64 / (n / 2) as f64;
        assert!((both - (rate * rate) as f64).abs() < 0.01, "rate {rate}: pairs dropped together {both}");
    }
    // Seeded: the same seed draws the same mask, another seed another one.
    let run = |seed| {
        let mut mask = vec![0.0; 1001];
        fill_dropout_mask(&mut mask, 0.4, &mut fastrand::Rng::with_seed(seed));
        mask
    };
    assert_eq!(run(9), run(9));
    assert_ne!(run(9), run(10));
}

#[test]
fn dropout_is_off_at_inference() {
    let with = Model::new(spec(&[8, 6], Activation::Relu, 0.5), 1);
    let without = Model::from_params(spec(&[8, 6], Activation::Relu, 0.0), with.params.clone()).unwrap();
    let x = inputs(5 * 16, 2);
    let mut ws_a = Workspace::new(&with.spec, 5, 3);
    let mut ws_b = Workspace::new(&without.spec, 5, 3);
    let a = with.forward(&mut ws_a, &x, 5).to_vec();
    assert_eq!(a, with.forward(&mut ws_a, &x, 5), "inference is deterministic");
    assert_eq!(a, without.forward(&mut ws_b, &x, 5), "inference ignores dropout");
    // Training does drop: some hidden units are zeroed by the mask.
    with.forward_backward(&mut ws_a, &x, &[0, 1, 2, 0, 1]);
    assert!(ws_a.masks[2][..5 * 8].contains(&0.0));
    assert!(ws_a.masks[2][..5 * 8].contains(&2.0));
}

#[test]
fn dropout_gradient_matches_finite_differences_through_a_fixed_mask() {
    // Sigmoid keeps the loss smooth; resetting the dropout stream before each
    // pass fixes the mask.
    let mut model = Model::new(spec(&[8, 6], Activation::Sigmoid, 0.4), 11);
    for (i, p) in model.params.iter_mut().enumerate() {
        *p += ((i * 7919) % 13) as f32 * 0.02 - 0.1; // nonzero biases too
    }
    let batch = 5;
    let x = inputs(batch * 16, 4);
    let labels = [0u32, 2, 1, 1, 0];
    let mut ws = Workspace::new(&model.spec, batch, 0);
    let loss = |m: &Model, ws: &mut Workspace| {
        ws.rng.seed(77);
        m.forward_backward(ws, &x, &labels).0 / batch as f64
    };
    loss(&model, &mut ws);
    let analytic = ws.grads.clone();
    assert!(ws.masks[2][..batch * 8].contains(&0.0), "the mask drops something");
    let eps = 1e-2f32;
    let mut worst = 0.0f64;
    for (i, &a) in analytic.iter().enumerate() {
        let p = model.params[i];
        model.params[i] = p + eps;
        let plus = loss(&model, &mut ws);
        model.params[i] = p - eps;
        let minus = loss(&model, &mut ws);
        model.params[i] = p;
        let numeric = (plus - minus) / (2.0 * eps as f64);
        let err = (numeric - a as f64).abs() / (1e-3 + numeric.abs().max(a.abs() as f64));
        worst = worst.max(err);
        assert!(err < 2e-2, "param {i}: analytic {a} vs numeric {numeric}");
    }
    assert!(worst.is_finite());
}

// ---------------------------------------------------------------- callbacks

#[test]
fn early_stopping_stops_after_patience_and_restores_the_best_epoch() {
    let mut model = Model::new(spec(&[5], Activation::Relu, 0.0), 1);
    let mut es = EarlyStopping::new(Some(2), 0.0, true);
    let (lines, stopped) = drive(&mut es, &mut model, &[0.5, 0.4, 0.45, 0.41, 0.3]);
    assert_eq!(stopped, Some(4));
    assert_eq!(es.stopped_epoch(), Some(4));
    assert_eq!(es.best(), (0.4, 2));
    assert_eq!(lines, ["Epoch 4: early stopping", "Restoring model weights from the end of the best epoch: 2."]);
    assert!(model.params.iter().all(|&p| p == 2.0), "epoch 2's weights are back");
}

#[test]
fn early_stopping_min_delta_and_patience_reset() {
    let mut model = Model::new(spec(&[5], Activation::Relu, 0.0), 1);
    // 0.95 and 0.93 improve by less than 0.1: not improvements.
    let mut es = EarlyStopping::new(Some(2), 0.1, false);
    let (lines, stopped) = drive(&mut es, &mut model, &[1.0, 0.95, 0.93, 0.5]);
    assert_eq!(stopped, Some(3));
    assert_eq!(lines, ["Epoch 3: early stopping"]);
    assert!(model.params.iter().all(|&p| p == 3.0), "no restore without --restore-best");
    // An improvement resets the wait: 1 worse, better, 1 worse, better → never 2 in a row.
    let mut es = EarlyStopping::new(Some(2), 0.0, false);
    let (lines, stopped) = drive(&mut es, &mut model, &[1.0, 1.1, 0.9, 0.95, 0.8, 0.85]);
    assert_eq!((lines.len(), stopped), (0, None));
    // A NaN val_loss is no improvement.
    let mut es = EarlyStopping::new(Some(1), 0.0, false);
    assert_eq!(drive(&mut es, &mut model, &[1.0, f64::NAN]).1, Some(2));
}

#[test]
fn restore_best_also_without_an_early_stop() {
    let mut model = Model::new(spec(&[5], Activation::Relu, 0.0), 1);
    let mut es = EarlyStopping::new(Some(5), 0.0, true);
    let (lines, stopped) = drive(&mut es, &mut model, &[0.5, 0.3, 0.4, 0.35]);
    assert_eq!(stopped, None);
    assert_eq!(lines, ["Restoring model weights from the end of the best epoch: 2."]);
    assert!(model.params.iter().all(|&p| p == 2.0));
    // --restore-best alone: never stops, still restores.
    let mut es = EarlyStopping::new(None, 0.0, true);
    let (lines, stopped) = drive(&mut es, &mut model, &[0.5, 0.6, 0.7, 0.8, 0.9, 1.0]);
    assert_eq!(stopped, None);
    assert_eq!(lines, ["Restoring model weights from the end of the best epoch: 1."]);
    assert!(model.params.iter().all(|&p| p == 1.0));
}

#[test]
fn model_checkpoint_saves_the_best_model_with_keras_messages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("best.safetensors");
    let mut model = Model::new(spec(&[5], Activation::Relu, 0.0), 1);
    let mut cb = ModelCheckpoint::new(path.clone(), names(3));
    let (lines, _) = drive(&mut cb, &mut model, &[0.5, 0.6, 0.37123, 0.37123]);
    let p = path.display();
    assert_eq!(
        lines,
        [
            format!("Epoch 1: val_loss improved from inf to 0.5000, saving model to {p}"),
            "Epoch 2: val_loss did not improve from 0.5000".to_string(),
            format!("Epoch 3: val_loss improved from 0.5000 to 0.3712, saving model to {p}"),
            "Epoch 4: val_loss did not improve from 0.3712".to_string(),
        ]
    );
    let loaded = checkpoint::load(&path).unwrap();
    assert!(loaded.model.params.iter().all(|&v| v == 3.0), "the file holds epoch 3's weights");
    assert_eq!(loaded.class_names, names(3));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary files left behind");
}

// ---------------------------------------------------------------- metrics files

#[test]
fn metrics_csv_is_flushed_after_each_epoch_and_parses() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.csv");
    let mut w = MetricsWriter::create(&path).unwrap();
    let model = Model::new(spec(&[5], Activation::Relu, 0.0), 1);
    let vals = [Some(0.75), None, Some(0.5)];
    for (i, v) in vals.iter().enumerate() {
        w.on_epoch_end(&epoch(i + 1, *v), &model, &mut |_| {}).unwrap();
        // Read while the writer is still open: the epoch is already on disk.
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), i + 2, "header + one line per epoch");
        assert_eq!(lines[0], COLUMNS.join(","));
        let f: Vec<&str> = lines[i + 1].split(',').collect();
        assert_eq!(f.len(), COLUMNS.len());
        assert_eq!(f[0].parse::<usize>().unwrap(), i + 1);
        assert_eq!(f[1].parse::<f64>().unwrap(), 0.5 / (i + 1) as f64);
        assert_eq!(f[3], v.map_or(String::new(), |v| v.to_string()));
        assert_eq!(f[5], "0.001");
        assert_eq!(f[6].parse::<f64>().unwrap(), 1234.5);
        assert_eq!(f[7].parse::<f64>().unwrap(), 0.5);
    }
}

#[test]
fn metrics_jsonl_is_flushed_after_each_epoch_and_parses() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.JSONL");
    let mut w = MetricsWriter::create(&path).unwrap();
    let model = Model::new(spec(&[5], Activation::Relu, 0.0), 1);
    for i in 0..3 {
        let v = if i == 1 { None } else { Some(0.25 * (i + 1) as f64) };
        w.on_epoch_end(&epoch(i + 1, v), &model, &mut |_| {}).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), i + 1);
        let rec: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        for c in COLUMNS {
            assert!(rec.get(c).is_some(), "record lacks {c}");
        }
        assert_eq!(rec["epoch"], i + 1);
        assert_eq!(rec["val_loss"].as_f64(), v);
        assert_eq!(rec["learning_rate"].as_f64(), Some(0.001));
        assert_eq!(rec["samples_per_second"].as_f64(), Some(1234.5));
    }
}

#[test]
fn metrics_file_needs_csv_or_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let err = MetricsWriter::create(&dir.path().join("m.txt")).err().expect("refused").to_string();
    assert!(err.contains("--metrics") && err.contains(".csv or .jsonl"), "{err}");
    let cli = Cli::try_parse_from(["simdnet", "train", "--metrics", "out.json"]);
    assert!(cli.unwrap_err().to_string().contains("--metrics"));
}

// ---------------------------------------------------------------- save / load

fn raw_tensors(model: &Model) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    model
        .spec
        .param_layers()
        .flat_map(|l| {
            [
                (format!("{}.kernel", l.name), l.kernel_shape().unwrap(), l.kernel.clone()),
                (format!("{}.bias", l.name), vec![l.bias.len()], l.bias.clone()),
            ]
        })
        .map(|(n, s, r)| (n, s, model.params[r].iter().flat_map(|v| v.to_le_bytes()).collect()))
        .collect()
}

/// A safetensors file from (name, dtype, shape, bytes) and metadata.
fn craft(tensors: &[(String, Dtype, Vec<usize>, Vec<u8>)], meta: &HashMap<String, String>) -> Vec<u8> {
    let views: Vec<(String, TensorView)> =
        tensors.iter().map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    safetensors::serialize(views, Some(meta.clone())).unwrap()
}

fn metadata_of(bytes: &[u8]) -> HashMap<String, String> {
    let (_, m) = safetensors::SafeTensors::read_metadata(bytes).unwrap();
    m.metadata().clone().unwrap()
}

#[test]
fn save_load_roundtrip_gives_identical_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let model = Model::new(spec(&[12, 7], Activation::Sigmoid, 0.25), 5);
    checkpoint::save(&model, &names(3), &path).unwrap();
    let loaded = checkpoint::load(&path).unwrap();
    assert_eq!(loaded.model.spec, model.spec);
    assert_eq!(loaded.class_names, names(3));
    assert_eq!(loaded.model.params, model.params);
    let x = inputs(9 * 16, 8);
    let mut ws = Workspace::new(&model.spec, 9, 0);
    let a = model.forward(&mut ws, &x, 9).to_vec();
    assert_eq!(a, loaded.model.forward(&mut ws, &x, 9));

    // Keras' tensor names and layouts, the architecture in the metadata.
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut found: Vec<(String, Vec<usize>)> = st.tensors().into_iter().map(|(n, t)| (n, t.shape().to_vec())).collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("dense.bias".to_string(), vec![12]),
            ("dense.kernel".to_string(), vec![16, 12]),
            ("dense_1.bias".to_string(), vec![7]),
            ("dense_1.kernel".to_string(), vec![12, 7]),
            ("dense_2.bias".to_string(), vec![3]),
            ("dense_2.kernel".to_string(), vec![7, 3]),
        ]
    );
    let k = st.tensor("dense_1.kernel").unwrap();
    assert_eq!(k.dtype(), Dtype::F32);
    let first = f32::from_le_bytes(k.data()[..4].try_into().unwrap());
    assert_eq!(first, model.params[model.spec.param_layers().nth(1).unwrap().kernel.start], "row-major [in, out]");
    let meta = metadata_of(&bytes);
    assert_eq!(meta["input_shape"], "4,4");
    assert_eq!(meta["format"], "simdnet-v2");
    assert_eq!(meta["arch"], "flatten,dense(12,sigmoid),dropout(0.25),dense(7,sigmoid),dropout(0.25),dense(3)");
    assert_eq!(meta["classes"], "3");
    assert_eq!(meta["class_names"], r#"["class 0","class 1","class 2"]"#);
}

#[test]
fn load_refuses_truncated_files() {
    let model = Model::new(spec(&[6], Activation::Relu, 0.0), 5);
    let bytes = checkpoint::to_bytes(&model, &names(3)).unwrap();
    for len in (0..bytes.len()).step_by(7).chain([bytes.len() - 1]) {
        assert!(checkpoint::from_bytes(&bytes[..len]).is_err(), "truncated to {len} bytes accepted");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.safetensors");
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    let err = checkpoint::load(&path).unwrap_err().to_string();
    assert!(err.starts_with(&format!("{}: truncated", path.display())), "names the file and problem: {err}");
    for len in [3, 8, 40] {
        let err = checkpoint::from_bytes(&bytes[..len]).unwrap_err();
        assert!(err.contains("truncated"), "{len} bytes: {err}");
    }
    let mut padded = bytes.clone();
    padded.extend([0; 3]);
    assert!(checkpoint::from_bytes(&padded).unwrap_err().contains("padded"));
}

#[test]
fn load_refuses_wrong_shapes_dtypes_and_lying_metadata() {
    let model = Model::new(spec(&[6], Activation::Relu, 0.0), 5);
    let good = checkpoint::to_bytes(&model, &names(3)).unwrap();
    let meta = metadata_of(&good);
    let tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> =
        raw_tensors(&model).into_iter().map(|(n, s, b)| (n, Dtype::F32, s, b)).collect();
    assert!(checkpoint::from_bytes(&craft(&tensors, &meta)).is_ok(), "the crafted baseline loads");
    let expect_err = |bytes: Vec<u8>, needle: &str| {
        let err = checkpoint::from_bytes(&bytes).expect_err("must be refused");
        assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    };

    // Wrong shape (same byte count): dense.kernel [6, 16] instead of [16, 6].
    let mut t = tensors.clone();
    t[0].2 = vec![6, 16];
    expect_err(craft(&t, &meta), "shape");
    // Wrong dtype: the bias as f64.
    let mut t = tensors.clone();
    t[1] = (t[1].0.clone(), Dtype::F64, vec![6], vec![0; 48]);
    expect_err(craft(&t, &meta), "dtype");
    // A missing and an extra tensor.
    expect_err(craft(&tensors[..3], &meta), "tensors");
    let mut t = tensors.clone();
    t[3].0 = "dense_9.bias".into();
    expect_err(craft(&t, &meta), "missing tensor dense_1.bias");

    // Lying metadata.
    let lie = |k: &str, v: &str| {
        let mut m = meta.clone();
        m.insert(k.into(), v.into());
        craft(&tensors, &m)
    };
    expect_err(lie("arch", "flatten,dense(7,relu),dense(3)"), "shape");
    expect_err(lie("arch", "flatten,dense(6,relu),dense(6,relu),dense(3)"), "tensors");
    expect_err(lie("arch", "flatten,dense(100000,relu),dense(3)"), "the file holds fewer");
    expect_err(lie("arch", "flatten,dense(999999,relu),dense(999999),dense(3)"), "parameters");
    expect_err(lie("arch", "flatten,dense(six),dense(3)"), "units \"six\"");
    expect_err(lie("arch", "flatten,dense(6,relu),dense(3,relu)"), "the last layer");
    expect_err(lie("input_shape", "4,5"), "shape");
    expect_err(lie("input_shape", "0,16"), "empty");
    expect_err(lie("classes", "4"), "metadata classes = 4, the last layer has 3 units");
    expect_err(lie("class_names", r#"["a","b"]"#), "class names");
    expect_err(lie("class_names", "not json"), "class_names");
    expect_err(lie("arch", "flatten,dense(6,tanh),dense(3)"), "\"tanh\" is not relu");
    expect_err(lie("arch", "flatten,dense(6,relu),dropout(1.5),dense(3)"), "rate \"1.5\"");
    expect_err(lie("arch", "flatten,dense(6,relu),dropout(NaN),dense(3)"), "rate \"NaN\"");
    expect_err(lie("format", "keras"), "format");
    let mut m = meta.clone();
    m.remove("classes");
    expect_err(craft(&tensors, &m), "classes");
    expect_err(craft(&tensors, &HashMap::new()), "metadata");
}

// ---------------------------------------------------------------- compare

fn compare_args(flags: &[&str]) -> CompareArgs {
    let argv = ["simdnet", "compare"].iter().chain(flags).copied();
    match Cli::try_parse_from(argv).unwrap().command {
        Some(CliCommand::Compare(a)) => a,
        other => panic!("not a compare command: {other:?}"),
    }
}

#[test]
fn compare_expands_the_cartesian_product() {
    let configs = compare::configurations(&compare_args(&[
        "--optimizer",
        "sgd,adagrad,rmsprop,adam",
        "--activation",
        "relu,sigmoid",
        "--dropout",
        "0,0.3",
    ]))
    .unwrap();
    assert_eq!(configs.len(), 16);
    let names: Vec<&str> = configs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[0], "activation=relu dropout=0 optimizer=sgd");
    assert_eq!(names[15], "activation=sigmoid dropout=0.3 optimizer=adam");
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 16, "names are distinct");
    assert!(configs.iter().all(|(_, a)| a.fit.seed == 42 && a.fit.validation_split == 0.2));

    // Momentum and Nesterov apply to sgd only; learning rates multiply every optimizer.
    let configs = compare::configurations(&compare_args(&[
        "--optimizer",
        "sgd,adam",
        "--momentum",
        "0,0.9",
        "--nesterov",
        "--lr",
        "0.01,0.1",
        "--seed",
        "7",
    ]))
    .unwrap();
    let names: Vec<&str> = configs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "optimizer=sgd+nesterov lr=0.01 momentum=0",
            "optimizer=sgd+nesterov lr=0.01 momentum=0.9",
            "optimizer=sgd+nesterov lr=0.1 momentum=0",
            "optimizer=sgd+nesterov lr=0.1 momentum=0.9",
            "optimizer=adam lr=0.01",
            "optimizer=adam lr=0.1",
        ]
    );
    let sgd = &configs[1].1.optim;
    assert_eq!((sgd.momentum, sgd.nesterov, sgd.lr), (Some(0.9), true, Some(0.01)));
    assert_eq!(configs[5].1.optim.momentum, None);
    assert!(configs.iter().all(|(_, a)| a.fit.seed == 7));

    // One configuration: still named.
    let configs = compare::configurations(&compare_args(&[])).unwrap();
    assert_eq!(configs.len(), 1);
    assert_eq!(configs[0].0, "optimizer=adam");
    let configs = compare::configurations(&compare_args(&["--hidden", "100/300,100"])).unwrap();
    assert_eq!(configs[1].1.model.hidden.as_ref().unwrap().0, [300, 100]);
}

#[test]
fn compare_refuses_bad_values_naming_the_flag() {
    for (flags, needle) in [
        (&["--dropout", "0,1.5"][..], "--dropout"),
        (&["--dropout", "0,,0.3"], "--dropout"),
        (&["--optimizer", "sgd,nadam"], "--optimizer"),
        (&["--activation", "relu,tanh"], "--activation"),
        (&["--lr", "0.1,-1"], "--lr"),
        (&["--lr", "0.1,0.1"], "twice"),
        (&["--hidden", "100/0"], "--hidden"),
        (&["--optimizer", "sgd", "--momentum", "1"], "--momentum"),
        (&["--optimizer", "adam", "--momentum", "0.9"], "--momentum"),
        (&["--optimizer", "adam,rmsprop", "--nesterov"], "--nesterov"),
    ] {
        let err = compare::configurations(&compare_args(flags)).expect_err("refused").to_string();
        assert!(err.contains(needle), "{flags:?}: {err}");
    }
}

#[derive(Default)]
struct Collect {
    begun: Vec<(usize, String)>,
    epochs: Vec<(usize, usize)>,
}

impl CompareMonitor for Collect {
    fn begin(&mut self, index: usize, name: &str, _header: &str) {
        self.begun.push((index, name.to_string()));
    }
    fn event(&mut self, index: usize, event: Event) {
        if let Event::Epoch(r) = event {
            self.epochs.push((index, r.epoch));
        }
    }
}

#[test]
fn compare_runs_one_row_per_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_dataset(&data, 300, 60, 4, 8, 8, 1);
    let d = data.to_str().unwrap();
    let flags = ["--data", d, "--optimizer", "sgd,adam", "--dropout", "0,0.3", "--hidden", "16", "--epochs", "2"];
    let configs = compare::configurations(&compare_args(&flags)).unwrap();
    let mut monitor = Collect::default();
    let results = compare::run(&configs, &mut monitor).unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(monitor.begun.iter().map(|b| b.0).collect::<Vec<_>>(), [0, 1, 2, 3]);
    assert_eq!(monitor.epochs.len(), 8, "2 epochs for each of 4 configurations");
    for (r, (name, _)) in results.iter().zip(&configs) {
        assert_eq!(&r.name, name);
        assert_eq!(r.history.epochs.len(), 2);
        assert!(r.val_accuracy.is_some() && r.test_accuracy.is_some() && r.epoch_seconds > 0.0);
    }
    let table = compare::table(&results);
    assert_eq!(table.lines().count(), 5);
    assert!(table.lines().next().unwrap().starts_with("configuration"));

    // The binary: prefixed per-epoch lines, then the table.
    let o = simdnet(&[&["compare"][..], &flags].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for (name, _) in &configs {
        let prefix = format!("[{name}] Epoch 2/2 - ");
        assert!(out.lines().any(|l| l.starts_with(&prefix)), "no {prefix:?} in\n{out}");
        assert_eq!(out.lines().filter(|l| l.starts_with(&format!("{name} "))).count(), 1, "one row for {name}");
    }
}

// ---------------------------------------------------------------- end to end through the binary

/// `prefix: 0.1234` in `text`.
fn value_after(text: &str, prefix: &str) -> f64 {
    let start = text.find(prefix).unwrap_or_else(|| panic!("no {prefix:?} in\n{text}")) + prefix.len();
    text[start..].split(|c: char| c != '.' && !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

#[test]
fn train_save_eval_predict_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_dataset(&data, 400, 80, 4, 8, 8, 2);
    let d = data.to_str().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let (model, best, metrics) = (p("m.safetensors"), p("best.safetensors"), p("m.csv"));
    let o = simdnet(&[
        "train",
        "--data",
        d,
        "--no-tui",
        "--epochs",
        "3",
        "--hidden",
        "16",
        "--dropout",
        "0.2",
        "--save",
        &model,
        "--checkpoint",
        &best,
        "--metrics",
        &metrics,
        "--early-stopping",
        "2",
        "--restore-best",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("Epoch 1: val_loss improved from inf to "), "{out}");
    assert!(out.contains(&format!("saving model to {best}")), "{out}");
    assert!(out.contains("Restoring model weights from the end of the best epoch: "), "{out}");
    let test_acc = value_after(&out, "test_accuracy: ");
    assert_eq!(std::fs::read_to_string(&metrics).unwrap().lines().count(), 4);

    // eval reproduces the test accuracy of the saved (restored) model.
    let o = simdnet(&["eval", "--model", &model, "--data", d]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ev = stdout(&o);
    assert_eq!(value_after(&ev, "test_accuracy: "), test_acc, "{ev}");
    assert!(ev.contains("per-class accuracy") && ev.contains("confusion matrix"), "{ev}");
    assert_eq!(ev.lines().filter(|l| l.ends_with(')') && l.contains("  (")).count(), 4, "per-class lines:\n{ev}");
    let rows = ev.lines().filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()) && l.contains(':'));
    assert_eq!(rows.count(), 4, "confusion rows:\n{ev}");
    assert!(checkpoint::load(Path::new(&best)).unwrap().model.spec.as_mlp().unwrap().2 == 0.2);

    // predict: the image (not a terminal: density characters), truth, top 3.
    let o = simdnet(&["predict", "--model", &model, "--data", d, "--index", "79"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let pr = stdout(&o);
    assert!(!pr.contains('\x1b'), "no colours into a pipe");
    assert_eq!(pr.lines().filter(|l| l.chars().count() == 8).count(), 4, "8x8 pixels in 4 lines:\n{pr}");
    assert!(pr.contains("true label: "));
    let ranks: Vec<f64> = ["  1. ", "  2. ", "  3. "]
        .iter()
        .map(|r| {
            let line = pr.lines().find(|l| l.starts_with(r)).unwrap_or_else(|| panic!("no rank {r} in\n{pr}"));
            line.split_whitespace().find(|w| w.ends_with('%')).unwrap().trim_end_matches('%').parse().unwrap()
        })
        .collect();
    assert!(ranks[0] >= ranks[1] && ranks[1] >= ranks[2] && ranks[0] <= 100.0, "{ranks:?}");

    // Errors: index out of range, model and data that don't fit, a missing file.
    let o = simdnet(&["predict", "--model", &model, "--data", d, "--index", "80"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--index 80 is out of range") && stderr(&o).contains("80 images"), "{}", stderr(&o));
    let other = dir.path().join("other");
    write_dataset(&other, 50, 10, 3, 8, 8, 3);
    let o = simdnet(&["eval", "--model", &model, "--data", other.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains(&format!("{model}: the model has 4 classes")), "{}", stderr(&o));
    let wide = dir.path().join("wide");
    write_dataset(&wide, 50, 10, 4, 8, 9, 3);
    let o = simdnet(&["predict", "--model", &model, "--data", wide.to_str().unwrap()]);
    assert!(stderr(&o).contains(&format!("{model}: the model takes 8x8 images")), "{}", stderr(&o));
    let o = simdnet(&["eval", "--model", &p("missing.safetensors"), "--data", d]);
    assert!(!o.status.success() && stderr(&o).contains("missing.safetensors"));
}

#[test]
fn predict_draws_grey_half_blocks_for_a_terminal() {
    let pixels: Vec<u8> = (0..12).map(|i| (i * 23) as u8).collect();
    let art = simdnet::evaluate::draw(&pixels, 3, 4, true);
    assert_eq!(art.lines().count(), 2, "two pixel rows per line, the odd last row padded");
    assert_eq!(art.matches('▀').count() + art.matches('█').count(), 8);
    assert!(art.contains("\x1b[38;5;232m\x1b[48;5;240m▀"), "black over grey: {art:?}");
    let plain = simdnet::evaluate::draw(&[0, 255, 255, 0], 2, 2, false);
    assert_eq!(plain, "==\n");
    assert_eq!(simdnet::evaluate::draw(&[255, 255], 2, 1, false), "@\n");
}

#[test]
fn early_stopping_through_fit_stops_and_restores() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_dataset(&data, 300, 20, 4, 8, 8, 4);
    let o = simdnet(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--no-tui",
        "--epochs",
        "30",
        "--hidden",
        "16",
        "--early-stopping",
        "1",
        "--min-delta",
        "10",
        "--restore-best",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    // With min_delta 10 no epoch after the first improves: stop at epoch 2.
    assert!(out.contains("Epoch 2: early stopping"), "{out}");
    assert!(out.contains("Restoring model weights from the end of the best epoch: 1."), "{out}");
    assert!(!out.contains("Epoch 3/30"), "{out}");
}

#[test]
fn metrics_survive_a_killed_run() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_dataset(&data, 300, 20, 4, 8, 8, 5);
    let metrics = dir.path().join("m.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_simdnet"))
        .args(["train", "--no-tui", "--epochs", "100000", "--hidden", "8", "--data"])
        .arg(&data)
        .arg("--metrics")
        .arg(&metrics)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let seen = lines.by_ref().map(|l| l.unwrap()).find(|l| l.starts_with("Epoch 3/"));
    assert!(seen.is_some(), "the run printed its third epoch");
    child.kill().unwrap(); // SIGKILL: nothing gets to clean up
    child.wait().unwrap();
    let text = std::fs::read_to_string(&metrics).unwrap();
    // Epoch 3's line comes before its callbacks run, after epoch 2's did.
    assert!(text.lines().count() >= 2, "at least epochs 1 and 2:\n{text}");
    assert!(text.ends_with('\n'), "only whole records");
    for (i, line) in text.lines().enumerate() {
        let rec: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(rec["epoch"], i + 1);
    }
}
