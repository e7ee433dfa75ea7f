//! The Sequential MLP: Flatten → Dense(hidden…, act) [→ Dropout] → Dense(classes)
//! with softmax fused into the loss.
//!
//! All parameters live in one flat buffer, layer after layer as
//! `[kernel (in × out, row-major), bias (out)]`; gradients use the same layout,
//! so `zero_grad` is a fill and an optimizer step is one loop.

use crate::dense;
use crate::gemm::Activation;
use crate::loss;
use crate::optim::Optimizer;
use std::ops::Range;

/// The architecture: everything needed to rebuild the model.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    /// Image rows and columns (flattened to rows·cols inputs).
    pub input_shape: (usize, usize),
    /// Units of each hidden Dense layer.
    pub hidden: Vec<usize>,
    /// Activation of the hidden layers.
    pub activation: Activation,
    /// Units of the output layer (softmax).
    pub classes: usize,
    /// Inverted-dropout rate after each hidden layer (0 = none).
    pub dropout: f32,
}

/// One Dense layer's place in the flat buffers.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerView {
    /// Keras' name: `dense`, `dense_1`, ….
    pub name: String,
    pub in_dim: usize,
    pub out_dim: usize,
    pub act: Activation,
    /// The kernel `[in_dim, out_dim]` in the flat buffer.
    pub kernel: Range<usize>,
    /// The bias `[out_dim]` in the flat buffer (right after the kernel).
    pub bias: Range<usize>,
}

impl ModelSpec {
    pub fn input_dim(&self) -> usize {
        self.input_shape.0 * self.input_shape.1
    }

    /// The Dense layers in order, with their ranges in the flat buffer.
    pub fn layers(&self) -> Vec<LayerView> {
        let mut dims = vec![self.input_dim()];
        dims.extend(&self.hidden);
        dims.push(self.classes);
        let mut offset = 0;
        (0..dims.len() - 1)
            .map(|l| {
                let (in_dim, out_dim) = (dims[l], dims[l + 1]);
                let kernel = offset..offset + in_dim * out_dim;
                let bias = kernel.end..kernel.end + out_dim;
                offset = bias.end;
                LayerView {
                    name: if l == 0 { "dense".into() } else { format!("dense_{l}") },
                    in_dim,
                    out_dim,
                    act: if l + 1 < dims.len() - 1 { self.activation } else { Activation::Linear },
                    kernel,
                    bias,
                }
            })
            .collect()
    }

    pub fn param_count(&self) -> usize {
        self.layers().last().map_or(0, |l| l.bias.end)
    }

    /// Floating-point operations of one training step per sample: the forward
    /// GEMM (2·in·out) and the two backward GEMMs (dW always, dX except for the
    /// first layer).
    pub fn train_flops_per_sample(&self) -> u64 {
        self.layers()
            .iter()
            .enumerate()
            .map(|(l, v)| {
                let mm = 2 * (v.in_dim * v.out_dim) as u64;
                if l == 0 {
                    2 * mm
                } else {
                    3 * mm
                }
            })
            .sum()
    }

    /// e.g. `784-100-10 relu`.
    pub fn describe(&self) -> String {
        let mut dims = vec![self.input_dim().to_string()];
        dims.extend(self.hidden.iter().map(|h| h.to_string()));
        dims.push(self.classes.to_string());
        let mut s = format!("{} {}", dims.join("-"), self.activation.name());
        if self.dropout > 0.0 {
            s += &format!(" dropout {}", self.dropout);
        }
        s
    }
}

/// A model: its architecture and its parameters.
#[derive(Clone, Debug)]
pub struct Model {
    pub spec: ModelSpec,
    pub layers: Vec<LayerView>,
    /// All parameters, layout as in [`ModelSpec::layers`].
    pub params: Vec<f32>,
}

impl Model {
    /// Keras' initialisation: glorot_uniform kernels, U(−l, l) with
    /// l = √(6 / (fan_in + fan_out)); zero biases. Seeded.
    pub fn new(spec: ModelSpec, seed: u64) -> Model {
        let layers = spec.layers();
        let mut params = vec![0.0f32; spec.param_count()];
        let mut rng = fastrand::Rng::with_seed(seed);
        for l in &layers {
            let limit = (6.0 / (l.in_dim + l.out_dim) as f64).sqrt() as f32;
            for w in &mut params[l.kernel.clone()] {
                *w = (rng.f32() * 2.0 - 1.0) * limit;
            }
        }
        Model { spec, layers, params }
    }

    /// A model from existing parameters (e.g. loaded from a file).
    pub fn from_params(spec: ModelSpec, params: Vec<f32>) -> Model {
        assert_eq!(params.len(), spec.param_count(), "parameter count does not match the architecture");
        Model { layers: spec.layers(), spec, params }
    }

    /// Forward pass in inference mode (no dropout): fills `ws` and returns the
    /// logits `[batch, classes]`.
    pub fn forward<'w>(&self, ws: &'w mut Workspace, x: &[f32], batch: usize) -> &'w [f32] {
        self.forward_impl(ws, x, batch, false);
        let last = self.layers.len() - 1;
        &ws.outs[last][..batch * self.spec.classes]
    }

    fn forward_impl(&self, ws: &mut Workspace, x: &[f32], batch: usize, training: bool) {
        assert!(batch <= ws.capacity, "batch {batch} exceeds workspace capacity {}", ws.capacity);
        let dropout = training && self.spec.dropout > 0.0;
        let hidden = self.layers.len() - 1;
        for (l, layer) in self.layers.iter().enumerate() {
            let (before, rest) = ws.outs.split_at_mut(l);
            let inp: &[f32] = if l == 0 { x } else { &before[l - 1] };
            // Dropout after a hidden layer: its mask is drawn first, then
            // multiplied in by the GEMM's epilogue, so `outs[l]` holds the
            // dropped activations, the next layer's input.
            let mask = if dropout && l < hidden {
                let mask = &mut ws.masks[l][..batch * layer.out_dim];
                fill_dropout_mask(mask, self.spec.dropout, &mut ws.rng);
                Some(&*mask)
            } else {
                None
            };
            dense::dense_forward(
                &mut rest[0],
                inp,
                &self.params[layer.kernel.clone()],
                &self.params[layer.bias.clone()],
                mask,
                batch,
                layer.in_dim,
                layer.out_dim,
                layer.act,
            );
        }
    }

    /// Forward, loss and backward for one batch; gradients land in `ws.grads`
    /// (same layout as `params`). Returns (Σ loss, correct predictions).
    pub fn forward_backward(&self, ws: &mut Workspace, x: &[f32], labels: &[u32]) -> (f64, usize) {
        let batch = labels.len();
        self.forward_impl(ws, x, batch, true);
        let dropout = self.spec.dropout > 0.0;
        let last = self.layers.len() - 1;
        let classes = self.spec.classes;
        let (loss_sum, correct) = loss::softmax_cross_entropy(
            &ws.outs[last][..batch * classes],
            labels,
            classes,
            Some(&mut ws.douts[last][..batch * classes]),
        );
        for l in (0..self.layers.len()).rev() {
            let layer = &self.layers[l];
            let (dbefore, drest) = ws.douts.split_at_mut(l);
            let inp: &[f32] = if l == 0 { x } else { &ws.outs[l - 1] };
            // The mask this layer's output was multiplied by (hidden layers
            // with dropout); its derivative is folded into the activation's.
            let mask = if dropout && l < last { Some(&ws.masks[l][..]) } else { None };
            let grads = &mut ws.grads[layer.kernel.start..layer.bias.end];
            let (dweight, dbias) = grads.split_at_mut(layer.in_dim * layer.out_dim);
            dense::dense_backward(
                if l == 0 { None } else { Some(&mut dbefore[l - 1]) },
                dweight,
                dbias,
                &mut drest[0],
                &ws.outs[l],
                mask,
                inp,
                &self.params[layer.kernel.clone()],
                batch,
                layer.in_dim,
                layer.out_dim,
                layer.act,
            );
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

/// Inverted dropout's mask: each factor is 1/(1 − rate) with probability
/// 1 − rate, else 0. Two draws per 64-bit random number, each kept when its
/// 32 bits are at least rate·2³².
pub fn fill_dropout_mask(mask: &mut [f32], rate: f32, rng: &mut fastrand::Rng) {
    let keep_scale = 1.0 / (1.0 - rate);
    let threshold = (rate as f64 * 4_294_967_296.0) as u64;
    let factor = |bits: u64| if bits & 0xffff_ffff >= threshold { keep_scale } else { 0.0 };
    let mut pairs = mask.chunks_exact_mut(2);
    for pair in &mut pairs {
        let r = rng.u64(..);
        pair[0] = factor(r);
        pair[1] = factor(r >> 32);
    }
    if let [last] = pairs.into_remainder() {
        *last = factor(rng.u64(..));
    }
}

/// Buffers for one batch through the model, allocated once for a capacity.
pub struct Workspace {
    pub capacity: usize,
    /// Per layer: activations `[capacity, out_dim]` (logits for the last).
    pub outs: Vec<Vec<f32>>,
    /// Per layer: gradient w.r.t. its output, `[capacity, out_dim]`.
    pub douts: Vec<Vec<f32>>,
    /// Per hidden layer, with dropout: the mask its output was multiplied by
    /// (`outs` then holds the dropped activations).
    pub masks: Vec<Vec<f32>>,
    /// Gradients, same layout as the parameters.
    pub grads: Vec<f32>,
    /// Dropout's random stream.
    pub rng: fastrand::Rng,
}

impl Workspace {
    pub fn new(spec: &ModelSpec, capacity: usize, seed: u64) -> Workspace {
        let layers = spec.layers();
        let per_layer = |only_hidden: bool| -> Vec<Vec<f32>> {
            let n = if only_hidden { layers.len() - 1 } else { layers.len() };
            layers[..n].iter().map(|l| vec![0.0; capacity * l.out_dim]).collect()
        };
        let with_dropout = spec.dropout > 0.0;
        Workspace {
            capacity,
            outs: per_layer(false),
            douts: per_layer(false),
            masks: if with_dropout { per_layer(true) } else { Vec::new() },
            grads: vec![0.0; spec.param_count()],
            rng: fastrand::Rng::with_seed(seed ^ 0x5eed_d20f),
        }
    }
}
