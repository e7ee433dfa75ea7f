//! Looking inside a network, as the book's 8-3 does: the first layer's
//! filters as pictures, each layer's weight histogram with its mean and
//! standard deviation, and the feature maps one image makes in each Conv2D
//! layer. The dashboard's Inside panel and `simdnet inspect`'s PNG files
//! both draw what this module computes, so the terminal and the files show
//! the same numbers.
//!
//! model (params) → [`filters`] / [`layer_stats`]; model + image →
//! [`feature_maps`] (a forward pass with a workspace of one); all three →
//! [`Views`].

use crate::app;
use crate::checkpoint;
use crate::cli::InspectArgs;
use crate::error::{Error, Result};
use crate::evaluate;
use crate::model::{Layer, Model, Op, Shape, Workspace};
use crate::picture;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The book's colour range of the first conv layer's filters
/// (`imshow(…, vmin=-0.5, vmax=0.5)`): −0.5 is black, 0.5 white.
pub const FILTER_VMIN: f32 = -0.5;
pub const FILTER_VMAX: f32 = 0.5;
/// Bins of each weight histogram.
pub const HISTOGRAM_BINS: usize = 24;
/// Filters per row of the filter grid (the book's 2×16 for 32 filters).
const FILTERS_PER_ROW: usize = 16;
/// The most Dense columns drawn as pictures (a Dense(4096) stays readable).
const MAX_COLUMNS: usize = 256;

/// A grid of equally sized greyscale pictures: filters or feature maps.
#[derive(Clone, Debug, PartialEq)]
pub struct Tiles {
    /// The layer the pictures come from (`conv2d`, `dense`).
    pub layer: String,
    /// What they show, e.g. `32 filters 3x3, -0.5..0.5`.
    pub caption: String,
    /// Pixels of each picture.
    pub height: usize,
    pub width: usize,
    /// The grid the pictures are laid out in (rows × cols ≥ tiles).
    pub rows: usize,
    pub cols: usize,
    /// One `height × width` picture per tile, row-major, 0 (black) ..= 255.
    pub tiles: Vec<Vec<u8>>,
}

/// A kernel's statistics and histogram, over its finite values.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightStats {
    /// The tensor's name in the model file (`conv2d.kernel`).
    pub name: String,
    /// Keras' kernel shape (`[3, 3, 1, 32]`).
    pub shape: Vec<usize>,
    /// Finite values counted.
    pub count: usize,
    /// NaN and infinite values (left out of everything else).
    pub non_finite: usize,
    pub mean: f64,
    /// The population standard deviation (numpy's `np.std`).
    pub std: f64,
    pub min: f32,
    pub max: f32,
    /// [`HISTOGRAM_BINS`] equal bins from `lo` to `hi`; they sum to `count`.
    pub bins: Vec<u32>,
    pub lo: f32,
    pub hi: f32,
}

impl WeightStats {
    /// `conv2d.kernel 3x3x1x32: mean -0.0140 std 0.2340` (the terminal's
    /// and the PNG's words for it).
    pub fn summary(&self) -> String {
        let shape: Vec<String> = self.shape.iter().map(|d| d.to_string()).collect();
        format!("{} {}: mean {:.4} std {:.4}", self.name, shape.join("x"), self.mean, self.std)
    }
}

/// Everything the Inside panel shows at one point of training.
#[derive(Clone, Debug, PartialEq)]
pub struct Views {
    /// The first Conv2D layer's filters, else the first Dense layer's
    /// columns as input-sized images; `None` when neither exists.
    pub filters: Option<Tiles>,
    /// One per layer with parameters, in order.
    pub stats: Vec<WeightStats>,
    /// One per Conv2D layer, for the image given (empty without one).
    pub maps: Vec<Tiles>,
}

/// The views of `model`, with the feature maps of `image` (`rows × cols`
/// u8 pixels, as the data set stores them) where one is given.
pub fn views(model: &Model, image: Option<&[u8]>) -> Views {
    Views {
        filters: filters(model),
        stats: layer_stats(model),
        maps: image.map(|im| feature_maps(model, im)).unwrap_or_default(),
    }
}

/// A near-square grid for `n` pictures, rows ≤ columns: 32 → 4×8, 64 → 8×8,
/// 100 → 10×10; a count without a fitting divisor gets ⌈√n⌉ columns.
pub fn grid_shape(n: usize) -> (usize, usize) {
    if n == 0 {
        return (0, 0);
    }
    let root = (n as f64).sqrt();
    let rows = (1..=root as usize).rev().find(|&r| n.is_multiple_of(r)).unwrap_or(1);
    if rows as f64 * 2.0 >= root {
        (rows, n / rows)
    } else {
        let cols = root.ceil() as usize;
        (n.div_ceil(cols), cols)
    }
}

/// `v` on the grey scale from `vmin` (0) to `vmax` (255), clamped.
pub fn grey(v: f32, vmin: f32, vmax: f32) -> u8 {
    if vmax.partial_cmp(&vmin) != Some(std::cmp::Ordering::Greater) || !v.is_finite() {
        return 0;
    }
    ((v - vmin) / (vmax - vmin)).clamp(0.0, 1.0).mul_add(255.0, 0.5) as u8
}

/// The first Conv2D layer, if any.
fn first_conv(model: &Model) -> Option<&Layer> {
    model.spec.layers().iter().find(|l| matches!(l.op, Op::Conv2D { .. }))
}

/// The first Conv2D layer's filters on the book's −0.5..0.5 scale (input
/// channel 0 of each: the first layer of an image model has one), 16 a row.
/// Without a Conv2D layer: the first Dense layer's columns, when its inputs
/// are the image's pixels, each as an image on a scale symmetric about 0
/// (±the largest |weight|, so that untrained weights are visible too).
pub fn filters(model: &Model) -> Option<Tiles> {
    let params = &model.params;
    if let Some(layer) = first_conv(model) {
        let Op::Conv2D { geometry: g, .. } = layer.op else { unreachable!("a Conv2D layer") };
        let kernel = &params[layer.kernel.clone()];
        // HWIO: kernel[((y·k + x)·cin + c)·cout + f].
        let tiles = (0..g.cout)
            .map(|f| (0..g.k * g.k).map(|p| grey(kernel[p * g.cin * g.cout + f], FILTER_VMIN, FILTER_VMAX)).collect())
            .collect();
        let cols = g.cout.min(FILTERS_PER_ROW);
        return Some(Tiles {
            layer: layer.name.clone(),
            caption: format!("{} filters {}x{}, {FILTER_VMIN}..{FILTER_VMAX}", g.cout, g.k, g.k),
            height: g.k,
            width: g.k,
            rows: g.cout.div_ceil(cols),
            cols,
            tiles,
        });
    }
    let (rows, cols) = model.spec.input_shape();
    let layer = model.spec.layers().iter().find(|l| matches!(l.op, Op::Dense { .. }))?;
    let Op::Dense { in_dim, out_dim, .. } = layer.op else { unreachable!("a Dense layer") };
    if in_dim != rows * cols {
        return None;
    }
    let kernel = &params[layer.kernel.clone()];
    let limit = kernel.iter().filter(|v| v.is_finite()).fold(0.0f32, |m, v| m.max(v.abs()));
    let shown = out_dim.min(MAX_COLUMNS);
    // `[in, out]`: column j is kernel[i·out + j].
    let tiles =
        (0..shown).map(|j| (0..in_dim).map(|i| grey(kernel[i * out_dim + j], -limit, limit)).collect()).collect();
    let (grid_rows, grid_cols) = grid_shape(shown);
    let more = if shown < out_dim { format!(" (first {shown} of {out_dim})") } else { String::new() };
    Some(Tiles {
        layer: layer.name.clone(),
        caption: format!("{shown} weight columns {rows}x{cols}{more}, ±{limit:.3}"),
        height: rows,
        width: cols,
        rows: grid_rows,
        cols: grid_cols,
        tiles,
    })
}

/// Mean, standard deviation (in f64) and histogram of `values`' finite
/// entries; `name` and `shape` label them.
pub fn weight_stats(name: &str, shape: &[usize], values: &[f32]) -> WeightStats {
    let finite = || values.iter().copied().filter(|v| v.is_finite());
    let count = finite().count();
    let n = count.max(1) as f64;
    let mean = finite().map(f64::from).sum::<f64>() / n;
    let std = (finite().map(|v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n).sqrt();
    let (min, max) = finite().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = match (min, max) {
        _ if count == 0 => (-1.0, 1.0),
        (a, b) if a == b => (a - 0.5, b + 0.5),
        ab => ab,
    };
    let mut bins = vec![0u32; HISTOGRAM_BINS];
    let width = f64::from(hi) - f64::from(lo);
    for v in finite() {
        let b = ((f64::from(v) - f64::from(lo)) / width * HISTOGRAM_BINS as f64) as usize;
        bins[b.min(HISTOGRAM_BINS - 1)] += 1;
    }
    WeightStats {
        name: name.to_string(),
        shape: shape.to_vec(),
        count,
        non_finite: values.len() - count,
        mean,
        std,
        min: if count == 0 { 0.0 } else { min },
        max: if count == 0 { 0.0 } else { max },
        bins,
        lo,
        hi,
    }
}

/// The kernel statistics of every layer with parameters.
pub fn layer_stats(model: &Model) -> Vec<WeightStats> {
    model
        .spec
        .param_layers()
        .map(|l| {
            let shape = l.kernel_shape().unwrap_or_default();
            weight_stats(&format!("{}.kernel", l.name), &shape, &model.params[l.kernel.clone()])
        })
        .collect()
}

/// The feature maps `pixels` (one image, u8 as stored) makes in each
/// Conv2D layer, in a near-square grid (32 maps → 4×8, 64 → 8×8), each map
/// scaled from its own minimum (black) to its maximum (white), as
/// matplotlib's `imshow` does by default. Pixels are scaled by 1/255, as in
/// training; a short image is padded with black.
pub fn feature_maps(model: &Model, pixels: &[u8]) -> Vec<Tiles> {
    let spec = &model.spec;
    let mut x: Vec<f32> = pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
    x.resize(spec.input_dim(), 0.0);
    let mut ws = Workspace::new(spec, 1, 0);
    model.forward(&mut ws, &x, 1);
    let mut maps = Vec::new();
    for (l, layer) in spec.layers().iter().enumerate() {
        let (Op::Conv2D { .. }, Shape::Image(h, w, c)) = (layer.op, layer.output) else { continue };
        let Some(out) = model.layer_output(&ws, l, 1) else { continue };
        let tiles = (0..c)
            .map(|ch| {
                let map: Vec<f32> = (0..h * w).map(|p| out[p * c + ch]).collect();
                let (lo, hi) = map
                    .iter()
                    .filter(|v| v.is_finite())
                    .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
                map.iter().map(|&v| grey(v, lo, hi)).collect()
            })
            .collect();
        let (rows, cols) = grid_shape(c);
        maps.push(Tiles {
            layer: layer.name.clone(),
            caption: format!("{c} feature maps {h}x{w}"),
            height: h,
            width: w,
            rows,
            cols,
            tiles,
        });
    }
    maps
}

/// The files `simdnet inspect` writes into `dir` for `views`, with what
/// goes into each: `filters.png`, `feature_maps_<layer>.png` per Conv2D
/// layer, `histograms.png`.
pub fn write_pngs(views: &Views, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut write = |name: String, raster: picture::Raster| -> Result<()> {
        let path = dir.join(name);
        raster.write_png(&path)?;
        written.push(path);
        Ok(())
    };
    if let Some(f) = &views.filters {
        write("filters.png".into(), picture::tiles(f))?;
    }
    for m in &views.maps {
        write(format!("feature_maps_{}.png", m.layer), picture::tiles(m))?;
    }
    if !views.stats.is_empty() {
        write("histograms.png".into(), picture::histograms(&views.stats))?;
    }
    Ok(written)
}

/// `--out DIR`: created where missing; an existing path must be a directory.
pub fn prepare_out_dir(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(meta) => {
            let kind = crate::files::not_regular(&meta).unwrap_or("is a file");
            Err(Error::file(dir, format!("{kind}, not a directory (--out DIR names the folder for the PNG files)")))
        }
        Err(_) => std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, format!("cannot create: {e}"))),
    }
}

/// `simdnet inspect`: loads the model and test image `--image N`, writes the
/// PNG files and prints each layer's statistics and the files' paths.
pub fn run_inspect(args: &InspectArgs, out: &mut dyn Write) -> Result<()> {
    let loaded = checkpoint::load(&args.model)?;
    let data = app::open_data(&args.data)?;
    evaluate::check_fits(&args.model, &loaded, &data)?;
    if args.image >= data.test.count {
        return Err(Error::new(format!(
            "--image {}: the test set in {} has {} images (0..={})",
            args.image,
            data.dir.display(),
            data.test.count,
            data.test.count.saturating_sub(1)
        )));
    }
    prepare_out_dir(&args.out)?;
    let model = &loaded.model;
    let views = views(model, Some(data.test.image(args.image)));
    let label = data.test.labels()[args.image] as usize;
    let class = loaded.class_names.get(label).cloned().unwrap_or_else(|| label.to_string());
    let mut text = format!(
        "model: {} ({})\nimage: test {} of {} ({class})\n",
        args.model.display(),
        model.spec.describe(),
        args.image,
        data.dir.display()
    );
    for s in &views.stats {
        text += &format!("{}, min {:.4}, max {:.4}, {} weights\n", s.summary(), s.min, s.max, s.count);
    }
    for path in write_pngs(&views, &args.out)? {
        text += &format!("wrote {}\n", path.display());
    }
    crate::error::printed(out.write_all(text.as_bytes()).and_then(|()| out.flush()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch;
    use crate::gemm::Activation;
    use crate::model::ModelSpec;

    fn cnn() -> Model {
        let spec = ModelSpec::new((28, 28), &arch::cnn(10)).unwrap();
        Model::new(spec, 7)
    }

    #[test]
    fn grids_are_near_square() {
        assert_eq!(grid_shape(32), (4, 8));
        assert_eq!(grid_shape(64), (8, 8));
        assert_eq!(grid_shape(100), (10, 10));
        assert_eq!(grid_shape(1), (1, 1));
        assert_eq!(grid_shape(7), (3, 3));
        assert_eq!(grid_shape(0), (0, 0));
        for n in 1..300 {
            let (r, c) = grid_shape(n);
            assert!(r * c >= n && r <= c && r * c < n + c, "{n}: {r}x{c}");
        }
    }

    #[test]
    fn grey_maps_the_range_and_clamps() {
        assert_eq!(grey(-0.5, FILTER_VMIN, FILTER_VMAX), 0);
        assert_eq!(grey(0.5, FILTER_VMIN, FILTER_VMAX), 255);
        assert_eq!(grey(0.0, FILTER_VMIN, FILTER_VMAX), 128);
        assert_eq!(grey(9.0, FILTER_VMIN, FILTER_VMAX), 255);
        assert_eq!(grey(f32::NAN, 0.0, 1.0), 0);
        assert_eq!(grey(1.0, 1.0, 1.0), 0, "an empty range");
    }

    #[test]
    fn stats_match_a_direct_computation() {
        let v = [1.0f32, 2.0, 3.0, 4.0, f32::NAN];
        let s = weight_stats("t", &[5], &v);
        assert_eq!((s.count, s.non_finite), (4, 1));
        assert_eq!(s.mean, 2.5);
        assert!((s.std - 1.25f64.sqrt()).abs() < 1e-12);
        assert_eq!((s.min, s.max, s.lo, s.hi), (1.0, 4.0, 1.0, 4.0));
        assert_eq!(s.bins.iter().sum::<u32>(), 4);
        assert_eq!((s.bins[0], s.bins[HISTOGRAM_BINS - 1]), (1, 1));
        let flat = weight_stats("c", &[3], &[0.25; 3]);
        assert_eq!((flat.std, flat.bins.iter().sum::<u32>()), (0.0, 3));
        let none = weight_stats("e", &[0], &[]);
        assert_eq!((none.count, none.mean, none.bins.iter().sum::<u32>()), (0, 0.0, 0));
    }

    #[test]
    fn cnn_filters_are_the_first_conv_kernel_on_the_books_scale() {
        let mut model = cnn();
        let k = model.spec.layers()[0].kernel.clone();
        // Filter 5's top-left weight, HWIO [0, 0, 0, 5].
        model.params[k.start + 5] = 0.5;
        model.params[k.start + 5 + 32] = -0.5; // [0, 1, 0, 5]
        let f = filters(&model).unwrap();
        assert_eq!((f.layer.as_str(), f.height, f.width, f.rows, f.cols, f.tiles.len()), ("conv2d", 3, 3, 2, 16, 32));
        assert_eq!(&f.tiles[5][..2], &[255, 0]);
        let stats = layer_stats(&model);
        assert_eq!(stats.len(), 4);
        assert_eq!(stats[0].name, "conv2d.kernel");
        assert_eq!(stats[0].shape, vec![3, 3, 1, 32]);
        assert_eq!(stats[2].count, 3136 * 100);
    }

    #[test]
    fn mlp_filters_are_the_dense_columns() {
        let spec = ModelSpec::mlp((28, 28), &[100], Activation::Relu, 10, 0.0).unwrap();
        let mut model = Model::new(spec, 3);
        let k = model.spec.layers()[1].kernel.clone();
        model.params[k.start + 7] = 10.0; // row 0, column 7: the largest weight
        let f = filters(&model).unwrap();
        assert_eq!((f.height, f.width, f.rows, f.cols, f.tiles.len()), (28, 28, 10, 10, 100));
        assert_eq!(f.tiles[7][0], 255);
        assert!(feature_maps(&model, &[0; 784]).is_empty(), "no conv layer, no maps");
    }

    #[test]
    fn feature_maps_come_from_each_conv_layer() {
        let model = cnn();
        let image: Vec<u8> = (0..784).map(|i| (i % 251) as u8).collect();
        let maps = feature_maps(&model, &image);
        let shapes: Vec<_> = maps.iter().map(|m| (m.layer.as_str(), m.height, m.rows, m.cols, m.tiles.len())).collect();
        assert_eq!(shapes, [("conv2d", 28, 4, 8, 32), ("conv2d_1", 14, 8, 8, 64)]);
        // The first map equals a direct convolution of the image's corner
        // (same padding: the kernel's centre over pixel (0, 0)).
        let k = &model.params[model.spec.layers()[0].kernel.clone()];
        let px = |r: usize, c: usize| image[r * 28 + c] as f32 / 255.0;
        let direct: f32 = [(1, 1, 0, 0), (1, 2, 0, 1), (2, 1, 1, 0), (2, 2, 1, 1)]
            .iter()
            .map(|&(ky, kx, r, c)| k[(ky * 3 + kx) * 32] * px(r, c))
            .sum();
        let mut ws = Workspace::new(&model.spec, 1, 0);
        let x: Vec<f32> = image.iter().map(|&p| p as f32 / 255.0).collect();
        model.forward(&mut ws, &x, 1);
        let out = model.layer_output(&ws, 0, 1).unwrap();
        assert!((out[0] - direct.max(0.0)).abs() < 1e-5, "{} vs {direct}", out[0]);
    }
}
