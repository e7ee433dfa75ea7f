//! Drawing the compare dashboard: header, progress, the curves of every
//! configuration overlaid (one colour and legend entry each), the results
//! table, the log pane and the help line. Never panics on a small terminal.

use super::app::finish_text;
use super::compare::CompareApp;
use super::shell::Status;
use super::ui::clock;
use super::widgets::{axes, chart_pair, gauge, render_help_overlay, render_log_pane, status_line, y_bounds, LogLines};
use crate::compare::RunResult;
use crate::events::FinishReason;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Chart, Dataset, GraphType, Paragraph, Row, Table, Widget};

/// One colour per configuration (cycled past the end).
const PALETTE: [Color; 8] =
    [Color::Cyan, Color::Yellow, Color::Green, Color::Magenta, Color::LightRed, Color::Blue, Color::White, Color::Red];
/// Height at which the log gets its own pane.
const LOG_PANE_MIN_HEIGHT: u16 = 30;

/// Configuration `index`'s colour.
pub fn color(index: usize) -> Color {
    PALETTE[index % PALETTE.len()]
}

impl Widget for &CompareApp {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let n = self.info.names.len() as u16;
        let gauges_height = if area.height < 16 { 1 } else { 2 };
        let log_height = if area.height >= LOG_PANE_MIN_HEIGHT { 6 } else { 0 };
        // Borders around the table where there is room for them.
        let bordered = area.height >= 20;
        let table_height = n + 1 + if bordered { 2 } else { 0 };
        let [header, gauges, curves, table, log, help] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(gauges_height),
            Constraint::Min(0),
            Constraint::Length(table_height),
            Constraint::Length(log_height),
            Constraint::Length(1),
        ])
        .areas(area);
        render_header(self, header, buf);
        render_gauges(self, gauges, buf);
        render_curves(self, curves, buf);
        render_table(self, table, bordered, buf);
        if log_height > 0 {
            render_log_pane(log_lines(self), log, buf);
        }
        render_help_line(self, help, buf);
        if self.shell.show_help {
            render_help_overlay(&HELP, 72, area, buf);
        }
    }
}

fn render_header(app: &CompareApp, area: Rect, buf: &mut Buffer) {
    let i = &app.info;
    let n = i.names.len();
    let mut spans = vec![Span::raw("simdnet compare ").cyan().bold()];
    let items = [
        ("", format!("{n} configuration{}", if n == 1 { "" } else { "s" })),
        ("epochs", i.epochs.to_string()),
        ("batch", i.batch_size.to_string()),
        ("threads", i.threads.to_string()),
        ("isa", i.isa.clone()),
        ("data", i.data.clone()),
    ];
    for (key, value) in items {
        if !key.is_empty() {
            spans.push(Span::raw(format!("  {key} ")).dark_gray());
        }
        spans.push(Span::raw(value).bold());
    }
    Line::from(spans).render(area, buf);
}

fn render_gauges(app: &CompareApp, area: Rect, buf: &mut Buffer) {
    let n = app.info.names.len();
    let (done, ratio) = app.overall();
    let state = match &app.shell.status {
        Status::Paused => " (paused)",
        Status::Stopping => " stopping…",
        Status::Done(_) => " done",
        _ => "",
    };
    let all =
        format!("All {:>3.0}%  {done}/{n} done  elapsed {}{state} ", ratio * 100.0, clock(app.elapsed().as_secs_f64()));
    let current = match (app.current, &app.progress) {
        (Some(c), Some(p)) if app.shell.training() || app.shell.status == Status::Stopping => Some((c, p)),
        _ => None,
    };
    let (label, step_ratio, c) = match current {
        Some((c, p)) => (
            format!(
                "Config {}/{n} {}  epoch {}/{} step {}/{} ",
                c + 1,
                app.name(c),
                p.epoch,
                p.epochs,
                p.step,
                p.steps
            ),
            p.step as f64 / p.steps.max(1) as f64,
            color(c),
        ),
        None => match app.current {
            Some(c) if app.shell.training() => {
                (format!("Config {}/{n} {} starting… ", c + 1, app.name(c)), 0.0, color(c))
            }
            _ if app.shell.trainer_done() => ("Finished ".into(), 1.0, Color::Green),
            _ => ("Loading… ".into(), 0.0, Color::DarkGray),
        },
    };
    if area.height >= 2 {
        let rows = Layout::vertical([Constraint::Length(1); 2]).split(area);
        gauge(label, step_ratio, c).render(rows[0], buf);
        gauge(all, ratio, Color::Green).render(rows[1], buf);
    } else {
        let short = match current {
            Some((c, p)) => format!("{}/{n} e{}/{} {:>3.0}%{state} ", c + 1, p.epoch, p.epochs, ratio * 100.0),
            None => format!("{done}/{n} {:>3.0}%{state} ", ratio * 100.0),
        };
        gauge(short, ratio, Color::Green).render(area, buf);
    }
}

/// A configuration's name without the flag names (`optimizer=sgd lr=0.1` →
/// `sgd 0.1`), for narrow terminals.
pub fn short_name(name: &str) -> String {
    name.split_whitespace().map(|part| part.split_once('=').map_or(part, |(_, v)| v)).collect::<Vec<_>>().join(" ")
}

/// The names to show where `width` columns are left for one: in full if
/// they all fit, else without the flag names.
fn names(app: &CompareApp, width: usize) -> Vec<String> {
    let full = app.info.names.iter().all(|n| n.chars().count() <= width);
    app.info.names.iter().map(|n| if full { n.clone() } else { short_name(n) }).collect()
}

/// The legend: a coloured `■ name` per configuration, packed into lines of
/// `width` (an entry is split only when it alone is wider).
fn legend(app: &CompareApp, names: &[String], width: u16) -> Vec<Line<'static>> {
    let mut lines = vec![Line::default()];
    for (i, name) in names.iter().enumerate() {
        let entry = format!("■ {name}");
        let line = lines.last_mut().expect("one line at least");
        if line.width() > 0 && line.width() + 2 + entry.chars().count() > width as usize {
            lines.push(Line::default());
        }
        let line = lines.last_mut().expect("one line at least");
        if line.width() > 0 {
            line.push_span(Span::raw("  "));
        }
        let mut style = Style::new().fg(color(i));
        if app.current == Some(i) && app.shell.training() {
            style = style.add_modifier(Modifier::BOLD);
        }
        line.push_span(Span::styled(entry, style));
    }
    lines
}

fn render_curves(app: &CompareApp, area: Rect, buf: &mut Buffer) {
    if area.height < 3 || area.width < 4 {
        return;
    }
    let block = Block::bordered().title(Line::from(" Curves (validation per epoch; dotted: training loss) ").bold());
    let inner = block.inner(area);
    block.render(area, buf);
    let room = (inner.height / 3).max(1) as usize;
    let mut legend = legend(app, &app.info.names, inner.width);
    if legend.len() > room {
        let short: Vec<String> = app.info.names.iter().map(|n| short_name(n)).collect();
        legend = self::legend(app, &short, inner.width);
    }
    let legend_height = legend.len().min(room) as u16;
    let [legend_area, charts] = Layout::vertical([Constraint::Length(legend_height), Constraint::Min(0)]).areas(inner);
    Paragraph::new(legend).render(legend_area, buf);
    if charts.height < 2 {
        return;
    }
    if app.series.iter().all(|s| s.train_loss.is_empty() && s.epochs.is_empty()) {
        Paragraph::new("waiting for the first steps…").dark_gray().render(charts, buf);
        return;
    }
    let loss: Vec<Vec<(f64, f64)>> = app.series.iter().map(|s| s.val_loss()).collect();
    let accuracy: Vec<Vec<(f64, f64)>> = app.series.iter().map(|s| s.val_accuracy()).collect();
    // The running configuration's smoothed training loss.
    let train =
        app.current.filter(|_| app.shell.training()).and_then(|c| Some((c, app.series.get(c)?.train_loss.as_slice())));
    let epochs = app.info.epochs.max(1) as f64;
    let loss_chart = Overlay { title: "val_loss", curves: &loss, train, accuracy: false };
    let acc_chart = Overlay { title: "val_accuracy", curves: &accuracy, train: None, accuracy: true };
    let (first, second) = chart_pair(charts, 2);
    loss_chart.render(epochs, first, buf);
    if let Some(second) = second {
        acc_chart.render(epochs, second, buf);
    }
}

/// One chart overlaying every configuration's curve of one metric.
struct Overlay<'a> {
    title: &'a str,
    /// Per configuration, (epoch, value) points.
    curves: &'a [Vec<(f64, f64)>],
    /// (configuration, points) of a training curve drawn dotted.
    train: Option<(usize, &'a [(f64, f64)])>,
    accuracy: bool,
}

impl Overlay<'_> {
    fn render(&self, epochs: f64, area: Rect, buf: &mut Buffer) {
        let train_points = self.train.map_or(&[][..], |t| t.1);
        let bounds = y_bounds(self.curves.iter().flatten().chain(train_points).map(|p| p.1), self.accuracy);
        let mut datasets = Vec::new();
        if let Some((c, points)) = self.train {
            datasets.push(
                Dataset::default()
                    .marker(Marker::Dot)
                    .graph_type(GraphType::Line)
                    .style(Style::new().fg(color(c)).add_modifier(Modifier::DIM))
                    .data(points),
            );
        }
        for (i, points) in self.curves.iter().enumerate() {
            if points.is_empty() {
                continue;
            }
            let style = Style::new().fg(color(i));
            datasets
                .push(Dataset::default().marker(Marker::Braille).graph_type(GraphType::Line).style(style).data(points));
            // A single epoch has no line: mark the points.
            datasets.push(
                Dataset::default().marker(Marker::Block).graph_type(GraphType::Scatter).style(style).data(points),
            );
        }
        let [x_axis, y_axis] = axes(epochs, bounds, self.accuracy);
        Chart::new(datasets)
            .block(Block::new().title(Line::from(self.title).bold()))
            .x_axis(x_axis)
            .y_axis(y_axis)
            .legend_position(None)
            .render(area, buf);
    }
}

fn render_table(app: &CompareApp, area: Rect, bordered: bool, buf: &mut Buffer) {
    if area.height == 0 {
        return;
    }
    let (labels, digits): ([&str; 5], usize) = if area.width >= 70 {
        (["configuration", "val_accuracy", "val_loss", "test_accuracy", "epoch_time"], 4)
    } else if area.width >= 56 {
        (["config", "val_acc", "val_loss", "test_acc", "s/epoch"], 4)
    } else {
        (["config", "v.acc", "v.loss", "t.acc", "s/ep"], 3)
    };
    let num = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.digits$}"));
    let best = app.best();
    let fixed: usize = labels[1..].iter().map(|l| l.len() + 1).sum::<usize>() + if bordered { 2 } else { 0 };
    let note = |r: &RunResult| match &r.history.finish {
        FinishReason::Completed => String::new(),
        reason => format!(" ({})", finish_text(reason)),
    };
    let longest_note = app.results.iter().flatten().map(|r| note(r).chars().count()).max().unwrap_or(0);
    // The name column, less the colour marker and the result note.
    let names = names(app, (area.width as usize).saturating_sub(fixed + 2 + longest_note));
    let rows: Vec<Row> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let marker = Span::styled("■ ", Style::new().fg(color(i)));
            let (cells, style) = match &app.results[i] {
                Some(r) => {
                    let note = note(r);
                    let style = if best == Some(i) { Style::new().black().on_green().bold() } else { Style::new() };
                    let cells = [
                        format!("{name}{note}"),
                        num(r.val_accuracy),
                        num(r.val_loss),
                        num(r.test_accuracy),
                        format!("{:.digits$}s", r.epoch_seconds, digits = digits - 2),
                    ];
                    (cells, style)
                }
                None => {
                    let state =
                        if app.current == Some(i) && (app.shell.training() || app.shell.status == Status::Stopping) {
                            ["running…", "run…"]
                        } else if app.shell.trainer_done() {
                            ["skipped", "skip"]
                        } else {
                            ["waiting", "wait"]
                        };
                    // The long word where the column has room for it.
                    let state = state[usize::from(labels[1].len() < 8)];
                    let cells = [name.clone(), state.into(), String::new(), String::new(), String::new()];
                    (cells, Style::new().dark_gray())
                }
            };
            let [name, a, b, c, d] = cells;
            Row::new([
                Cell::from(Line::from(vec![marker, Span::raw(name)])),
                Cell::from(Line::from(a).right_aligned()),
                Cell::from(Line::from(b).right_aligned()),
                Cell::from(Line::from(c).right_aligned()),
                Cell::from(Line::from(d).right_aligned()),
            ])
            .style(style)
        })
        .collect();
    let header = Row::new(labels.iter().enumerate().map(|(k, l)| {
        let line = Line::from(*l);
        Cell::from(if k == 0 { line } else { line.right_aligned() })
    }))
    .style(Style::new().bold().dark_gray());
    let widths = [
        Constraint::Fill(1),
        Constraint::Length(labels[1].len() as u16),
        Constraint::Length(labels[2].len() as u16),
        Constraint::Length(labels[3].len() as u16),
        Constraint::Length(labels[4].len() as u16),
    ];
    let mut table = Table::new(rows, widths).header(header).column_spacing(1);
    if bordered {
        table = table.block(Block::bordered().title(" Results (best val_accuracy highlighted) "));
    }
    Widget::render(table, area, buf);
}

/// The latest log lines; errors in red.
fn log_lines(app: &CompareApp) -> LogLines<'_> {
    let style =
        |l: &str| if l.starts_with("error") || l.contains("failed") { Style::new().red() } else { Style::new() };
    LogLines { log: &app.shell.log, scroll: 0, style }
}

fn render_help_line(app: &CompareApp, area: Rect, buf: &mut Buffer) {
    let keys =
        if app.shell.training() { " space pause · q stop (skips the rest) · ? help" } else { " q quit · ? help" };
    let mut line = status_line(&app.shell.status, keys);
    if let Status::Done(Some(e)) = &app.shell.status {
        line.push_span(Span::raw(format!("  failed: {e}")).red());
    }
    line.render(area, buf);
}

const HELP: [(&str, &str); 4] = [
    ("space", "pause / resume training"),
    ("q", "stop after the current step, skip the rest; again to leave"),
    ("Ctrl-C", "same as q"),
    ("?", "this help (any key closes)"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Event;
    use crate::tui::compare::tests::{epoch, info, result};
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn screen(app: &CompareApp, width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|f| f.render_widget(app, f.area())).unwrap();
        let buffer = terminal.backend().buffer();
        (0..height)
            .map(|y| (0..width).map(|x| buffer[(x, y)].symbol().to_string()).collect::<String>() + "\n")
            .collect()
    }

    /// `n` configurations, the first `finished` done, the next one mid-run.
    fn app(n: usize, finished: usize) -> CompareApp {
        let mut app = CompareApp::new(info(n));
        for i in 0..finished.min(n) {
            app.on_begin(i, "header");
            app.on_event(i, Event::Epoch(epoch(1, 0.9 - 0.1 * i as f64, 0.6 + 0.05 * i as f64)));
            app.on_event(i, Event::Epoch(epoch(2, 0.8 - 0.1 * i as f64, 0.7 + 0.05 * i as f64)));
            let name = app.info.names[i].clone();
            app.on_result(i, result(&name, 0.7 + 0.05 * i as f64, FinishReason::Completed));
        }
        if finished < n {
            app.on_begin(finished, "header");
            app.on_event(finished, Event::Epoch(epoch(1, 0.7, 0.75)));
        }
        app
    }

    #[test]
    fn renders_legend_and_table_at_80x24() {
        for n in 2..=4 {
            let app = app(n, n - 1);
            let s = screen(&app, 80, 24);
            assert!(s.contains("simdnet compare") && s.contains(&format!("{n} configurations")), "{s}");
            for name in &app.info.names {
                assert!(s.matches(name.as_str()).count() >= 2, "{name} in the legend and the table:\n{s}");
            }
            assert!(s.contains("val_accuracy") && s.contains("test_accuracy") && s.contains("epoch_time"), "{s}");
            assert!(s.contains("running…"), "{s}");
            // The best finished row's value (n − 2 finished rows of 0.7 + 0.05 i).
            assert!(s.contains(&format!("{:.4}", 0.7 + 0.05 * (n - 2) as f64)), "{s}");
            assert!(s.contains("val_loss") && s.contains(&format!("Config {n}/{n}")), "{s}");
        }
    }

    #[test]
    fn best_row_is_highlighted() {
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
        let app = app(3, 3);
        terminal.draw(|f| f.render_widget(&app, f.area())).unwrap();
        let buffer = terminal.backend().buffer();
        let best = &app.info.names[2];
        let row = (0..24)
            .find(|&y| {
                let line: String = (0..80).map(|x| buffer[(x, y)].symbol().to_string()).collect();
                line.contains(best.as_str()) && line.contains("0.8000")
            })
            .expect("the best row");
        assert_eq!(buffer[(40, row)].bg, Color::Green, "highlighted");
        let other = (0..24)
            .find(|&y| {
                let line: String = (0..80).map(|x| buffer[(x, y)].symbol().to_string()).collect();
                line.contains(app.info.names[0].as_str()) && line.contains("0.7000")
            })
            .expect("another row");
        assert_ne!(buffer[(40, other)].bg, Color::Green);
    }

    #[test]
    fn renders_small_terminals_without_panic() {
        for n in 2..=4 {
            for finished in 0..=n {
                let mut a = app(n, finished);
                let s = screen(&a, 40, 12);
                assert!(s.contains("v.acc") && s.contains("t.acc") && s.contains("s/ep"), "{s}");
                // The configurations stay apart (without the flag names where narrow).
                let table: Vec<&str> = s.lines().skip_while(|l| !l.starts_with("config ")).collect();
                assert!(table.iter().any(|l| l.starts_with("■ sgd") || l.starts_with("■ optimizer=sgd")), "{s}");
                assert!(table.iter().any(|l| l.starts_with("■ adam") || l.starts_with("■ optimizer=adam")), "{s}");
                if finished < n {
                    assert!(s.contains("run…"), "{s}");
                }
                let s = screen(&a, 60, 20);
                assert!(s.contains("val_acc") && s.contains("test_acc"), "{s}");
                a.shell.show_help = true;
                for (w, h) in [(40, 12), (20, 5), (1, 1), (200, 60)] {
                    screen(&a, w, h);
                }
                a.on_trainer_done(None);
                let s = screen(&a, 80, 24);
                assert!(s.contains(" done "), "{s}");
                if finished < n {
                    assert!(s.contains("skipped"), "{s}");
                }
            }
        }
    }

    #[test]
    fn short_names_drop_the_flag_names() {
        assert_eq!(short_name("optimizer=sgd"), "sgd");
        assert_eq!(short_name("dropout=0.3 optimizer=sgd+nesterov lr=0.1"), "0.3 sgd+nesterov 0.1");
        assert_eq!(short_name("plain"), "plain");
    }

    #[test]
    fn waits_before_the_first_step() {
        let app = CompareApp::new(info(2));
        let s = screen(&app, 80, 24);
        assert!(s.contains("waiting for the first steps") && s.contains("Loading"), "{s}");
    }
}
