//! The dashboard's Inside panel: the first layer's filters (an MLP's first
//! Dense columns), each layer's weight histogram with its mean and standard
//! deviation, and the feature maps of a chosen test image, all from
//! [`crate::inspect`] on the trainer's latest weight snapshot.
//!
//! Grey levels are drawn with half-blocks (two pixels a cell) in true colour
//! where `COLORTERM` says the terminal has it, else on the 256-colour grey
//! ramp; with `NO_COLOR` set, as shade characters (`░▒▓█`) without colour.

use crate::events::Snapshot;
use crate::inspect::{self, Tiles, Views, WeightStats};
use crate::model::Model;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};
use std::sync::Arc;

/// How grey levels reach the terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Palette {
    /// 24-bit `Color::Rgb` greys.
    TrueColor,
    /// The 24 greys of 256-colour terminals.
    Grey256,
    /// No colour (`NO_COLOR`): shade characters.
    NoColor,
}

impl Palette {
    /// From the environment: `NO_COLOR` (non-empty) wins, then `COLORTERM`
    /// `truecolor` / `24bit`, else the 256-colour ramp.
    pub fn detect() -> Palette {
        let var = |k: &str| std::env::var(k).ok();
        Palette::from_env(var("NO_COLOR").as_deref(), var("COLORTERM").as_deref())
    }

    pub fn from_env(no_color: Option<&str>, colorterm: Option<&str>) -> Palette {
        if no_color.is_some_and(|v| !v.is_empty()) {
            Palette::NoColor
        } else if colorterm.is_some_and(|v| v.eq_ignore_ascii_case("truecolor") || v.eq_ignore_ascii_case("24bit")) {
            Palette::TrueColor
        } else {
            Palette::Grey256
        }
    }

    fn colour(self, g: u8) -> Color {
        match self {
            Palette::TrueColor => Color::Rgb(g, g, g),
            _ if g >= 250 => Color::Indexed(231),
            _ => Color::Indexed(232 + (g as u16 * 23 / 255) as u8),
        }
    }
}

/// What the Inside panel shows, and which image and layer are picked.
#[derive(Clone, Debug)]
pub struct Inside {
    pub palette: Palette,
    /// Test images (`rows × cols` u8 each) to pick from, and their labels.
    pub images: Vec<Vec<u8>>,
    pub labels: Vec<u8>,
    pub rows: usize,
    pub cols: usize,
    /// The picked image (←/→) and Conv2D layer (`l`).
    pub image: usize,
    pub layer: usize,
    /// (epoch, step) of the snapshot shown.
    pub at: Option<(usize, usize)>,
    model: Option<Model>,
    pub views: Option<Views>,
    /// The views are older than `model` (computed only while the panel shows).
    stale: bool,
    /// One thread of its own for the feature maps' forward pass, so that
    /// the UI never queues work on the trainer's kernel threads.
    pool: Option<Arc<rayon::ThreadPool>>,
}

impl Inside {
    pub fn new(palette: Palette) -> Inside {
        Inside {
            palette,
            images: Vec::new(),
            labels: Vec::new(),
            rows: 0,
            cols: 0,
            image: 0,
            layer: 0,
            at: None,
            model: None,
            views: None,
            stale: false,
            pool: None,
        }
    }

    /// The test images to pick from.
    pub fn set_images(&mut self, images: Vec<Vec<u8>>, labels: Vec<u8>, rows: usize, cols: usize) {
        (self.images, self.labels, self.rows, self.cols) = (images, labels, rows, cols);
        self.image = 0;
        self.refresh_maps();
    }

    /// A new snapshot of the weights; its views are computed at once where
    /// the panel `shown`, else when it is next shown ([`Inside::show`]).
    pub fn on_snapshot(&mut self, s: Snapshot, shown: bool) {
        let Snapshot { epoch, step, spec, params } = s;
        let Ok(model) = Model::from_params(spec, params) else { return };
        self.at = Some((epoch, step));
        self.model = Some(model);
        self.stale = true;
        if shown {
            self.show();
        }
    }

    /// The panel is shown: brings its views up to the latest snapshot.
    pub fn show(&mut self) {
        if !self.stale {
            return;
        }
        self.stale = false;
        if self.pool.is_none() {
            self.pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().ok().map(Arc::new);
        }
        let Some(model) = &self.model else { return };
        let image = self.images.get(self.image).map(Vec::as_slice);
        let views = || inspect::views(model, image);
        self.views = Some(match &self.pool {
            Some(pool) => pool.install(views),
            None => views(),
        });
    }

    /// The next (`+1`) or previous (`-1`) image, wrapping around.
    pub fn step_image(&mut self, delta: isize) {
        let n = self.images.len();
        if n > 0 {
            self.image = (self.image as isize + delta).rem_euclid(n as isize) as usize;
            self.refresh_maps();
        }
    }

    /// The next Conv2D layer's maps, wrapping around.
    pub fn next_layer(&mut self) {
        let n = self.views.as_ref().map_or(0, |v| v.maps.len());
        self.layer = if n == 0 { 0 } else { (self.layer + 1) % n };
    }

    fn refresh_maps(&mut self) {
        if let (Some(model), Some(views)) = (&self.model, &mut self.views) {
            let maps = || match self.images.get(self.image) {
                Some(image) => inspect::feature_maps(model, image),
                None => Vec::new(),
            };
            views.maps = match &self.pool {
                Some(pool) => pool.install(maps),
                None => maps(),
            };
        }
    }
}

/// The panel, as a widget.
pub struct InsidePanel<'a> {
    pub inside: &'a Inside,
    pub names: &'a [String],
}

/// Width at which the feature maps go beside the filters and histograms.
const SIDE_BY_SIDE: u16 = 110;

impl Widget for InsidePanel<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let s = self.inside;
        let Some(views) = &s.views else {
            Paragraph::new("waiting for the first weights…").dark_gray().render(area, buf);
            return;
        };
        if area.height < 2 || area.width < 4 {
            return;
        }
        let [head, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
        header(s, views, self.names).render(head, buf);
        let stats_height = (views.stats.len() as u16).min(body.height / 3);
        if body.width >= SIDE_BY_SIDE {
            // The weight lines span both columns: a summary and its 24 bars
            // are wider than half a terminal.
            let [top, stats] = Layout::vertical([Constraint::Min(0), Constraint::Length(stats_height)]).areas(body);
            let [filters, maps] = Layout::horizontal([Constraint::Percentage(50); 2]).spacing(1).areas(top);
            render_filters(s, views, filters, buf);
            render_maps(s, views, maps, buf);
            render_stats(&views.stats, s.palette, stats, buf);
        } else {
            let filters_height = titled_height(views.filters.as_ref(), body.width, body.height * 2 / 5);
            let [filters, stats, maps] = Layout::vertical([
                Constraint::Length(filters_height),
                Constraint::Length(stats_height),
                Constraint::Min(0),
            ])
            .areas(body);
            render_filters(s, views, filters, buf);
            render_stats(&views.stats, s.palette, stats, buf);
            render_maps(s, views, maps, buf);
        }
    }
}

fn header<'a>(s: &Inside, views: &Views, names: &[String]) -> Line<'a> {
    let mut spans = vec![Span::raw("Inside").bold()];
    if let Some((epoch, step)) = s.at {
        spans.push(Span::raw(format!("  epoch {epoch} step {step}")).dark_gray());
    }
    if let Some(label) = s.labels.get(s.image) {
        let name = names.get(*label as usize).cloned().unwrap_or_else(|| label.to_string());
        spans.push(Span::raw(format!("  image {} {name}", s.image)));
        spans.push(Span::raw(format!(" ({}/{} ←/→)", s.image + 1, s.images.len())).dark_gray());
    }
    if let Some(m) = views.maps.get(s.layer.min(views.maps.len().saturating_sub(1))) {
        spans.push(Span::raw(format!("  layer {}", m.layer)));
        spans.push(
            Span::raw(format!(" ({}/{} l)", s.layer.min(views.maps.len() - 1) + 1, views.maps.len())).dark_gray(),
        );
    }
    Line::from(spans)
}

fn render_filters(s: &Inside, views: &Views, area: Rect, buf: &mut Buffer) {
    match &views.filters {
        Some(f) => titled_tiles(&format!("{}: {}", f.layer, f.caption), f, s.palette, area, buf),
        None => Line::from("no conv2d or first dense layer to draw").dark_gray().render(area, buf),
    }
}

fn render_maps(s: &Inside, views: &Views, area: Rect, buf: &mut Buffer) {
    if views.maps.is_empty() {
        let why = if s.images.is_empty() {
            "feature maps: no test image to run"
        } else {
            "feature maps: no conv2d layer (an MLP has none; try --arch cnn)"
        };
        Line::from(why).dark_gray().render(area, buf);
        return;
    }
    let m = &views.maps[s.layer.min(views.maps.len() - 1)];
    titled_tiles(&format!("{}: {} (l: next layer)", m.layer, m.caption), m, s.palette, area, buf);
}

/// One line per layer: its summary and its histogram as block characters.
fn render_stats(stats: &[WeightStats], palette: Palette, area: Rect, buf: &mut Buffer) {
    const BARS: [&str; 9] = [" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"];
    let lines: Vec<Line> = stats
        .iter()
        .map(|s| {
            let peak = s.bins.iter().copied().max().unwrap_or(0).max(1);
            let bars: String = s.bins.iter().map(|&b| BARS[(b as usize * 8).div_ceil(peak as usize).min(8)]).collect();
            let bars = Span::raw(bars);
            let bars = if palette == Palette::NoColor { bars } else { bars.cyan() };
            Line::from(vec![Span::raw(format!("{}  ", s.summary())), bars])
        })
        .collect();
    Paragraph::new(lines).render(area, buf);
}

/// How a grid of tiles fits an area: each pixel drawn `up / down` times,
/// `per_row` tiles a row, `shown` of them, each `cw × ch` cells.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Fit {
    up: usize,
    down: usize,
    cw: usize,
    ch: usize,
    per_row: usize,
    shown: usize,
}

impl Fit {
    fn height(&self) -> usize {
        let rows = self.shown.div_ceil(self.per_row.max(1));
        (rows * (self.ch + 1)).saturating_sub(1)
    }
}

/// The largest zoom (×4 down to a seventh of a 28-pixel map) at which all
/// tiles fit `width × height` cells, a column and a row apart; where none
/// does, the smallest, with as many tiles as fit.
fn fit(t: &Tiles, width: usize, height: usize) -> Option<Fit> {
    let n = t.tiles.len();
    if n == 0 || t.width == 0 || t.height == 0 {
        return None;
    }
    let max_down = (t.width.max(t.height) / 7).max(1);
    let zooms = (1..=4).rev().map(|up| (up, 1)).chain((2..=max_down).map(|down| (1, down)));
    let mut last = None;
    for (up, down) in zooms {
        let cw = (t.width * up).div_ceil(down);
        let ch = (t.height * up).div_ceil(down).div_ceil(2);
        let per_row = ((width + 1) / (cw + 1)).min(n);
        if per_row == 0 {
            continue;
        }
        // The tiles' own grid where it fits, else as many a row as fit.
        let per_row = if t.cols <= per_row { t.cols.max(1) } else { per_row };
        let rows_fit = (height + 1) / (ch + 1);
        let f = Fit { up, down, cw, ch, per_row, shown: (rows_fit * per_row).min(n) };
        if f.shown == n {
            return Some(f);
        }
        last = Some(f);
    }
    last.filter(|f| f.shown > 0)
}

/// Rows a title line and the tiles take at most `max_height` rows high.
fn titled_height(t: Option<&Tiles>, width: u16, max_height: u16) -> u16 {
    let tiles = t.and_then(|t| fit(t, width as usize, max_height.saturating_sub(1) as usize));
    1 + tiles.map_or(0, |f| f.height() as u16)
}

/// A title line, then the tiles (with `+N more` where not all fit).
fn titled_tiles(title: &str, t: &Tiles, palette: Palette, area: Rect, buf: &mut Buffer) {
    if area.height == 0 {
        return;
    }
    let Some(f) = fit(t, area.width as usize, area.height.saturating_sub(1) as usize) else {
        let title = format!("{title} · {} not shown: too little room", t.tiles.len());
        Line::from(title).dark_gray().render(area, buf);
        return;
    };
    let more = t.tiles.len() - f.shown;
    let title = if more > 0 { format!("{title} · +{more} more") } else { title.to_string() };
    let [head, grid] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    Line::from(title).dark_gray().render(head, buf);
    for (n, tile) in t.tiles.iter().take(f.shown).enumerate() {
        let x = grid.x as usize + (n % f.per_row) * (f.cw + 1);
        let y = grid.y as usize + (n / f.per_row) * (f.ch + 1);
        draw_tile(tile, t, &f, (x, y), palette, grid, buf);
    }
}

/// One tile at cell (x, y), clipped to `clip`.
fn draw_tile(tile: &[u8], t: &Tiles, f: &Fit, (x, y): (usize, usize), palette: Palette, clip: Rect, buf: &mut Buffer) {
    let (w, h) = ((t.width * f.up).div_ceil(f.down), (t.height * f.up).div_ceil(f.down));
    // The source pixel under zoomed pixel (px, py), if inside.
    let pixel = |px: usize, py: usize| -> Option<u8> {
        let (sx, sy) = (px * f.down / f.up, py * f.down / f.up);
        (py < h && sx < t.width && sy < t.height).then(|| tile.get(sy * t.width + sx).copied().unwrap_or(0))
    };
    for cy in 0..f.ch {
        for cx in 0..f.cw.min(w) {
            let (bx, by) = (x + cx, y + cy);
            if bx >= (clip.x + clip.width) as usize || by >= (clip.y + clip.height) as usize {
                continue;
            }
            let Some(cell) = buf.cell_mut((bx as u16, by as u16)) else { continue };
            let (top, bottom) = (pixel(cx, 2 * cy), pixel(cx, 2 * cy + 1));
            match (palette, top, bottom) {
                (_, None, _) => {
                    cell.set_symbol(" ").set_style(Style::reset());
                }
                (Palette::NoColor, Some(a), b) => {
                    let g = (a as u16 + b.unwrap_or(a) as u16) / 2;
                    let shade = [" ", "░", "▒", "▓", "█"][(g as usize * 5 / 256).min(4)];
                    cell.set_symbol(shade).set_style(Style::reset());
                }
                (_, Some(a), None) => {
                    cell.set_symbol("▀").set_style(Style::reset().fg(palette.colour(a)));
                }
                (_, Some(a), Some(b)) => {
                    cell.set_symbol("▀").set_style(Style::reset().fg(palette.colour(a)).bg(palette.colour(b)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_wins_then_colorterm() {
        assert_eq!(Palette::from_env(Some("1"), Some("truecolor")), Palette::NoColor);
        assert_eq!(Palette::from_env(Some(""), Some("truecolor")), Palette::TrueColor, "empty NO_COLOR is unset");
        assert_eq!(Palette::from_env(None, Some("24bit")), Palette::TrueColor);
        assert_eq!(Palette::from_env(None, None), Palette::Grey256);
        assert_eq!(Palette::TrueColor.colour(7), Color::Rgb(7, 7, 7));
        assert_eq!(Palette::Grey256.colour(255), Color::Indexed(231));
        assert_eq!(Palette::Grey256.colour(0), Color::Indexed(232));
    }

    fn tiles(n: usize, size: usize, cols: usize) -> Tiles {
        Tiles {
            layer: "conv2d".into(),
            caption: String::new(),
            height: size,
            width: size,
            rows: n.div_ceil(cols),
            cols,
            tiles: vec![vec![128; size * size]; n],
        }
    }

    #[test]
    fn tiles_fit_at_the_largest_zoom_that_shows_them_all() {
        // 32 filters 3×3 on 98 columns: ×2 (6×3 cells) in the 2×16 grid needs 111 columns; ×1 fits.
        let f = fit(&tiles(32, 3, 16), 98, 10).unwrap();
        assert_eq!((f.up, f.down, f.cw, f.ch, f.per_row, f.shown), (1, 1, 3, 2, 16, 32));
        // 32 maps 28×28 in 60×20: a quarter (7×4 cells), not all of them.
        let f = fit(&tiles(32, 28, 8), 60, 20).unwrap();
        assert_eq!((f.down, f.cw, f.ch, f.per_row), (4, 7, 4, 7));
        assert_eq!(f.shown, 28);
        assert!(f.height() <= 20);
        assert_eq!(fit(&tiles(4, 28, 2), 3, 3), None, "not one fits");
    }
}
