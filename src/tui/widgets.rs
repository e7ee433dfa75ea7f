//! The dashboard's own widgets: the confusion matrix and the half-block
//! image grid of sample predictions.

use crate::events::{Confusion as Matrix, SamplePrediction};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

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
        ratatui::widgets::Paragraph::new(lines).wrap(ratatui::widgets::Wrap { trim: false }).render(area, buf);
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
