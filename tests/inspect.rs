//! Seeing inside the network (issue #30): `simdnet inspect` and `simdnet
//! plot` through the real binary (the PNGs decode with the expected sizes,
//! bad input gets one line), the numbers of `inspect` against a direct
//! computation, and the dashboard's Inside panel at 80×24 and 200×60 for a
//! CNN and an MLP, with and without a snapshot of the weights.

use ratatui::backend::TestBackend;
use ratatui::Terminal;
use simdnet::arch;
use simdnet::checkpoint;
use simdnet::dataset::default_class_names;
use simdnet::events::{Event, Snapshot};
use simdnet::gemm::Activation;
use simdnet::inspect;
use simdnet::model::{Model, ModelSpec};
use simdnet::optim::OptimizerKind;
use simdnet::tui::inside::Palette;
use simdnet::tui::{App, Info, View};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn simdnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_simdnet")).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A one-line error, no panic, non-zero exit; returns the line.
fn refused(o: &Output) -> String {
    let err = stderr(o);
    assert!(!o.status.success(), "accepted: {}", String::from_utf8_lossy(&o.stdout));
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    err.trim_end().to_string()
}

/// Width and height of a PNG file, decoded with the png crate.
fn png_size(path: &Path) -> (u32, u32) {
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let mut reader = png::Decoder::new(file).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    (info.width, info.height)
}

/// Tiny IDX files (28×28, 10 classes, `n` images each split).
fn synthetic(dir: &Path, n: usize) {
    let mut rng = fastrand::Rng::with_seed(9);
    for prefix in ["train", "t10k"] {
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let mut img = 0x0803u32.to_be_bytes().to_vec();
        for d in [n as u32, 28, 28] {
            img.extend(d.to_be_bytes());
        }
        for &c in &labels {
            img.extend((0..784).map(|p| if p / 28 / 2 == c as usize + 2 { rng.u8(150..) } else { rng.u8(0..60) }));
        }
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), img).unwrap();
        let mut lab = 0x0801u32.to_be_bytes().to_vec();
        lab.extend((n as u32).to_be_bytes());
        lab.extend(labels);
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), lab).unwrap();
    }
}

const TINY_CNN: &str = "conv2d(4,3,relu,same),maxpool(2),conv2d(6,3,relu,same),flatten,dense(10)";

#[test]
fn inspect_writes_the_books_pictures_of_a_trained_model() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), 200);
    let d = dir.path().to_str().unwrap();
    let model = dir.path().join("tiny.safetensors");
    let metrics = dir.path().join("history.csv");
    let m = model.to_str().unwrap();
    let train = simdnet(&[
        "train",
        "--no-tui",
        "--data",
        d,
        "--arch",
        TINY_CNN,
        "--epochs",
        "2",
        "--save",
        m,
        "--metrics",
        metrics.to_str().unwrap(),
    ]);
    assert!(train.status.success(), "{}", stderr(&train));

    let out = dir.path().join("views");
    let run = simdnet(&["inspect", "--model", m, "--data", d, "--image", "3", "--out", out.to_str().unwrap()]);
    assert!(run.status.success(), "{}", stderr(&run));
    let text = String::from_utf8_lossy(&run.stdout).into_owned();
    // 4 filters 3×3 scaled ×8 with 2-pixel gaps, one row.
    assert_eq!(png_size(&out.join("filters.png")), (4 * 24 + 5 * 2, 24 + 2 * 2));
    // conv2d: 4 maps 28×28 (×4) in 2×2; conv2d_1: 6 maps 14×14 (×8) in 2×3.
    assert_eq!(png_size(&out.join("feature_maps_conv2d.png")), (2 * 112 + 3 * 2, 2 * 112 + 3 * 2));
    assert_eq!(png_size(&out.join("feature_maps_conv2d_1.png")), (3 * 112 + 4 * 2, 2 * 112 + 3 * 2));
    // One 520×150 panel per layer with parameters (conv2d, conv2d_1, dense).
    assert_eq!(png_size(&out.join("histograms.png")), (520, 3 * 150));
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 4, "no temporary file left");

    // The printed mean/std are a direct f64 computation over the kernel.
    let loaded = checkpoint::load(&model).unwrap();
    let l = &loaded.model.spec.layers()[0];
    let k: Vec<f64> = loaded.model.params[l.kernel.clone()].iter().map(|&v| v as f64).collect();
    let mean = k.iter().sum::<f64>() / k.len() as f64;
    let std = (k.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / k.len() as f64).sqrt();
    let line = format!("conv2d.kernel 3x3x1x4: mean {mean:.4} std {std:.4}");
    assert!(text.contains(&line), "{line} in\n{text}");
    assert!(text.contains("wrote ") && text.contains("image: test 3"), "{text}");
    let stats = inspect::layer_stats(&loaded.model);
    assert_eq!(stats[0].bins.iter().sum::<u32>() as usize, k.len());
    assert!((stats[0].mean - mean).abs() < 1e-12 && (stats[0].std - std).abs() < 1e-12);

    // Again into the same directory: replaced, still four files.
    let again = simdnet(&["inspect", "--model", m, "--data", d, "--out", out.to_str().unwrap()]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 4);

    // plot: the --metrics CSV as two 480×320 charts.
    let plot = simdnet(&["plot", metrics.to_str().unwrap()]);
    assert!(plot.status.success(), "{}", stderr(&plot));
    assert_eq!(png_size(&dir.path().join("history.png")), (960, 320));
    let custom = dir.path().join("curves.png");
    let plot = simdnet(&["plot", metrics.to_str().unwrap(), "--out", custom.to_str().unwrap()]);
    assert!(plot.status.success(), "{}", stderr(&plot));
    assert_eq!(png_size(&custom), (960, 320));

    // Bad input: one line naming the file or flag.
    let o = out.to_str().unwrap();
    let e = refused(&simdnet(&["inspect", "--model", m, "--data", d, "--image", "200", "--out", o]));
    assert!(e.contains("--image 200: the test set in") && e.contains("has 200 images"), "{e}");
    let file_out = dir.path().join("history.csv");
    let e = refused(&simdnet(&["inspect", "--model", m, "--data", d, "--out", file_out.to_str().unwrap()]));
    assert!(e.contains("history.csv: is a file, not a directory"), "{e}");
    let bad = dir.path().join("bad.safetensors");
    std::fs::write(&bad, b"bad!").unwrap();
    let e = refused(&simdnet(&["inspect", "--model", bad.to_str().unwrap(), "--data", d, "--out", o]));
    assert!(e.contains("bad.safetensors: truncated or not a safetensors file"), "{e}");
    let e = refused(&simdnet(&["inspect", "--model", "/nowhere.safetensors", "--data", d, "--out", o]));
    assert!(e.contains("/nowhere.safetensors: "), "{e}");
}

#[test]
fn plot_refuses_bad_files_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let e = refused(&simdnet(&["plot", "/nowhere.csv"]));
    assert_eq!(e, "error: /nowhere.csv: no such file");
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "epoch,loss\n1,abc\n").unwrap();
    let e = refused(&simdnet(&["plot", bad.to_str().unwrap()]));
    assert!(e.ends_with("bad.csv: line 2: loss = \"abc\" is not a number"), "{e}");
    std::fs::write(&bad, [0xff, 0xfe, 0x00]).unwrap();
    let e = refused(&simdnet(&["plot", bad.to_str().unwrap()]));
    assert!(e.ends_with("bad.csv: not a text file (invalid UTF-8)"), "{e}");
    let e = refused(&simdnet(&["plot", dir.path().to_str().unwrap()]));
    assert!(e.contains("is a directory"), "{e}");
    let good = dir.path().join("h.csv");
    std::fs::write(&good, "epoch,loss\n1,0.5\n").unwrap();
    let e = refused(&simdnet(&["plot", good.to_str().unwrap(), "--out", dir.path().to_str().unwrap()]));
    assert!(e.contains("cannot write"), "{e}");
    assert!(!dir.path().join("h.png").exists());
}

fn info(model: &str) -> Info {
    Info {
        data: "fashion-mnist".into(),
        model: model.into(),
        optimizer: OptimizerKind::adam(),
        learning_rate: 0.001,
        batch_size: 32,
        threads: 1,
        isa: "reference".into(),
        seed: 42,
        train_count: 48000,
        val_count: 12000,
        test_count: 10000,
        epochs: 5,
        steps_per_epoch: 1500,
        flops_per_sample: 318_000,
        class_names: default_class_names(10, true),
        save_path: PathBuf::from("simdnet-model.safetensors"),
    }
}

fn render(app: &App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| f.render_widget(app, f.area())).unwrap();
    let buf = t.backend().buffer().clone();
    (0..h).map(|y| (0..w).map(|x| buf[(x, y)].symbol()).collect::<String>() + "\n").collect()
}

fn models() -> [Model; 2] {
    let cnn = ModelSpec::new((28, 28), &arch::cnn(10)).unwrap();
    let mlp = ModelSpec::mlp((28, 28), &[100], Activation::Relu, 10, 0.0).unwrap();
    [Model::new(cnn, 1), Model::new(mlp, 1)]
}

#[test]
fn the_inside_panel_renders_for_a_cnn_and_an_mlp() {
    let images: Vec<Vec<u8>> = (0..4).map(|i| (0..784).map(|p| ((p * (i + 1)) % 256) as u8).collect()).collect();
    for model in models() {
        for palette in [Palette::TrueColor, Palette::Grey256, Palette::NoColor] {
            let mut app = App::new(info(&model.spec.describe()));
            app.view = View::Inside;
            app.inside.palette = palette;
            app.inside.set_images(images.clone(), vec![0, 1, 2, 3], 28, 28);
            // Before the first snapshot: a waiting line, no panic.
            for (w, h) in [(80, 24), (200, 60), (10, 3), (0, 0)] {
                assert_eq!(render(&app, w, h).lines().count(), h as usize);
            }
            assert!(render(&app, 80, 24).contains("waiting for the first weights"));
            app.on_event(Event::Snapshot(Box::new(Snapshot {
                epoch: 1,
                step: 10,
                spec: model.spec.clone(),
                params: model.params.clone(),
            })));
            let stats = inspect::layer_stats(&model);
            for (w, h) in [(80, 24), (200, 60), (120, 40), (40, 12), (10, 3), (1, 1)] {
                let screen = render(&app, w, h);
                assert_eq!(screen.lines().count(), h as usize);
                if (w, h) == (200, 60) {
                    // The numbers shown are inspect's (a direct computation, tested there).
                    for s in &stats {
                        assert!(screen.contains(&format!("mean {:.4} std {:.4}", s.mean, s.std)), "{screen}");
                    }
                    assert!(screen.contains("image 0"), "{screen}");
                }
            }
            // ←/→ pick the image, `l` the layer; the views follow.
            app.on_key(key(crossterm::event::KeyCode::Right));
            assert_eq!(app.inside.image, 1);
            app.on_key(key(crossterm::event::KeyCode::Left));
            app.on_key(key(crossterm::event::KeyCode::Left));
            assert_eq!(app.inside.image, 3, "wraps around");
            app.on_key(key(crossterm::event::KeyCode::Char('l')));
            let screen = render(&app, 200, 60);
            if model.spec.as_mlp().is_none() {
                assert!(screen.contains("conv2d_1"), "{screen}");
                assert_eq!(app.inside.layer, 1);
            } else {
                assert!(screen.contains("no conv2d layer"), "{screen}");
            }
            assert_eq!(app.view, View::Inside, "arrows stay in the panel");
        }
    }
}

fn key(code: crossterm::event::KeyCode) -> crossterm::event::KeyEvent {
    crossterm::event::KeyEvent::new(code, crossterm::event::KeyModifiers::NONE)
}

/// Records what the trainer sends.
struct Recorder(Vec<Event>);

impl simdnet::train::Monitor for Recorder {
    fn event(&mut self, event: Event) {
        self.0.push(event);
    }
}

#[test]
fn snapshots_go_out_only_when_asked_and_at_a_bounded_rate() {
    use simdnet::train::{fit, FitConfig};
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), 100);
    let data = simdnet::dataset::Dataset::open(dir.path(), &dir.path().join(".cache")).unwrap();
    let spec = ModelSpec::new((28, 28), &arch::parse(TINY_CNN).unwrap()).unwrap();
    let train_idx: Vec<u32> = (0..100).collect();
    let run = |interval: Option<std::time::Duration>| {
        let mut model = Model::new(spec.clone(), 1);
        let mut opt = simdnet::optim::Optimizer::new(OptimizerKind::adam(), 0.001, spec.param_count());
        let cfg = FitConfig { epochs: 2, batch_size: 10, snapshot_interval: interval, ..FitConfig::default() };
        let mut monitor = Recorder(Vec::new());
        let mut save = |_: &Model, _: &Path| Ok(());
        fit(&mut model, &mut opt, &data.train, &train_idx, &[], None, &cfg, &mut [], &mut monitor, &mut save).unwrap();
        let snapshots: Vec<Snapshot> =
            monitor.0.into_iter().filter_map(|e| if let Event::Snapshot(s) = e { Some(*s) } else { None }).collect();
        (snapshots, model)
    };
    // Headless (the default): none.
    assert!(run(None).0.is_empty());
    // A long interval: one before training, one at each epoch's end.
    let (snapshots, model) = run(Some(std::time::Duration::from_secs(3600)));
    let at: Vec<(usize, usize)> = snapshots.iter().map(|s| (s.epoch, s.step)).collect();
    assert_eq!(at, [(1, 0), (1, 10), (2, 10)]);
    assert_eq!(snapshots[2].params, model.params, "the last is the trained weights");
    assert_eq!(snapshots[2].spec, model.spec);
    // No interval at all: after every step, never more.
    let (snapshots, _) = run(Some(std::time::Duration::ZERO));
    assert_eq!(snapshots.len(), 1 + 2 * (10 + 1));
}

#[test]
fn the_panel_computes_its_views_only_while_shown() {
    let [cnn, _] = models();
    let mut app = App::new(info("cnn"));
    let snapshot = |step| {
        Event::Snapshot(Box::new(Snapshot { epoch: 1, step, spec: cnn.spec.clone(), params: cnn.params.clone() }))
    };
    app.on_event(snapshot(5));
    assert!(app.inside.views.is_none(), "the curves show: nothing computed");
    app.on_key(key(crossterm::event::KeyCode::Char('5')));
    assert_eq!(app.view, View::Inside);
    assert_eq!(app.inside.views.as_ref().unwrap().stats.len(), 4, "computed as the panel shows");
    app.on_event(snapshot(9));
    assert_eq!(app.inside.at, Some((1, 9)));
    assert!(render(&app, 80, 24).contains("epoch 1 step 9"));
}

#[test]
fn inspect_draws_an_mlps_dense_columns() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), 20);
    let [_, mlp] = models();
    let model = dir.path().join("mlp.safetensors");
    checkpoint::save(&mlp, &default_class_names(10, false), &model).unwrap();
    let out = dir.path().join("v");
    let run = simdnet(&[
        "inspect",
        "--model",
        model.to_str().unwrap(),
        "--data",
        dir.path().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    // 100 columns 28×28 (×4) in 10×10; histograms of dense and dense_1; no feature maps.
    assert_eq!(png_size(&out.join("filters.png")), (10 * 112 + 11 * 2, 10 * 112 + 11 * 2));
    assert_eq!(png_size(&out.join("histograms.png")), (520, 2 * 150));
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 2);
}
