//! The convolution chapter through the real binary: `--arch cnn` and layer
//! lists in `summary`, `train`, `eval`, `predict` and `compare`; model files
//! with Keras' names and layouts; bad lists and hostile CNN files refused in
//! one line.

use simdnet::arch;
use simdnet::checkpoint;
use simdnet::model::{Model, ModelSpec};
use std::path::Path;
use std::process::{Command, Output};

fn simdnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_simdnet")).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A one-line error, no panic, non-zero exit.
fn refused(o: &Output) -> String {
    let err = stderr(o);
    assert!(!o.status.success(), "accepted; stdout {}", stdout(o));
    assert!(!err.contains("panicked"), "{err}");
    // The message is one line (clap adds its "For more information" hint after it).
    let first = err.lines().next().unwrap_or_default().to_string();
    assert!(first.starts_with("error: "), "{err}");
    first
}

/// Small learnable IDX files: class c brightens a band of rows (28×28, 10 classes).
fn synthetic(dir: &Path, train: usize, test: usize) {
    let mut rng = fastrand::Rng::with_seed(5);
    for (prefix, n) in [("train", train), ("t10k", test)] {
        let labels: Vec<u8> = (0..n).map(|_| rng.u8(0..10)).collect();
        let mut pixels = Vec::with_capacity(n * 784);
        for &c in &labels {
            for p in 0..784 {
                let row = p / 28;
                let lit = row / 2 == c as usize + 2 && rng.f32() < 0.6;
                pixels.push(if lit { rng.u8(150..=255) } else { rng.u8(0..90) });
            }
        }
        let mut img = 0x0803u32.to_be_bytes().to_vec();
        for d in [n as u32, 28, 28] {
            img.extend(d.to_be_bytes());
        }
        img.extend(pixels);
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), img).unwrap();
        let mut lab = 0x0801u32.to_be_bytes().to_vec();
        lab.extend((n as u32).to_be_bytes());
        lab.extend(labels);
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), lab).unwrap();
    }
}

#[test]
fn summary_prints_the_book_cnn_as_keras_does() {
    let out = simdnet(&["summary", "--arch", "cnn"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = stdout(&out);
    for expected in [
        "│ conv2d (Conv2D)                 │ (None, 28, 28, 32)     │           320 │",
        "│ max_pooling2d (MaxPooling2D)    │ (None, 14, 14, 32)     │             0 │",
        "│ conv2d_1 (Conv2D)               │ (None, 14, 14, 64)     │        18,496 │",
        "│ max_pooling2d_1 (MaxPooling2D)  │ (None, 7, 7, 64)       │             0 │",
        "│ flatten (Flatten)               │ (None, 3136)           │             0 │",
        "│ dense (Dense)                   │ (None, 100)            │       313,700 │",
        "│ dropout (Dropout)               │ (None, 100)            │             0 │",
        "│ dense_1 (Dense)                 │ (None, 10)             │         1,010 │",
        " Total params: 333,526 (1.27 MB)",
    ] {
        assert!(s.contains(expected), "missing {expected:?} in\n{s}");
    }
    // The same model written out as a layer list.
    let list = simdnet(&["summary", "--arch", &arch::to_string(&arch::cnn(10))]);
    assert_eq!(stdout(&list), s);
}

#[test]
fn bad_layer_lists_get_one_line_naming_the_layer() {
    let cases = [
        ("conv2d(32,3),flatten,dense(10),pool(2)", "layer 4 \"pool(2)\": unknown layer"),
        ("conv2d(32,3,relu,same),dense(10)", "layer 2 dense(10): dense needs a flat input: add flatten before it"),
        ("maxpool(30),flatten,dense(10)", "a 30x30 pool is larger than its 28x28 input"),
        ("conv2d(8,29,valid),flatten,dense(10)", "kernel size \"29\" is not a whole number from 1 to 7"),
        ("conv2d(8,7,valid),maxpool(4),conv2d(8,7,valid),flatten,dense(10)", "a 7x7 kernel does not fit a 5x5 input"),
        ("conv2d(0,3),flatten,dense(10)", "filters \"0\""),
        ("flatten,dense(100,relu)", "the last layer is dense(100,relu)"),
        ("flatten,dense(7)", "the last layer has 7 units, the data in"),
        ("conv2d(4096,7,same),conv2d(4096,7,same),flatten,dense(10)", "its im2col and weight-gradient sums need"),
    ];
    for (list, expected) in cases {
        let err = refused(&simdnet(&["summary", "--arch", list]));
        assert!(err.contains(expected), "--arch {list}: {err}");
    }
    let err = refused(&simdnet(&["train", "--no-tui", "--arch", "cnn", "--hidden", "300"]));
    assert!(err.contains("--hidden, --activation and --dropout shape --arch mlp only"), "{err}");
}

#[test]
fn a_cnn_trains_saves_evaluates_and_predicts() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), 1200, 300);
    let d = dir.path().to_str().unwrap();
    let model = dir.path().join("cnn.safetensors");
    let best = dir.path().join("best.safetensors");
    let metrics = dir.path().join("history.csv");
    let arch = "conv2d(8,3,relu,same),maxpool(2),conv2d(16,3,relu,valid),maxpool(2),flatten,dense(32,relu),dropout(0.3),dense(10)";
    let out = simdnet(&[
        "train",
        "--no-tui",
        "--data",
        d,
        "--arch",
        arch,
        "--epochs",
        "4",
        "--threads",
        "2",
        "--optimizer",
        "rmsprop",
        "--early-stopping",
        "2",
        "--restore-best",
        "--checkpoint",
        best.to_str().unwrap(),
        "--metrics",
        metrics.to_str().unwrap(),
        "--save",
        model.to_str().unwrap(),
    ]);
    let s = stdout(&out);
    assert!(out.status.success(), "{s}\n{}", stderr(&out));
    assert!(s.lines().next().unwrap().contains("conv2d(8,3,relu,same)"), "the header names the model: {s}");
    let test_line = s.lines().find(|l| l.starts_with("test_accuracy: ")).expect("a test line");
    let accuracy: f64 = test_line["test_accuracy: ".len()..][..6].parse().unwrap();
    assert!(accuracy > 0.6, "10 classes, chance 0.1: {test_line}");
    assert!(std::fs::read_to_string(&metrics).unwrap().lines().count() >= 2);

    // Keras' names and layouts; the architecture comes back from the file alone.
    let loaded = checkpoint::load(&model).unwrap();
    assert_eq!(loaded.model.spec.arch(), arch);
    let shapes: Vec<(String, Vec<usize>)> =
        loaded.model.spec.param_layers().map(|l| (l.name.clone(), l.kernel_shape().unwrap())).collect();
    let expect = [
        ("conv2d", vec![3, 3, 1, 8]),
        ("conv2d_1", vec![3, 3, 8, 16]),
        ("dense", vec![576, 32]),
        ("dense_1", vec![32, 10]),
    ];
    assert_eq!(shapes, expect.map(|(n, s)| (n.to_string(), s)).to_vec());
    checkpoint::load(&best).unwrap();

    let eval = simdnet(&["eval", "--model", model.to_str().unwrap(), "--data", d]);
    assert!(eval.status.success(), "{}", stderr(&eval));
    assert!(
        stdout(&eval).contains(&format!("test_accuracy: {}", &test_line["test_accuracy: ".len()..][..6])),
        "eval agrees with training's test pass: {}\n{test_line}",
        stdout(&eval)
    );
    let predict = simdnet(&["predict", "--model", model.to_str().unwrap(), "--data", d, "--index", "3"]);
    assert!(predict.status.success(), "{}", stderr(&predict));
    assert!(stdout(&predict).contains('%'));
}

#[test]
fn compare_trains_an_mlp_beside_a_cnn() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), 500, 100);
    let d = dir.path().to_str().unwrap();
    let out = simdnet(&[
        "compare",
        "--no-tui",
        "--data",
        d,
        "--arch",
        "mlp/conv2d(4,3,relu,same),maxpool(2),flatten,dense(10)",
        "--epochs",
        "1",
    ]);
    let s = stdout(&out);
    assert!(out.status.success(), "{s}\n{}", stderr(&out));
    assert!(s.contains("[arch=mlp]") && s.contains("[arch=conv2d(4,3,relu,same),maxpool(2),flatten,dense(10)]"), "{s}");
    let presets = simdnet(&["compare", "--no-tui", "--data", d, "--arch", "mlp,cnn", "--epochs", "1"]);
    assert!(presets.status.success(), "{}", stderr(&presets));
    assert!(stdout(&presets).contains("[arch=cnn]"), "{}", stdout(&presets));
}

/// A safetensors file's bytes with its metadata edited by `edit` (the tensors unchanged).
fn edit_metadata(bytes: &[u8], edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    edit(header["__metadata__"].as_object_mut().unwrap());
    let mut h = serde_json::to_vec(&header).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(&bytes[8 + n..]);
    out
}

/// A CNN's file with its metadata's `key` set to `value` (the tensors unchanged).
fn with_meta(key: &str, value: &str) -> Vec<u8> {
    let spec =
        ModelSpec::new((8, 8), &arch::parse("conv2d(3,3,relu,same),maxpool(2),flatten,dense(4)").unwrap()).unwrap();
    let model = Model::new(spec, 1);
    let names: Vec<String> = (0..4).map(|i| format!("c{i}")).collect();
    let bytes = checkpoint::to_bytes(&model, &names).unwrap();
    edit_metadata(&bytes, |meta| drop(meta.insert(key.into(), value.into())))
}

#[test]
fn hostile_cnn_files_are_refused_before_allocating() {
    assert!(checkpoint::from_bytes(&with_meta("classes", "4")).is_ok(), "the untouched file loads");
    let cases = [
        (
            "arch",
            "conv2d(3,5,relu,same),maxpool(2),flatten,dense(4)",
            "tensor conv2d.kernel has shape [3, 3, 1, 3], expected [5, 5, 1, 3]",
        ),
        ("arch", "conv2d(3,9,relu,valid),flatten,dense(4)", "kernel size \"9\""),
        (
            "arch",
            "conv2d(3,7,relu,valid),maxpool(2),conv2d(3,3,valid),flatten,dense(4)",
            "a 3x3 kernel does not fit a 1x1 input",
        ),
        ("arch", "conv2d(0,3),flatten,dense(4)", "filters \"0\""),
        // Refused at its second layer's scratch (im2col and dW sums per sample)
        // before the parameter count is reached.
        ("arch", "conv2d(4096,7,same),conv2d(4096,7,same),flatten,dense(4)", "weight-gradient sums need 834932736"),
        ("arch", "flatten,dense(1000000),dense(1000000),dense(4)", "parameters"),
        ("arch", "conv2d(3,3,relu,same),flatten,dense(4)", "the file holds fewer"),
        ("arch", "flatten,dense(4),maxpool(2)", "the last layer is maxpool(2)"),
        ("input_shape", "100000,100000", "larger than 65536x65536"),
        ("input_shape", "0,8", "empty input shape"),
        ("classes", "5", "metadata classes = 5, the last layer has 4 units"),
    ];
    for (key, value, expected) in cases {
        let err = match checkpoint::from_bytes(&with_meta(key, value)) {
            Ok(_) => panic!("{key} = {value}: accepted"),
            Err(e) => e,
        };
        assert!(err.contains(expected), "{key} = {value}: {err}");
    }
}

#[test]
fn old_mlp_files_keep_loading() {
    // A v1 file as earlier releases wrote it: MLP fields in the metadata.
    let spec = ModelSpec::mlp((4, 4), &[5], simdnet::gemm::Activation::Sigmoid, 3, 0.25).unwrap();
    let model = Model::new(spec.clone(), 2);
    let bytes = checkpoint::to_bytes(&model, &["a".into(), "b".into(), "c".into()]).unwrap();
    let v1 = edit_metadata(&bytes, |meta| {
        meta.remove("arch");
        for (k, v) in [("format", "simdnet-mlp-v1"), ("hidden", "5"), ("activation", "sigmoid"), ("dropout", "0.25")] {
            meta.insert(k.into(), v.into());
        }
    });
    let loaded = checkpoint::from_bytes(&v1).unwrap();
    assert_eq!(loaded.model.spec, spec);
    assert_eq!(loaded.model.params, model.params);
}
