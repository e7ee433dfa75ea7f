//! Drawing the dashboard: header, progress, throughput, the switchable panel
//! (curves, confusion matrix, samples, log), the log pane and the help line.
//! Adapts to the terminal size; never panics on a small one.

use super::app::{finish_text, App, View};
use super::inside::InsidePanel;
use super::shell::Status;
use super::widgets::{
    axes, chart_pair, gauge, render_help_overlay, render_log_pane, status_line, y_bounds, Confusion as ConfusionWidget,
    ImageGrid, LogLines,
};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Chart, Dataset, GraphType, Paragraph, Sparkline, Widget};

/// Height at which the log gets its own pane under the panel.
const LOG_PANE_MIN_HEIGHT: u16 = 30;
/// Width at which the curves stay on the left and the panel shows beside them.
const SIDE_BY_SIDE_MIN_WIDTH: u16 = 150;

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let header_height = if area.height < 16 || area.width >= 130 { 1 } else { 2 };
        let gauges_height = if area.height < 10 { 1 } else { 2 };
        let log_height = if area.height >= LOG_PANE_MIN_HEIGHT { 6 } else { 0 };
        let [header, gauges, throughput, main, log, help] = Layout::vertical([
            Constraint::Length(header_height),
            Constraint::Length(gauges_height),
            Constraint::Length(1),
            Constraint::Min(0),
            Constraint::Length(log_height),
            Constraint::Length(1),
        ])
        .areas(area);
        render_header(self, header, buf);
        render_gauges(self, gauges, buf);
        render_throughput(self, throughput, buf);
        render_main(self, main, buf);
        if log_height > 0 {
            render_log_pane(log_lines(self), log, buf);
        }
        render_help_line(self, help, buf);
        if self.shell.show_help {
            render_help_overlay(&HELP, 58, area, buf);
        }
    }
}

fn render_header(app: &App, area: Rect, buf: &mut Buffer) {
    let i = &app.info;
    let items = [
        ("data", format!("{} ({}/{}/{})", i.data, i.train_count, i.val_count, i.test_count)),
        ("model", i.model.clone()),
        ("opt", i.optimizer.describe(app.learning_rate)),
        ("batch", i.batch_size.to_string()),
        ("threads", i.threads.to_string()),
        ("isa", i.isa.clone()),
        ("seed", i.seed.to_string()),
    ];
    if area.height == 1 && area.width < 100 {
        // Small: the essentials, most telling first.
        let line = Line::from(vec![
            Span::raw("simdnet ").cyan().bold(),
            Span::raw(format!("{} · {} · batch {} · {}", i.model, items[2].1, i.batch_size, i.data)).bold(),
        ]);
        line.render(area, buf);
        return;
    }
    // Pack whole "key value" items into lines (never split one).
    let mut lines = vec![Line::from(Span::raw("simdnet").cyan().bold())];
    for (key, value) in items {
        let width = key.len() + value.chars().count() + 3;
        let line = lines.last_mut().expect("one line at least");
        if line.width() + width > area.width as usize && line.width() > 0 {
            lines.push(Line::default());
        }
        let line = lines.last_mut().expect("one line at least");
        if line.width() > 0 {
            line.push_span(Span::raw("  "));
        }
        line.push_span(Span::raw(format!("{key} ")).dark_gray());
        line.push_span(Span::raw(value).bold());
    }
    Paragraph::new(lines).render(area, buf);
}

/// Samples per second to 3-4 significant digits: `5312`, `228.4k`, `1.23M`.
pub fn rate(v: f64) -> String {
    if v < 1e4 {
        format!("{v:.0}")
    } else if v < 1e6 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{:.2}M", v / 1e6)
    }
}

/// `75` → `1:15`, `3725` → `1:02:05`.
pub fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

fn render_gauges(app: &App, area: Rect, buf: &mut Buffer) {
    let i = &app.info;
    let (epoch, step) = match (&app.progress, app.epochs.last()) {
        (Some(p), Some(e)) if e.epoch >= p.epoch => (e.epoch, i.steps_per_epoch),
        (Some(p), _) => (p.epoch, p.step),
        (None, Some(e)) => (e.epoch, i.steps_per_epoch),
        (None, None) => (1, 0),
    };
    let epoch_ratio = step as f64 / i.steps_per_epoch.max(1) as f64;
    let (done, total) = app.run_steps();
    let run_ratio = done as f64 / total.max(1) as f64;
    let eta = match app.eta_seconds() {
        Some(s) if app.shell.paused() => format!("ETA {} (paused)", clock(s)),
        Some(s) => format!("ETA {}", clock(s)),
        None if app.shell.training() => "ETA …".into(),
        None => match app.shell.status {
            Status::Stopping => "stopping…".into(),
            Status::Finished(_) => "testing…".into(),
            _ => "done".into(),
        },
    };
    let epoch_label = format!("Epoch {epoch:>3}/{} step {step:>5}/{} ", i.epochs, i.steps_per_epoch);
    let run_label = format!(
        "Run {:>4.0}%  {eta}  elapsed {}  step {done}/{total} ",
        run_ratio * 100.0,
        clock(app.elapsed().as_secs_f64())
    );
    let rows = Layout::vertical([Constraint::Length(1); 2]).split(area);
    if area.height >= 2 {
        gauge(epoch_label, epoch_ratio, Color::Cyan).render(rows[0], buf);
        gauge(run_label, run_ratio, Color::Green).render(rows[1], buf);
    } else {
        gauge(format!("Epoch {epoch}/{} {eta} ", i.epochs), run_ratio, Color::Green).render(area, buf);
    }
}

fn render_throughput(app: &App, area: Rect, buf: &mut Buffer) {
    let mut spans: Vec<Span> = Vec::new();
    if app.shell.paused() {
        spans.push(Span::raw("paused").yellow().bold());
    } else if !app.shell.training() {
        let state = match (&app.shell.status, &app.finish) {
            (Status::Done(Some(e)), _) => format!("failed: {e}"),
            (Status::Stopping, _) => "stopping…".into(),
            (_, Some(r)) => finish_text(r).into(),
            _ => "finishing…".into(),
        };
        let color = if matches!(app.shell.status, Status::Done(Some(_))) { Color::Red } else { Color::Yellow };
        spans.push(Span::raw(state).fg(color).bold());
        if let Some((loss, acc)) = app.test {
            spans.push(Span::raw(format!("  test accuracy {acc:.4}  test loss {loss:.4}")).bold());
        }
        if let Some(e) = app.epochs.last() {
            spans.push(Span::raw(format!("  {} samples/s", rate(e.samples_per_second))).dark_gray());
        }
    } else if let Some((sps, ms, gflops, peak)) = app.throughput() {
        spans.push(Span::raw(format!("{} samples/s", rate(sps))).bold());
        spans.push(Span::raw(format!("  {ms:.2} ms/step  {gflops:.2} GFLOP/s")));
        if let (Some(p), Some(peak_gflops)) = (peak, app.peak_gflops) {
            spans.push(Span::raw(format!("  {p:.1}% of {peak_gflops:.0} peak")).dark_gray());
        }
    } else {
        spans.push(Span::raw("starting…").dark_gray());
    }
    let text = Line::from(spans);
    let text_width = (text.width() as u16 + 2).min(area.width);
    let [left, right] = Layout::horizontal([Constraint::Length(text_width), Constraint::Min(0)]).areas(area);
    text.render(left, buf);
    if right.width >= 8 {
        let data: Vec<u64> = app.rates.iter().rev().take(right.width as usize).rev().copied().collect();
        Sparkline::default().data(data).style(Style::new().fg(Color::Cyan)).render(right, buf);
    }
}

fn render_main(app: &App, area: Rect, buf: &mut Buffer) {
    if area.height < 3 || area.width < 4 {
        return;
    }
    let side_by_side = area.width >= SIDE_BY_SIDE_MIN_WIDTH;
    let mut tabs = vec![Span::raw(" ")];
    for (n, v) in View::ALL.iter().enumerate() {
        let label = format!("{} {}", n + 1, v.title());
        let style = if *v == app.view { Style::new().black().on_cyan().bold() } else { Style::new().dark_gray() };
        tabs.push(Span::styled(label, style));
        tabs.push(Span::raw(" "));
    }
    let block = Block::bordered().title(Line::from(tabs));
    let inner = block.inner(area);
    block.render(area, buf);
    if side_by_side {
        let [left, right] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(inner);
        render_curves(app, left, buf);
        let view = if app.view == View::Curves { View::Confusion } else { app.view };
        render_view(app, view, right, buf);
    } else {
        render_view(app, app.view, inner, buf);
    }
}

fn render_view(app: &App, view: View, area: Rect, buf: &mut Buffer) {
    match view {
        View::Curves => render_curves(app, area, buf),
        View::Confusion => render_confusion(app, area, buf),
        View::Samples => render_samples(app, area, buf),
        View::Log => log_lines(app).render(area, buf),
        View::Inside => InsidePanel { inside: &app.inside, names: &app.info.class_names }.render(area, buf),
    }
}

fn render_curves(app: &App, area: Rect, buf: &mut Buffer) {
    let val_loss: Vec<(f64, f64)> = app.epochs.iter().filter_map(|e| e.val_loss.map(|v| (e.epoch as f64, v))).collect();
    let val_acc: Vec<(f64, f64)> =
        app.epochs.iter().filter_map(|e| e.val_accuracy.map(|v| (e.epoch as f64, v))).collect();
    let best = app.best_epoch();
    let best_text = match best {
        Some((e, l)) => format!(" best epoch {e}: val_loss {l:.4}"),
        None => String::new(),
    };
    let loss = Curve {
        title: format!("Loss{best_text}"),
        train: &app.train_loss,
        val: &val_loss,
        best: best.map(|b| b.0),
        accuracy: false,
    };
    let acc = Curve {
        title: "Accuracy".into(),
        train: &app.train_accuracy,
        val: &val_acc,
        best: best.map(|b| b.0),
        accuracy: true,
    };
    if app.train_loss.is_empty() && val_loss.is_empty() {
        Paragraph::new("waiting for the first steps…").dark_gray().render(area, buf);
        return;
    }
    let epochs = app.info.epochs.max(1) as f64;
    let (first, second) = chart_pair(area, 0);
    loss.render(epochs, app.marker, first, buf);
    if let Some(second) = second {
        acc.render(epochs, app.marker, second, buf);
    }
}

/// One chart: the smoothed training curve, the validation points, the best epoch.
struct Curve<'a> {
    title: String,
    train: &'a [(f64, f64)],
    val: &'a [(f64, f64)],
    best: Option<usize>,
    accuracy: bool,
}

impl Curve<'_> {
    fn render(&self, epochs: f64, marker: Marker, area: Rect, buf: &mut Buffer) {
        let (lo, hi) = y_bounds(self.train.iter().chain(self.val).map(|p| p.1), self.accuracy);
        let best_line: Vec<(f64, f64)> = self.best.map(|b| vec![(b as f64, lo), (b as f64, hi)]).unwrap_or_default();
        let mut datasets = vec![Dataset::default()
            .name("train")
            .marker(marker)
            .graph_type(GraphType::Line)
            .style(Style::new().fg(Color::Cyan))
            .data(self.train)];
        if !self.val.is_empty() {
            datasets.push(
                Dataset::default()
                    .name("val")
                    .marker(marker)
                    .graph_type(GraphType::Line)
                    .style(Style::new().fg(Color::Yellow))
                    .data(self.val),
            );
            datasets.push(
                Dataset::default()
                    .marker(Marker::Block)
                    .graph_type(GraphType::Scatter)
                    .style(Style::new().fg(Color::Yellow))
                    .data(self.val),
            );
        }
        if !best_line.is_empty() {
            datasets.push(
                Dataset::default()
                    .name("best")
                    .marker(Marker::Dot)
                    .graph_type(GraphType::Line)
                    .style(Style::new().fg(Color::Green))
                    .data(&best_line),
            );
        }
        let [x_axis, y_axis] = axes(epochs, (lo, hi), self.accuracy);
        Chart::new(datasets)
            .block(Block::new().title(Line::from(self.title.clone()).bold()))
            .x_axis(x_axis.title("epoch"))
            .y_axis(y_axis)
            .hidden_legend_constraints((Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)))
            .render(area, buf);
    }
}

fn render_confusion(app: &App, area: Rect, buf: &mut Buffer) {
    match &app.confusion {
        Some(c) => ConfusionWidget { confusion: c, names: &app.info.class_names }.render(area, buf),
        None => Paragraph::new("waiting for the first validation pass…").dark_gray().render(area, buf),
    }
}

fn render_samples(app: &App, area: Rect, buf: &mut Buffer) {
    if app.samples.is_empty() {
        Paragraph::new("waiting for the first epoch's predictions…").dark_gray().render(area, buf);
        return;
    }
    let wrong = app.samples.iter().filter(|s| s.truth != s.predicted).count();
    let summary = format!("{} test images, {wrong} misclassified (shown first) · ↑/↓ scroll", app.samples.len());
    // The summary only where it leaves the images their full size.
    let image_rows = app.samples[0].rows.div_ceil(2) as u16 + 1;
    let [title, grid] = if area.height > image_rows {
        Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area)
    } else {
        [Rect::default(), area]
    };
    Line::from(summary).dark_gray().render(title, buf);
    ImageGrid { samples: &app.samples, names: &app.info.class_names, scroll: app.scroll }.render(grid, buf);
}

/// The log, scrolled; errors in red, saves in green.
fn log_lines(app: &App) -> LogLines<'_> {
    let style = |l: &str| {
        if l.starts_with("error") || l.contains("failed") || l.contains("Invalid") {
            Style::new().red()
        } else if l.starts_with("saved") {
            Style::new().green()
        } else {
            Style::new()
        }
    };
    LogLines { log: &app.shell.log, scroll: app.scroll, style }
}

fn render_help_line(app: &App, area: Rect, buf: &mut Buffer) {
    let keys = if app.shell.training() {
        " space pause · +/- lr · tab view · 5 inside · s save · q stop · ? help"
    } else {
        " q quit · tab view · 5 inside · s save · ? help"
    };
    status_line(&app.shell.status, keys).render(area, buf);
}

const HELP: [(&str, &str); 10] = [
    ("space", "pause / resume training"),
    ("+ / -", "double / halve the learning rate"),
    ("tab ← →", "switch panel (1-5 directly)"),
    ("5 ← → l", "inside panel; there ← → image, l layer"),
    ("↑ ↓", "scroll the log or the samples"),
    ("m", "curve marker: half-block, braille, dot, block"),
    ("s", "save the model now (--save or current dir)"),
    ("q", "stop after the current step; again to leave"),
    ("Ctrl-C", "same as q"),
    ("?", "this help (any key closes)"),
];
