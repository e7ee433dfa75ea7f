//! Renders the dashboard with ratatui's TestBackend: every panel at 80×24, at
//! a small 40×12 and at other sizes, checking the text a user must see.

use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::Widget;
use ratatui::Terminal;
use simdnet::dataset::default_class_names;
use simdnet::events::{Confusion, EpochResult, Event, FinishReason, SamplePrediction, StepProgress};
use simdnet::optim::OptimizerKind;
use simdnet::tui::widgets::{Confusion as ConfusionWidget, ImageGrid};
use simdnet::tui::{App, Info, View};
use std::path::PathBuf;

fn info() -> Info {
    Info {
        data: "fashion-mnist".into(),
        model: "784-100-10 relu".into(),
        optimizer: OptimizerKind::Adam { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 },
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

fn progress(epoch: usize, step: usize) -> Event {
    Event::Progress(StepProgress {
        epoch,
        epochs: 5,
        step,
        steps: 1500,
        loss: 1.0 / (epoch as f64 + step as f64 / 1500.0),
        accuracy: 0.6 + 0.05 * epoch as f64,
        samples_per_second: 200_000.0 + step as f64,
        seconds_per_step: 32.0 / 200_000.0,
        learning_rate: 0.001,
    })
}

fn epoch(epoch: usize, val_loss: f64) -> Event {
    Event::Epoch(EpochResult {
        epoch,
        epochs: 5,
        steps: 1500,
        loss: 0.5,
        accuracy: 0.82,
        val_loss: Some(val_loss),
        val_accuracy: Some(0.85),
        learning_rate: 0.001,
        train_seconds: 0.24,
        wall_seconds: 0.3,
        samples_per_second: 200_000.0,
    })
}

fn confusion() -> Confusion {
    let mut c = Confusion::new(10);
    for t in 0..10 {
        for _ in 0..90 {
            c.add(t, t);
        }
    }
    // Shirt (6) → T-shirt/top (0) the most, then Pullover (2) → Coat (4).
    for _ in 0..45 {
        c.add(6, 0);
    }
    for _ in 0..30 {
        c.add(2, 4);
    }
    c
}

fn sample(index: usize, truth: usize, predicted: usize) -> SamplePrediction {
    // A bright square in the middle of a 28×28 image.
    let pixels = (0..28 * 28)
        .map(|i| if (8..20).contains(&(i / 28)) && (8..20).contains(&(i % 28)) { 255 } else { 0 })
        .collect();
    SamplePrediction { index, pixels, rows: 28, cols: 28, truth, predicted, confidence: 0.62 }
}

/// An app two epochs into a run, with every panel fed.
fn fed_app() -> App {
    let mut app = App::new(info());
    app.peak_gflops = Some(114.5);
    for e in 1..=2 {
        for step in (100..=1500).step_by(100) {
            app.on_event(progress(e, step));
        }
        app.on_event(Event::Confusion(confusion()));
        app.on_event(Event::Samples(vec![sample(0, 6, 0), sample(1, 1, 1), sample(2, 9, 9)]));
        app.on_event(epoch(e, if e == 1 { 0.45 } else { 0.40 }));
    }
    app.on_event(progress(3, 300));
    app.on_event(Event::Log("saved model to best.safetensors".into()));
    app
}

fn render(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| f.render_widget(app, f.area())).unwrap();
    text(terminal.backend().buffer())
}

fn text(buf: &Buffer) -> String {
    let area = buf.area;
    let mut s = String::new();
    for y in area.top()..area.bottom() {
        for x in area.left()..area.right() {
            s.push_str(buf[(x, y)].symbol());
        }
        s.push('\n');
    }
    s
}

fn assert_has(screen: &str, needles: &[&str]) {
    for n in needles {
        assert!(screen.contains(n), "missing {n:?} in\n{screen}");
    }
}

#[test]
fn header_progress_and_throughput_at_80x24() {
    let app = fed_app();
    let screen = render(&app, 80, 24);
    assert_has(
        &screen,
        &[
            "fashion-mnist",
            "784-100-10 relu",
            "Adam(lr=0.001)",
            "batch 32",
            "threads 1",
            "isa reference",
            "seed 42",
            "Epoch   3/5",
            "step   300/1500",
            "ETA",
            "200.3k samples/s",
            "ms/step",
            "GFLOP/s",
            "% of 114 peak",
            "space pause",
            "? help",
        ],
    );
    // 200_300 samples/s × 318 kFLOP = 63.70 GFLOP/s = 55.6 % of 114.5.
    assert_has(&screen, &["63.70 GFLOP/s", "55.6% of 114 peak"]);
}

#[test]
fn progress_is_visible_before_the_first_event() {
    let app = App::new(info());
    let screen = render(&app, 80, 24);
    assert_has(&screen, &["Epoch   1/5", "step     0/1500", "starting…", "waiting for the first steps"]);
}

#[test]
fn curves_panel_shows_both_charts_and_the_best_epoch() {
    let app = fed_app();
    for (w, h) in [(80, 24), (100, 30)] {
        let screen = render(&app, w, h);
        assert_has(&screen, &["Loss", "Accuracy", "best epoch 2: val_loss 0.4000", "train", "val", "epoch"]);
        assert!(screen.contains('▀') || screen.contains('▄') || screen.contains('█'), "half-block curves\n{screen}");
    }
}

#[test]
fn confusion_panel_names_classes_and_highlights_pairs() {
    let mut app = fed_app();
    app.view = View::Confusion;
    let screen = render(&app, 80, 24);
    assert_has(&screen, &["0 T-shirt/top", "6 Shirt", "9 Ankle boot", "true\\pred", "acc", "66.7%", "100.0%"]);
    // The most confused pair, with names.
    let screen = render(&app, 100, 30);
    assert_has(&screen, &["most confused: Shirt→T-shirt/top 45, Pullover→Coat 30"]);
}

#[test]
fn confusion_widget_lays_out_counts_and_accuracy() {
    let mut c = Confusion::new(3);
    for (t, p, n) in [(0, 0, 8), (0, 1, 2), (1, 1, 5), (2, 2, 9), (2, 0, 1)] {
        for _ in 0..n {
            c.add(t, p);
        }
    }
    let names: Vec<String> = ["cat", "dog", "bird"].iter().map(|s| s.to_string()).collect();
    let area = Rect::new(0, 0, 40, 5);
    let mut buf = Buffer::empty(area);
    ConfusionWidget { confusion: &c, names: &names }.render(area, &mut buf);
    let lines: Vec<String> = text(&buf).lines().map(|l| l.trim_end().to_string()).collect();
    assert_eq!(
        lines,
        [
            "true\\pred  0  1  2     acc",
            "0 cat      8  2  0   80.0%",
            "1 dog      0  5  0  100.0%",
            "2 bird     1  0  9   90.0%",
            "accuracy 88.00% of 25 · most confused:",
        ]
    );
}

#[test]
fn samples_panel_draws_half_block_images_misclassified_first() {
    let mut app = fed_app();
    app.view = View::Samples;
    let screen = render(&app, 80, 24);
    assert_has(&screen, &["✗ T-shirt/top 62% true Shirt", "✓ Trouser 62%", "1 misclassified"]);
    // Full size at 80×24: the 12-pixel square is 12 cells wide and 6 high.
    assert!(screen.contains(&"▀".repeat(12)), "{screen}");
    let square_rows = screen.lines().filter(|l| l.contains(&"▀".repeat(12))).count();
    assert_eq!(square_rows, 6, "{screen}");
}

#[test]
fn image_grid_downscales_to_fit() {
    let samples = vec![sample(0, 1, 1)];
    let names = default_class_names(10, true);
    let area = Rect::new(0, 0, 20, 8);
    let mut buf = Buffer::empty(area);
    ImageGrid { samples: &samples, names: &names, scroll: 0 }.render(area, &mut buf);
    let screen = text(&buf);
    // Scale 2: 14×14 pixels → the square is 6 cells wide and 3 high.
    assert_eq!(screen.lines().filter(|l| l.contains("▀▀▀▀▀▀")).count(), 3, "{screen}");
    assert!(!screen.contains("▀▀▀▀▀▀▀"), "{screen}");
    assert_has(&screen, &["✓ Trouser"]);
}

#[test]
fn log_panel_and_pane_show_messages() {
    let mut app = fed_app();
    app.view = View::Log;
    let screen = render(&app, 80, 24);
    assert_has(&screen, &["saved model to best.safetensors", "Epoch 2/5 - 1500/1500"]);
    // At 30 rows and more, the log has its own pane under any panel.
    app.view = View::Curves;
    let screen = render(&app, 100, 30);
    assert_has(&screen, &[" Log ", "saved model to best.safetensors"]);
}

#[test]
fn paused_and_finished_states_show() {
    let mut app = fed_app();
    app.on_event(Event::Paused(true));
    let screen = render(&app, 80, 24);
    assert_has(&screen, &["paused", "(paused)"]);
    app.on_event(Event::Paused(false));
    app.on_event(Event::Finished { reason: FinishReason::Stopped });
    app.on_event(Event::Test { loss: 0.3456, accuracy: 0.8765 });
    app.on_trainer_done(None);
    let screen = render(&app, 80, 24);
    assert_has(&screen, &["stopped", "test accuracy 0.8765", "test loss 0.3456", "done", "q quit"]);
}

#[test]
fn help_overlay_lists_the_keys() {
    let mut app = fed_app();
    app.shell.show_help = true;
    let screen = render(&app, 80, 24);
    assert_has(&screen, &[" Keys ", "pause / resume", "double / halve", "save the model now"]);
}

#[test]
fn every_panel_renders_at_small_and_odd_sizes() {
    let mut app = fed_app();
    for view in View::ALL {
        app.view = view;
        for show_help in [false, true] {
            app.shell.show_help = show_help;
            for (w, h) in [(40, 12), (1, 1), (0, 0), (10, 3), (25, 7), (79, 23), (120, 40), (200, 60)] {
                let screen = render(&app, w, h);
                assert_eq!(screen.lines().count(), h as usize);
            }
        }
        app.shell.show_help = false;
        // 40×12: the essentials still show.
        let screen = render(&app, 40, 12);
        assert_has(&screen, &["simdnet", "784-100-10 relu", "Epoch", "samples/s"]);
    }
    // Side by side on a wide terminal: curves and the confusion matrix at once.
    app.view = View::Curves;
    let screen = render(&app, 200, 60);
    assert_has(&screen, &["Loss", "Accuracy", "6 Shirt", "most confused"]);
}
