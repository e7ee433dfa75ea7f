//! Pictures as PNG files: an RGB raster with rectangles, lines and a small
//! bitmap font, drawn into from [`crate::inspect`]'s views (filter and
//! feature-map grids, weight histograms) and from a metrics file's curves,
//! then encoded with the `png` crate and written atomically.

use crate::atomic::write_atomic;
use crate::error::{Error, Result};
use crate::inspect::{Tiles, WeightStats};
use std::path::Path;

pub type Rgb = [u8; 3];

const WHITE: Rgb = [255, 255, 255];
const BLACK: Rgb = [0, 0, 0];
const AXIS: Rgb = [90, 90, 90];
/// Between the tiles of a grid: a pale blue, unlike any grey of a picture.
const GAP_COLOUR: Rgb = [200, 215, 235];
const BAR: Rgb = [70, 110, 170];
const ZERO_LINE: Rgb = [200, 60, 60];
/// Training and validation curves (matplotlib's first two colours).
pub const TRAIN: Rgb = [31, 119, 180];
pub const VAL: Rgb = [255, 127, 14];

/// Pixels between the tiles of a grid and around it.
pub const TILE_GAP: usize = 2;
/// Each tile is scaled up to about this many pixels (3×3 filters: ×8).
const TILE_TARGET: usize = 112;
/// The font's glyph size in font pixels, and the scale it is drawn at.
const GLYPH_W: usize = 3;
const GLYPH_H: usize = 5;
const TEXT_SCALE: usize = 2;

/// An RGB image, row-major, 3 bytes a pixel.
#[derive(Clone, Debug, PartialEq)]
pub struct Raster {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

impl Raster {
    /// A `width × height` raster (at least 1×1) filled with `background`.
    pub fn new(width: usize, height: usize, background: Rgb) -> Raster {
        let (width, height) = (width.max(1), height.max(1));
        Raster { width, height, rgb: background.repeat(width * height) }
    }

    /// Sets one pixel; outside the raster, nothing.
    pub fn set(&mut self, x: i64, y: i64, c: Rgb) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            let i = 3 * (y as usize * self.width + x as usize);
            self.rgb[i..i + 3].copy_from_slice(&c);
        }
    }

    pub fn get(&self, x: usize, y: usize) -> Rgb {
        let i = 3 * (y * self.width + x);
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    pub fn fill_rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: Rgb) {
        for yy in y.max(0)..(y + h).min(self.height as i64) {
            for xx in x.max(0)..(x + w).min(self.width as i64) {
                self.set(xx, yy, c);
            }
        }
    }

    /// A line `thickness` pixels wide (Bresenham's, with square pens).
    pub fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: Rgb, thickness: i64) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        let half = thickness / 2;
        loop {
            self.fill_rect(x - half, y - half, thickness, thickness, c);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Draws `s` with its top-left corner at (x, y); returns its width.
    pub fn text(&mut self, x: i64, y: i64, s: &str, c: Rgb) -> i64 {
        let s_ = TEXT_SCALE as i64;
        let advance = (GLYPH_W as i64 + 1) * s_;
        for (n, ch) in s.chars().enumerate() {
            let bits = glyph(ch);
            for (i, b) in bits.bytes().enumerate() {
                if b == b'1' {
                    let (gx, gy) = ((i % GLYPH_W) as i64, (i / GLYPH_W) as i64);
                    self.fill_rect(x + n as i64 * advance + gx * s_, y + gy * s_, s_, s_, c);
                }
            }
        }
        text_width(s)
    }

    /// The PNG encoding (8-bit RGB).
    pub fn encode_png(&self) -> std::result::Result<Vec<u8>, String> {
        let mut bytes = Vec::new();
        let mut encoder = png::Encoder::new(&mut bytes, self.width as u32, self.height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
        writer.write_image_data(&self.rgb).map_err(|e| e.to_string())?;
        writer.finish().map_err(|e| e.to_string())?;
        Ok(bytes)
    }

    /// Encodes and writes `path` atomically.
    pub fn write_png(&self, path: &Path) -> Result<()> {
        let bytes = self.encode_png().map_err(|e| Error::file(path, format!("cannot encode PNG: {e}")))?;
        write_atomic(path, &bytes)
    }
}

/// Pixels `s` takes in the font.
pub fn text_width(s: &str) -> i64 {
    (s.chars().count() * (GLYPH_W + 1) * TEXT_SCALE) as i64
}

/// Pixels a line of text takes, its gap below included.
const LINE_H: i64 = ((GLYPH_H + 2) * TEXT_SCALE) as i64;

/// A 3×5 glyph, rows top to bottom; letters in lower case; unknown
/// characters are a box.
fn glyph(c: char) -> &'static str {
    match c.to_ascii_lowercase() {
        ' ' => "000000000000000",
        '0' => "111101101101111",
        '1' => "010110010010111",
        '2' => "111001111100111",
        '3' => "111001111001111",
        '4' => "101101111001001",
        '5' => "111100111001111",
        '6' => "111100111101111",
        '7' => "111001001010010",
        '8' => "111101111101111",
        '9' => "111101111001111",
        '.' => "000000000000010",
        '-' | '−' => "000000111000000",
        ':' => "000010000010000",
        '_' => "000000000000111",
        '(' => "010100100100010",
        ')' => "010001001001010",
        ',' => "000000000010100",
        '/' => "001001010100100",
        '=' => "000111000111000",
        '+' => "000010111010000",
        '±' => "010111010000111",
        'a' => "000011101101011",
        'b' => "100110101101110",
        'c' => "000011100100011",
        'd' => "001011101101011",
        'e' => "000010111100011",
        'f' => "011100110100100",
        'g' => "011101011001110",
        'h' => "100110101101101",
        'i' => "010000010010010",
        'j' => "001000001001110",
        'k' => "100101110110101",
        'l' => "110010010010111",
        'm' => "000111111101101",
        'n' => "000110101101101",
        'o' => "000010101101010",
        'p' => "000110101110100",
        'q' => "000011101011001",
        'r' => "000011100100100",
        's' => "000011110001110",
        't' => "010111010010011",
        'u' => "000101101101011",
        'v' => "000101101101010",
        'w' => "000101101111111",
        'x' => "000101010101000",
        'y' => "000101011001110",
        'z' => "000111010100111",
        _ => "111101101101111",
    }
}

/// The scale each tile of `t` is drawn at: about [`TILE_TARGET`] pixels, ×1 to ×8.
pub fn tile_scale(t: &Tiles) -> usize {
    (TILE_TARGET / t.height.max(t.width).max(1)).clamp(1, 8)
}

/// The grid of `t`'s pictures, each scaled by [`tile_scale`], [`TILE_GAP`]
/// pixels apart and around: `cols·w·s + (cols+1)·gap` wide.
pub fn tiles(t: &Tiles) -> Raster {
    let s = tile_scale(t);
    let (tw, th) = (t.width * s, t.height * s);
    let width = t.cols * tw + (t.cols + 1) * TILE_GAP;
    let height = t.rows * th + (t.rows + 1) * TILE_GAP;
    let mut r = Raster::new(width, height, GAP_COLOUR);
    for (n, tile) in t.tiles.iter().enumerate().take(t.rows * t.cols) {
        let (gx, gy) = (n % t.cols.max(1), n / t.cols.max(1));
        let (x0, y0) = (TILE_GAP + gx * (tw + TILE_GAP), TILE_GAP + gy * (th + TILE_GAP));
        for (p, &g) in tile.iter().enumerate().take(t.width * t.height) {
            let (px, py) = (p % t.width, p / t.width);
            r.fill_rect((x0 + px * s) as i64, (y0 + py * s) as i64, s as i64, s as i64, [g, g, g]);
        }
    }
    r
}

/// One histogram panel's size.
pub const HISTOGRAM_W: usize = 520;
pub const HISTOGRAM_H: usize = 150;

/// One panel per layer, stacked: `HISTOGRAM_W × (HISTOGRAM_H · layers)`.
/// Each panel: the layer's summary line (name, shape, mean, std), the bars,
/// the range's ends below and a red line at zero.
pub fn histograms(stats: &[WeightStats]) -> Raster {
    let mut r = Raster::new(HISTOGRAM_W, HISTOGRAM_H * stats.len(), WHITE);
    for (n, s) in stats.iter().enumerate() {
        let top = (n * HISTOGRAM_H) as i64;
        r.text(8, top + 6, &s.summary(), BLACK);
        let (left, right) = (10i64, HISTOGRAM_W as i64 - 10);
        let (bar_top, bar_bottom) = (top + 6 + LINE_H + 4, top + HISTOGRAM_H as i64 - LINE_H - 6);
        let peak = s.bins.iter().copied().max().unwrap_or(0).max(1) as f64;
        let bins = s.bins.len().max(1) as i64;
        let bin_w = (right - left) / bins;
        for (b, &count) in s.bins.iter().enumerate() {
            let h = ((bar_bottom - bar_top) as f64 * count as f64 / peak).round() as i64;
            let x = left + b as i64 * bin_w;
            r.fill_rect(x + 1, bar_bottom - h, bin_w - 2, h, BAR);
        }
        r.line((left, bar_bottom), (left + bins * bin_w, bar_bottom), AXIS, 1);
        if s.lo < 0.0 && s.hi > 0.0 {
            let x = left + ((0.0 - s.lo) / (s.hi - s.lo) * (bins * bin_w) as f32) as i64;
            r.line((x, bar_top), (x, bar_bottom), ZERO_LINE, 1);
        }
        let label_y = bar_bottom + 4;
        r.text(left, label_y, &format!("{:.3}", s.lo), AXIS);
        let hi = format!("{:.3}", s.hi);
        r.text(left + bins * bin_w - text_width(&hi), label_y, &hi, AXIS);
    }
    r
}

/// One line of a chart: its name in the legend, colour and (x, y) points.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub colour: Rgb,
    pub points: Vec<(f64, f64)>,
}

/// One chart panel's size.
pub const CHART_W: usize = 480;
pub const CHART_H: usize = 320;

/// Charts side by side, `CHART_W · charts × CHART_H`: each with its title,
/// axes labelled at their ends, and its series as lines with a square at
/// each point (a lone point shows too).
pub fn charts(charts: &[(String, Vec<Series>)]) -> Raster {
    let mut r = Raster::new(CHART_W * charts.len(), CHART_H, WHITE);
    for (n, (title, series)) in charts.iter().enumerate() {
        let x0 = (n * CHART_W) as i64;
        chart(&mut r, x0, title, series);
    }
    r
}

fn chart(r: &mut Raster, x0: i64, title: &str, series: &[Series]) {
    let (left, right, top, bottom) = (x0 + 70, x0 + CHART_W as i64 - 16, 34i64, CHART_H as i64 - 36);
    r.text(left, 10, title, BLACK);
    let points = || series.iter().flat_map(|s| s.points.iter()).filter(|p| p.0.is_finite() && p.1.is_finite());
    let range = |f: fn(&(f64, f64)) -> f64| {
        let (lo, hi) = points().map(f).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        match (lo, hi) {
            _ if !lo.is_finite() => (0.0, 1.0),
            (lo, hi) if hi - lo < 1e-12 => (lo - 0.5, hi + 0.5),
            (lo, hi) => (lo, hi),
        }
    };
    let (x_lo, x_hi) = range(|p| p.0);
    let (y_lo, y_hi) = range(|p| p.1);
    let pad = (y_hi - y_lo) * 0.05;
    let (y_lo, y_hi) = (y_lo - pad, y_hi + pad);
    let at = |(x, y): (f64, f64)| {
        let px = left + ((x - x_lo) / (x_hi - x_lo) * (right - left) as f64).round() as i64;
        let py = bottom - ((y - y_lo) / (y_hi - y_lo) * (bottom - top) as f64).round() as i64;
        (px, py)
    };
    r.line((left, top), (left, bottom), AXIS, 1);
    r.line((left, bottom), (right, bottom), AXIS, 1);
    for y in [y_lo, y_hi] {
        let label = format!("{y:.3}");
        let py = at((x_lo, y)).1;
        r.line((left - 4, py), (left, py), AXIS, 1);
        r.text(left - 8 - text_width(&label), py - 5, &label, AXIS);
    }
    for x in [x_lo, x_hi] {
        let label = if x.fract() == 0.0 { format!("{x:.0}") } else { format!("{x:.1}") };
        let px = at((x, y_lo)).0;
        r.line((px, bottom), (px, bottom + 4), AXIS, 1);
        r.text(px - text_width(&label) / 2, bottom + 8, &label, AXIS);
    }
    r.text((left + right) / 2 - text_width("epoch") / 2, bottom + 22, "epoch", AXIS);
    let mut legend_x = right;
    for s in series.iter().rev() {
        legend_x -= text_width(&s.name) + 28;
        r.line((legend_x, 16), (legend_x + 16, 16), s.colour, 3);
        r.text(legend_x + 20, 11, &s.name, BLACK);
    }
    for s in series {
        let finite: Vec<(i64, i64)> =
            s.points.iter().copied().filter(|p| p.0.is_finite() && p.1.is_finite()).map(at).collect();
        for w in finite.windows(2) {
            r.line(w[0], w[1], s.colour, 2);
        }
        for &(x, y) in &finite {
            r.fill_rect(x - 2, y - 2, 5, 5, s.colour);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    #[test]
    fn a_raster_round_trips_through_png() {
        let mut r = Raster::new(7, 3, WHITE);
        r.set(2, 1, [1, 2, 3]);
        r.set(-1, 99, BLACK); // outside: ignored
        let (w, h, rgb) = decode(&r.encode_png().unwrap());
        assert_eq!((w, h), (7, 3));
        assert_eq!(rgb, r.rgb);
        assert_eq!(r.get(2, 1), [1, 2, 3]);
    }

    #[test]
    fn tiles_are_scaled_and_spaced() {
        let t = Tiles {
            layer: "conv2d".into(),
            caption: String::new(),
            height: 3,
            width: 3,
            rows: 2,
            cols: 16,
            tiles: (0..32).map(|f| vec![f as u8 * 8; 9]).collect(),
        };
        assert_eq!(tile_scale(&t), 8);
        let r = tiles(&t);
        assert_eq!((r.width, r.height), (16 * 24 + 17 * 2, 2 * 24 + 3 * 2));
        // Tile 17 (row 1, column 1) starts at (2 + 26, 2 + 26).
        assert_eq!(r.get(28, 28), [136; 3]);
        assert_eq!(r.get(0, 0), GAP_COLOUR);
    }

    #[test]
    fn text_and_lines_stay_inside() {
        let mut r = Raster::new(20, 10, WHITE);
        r.line((-5, -5), (30, 30), BLACK, 3);
        assert!(r.text(15, 8, "mean -0.014 std 0.234 ±é", BLACK) > 0);
        r.fill_rect(-100, -100, 1000, 1000, BAR);
        assert!(r.rgb.chunks(3).all(|c| c == BAR));
    }
}
