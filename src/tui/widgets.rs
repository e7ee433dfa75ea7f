//! The dashboards' own widgets: the confusion matrix and the half-block
//! image grid of sample predictions, and the pieces both dashboards draw
//! alike: gauges, chart axes and layout, the log, the status line and the
//! help overlay.

use super::shell::Status;
use crate::events::{Confusion as Matrix, SamplePrediction};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Borders, Clear, LineGauge, Paragraph, Widget};
use std::collections::VecDeque;

/// How many off-diagonal cells are highlighted as the most confused.
const MOST_CONFUSED: usize = 3;

/// `counts[true][predicted]` with class names, per-class accuracy and the
/// most-confused pairs highlighted.
pub struct Confusion<'a> {
    pub confusion: &'a Matrix,
    pub names: &'a [String],
}

fn name(names: &[String], c: usize) -> String {
    names.get(c).cloned().unwrap_or_else(|| c.to_string())
}

/// At most `width` characters of `s`.
fn fit(s: &str, width: usize) -> String {
    s.chars().take(width).collect()
}

impl Widget for Confusion<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let m = self.confusion;
        let k = m.classes;
        let max = m.counts.iter().copied().max().unwrap_or(0);
        let cell = (max.max(1).ilog10() as usize + 2).max(k.saturating_sub(1).to_string().len() + 1).max(3);
        let longest = (0..k).map(|c| name(self.names, c).chars().count()).max().unwrap_or(1);
        let index_width = k.saturating_sub(1).to_string().len();
        // Row label "3 Dress", shortened when the matrix would not fit.
        let room = (area.width as usize).saturating_sub(k * cell + 8);
        let numbered = (0..k).any(|c| name(self.names, c) != c.to_string());
        let want = if numbered { index_width + 1 + longest } else { index_width };
        let label = want.max(9).min(room.max(index_width)).max(1);
        let confused = m.most_confused(MOST_CONFUSED);
        let accuracy = m.per_class_accuracy();
        let mut lines = Vec::with_capacity(k + 3);
        let mut head = vec![Span::raw(format!("{:<label$}", fit("true\\pred", label))).dark_gray()];
        head.extend((0..k).map(|p| Span::raw(format!("{p:>cell$}")).dark_gray()));
        head.push(Span::raw("     acc").dark_gray());
        lines.push(Line::from(head));
        for (t, acc) in accuracy.iter().enumerate() {
            let row_name = if numbered { format!("{t} {}", name(self.names, t)) } else { t.to_string() };
            let mut row = vec![Span::raw(format!("{:<label$}", fit(&row_name, label)))];
            for p in 0..k {
                let n = m.get(t, p);
                let style = if t == p {
                    Style::new().fg(Color::Green).add_modifier(Modifier::BOLD)
                } else if confused.iter().any(|&(ct, cp, _)| (ct, cp) == (t, p)) {
                    Style::new().fg(Color::White).bg(Color::Red).add_modifier(Modifier::BOLD)
                } else if n == 0 {
                    Style::new().fg(Color::DarkGray)
                } else {
                    Style::new()
                };
                row.push(Span::styled(format!("{n:>cell$}"), style));
            }
            let acc = match acc {
                Some(a) => format!("  {:>5.1}%", a * 100.0),
                None => "       -".into(),
            };
            row.push(Span::raw(acc).bold());
            lines.push(Line::from(row));
        }
        let total = m.total();
        let correct: u32 = (0..k).map(|c| m.get(c, c)).sum();
        let mut footer =
            vec![Span::raw(format!("accuracy {:.2}% of {total}", 100.0 * correct as f64 / total.max(1) as f64)).bold()];
        if !confused.is_empty() {
            footer.push(Span::raw(" · most confused: ").dark_gray());
            for (i, &(t, p, n)) in confused.iter().enumerate() {
                if i > 0 {
                    footer.push(Span::raw(", ").dark_gray());
                }
                footer.push(Span::raw(format!("{}→{} {n}", name(self.names, t), name(self.names, p))).red());
            }
        }
        lines.push(Line::from(footer));
        Paragraph::new(lines).wrap(ratatui::widgets::Wrap { trim: false }).render(area, buf);
    }
}

/// Test images in half-block characters (two pixels a cell), with predicted
/// label, confidence and true label; rows scrolled by `scroll`.
pub struct ImageGrid<'a> {
    pub samples: &'a [SamplePrediction],
    pub names: &'a [String],
    pub scroll: usize,
}

/// Pixels below this are drawn as background (keeps the shapes readable
/// without colours, e.g. in a text capture).
const DARK: u8 = 40;

fn gray(v: u8) -> Color {
    // The 24-step grey ramp of 256-colour terminals, white at the top.
    if v >= 250 {
        Color::Indexed(231)
    } else {
        Color::Indexed(232 + (v as u16 * 23 / 255) as u8)
    }
}

impl Widget for ImageGrid<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let Some(first) = self.samples.first() else { return };
        let (rows, cols) = (first.rows.max(1), first.cols.max(1));
        // Integer downscale so that one image plus its label line fit.
        let mut scale = 1;
        while scale < rows.max(cols)
            && (cols.div_ceil(scale) > area.width as usize
                || rows.div_ceil(scale).div_ceil(2) + 1 > area.height as usize)
        {
            scale += 1;
        }
        let (w, h) = (cols.div_ceil(scale), rows.div_ceil(scale).div_ceil(2) + 1);
        let cell_w = (w.max(14) + 1) as u16;
        let per_row = (area.width / cell_w).max(1) as usize;
        let visible_rows = (area.height as usize / h).max(1);
        let total_rows = self.samples.len().div_ceil(per_row);
        let skip = self.scroll.min(total_rows.saturating_sub(visible_rows)) * per_row;
        for (n, s) in self.samples.iter().skip(skip).enumerate() {
            let (gx, gy) = ((n % per_row) as u16 * cell_w, (n / per_row * h) as u16);
            if gy as usize + h > area.height as usize {
                break;
            }
            let (x0, y0) = (area.x + gx, area.y + gy);
            draw_image(s, scale, x0, y0, buf);
            let right = s.truth == s.predicted;
            let (mark, color) = if right { ("✓", Color::Green) } else { ("✗", Color::Red) };
            let class = |c: usize| self.names.get(c).map_or("?", |n| n.as_str());
            let mut label =
                vec![Span::raw(format!("{mark} {} {:.0}%", class(s.predicted), s.confidence * 100.0)).fg(color).bold()];
            if !right {
                label.push(Span::raw(format!(" true {}", class(s.truth))).dark_gray());
            }
            buf.set_line(x0, y0 + (h - 1) as u16, &Line::from(label), cell_w - 1);
        }
    }
}

fn draw_image(s: &SamplePrediction, scale: usize, x0: u16, y0: u16, buf: &mut Buffer) {
    let pixel = |r: usize, c: usize| -> u8 {
        if r < s.rows && c < s.cols {
            s.pixels.get(r * s.cols + c).copied().unwrap_or(0)
        } else {
            0
        }
    };
    let (w, h) = (s.cols.div_ceil(scale), s.rows.div_ceil(scale));
    for cy in 0..h.div_ceil(2) {
        for cx in 0..w {
            let top = pixel(2 * cy * scale, cx * scale);
            let bottom = pixel((2 * cy + 1) * scale, cx * scale);
            let Some(cell) = buf.cell_mut((x0 + cx as u16, y0 + cy as u16)) else { continue };
            match (top >= DARK, bottom >= DARK) {
                (false, false) => {
                    cell.set_symbol(" ").set_style(Style::reset());
                }
                (true, false) => {
                    cell.set_symbol("▀").set_style(Style::reset().fg(gray(top)));
                }
                (false, true) => {
                    cell.set_symbol("▄").set_style(Style::reset().fg(gray(bottom)));
                }
                (true, true) => {
                    cell.set_symbol("▀").set_style(Style::reset().fg(gray(top)).bg(gray(bottom)));
                }
            }
        }
    }
}

/// A one-line progress gauge: `label`, then a bar filled to `ratio` in `color`.
pub fn gauge(label: String, ratio: f64, color: Color) -> LineGauge<'static> {
    LineGauge::default()
        .label(label)
        .ratio(ratio.clamp(0.0, 1.0))
        .filled_symbol("━")
        .unfilled_symbol("─")
        .filled_style(Style::new().fg(color))
        .unfilled_style(Style::new().fg(Color::DarkGray))
}

/// The y range of a chart of `values`: accuracy from the tenth below the
/// lowest to 1; a loss from just under the lowest (the late, small gains stay
/// visible) to just over the highest.
pub fn y_bounds(values: impl Iterator<Item = f64>, accuracy: bool) -> (f64, f64) {
    let values = values.filter(|v| v.is_finite());
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if accuracy {
        let lo = if lo.is_finite() { (lo * 10.0).floor() / 10.0 } else { 0.0 };
        (lo.clamp(0.0, 0.9), 1.0)
    } else {
        let hi = if hi.is_finite() && hi > 0.0 { hi * 1.05 } else { 1.0 };
        let lo = if lo.is_finite() && lo < hi { (lo * 0.9).max(0.0) } else { 0.0 };
        (lo, hi)
    }
}

/// The x axis (0 to `epochs`) and the y axis (`lo` to `hi`) of a metric's
/// chart, each labelled at both ends and the middle.
pub fn axes(epochs: f64, (lo, hi): (f64, f64), accuracy: bool) -> [Axis<'static>; 2] {
    let fmt = |v: f64| if accuracy { format!("{v:.2}") } else { format!("{v:.3}") };
    let x_labels = [Span::raw("0"), Span::raw(format!("{}", epochs / 2.0)), Span::raw(format!("{epochs}"))];
    [
        Axis::default().bounds([0.0, epochs]).labels(x_labels).style(Style::new().dark_gray()),
        Axis::default()
            .bounds([lo, hi])
            .labels([Span::raw(fmt(lo)), Span::raw(fmt((lo + hi) / 2.0)), Span::raw(fmt(hi))])
            .style(Style::new().dark_gray()),
    ]
}

/// Where a pair of charts goes: side by side (`spacing` apart) where `area`
/// is 60 columns wide, else one over the other where it is 12 rows high,
/// else only the first.
pub fn chart_pair(area: Rect, spacing: u16) -> (Rect, Option<Rect>) {
    if area.width >= 60 {
        let [l, r] = Layout::horizontal([Constraint::Percentage(50); 2]).spacing(spacing).areas(area);
        (l, Some(r))
    } else if area.height >= 12 {
        let [t, b] = Layout::vertical([Constraint::Percentage(50); 2]).areas(area);
        (t, Some(b))
    } else {
        (area, None)
    }
}

/// The latest log lines that fit, `scroll` lines up from the end, each
/// styled by `style`.
pub struct LogLines<'a> {
    pub log: &'a VecDeque<String>,
    pub scroll: usize,
    pub style: fn(&str) -> Style,
}

impl Widget for LogLines<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let height = area.height as usize;
        let log = self.log;
        let end = log.len().saturating_sub(self.scroll.min(log.len().saturating_sub(height)));
        let start = end.saturating_sub(height);
        let lines: Vec<Line> = log.range(start..end).map(|l| Line::styled(l.as_str(), (self.style)(l))).collect();
        Paragraph::new(lines).render(area, buf);
    }
}

/// The log pane under the panels: a ` Log ` rule over the lines.
pub fn render_log_pane(lines: LogLines, area: Rect, buf: &mut Buffer) {
    let block = Block::new().borders(Borders::TOP).title(" Log ");
    let inner = block.inner(area);
    block.render(area, buf);
    lines.render(inner, buf);
}

/// The bottom line: where the run stands, as a coloured badge, then `keys`.
pub fn status_line<'a>(status: &Status, keys: &'a str) -> Line<'a> {
    let (state, style) = match status {
        Status::Starting | Status::Running => ("running", Style::new().black().on_green()),
        Status::Paused => ("paused", Style::new().black().on_yellow()),
        Status::Stopping => ("stopping", Style::new().black().on_yellow()),
        Status::Finished(_) => ("finishing", Style::new().black().on_yellow()),
        Status::Done(None) => ("done", Style::new().black().on_cyan()),
        Status::Done(Some(_)) => ("error", Style::new().white().on_red()),
    };
    Line::from(vec![
        Span::styled(format!(" {state} "), style.add_modifier(Modifier::BOLD)),
        Span::raw(keys).dark_gray(),
    ])
}

/// The `?` overlay: one line per (keys, what they do), centred, `width` wide at most.
pub fn render_help_overlay(help: &[(&str, &str)], width: u16, area: Rect, buf: &mut Buffer) {
    let width = width.min(area.width);
    let height = (help.len() as u16 + 2).min(area.height);
    let popup = Rect { x: area.x + (area.width - width) / 2, y: area.y + (area.height - height) / 2, width, height };
    Clear.render(popup, buf);
    let lines: Vec<Line> = help
        .iter()
        .map(|(k, v)| Line::from(vec![Span::raw(format!(" {k:<8} ")).cyan().bold(), Span::raw(*v)]))
        .collect();
    Paragraph::new(lines).block(Block::bordered().title(" Keys ")).render(popup, buf);
}
