//! The Sequential model: a list of layers fitted to an input shape, its
//! parameters, and the forward / backward passes through a preallocated
//! [`Workspace`].
//!
//! [`ModelSpec`] is the one source of the architecture: the training loop,
//! the summary, the model files, `compare`, `bench` and the dashboard all
//! iterate its [`Layer`]s. All parameters live in one flat buffer, layer
//! after layer as `[kernel, bias]` (Dense kernel `[in, out]`, Conv2D kernel
//! `[k, k, cin, cout]`, Keras' layouts); gradients use the same layout, so
//! `zero_grad` is a fill and an optimizer step is one loop.
//!
//! Data between layers is channels-last: an image layer's output
//! `[batch, h, w, c]`, a flat one's `[batch, n]`. Flatten is therefore free
//! (the same buffer read as `[batch, h·w·c]`, Keras' Flatten order), and so
//! is a Dropout right after a Dense layer: the Dense GEMM's epilogue
//! multiplies the mask in.

use crate::arch::{self, LayerSpec};
use crate::gemm::{self, Activation};
use crate::loss;
use crate::nn::conv2d::{self, ConvGeometry};
use crate::nn::conv_direct::{self, DzSource};
use crate::nn::dense;
use crate::nn::dropout;
use crate::nn::maxpool::{self, PoolGeometry};
use crate::optim::Optimizer;
use std::ops::Range;

pub use crate::nn::dropout::fill_dropout_mask;

/// A tensor's shape per sample, as Keras prints it after `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Rows, columns, channels.
    Image(usize, usize, usize),
    Flat(usize),
}

impl Shape {
    /// Values per sample.
    pub fn len(&self) -> usize {
        match *self {
            Shape::Image(h, w, c) => h * w * c,
            Shape::Flat(n) => n,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `(None, 28, 28, 32)` / `(None, 100)`.
    pub fn keras(&self) -> String {
        match *self {
            Shape::Image(h, w, c) => format!("(None, {h}, {w}, {c})"),
            Shape::Flat(n) => format!("(None, {n})"),
        }
    }
}

/// A layer fitted to its input: what it computes, with every size resolved.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    Conv2D {
        geometry: ConvGeometry,
        act: Activation,
    },
    MaxPool(PoolGeometry),
    Flatten,
    Dense {
        in_dim: usize,
        out_dim: usize,
        act: Activation,
    },
    /// `fused`: right after a Dense layer, whose epilogue applies the mask.
    Dropout {
        rate: f32,
        fused: bool,
    },
}

/// A layer's own per-sample scratch in the [`Workspace`], beside the
/// activation buffers (4 bytes a value in each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scratch {
    None,
    /// Dropout: the mask of its last training pass.
    Mask(usize),
    /// Conv2D: its input's im2col (or padded copy), see `ConvGeometry::scratch_floats`.
    Conv(ConvGeometry),
}

impl Scratch {
    /// Values per sample (a conv's fixed kernel copy aside).
    fn len(self) -> usize {
        match self {
            Scratch::None => 0,
            Scratch::Mask(n) => n,
            Scratch::Conv(g) => g.scratch_len(),
        }
    }
    /// Values for a workspace of `capacity` samples.
    fn floats(self, capacity: usize) -> usize {
        match self {
            Scratch::Conv(g) => g.scratch_floats(capacity),
            other => capacity * other.len(),
        }
    }
}

/// One layer of a built model.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// Keras' name: `conv2d`, `max_pooling2d_1`, `dense_1`, ….
    pub name: String,
    /// Keras' class name: `Conv2D`, `MaxPooling2D`, `Flatten`, `Dense`, `Dropout`.
    pub class: &'static str,
    pub spec: LayerSpec,
    pub op: Op,
    pub input: Shape,
    pub output: Shape,
    /// The kernel and the bias in the flat parameter buffer (empty for
    /// layers without parameters).
    pub kernel: Range<usize>,
    pub bias: Range<usize>,
}

impl Layer {
    pub fn param_count(&self) -> usize {
        self.bias.end - self.kernel.start
    }
    /// The kernel's shape as Keras stores it, for layers with parameters.
    pub fn kernel_shape(&self) -> Option<Vec<usize>> {
        match self.op {
            Op::Dense { in_dim, out_dim, .. } => Some(vec![in_dim, out_dim]),
            Op::Conv2D { geometry: g, .. } => Some(vec![g.k, g.k, g.cin, g.cout]),
            _ => None,
        }
    }
    fn scratch(&self) -> Scratch {
        match self.op {
            Op::Dropout { .. } => Scratch::Mask(self.output.len()),
            Op::Conv2D { geometry, .. } => Scratch::Conv(geometry),
            _ => Scratch::None,
        }
    }
    /// Glorot's fan-in + fan-out (Keras counts a kernel's receptive field in both).
    fn fans(&self) -> usize {
        match self.op {
            Op::Dense { in_dim, out_dim, .. } => in_dim + out_dim,
            Op::Conv2D { geometry: g, .. } => g.k * g.k * (g.cin + g.cout),
            _ => 0,
        }
    }
    /// Multiply-adds ×2 of the forward pass per sample (the backward's dW
    /// and dX cost the same each).
    pub fn forward_flops(&self) -> u64 {
        match self.op {
            Op::Dense { in_dim, out_dim, .. } => 2 * (in_dim * out_dim) as u64,
            Op::Conv2D { geometry: g, .. } => 2 * (g.positions() * g.patch_len() * g.cout) as u64,
            _ => 0,
        }
    }
}

/// The most parameters a model may have (4 GiB of f32 with its training state
/// would not fit most machines; it also keeps every offset far from overflow).
pub const MAX_PARAMS: usize = 1 << 28;
/// The most values one layer may output per sample.
pub const MAX_ACTIVATIONS: usize = 1 << 26;

/// The architecture: everything needed to rebuild the model, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    input_shape: (usize, usize),
    layers: Vec<Layer>,
}

impl ModelSpec {
    /// Fits `layers` to images of `input_shape` (rows, columns; one channel),
    /// or says which layer does not fit and why. The last layer must be a
    /// linear Dense layer (its logits go to the softmax fused with the loss).
    /// Nothing is allocated by the size of the model.
    pub fn new(input_shape: (usize, usize), specs: &[LayerSpec]) -> Result<ModelSpec, String> {
        let (rows, cols) = input_shape;
        if rows == 0 || cols == 0 {
            return Err(format!("an empty input shape {rows}x{cols}"));
        }
        match specs.last() {
            Some(LayerSpec::Dense { act: Activation::Linear, units }) if *units >= 2 => {}
            Some(last) => {
                return Err(format!(
                    "the last layer is {last}: it must be dense(CLASSES) with at least 2 classes \
                     (its softmax is part of the loss)"
                ))
            }
            None => return Err("no layers".into()),
        }
        if specs.len() > arch::MAX_LAYERS {
            return Err(format!("{} layers: at most {}", specs.len(), arch::MAX_LAYERS));
        }
        let mut shape = Shape::Image(rows, cols, 1);
        let mut layers: Vec<Layer> = Vec::with_capacity(specs.len());
        let mut offset = 0usize;
        let mut counts = [0usize; 5];
        for (i, spec) in specs.iter().enumerate() {
            let fail = |why: String| format!("layer {} {spec}: {why}", i + 1);
            let image = |what: &str| match shape {
                Shape::Image(h, w, c) => Ok((h, w, c)),
                Shape::Flat(n) => {
                    Err(fail(format!("{what} needs an image input (rows, columns, channels), got {n} flat values")))
                }
            };
            let (op, output, params, kind, class) = match *spec {
                LayerSpec::Conv2D { filters, kernel, act, padding } => {
                    let geometry = ConvGeometry::new(image("conv2d")?, kernel, filters, padding).map_err(fail)?;
                    let params = geometry.patch_len().checked_mul(filters).and_then(|k| k.checked_add(filters));
                    (Op::Conv2D { geometry, act }, Shape::Image(geometry.oh, geometry.ow, filters), params, 0, "Conv2D")
                }
                LayerSpec::MaxPool { pool } => {
                    let g = PoolGeometry::new(image("maxpool")?, pool).map_err(fail)?;
                    (Op::MaxPool(g), Shape::Image(g.oh, g.ow, g.c), Some(0), 1, "MaxPooling2D")
                }
                LayerSpec::Flatten => (Op::Flatten, Shape::Flat(shape.len()), Some(0), 2, "Flatten"),
                LayerSpec::Dense { units, act } => {
                    let in_dim = match shape {
                        Shape::Flat(n) => n,
                        Shape::Image(h, w, c) => {
                            return Err(fail(format!(
                                "dense needs a flat input: add flatten before it (its input is {h}x{w}x{c})"
                            )))
                        }
                    };
                    let params = in_dim.checked_mul(units).and_then(|k| k.checked_add(units));
                    (Op::Dense { in_dim, out_dim: units, act }, Shape::Flat(units), params, 3, "Dense")
                }
                LayerSpec::Dropout { rate } => {
                    if !(rate > 0.0 && rate < 1.0) {
                        return Err(fail(format!("rate {rate} is outside (0, 1)")));
                    }
                    let fused = matches!(layers.last(), Some(Layer { op: Op::Dense { .. }, .. }));
                    (Op::Dropout { rate, fused }, shape, Some(0), 4, "Dropout")
                }
            };
            if output.is_empty() {
                return Err(fail("its output is empty".into()));
            }
            if let Op::Conv2D { geometry, .. } = op {
                if geometry.scratch_len() > MAX_ACTIVATIONS {
                    return Err(fail(format!(
                        "its im2col and weight-gradient sums need {} values per sample: at most {MAX_ACTIVATIONS}",
                        geometry.scratch_len()
                    )));
                }
            }
            if output.len() > MAX_ACTIVATIONS {
                return Err(fail(format!("{} outputs per sample: at most {MAX_ACTIVATIONS}", output.len())));
            }
            let end = params.and_then(|p| p.checked_add(offset)).filter(|&e| e <= MAX_PARAMS);
            let Some(end) = end else {
                return Err(fail(format!(
                    "the model would exceed {MAX_PARAMS} parameters (1 GiB of weights; training needs 5 times that in memory)"
                )));
            };
            let bias_len = match op {
                Op::Dense { out_dim, .. } => out_dim,
                Op::Conv2D { geometry, .. } => geometry.cout,
                _ => 0,
            };
            let kernel = offset..end - bias_len;
            let bias = end - bias_len..end;
            offset = end;
            let base = ["conv2d", "max_pooling2d", "flatten", "dense", "dropout"][kind];
            let name = if counts[kind] == 0 { base.to_string() } else { format!("{base}_{}", counts[kind]) };
            counts[kind] += 1;
            layers.push(Layer { name, class, spec: spec.clone(), op, input: shape, output, kernel, bias });
            shape = output;
        }
        Ok(ModelSpec { input_shape, layers })
    }

    /// The Keras tutorial MLP: Flatten → Dense(hidden…, act) [→ Dropout] → Dense(classes).
    pub fn mlp(
        input_shape: (usize, usize),
        hidden: &[usize],
        act: Activation,
        classes: usize,
        dropout: f32,
    ) -> Result<ModelSpec, String> {
        ModelSpec::new(input_shape, &arch::mlp(hidden, act, dropout, classes))
    }

    /// Image rows and columns.
    pub fn input_shape(&self) -> (usize, usize) {
        self.input_shape
    }
    pub fn input_dim(&self) -> usize {
        self.input_shape.0 * self.input_shape.1
    }
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }
    /// The layers that hold parameters, in order.
    pub fn param_layers(&self) -> impl Iterator<Item = &Layer> {
        self.layers.iter().filter(|l| l.param_count() > 0)
    }
    /// Units of the output layer (softmax).
    pub fn classes(&self) -> usize {
        self.layers.last().map_or(0, |l| l.output.len())
    }
    pub fn param_count(&self) -> usize {
        self.layers.last().map_or(0, |l| l.bias.end)
    }
    /// The layer list as `--arch` and the model files spell it.
    pub fn arch(&self) -> String {
        arch::to_string(&self.layer_specs())
    }
    pub fn layer_specs(&self) -> Vec<LayerSpec> {
        self.layers.iter().map(|l| l.spec.clone()).collect()
    }

    /// The rate of the Dropout right after layer `l` that `l`'s epilogue
    /// applies (its mask lives with the Dropout layer, `l + 1`).
    fn fused_dropout_rate(&self, l: usize) -> Option<f32> {
        match self.layers.get(l + 1)?.op {
            Op::Dropout { rate, fused: true } => Some(rate),
            _ => None,
        }
    }

    /// Whether the backward pass computes layer `l`'s input gradient: not for
    /// the model's input, nor for a layer whose input is the model's input
    /// through parameter-free reshapes only.
    /// For a MaxPooling2D layer `l` right after a Conv2D: the conv's
    /// activation, whose derivative the pool's backward pass applies.
    pub fn pool_fused_activation(&self, l: usize) -> Option<Activation> {
        match (self.layers.get(l)?.op, self.layers.get(l.checked_sub(1)?)?.op) {
            (Op::MaxPool(_), Op::Conv2D { act, .. }) => Some(act),
            _ => None,
        }
    }

    /// The activation whose derivative Conv2D layer `l`'s own backward pass
    /// applies: `act`, or linear where the MaxPooling2D after it applies it.
    pub fn conv_backward_activation(&self, l: usize, act: Activation) -> Activation {
        if self.pool_fused_activation(l + 1).is_some() {
            Activation::Linear
        } else {
            act
        }
    }

    /// Whether MaxPooling2D layer `l`'s backward pass runs inside the
    /// backward pass of the Conv2D before it, image by image
    /// ([`conv2d::conv2d_backward_from`] from a `DzSource::ThroughPool`):
    /// always, except where that conv takes the direct path and needs its
    /// input gradient.
    pub fn pool_backward_in_conv(&self, l: usize) -> bool {
        match self.layers.get(l.wrapping_sub(1)).map(|c| c.op) {
            Some(Op::Conv2D { geometry, .. }) => {
                self.pool_fused_activation(l).is_some()
                    && !(conv_direct::applies(&geometry) && self.needs_input_grad(l - 1))
            }
            _ => false,
        }
    }

    pub fn needs_input_grad(&self, l: usize) -> bool {
        self.layers[..l].iter().any(|p| !matches!(p.op, Op::Flatten))
    }

    /// Floating-point operations of one training step per sample: the forward
    /// GEMMs and the two backward ones (dW always, dX where the input
    /// gradient is needed).
    pub fn train_flops_per_sample(&self) -> u64 {
        (0..self.layers.len())
            .map(|l| self.layers[l].forward_flops() * if self.needs_input_grad(l) { 3 } else { 2 })
            .sum()
    }

    /// The MLP's hidden sizes, activation and dropout, if the model is one
    /// (Flatten, Dense(act) [Dropout(rate)] …, Dense(classes)).
    pub fn as_mlp(&self) -> Option<(Vec<usize>, Activation, f32)> {
        let specs = self.layer_specs();
        let (hidden, act, dropout) = match specs.get(1) {
            Some(LayerSpec::Dense { act, .. }) if specs.len() > 2 => {
                let dropout = match specs.get(2) {
                    Some(LayerSpec::Dropout { rate }) => *rate,
                    _ => 0.0,
                };
                (specs.iter().filter(|s| matches!(s, LayerSpec::Dense { .. })).count() - 1, *act, dropout)
            }
            _ => (0, Activation::Relu, 0.0),
        };
        let units: Vec<usize> = self.layers[..self.layers.len() - 1]
            .iter()
            .filter_map(|l| if let Op::Dense { out_dim, .. } = l.op { Some(out_dim) } else { None })
            .collect();
        let classes = self.classes();
        (units.len() == hidden && arch::mlp(&units, act, dropout, classes) == specs).then_some((units, act, dropout))
    }

    /// e.g. `784-100-10 relu` for an MLP, else the layer list.
    pub fn describe(&self) -> String {
        match self.as_mlp() {
            Some((hidden, act, dropout)) => {
                let mut dims = vec![self.input_dim().to_string()];
                dims.extend(hidden.iter().map(|h| h.to_string()));
                dims.push(self.classes().to_string());
                let mut s = format!("{} {}", dims.join("-"), act.name());
                if dropout > 0.0 {
                    s += &format!(" dropout {dropout}");
                }
                s
            }
            None => format!("{}x{} {}", self.input_shape.0, self.input_shape.1, self.arch()),
        }
    }

    /// Bytes of a [`Workspace`] per sample of its capacity (training buffers
    /// included): activations and their gradients, masks, im2col.
    pub fn workspace_bytes_per_sample(&self) -> usize {
        let bufs: usize = Plan::new(self).buffer_lens.iter().sum();
        let scratch: usize = self.layers.iter().map(|l| l.scratch().len()).sum();
        4 * (2 * bufs + scratch)
    }

    /// Images per evaluation batch: up to 1000, fewer where a workspace that
    /// large would pass 256 MiB (a CNN's activations are large).
    pub fn eval_batch(&self) -> usize {
        const BUDGET: usize = 256 << 20;
        (BUDGET / self.workspace_bytes_per_sample().max(1)).clamp(16, 1000)
    }
}

/// Which buffer holds each layer's output: parameter-free reshapes (Flatten)
/// and fused dropout write nothing of their own and share their input's.
#[derive(Clone, Debug)]
struct Plan {
    /// Per layer: the buffer of its output; `None` is the model's input.
    out_buf: Vec<Option<usize>>,
    /// Per buffer: values per sample.
    buffer_lens: Vec<usize>,
}

impl Plan {
    fn new(spec: &ModelSpec) -> Plan {
        let mut out_buf = Vec::with_capacity(spec.layers.len());
        let mut buffer_lens = Vec::new();
        for (l, layer) in spec.layers.iter().enumerate() {
            let prev = if l == 0 { None } else { out_buf[l - 1] };
            let aliased = matches!(layer.op, Op::Flatten | Op::Dropout { fused: true, .. });
            if aliased {
                out_buf.push(prev);
            } else {
                out_buf.push(Some(buffer_lens.len()));
                buffer_lens.push(layer.output.len());
            }
        }
        Plan { out_buf, buffer_lens }
    }
    fn in_buf(&self, l: usize) -> Option<usize> {
        if l == 0 {
            None
        } else {
            self.out_buf[l - 1]
        }
    }
}

/// A model: its architecture and its parameters.
#[derive(Clone, Debug)]
pub struct Model {
    pub spec: ModelSpec,
    /// All parameters, layout as in [`ModelSpec::layers`].
    pub params: Vec<f32>,
    plan: Plan,
}

impl Model {
    /// Keras' initialisation: glorot_uniform kernels, U(−l, l) with
    /// l = √(6 / (fan_in + fan_out)); zero biases. Seeded.
    pub fn new(spec: ModelSpec, seed: u64) -> Model {
        let mut params = vec![0.0f32; spec.param_count()];
        let mut rng = fastrand::Rng::with_seed(seed);
        for l in spec.param_layers() {
            let limit = (6.0 / l.fans() as f64).sqrt() as f32;
            for w in &mut params[l.kernel.clone()] {
                *w = (rng.f32() * 2.0 - 1.0) * limit;
            }
        }
        Model::from_params(spec, params).expect("sized from the spec")
    }

    /// A model from existing parameters (e.g. loaded from a file), or a
    /// message when their count does not match the architecture.
    pub fn from_params(spec: ModelSpec, params: Vec<f32>) -> Result<Model, String> {
        if params.len() != spec.param_count() {
            return Err(format!("{} parameters, the architecture has {}", params.len(), spec.param_count()));
        }
        Ok(Model { plan: Plan::new(&spec), spec, params })
    }

    /// Layer `l`'s input: the model's input or a workspace buffer.
    fn input<'a>(&self, acts: &'a [Vec<f32>], x: &'a [f32], l: usize) -> &'a [f32] {
        self.plan.in_buf(l).map_or(x, |b| &acts[b][..])
    }

    /// Forward pass in inference mode (no dropout): fills `ws` and returns the
    /// logits `[batch, classes]`.
    pub fn forward<'w>(&self, ws: &'w mut Workspace, x: &[f32], batch: usize) -> &'w [f32] {
        self.forward_impl(ws, x, batch, false);
        let last = self.plan.out_buf.last().copied().flatten().expect("the last layer is Dense");
        &ws.acts[last][..batch * self.spec.classes()]
    }

    /// Layer `l`'s output `[batch, output.len()]` after [`Model::forward`]
    /// (the feature maps a user inspects), or `None` where the layer writes
    /// no buffer of its own and passes the model's input through.
    pub fn layer_output<'w>(&self, ws: &'w Workspace, l: usize, batch: usize) -> Option<&'w [f32]> {
        let b = (*self.plan.out_buf.get(l)?)?;
        Some(&ws.acts[b][..batch.min(ws.capacity) * self.spec.layers()[l].output.len()])
    }

    fn forward_impl(&self, ws: &mut Workspace, x: &[f32], batch: usize, training: bool) {
        assert!(batch <= ws.capacity, "batch {batch} exceeds workspace capacity {}", ws.capacity);
        assert!(x.len() >= batch * self.spec.input_dim(), "input holds fewer than {batch} images");
        let layers = self.spec.layers();
        for (l, layer) in layers.iter().enumerate() {
            // Dropout after this layer, fused into its epilogue: the mask is
            // drawn first, then multiplied in, so the output buffer holds the
            // dropped activations, the next layer's input.
            if let (true, Some(rate)) = (training, self.spec.fused_dropout_rate(l)) {
                let n = batch * layer.output.len();
                fill_dropout_mask(&mut ws.masks[l + 1][..n], rate, &mut ws.rng);
            }
            let Some(out_b) = self.plan.out_buf[l] else { continue };
            if self.plan.in_buf(l) == Some(out_b) {
                continue; // aliased: Flatten, fused dropout
            }
            let (before, rest) = ws.acts.split_at_mut(out_b);
            let out = &mut rest[0][..batch * layer.output.len()];
            let inp = self.input(before, x, l);
            let params = &self.params;
            match layer.op {
                Op::Dense { in_dim, out_dim, act } => {
                    let fused_mask = (training && self.spec.fused_dropout_rate(l).is_some())
                        .then(|| &ws.masks[l + 1][..batch * out_dim]);
                    dense::dense_forward(
                        out,
                        inp,
                        &params[layer.kernel.clone()],
                        &params[layer.bias.clone()],
                        fused_mask,
                        batch,
                        in_dim,
                        out_dim,
                        act,
                    );
                }
                Op::Conv2D { geometry, act } => conv2d::conv2d_forward(
                    out,
                    &mut ws.cols[l],
                    inp,
                    &params[layer.kernel.clone()],
                    &params[layer.bias.clone()],
                    &geometry,
                    batch,
                    act,
                ),
                Op::MaxPool(g) => maxpool::maxpool_forward(out, inp, &g, batch),
                Op::Dropout { rate, .. } => {
                    let n = batch * layer.output.len();
                    if training {
                        fill_dropout_mask(&mut ws.masks[l][..n], rate, &mut ws.rng);
                        dropout::apply_mask(out, &inp[..n], &ws.masks[l][..n]);
                    } else {
                        out.copy_from_slice(&inp[..n]);
                    }
                }
                Op::Flatten => unreachable!("aliased"),
            }
        }
    }

    /// Forward, loss and backward for one batch; gradients land in `ws.grads`
    /// (same layout as `params`). Returns (Σ loss, correct predictions).
    pub fn forward_backward(&self, ws: &mut Workspace, x: &[f32], labels: &[u32]) -> (f64, usize) {
        let batch = labels.len();
        self.forward_impl(ws, x, batch, true);
        let layers = self.spec.layers();
        let classes = self.spec.classes();
        let last = self.plan.out_buf.last().copied().flatten().expect("the last layer is Dense");
        let (loss_sum, correct) = loss::softmax_cross_entropy(
            &ws.acts[last][..batch * classes],
            labels,
            classes,
            Some(&mut ws.dacts[last][..batch * classes]),
        );
        for l in (0..layers.len()).rev() {
            let layer = &layers[l];
            let Some(out_b) = self.plan.out_buf[l] else { continue };
            let in_b = self.plan.in_buf(l);
            if in_b == Some(out_b) {
                continue; // aliased: the gradient is already the input's
            }
            let needs_dx = self.spec.needs_input_grad(l);
            let (dbefore, drest) = ws.dacts.split_at_mut(out_b);
            let (dout, dafter) = drest.split_first_mut().expect("out_b is a buffer");
            let dout = &mut dout[..batch * layer.output.len()];
            let dinp = match (needs_dx, in_b) {
                (true, Some(b)) => Some(&mut dbefore[b][..batch * layer.input.len()]),
                _ => None,
            };
            let out = &ws.acts[out_b][..batch * layer.output.len()];
            let params = &self.params;
            match layer.op {
                Op::Dense { in_dim, out_dim, act } => {
                    let mask = self.spec.fused_dropout_rate(l).map(|_| &ws.masks[l + 1][..]);
                    let grads = &mut ws.grads[layer.kernel.start..layer.bias.end];
                    let (dweight, dbias) = grads.split_at_mut(in_dim * out_dim);
                    dense::dense_backward(
                        dinp,
                        dweight,
                        dbias,
                        dout,
                        out,
                        mask,
                        self.input(&ws.acts, x, l),
                        &params[layer.kernel.clone()],
                        batch,
                        in_dim,
                        out_dim,
                        act,
                    );
                }
                Op::Conv2D { geometry, act } => {
                    let source = if self.spec.pool_backward_in_conv(l + 1) {
                        // The pool after it left its gradient in its own
                        // dout: ours is scratch here (see `Op::MaxPool` below).
                        let Op::MaxPool(pool) = layers[l + 1].op else { unreachable!("a pool follows") };
                        let pool_b = self.plan.out_buf[l + 1].expect("a pool writes its own buffer");
                        let pool_len = batch * layers[l + 1].output.len();
                        DzSource::ThroughPool {
                            pool_dout: &dafter[pool_b - out_b - 1][..pool_len],
                            pool_out: &ws.acts[pool_b][..pool_len],
                            conv_out: out,
                            pool,
                            act,
                        }
                    } else {
                        DzSource::InPlace { out, act: self.spec.conv_backward_activation(l, act) }
                    };
                    let grads = &mut ws.grads[layer.kernel.start..layer.bias.end];
                    let (dkernel, dbias) = grads.split_at_mut(layer.kernel.len());
                    conv2d::conv2d_backward_from(
                        gemm::selected_isa(),
                        dinp,
                        dkernel,
                        dbias,
                        dout,
                        source,
                        self.input(&ws.acts, x, l),
                        &mut ws.cols[l],
                        &params[layer.kernel.clone()],
                        &geometry,
                        batch,
                    );
                }
                Op::MaxPool(_) if self.spec.pool_backward_in_conv(l) => {} // in the conv's backward
                Op::MaxPool(g) => {
                    if let Some(dinp) = dinp {
                        let act = self.spec.pool_fused_activation(l).unwrap_or_default();
                        maxpool::maxpool_backward(dinp, dout, self.input(&ws.acts, x, l), out, &g, batch, act);
                    }
                }
                Op::Dropout { .. } => {
                    if let Some(dinp) = dinp {
                        let n = dout.len();
                        dropout::apply_mask(dinp, dout, &ws.masks[l][..n]);
                    }
                }
                Op::Flatten => unreachable!("aliased"),
            }
        }
        (loss_sum, correct)
    }

    /// One training step: forward, backward, optimizer update. Allocates nothing.
    pub fn train_step(&mut self, opt: &mut Optimizer, ws: &mut Workspace, x: &[f32], labels: &[u32]) -> (f64, usize) {
        let result = self.forward_backward(ws, x, labels);
        opt.step(&mut self.params, &ws.grads);
        result
    }
}

/// Buffers for one batch through the model, allocated once for a capacity.
pub struct Workspace {
    pub capacity: usize,
    /// Per buffer (see the model's plan): activations `[capacity, len]`.
    pub acts: Vec<Vec<f32>>,
    /// Per buffer: the gradient w.r.t. those activations.
    pub dacts: Vec<Vec<f32>>,
    /// Per Dropout layer: the mask of its last training pass (else empty).
    pub masks: Vec<Vec<f32>>,
    /// Per Conv2D layer: its input's im2col `[capacity·oh·ow, k·k·cin]` (else empty).
    pub cols: Vec<Vec<f32>>,
    /// Gradients, same layout as the parameters.
    pub grads: Vec<f32>,
    /// Dropout's random stream.
    pub rng: fastrand::Rng,
}

impl Workspace {
    /// Bytes its buffers hold (gradients of the parameters included).
    pub fn bytes(&self) -> usize {
        let floats: usize =
            [&self.acts, &self.dacts, &self.masks, &self.cols].iter().flat_map(|v| v.iter().map(Vec::len)).sum();
        4 * (floats + self.grads.len())
    }

    pub fn new(spec: &ModelSpec, capacity: usize, seed: u64) -> Workspace {
        let plan = Plan::new(spec);
        let bufs = || plan.buffer_lens.iter().map(|n| vec![0.0; capacity * n]).collect();
        // Per layer: its scratch in the vector of its kind, empty ones in the others.
        let (mut masks, mut cols) = (Vec::new(), Vec::new());
        for scratch in spec.layers().iter().map(Layer::scratch) {
            let len = |mine: bool| if mine { scratch.floats(capacity) } else { 0 };
            masks.push(vec![0.0; len(matches!(scratch, Scratch::Mask(_)))]);
            cols.push(vec![0.0; len(matches!(scratch, Scratch::Conv(_)))]);
        }
        Workspace {
            capacity,
            acts: bufs(),
            dacts: bufs(),
            masks,
            cols,
            grads: vec![0.0; spec.param_count()],
            rng: fastrand::Rng::with_seed(seed ^ 0x5eed_d20f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_book_cnn_has_kerass_shapes_names_and_counts() {
        let spec = ModelSpec::new((28, 28), &arch::cnn(10)).unwrap();
        let rows: Vec<(String, Shape, usize)> =
            spec.layers().iter().map(|l| (l.name.clone(), l.output, l.param_count())).collect();
        let expect = [
            ("conv2d", Shape::Image(28, 28, 32), 320),
            ("max_pooling2d", Shape::Image(14, 14, 32), 0),
            ("conv2d_1", Shape::Image(14, 14, 64), 18_496),
            ("max_pooling2d_1", Shape::Image(7, 7, 64), 0),
            ("flatten", Shape::Flat(3136), 0),
            ("dense", Shape::Flat(100), 313_700),
            ("dropout", Shape::Flat(100), 0),
            ("dense_1", Shape::Flat(10), 1010),
        ];
        let expect: Vec<(String, Shape, usize)> = expect.iter().map(|(n, s, p)| (n.to_string(), *s, *p)).collect();
        assert_eq!(rows, expect);
        assert_eq!(spec.param_count(), 333_526);
        // The figure: 24.47 MFLOP per training sample.
        assert_eq!(spec.train_flops_per_sample(), 24_466_800);
        assert_eq!(spec.as_mlp(), None);
    }

    #[test]
    fn the_mlp_is_recognised_and_described_as_before() {
        let spec = ModelSpec::mlp((28, 28), &[300, 100], Activation::Relu, 10, 0.2).unwrap();
        assert_eq!(spec.describe(), "784-300-100-10 relu dropout 0.2");
        assert_eq!(spec.as_mlp(), Some((vec![300, 100], Activation::Relu, 0.2)));
        let plain = ModelSpec::mlp((28, 28), &[100], Activation::Sigmoid, 10, 0.0).unwrap();
        assert_eq!(plain.describe(), "784-100-10 sigmoid");
        assert_eq!(plain.train_flops_per_sample(), 2 * 2 * 78_400 + 3 * 2 * 1000);
        let other = ModelSpec::new(
            (28, 28),
            &arch::parse("flatten,dense(100,relu),dropout(0.3),dense(50,sigmoid),dense(10)").unwrap(),
        )
        .unwrap();
        assert_eq!(other.as_mlp(), None);
    }

    #[test]
    fn layers_that_do_not_fit_say_which_and_why() {
        let err = |s: &str| ModelSpec::new((28, 28), &arch::parse(s).unwrap()).unwrap_err();
        assert_eq!(
            err("conv2d(8,3),dense(10)"),
            "layer 2 dense(10): dense needs a flat input: add flatten before it (its input is 26x26x8)"
        );
        assert!(err("conv2d(8,7,valid),maxpool(2),conv2d(8,7,valid),conv2d(8,7,valid),flatten,dense(10)")
            .contains("layer 4 conv2d(8,7,linear,valid): a 7x7 kernel does not fit a 5x5 input"));
        assert!(err("maxpool(29),flatten,dense(10)").contains("a 29x29 pool is larger than its 28x28 input"));
        assert!(err("flatten,conv2d(8,3),flatten,dense(10)").contains("needs an image input"));
        assert!(err("flatten,dense(10,relu)").contains("must be dense(CLASSES)"));
        assert!(err("flatten,dense(1)").contains("at least 2 classes"));
        assert!(err("conv2d(4096,7,same),conv2d(4096,7,same),flatten,dense(10)")
            .contains("layer 2 conv2d(4096,7,linear,same): its im2col and weight-gradient sums need 979439616 values"));
        assert!(err("flatten,dense(1000000),dense(1000)").contains("would exceed 268435456 parameters"));
    }
}
