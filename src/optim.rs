//! Optimizers with Keras 3's update rules and defaults, stepping one flat
//! parameter buffer in place from a gradient buffer of the same layout.
//!
//! Each step is one pass over the buffers with the loop-invariant terms (bias
//! corrections, 1 − ρ, …) hoisted out of the loop.

use wide::f32x8;

/// Which optimizer, with its hyperparameters (Keras' names and defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerKind {
    /// `SGD(learning_rate=0.01, momentum=0.0, nesterov=False)`.
    Sgd { momentum: f32, nesterov: bool },
    /// `Adagrad(learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7)`.
    Adagrad { initial_accumulator: f32, epsilon: f32 },
    /// `RMSprop(learning_rate=0.001, rho=0.9, epsilon=1e-7)` (no momentum, not centered).
    RmsProp { rho: f64, epsilon: f32 },
    /// `Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7)`.
    Adam { beta_1: f64, beta_2: f64, epsilon: f32 },
}

impl OptimizerKind {
    pub fn sgd() -> Self {
        OptimizerKind::Sgd { momentum: 0.0, nesterov: false }
    }
    pub fn adagrad() -> Self {
        OptimizerKind::Adagrad { initial_accumulator: 0.1, epsilon: 1e-7 }
    }
    pub fn rmsprop() -> Self {
        OptimizerKind::RmsProp { rho: 0.9, epsilon: 1e-7 }
    }
    pub fn adam() -> Self {
        OptimizerKind::Adam { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 }
    }

    /// Keras' default learning rate for this optimizer.
    pub fn default_learning_rate(&self) -> f32 {
        match self {
            OptimizerKind::Sgd { .. } => 0.01,
            _ => 0.001,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            OptimizerKind::Sgd { .. } => "sgd",
            OptimizerKind::Adagrad { .. } => "adagrad",
            OptimizerKind::RmsProp { .. } => "rmsprop",
            OptimizerKind::Adam { .. } => "adam",
        }
    }

    /// e.g. `SGD(lr=0.01, momentum=0.9, nesterov)` or `Adam(lr=0.001)`.
    pub fn describe(&self, lr: f32) -> String {
        match *self {
            OptimizerKind::Sgd { momentum, nesterov } => {
                let mut s = format!("SGD(lr={lr}");
                if momentum != 0.0 {
                    s += &format!(", momentum={momentum}");
                }
                if nesterov {
                    s += ", nesterov";
                }
                s + ")"
            }
            OptimizerKind::Adagrad { .. } => format!("Adagrad(lr={lr})"),
            OptimizerKind::RmsProp { .. } => format!("RMSprop(lr={lr})"),
            OptimizerKind::Adam { .. } => format!("Adam(lr={lr})"),
        }
    }
}

/// An optimizer and its per-parameter state (slots of the parameter buffer's layout).
#[derive(Clone, Debug)]
pub struct Optimizer {
    pub kind: OptimizerKind,
    pub learning_rate: f32,
    /// Steps taken so far (Keras' `iterations`).
    pub iterations: u64,
    /// Momentum velocity / Adagrad accumulator / RMSprop velocity / Adam m.
    slot_1: Vec<f32>,
    /// Adam v.
    slot_2: Vec<f32>,
}

impl Optimizer {
    pub fn new(kind: OptimizerKind, learning_rate: f32, param_count: usize) -> Optimizer {
        let (n1, fill_1, n2) = match kind {
            OptimizerKind::Sgd { momentum, .. } => (if momentum != 0.0 { param_count } else { 0 }, 0.0, 0),
            OptimizerKind::Adagrad { initial_accumulator, .. } => (param_count, initial_accumulator, 0),
            OptimizerKind::RmsProp { .. } => (param_count, 0.0, 0),
            OptimizerKind::Adam { .. } => (param_count, 0.0, param_count),
        };
        Optimizer { kind, learning_rate, iterations: 0, slot_1: vec![fill_1; n1], slot_2: vec![0.0; n2] }
    }

    /// One update of `params` from `grads` (same layout), in place: one pass
    /// over the buffers, eight lanes at a time (`wide::f32x8`), with the
    /// loop-invariant terms hoisted.
    pub fn step(&mut self, params: &mut [f32], grads: &[f32]) {
        assert_eq!(params.len(), grads.len());
        self.iterations += 1;
        let lr = f32x8::splat(self.learning_rate);
        match self.kind {
            OptimizerKind::Sgd { momentum: 0.0, .. } => {
                // w ← w − lr·g
                for_each_lane(params, grads, |w, g| *w -= lr * g);
            }
            OptimizerKind::Sgd { momentum, nesterov } => {
                // Keras: v ← μ·v − lr·g; w ← w + v (Nesterov: w ← w + μ·v − lr·g)
                let mu = f32x8::splat(momentum);
                for_each_lane_1(params, grads, &mut self.slot_1, |w, g, v| {
                    *v = mu * *v - lr * g;
                    *w += if nesterov { mu * *v - lr * g } else { *v };
                });
            }
            OptimizerKind::Adagrad { epsilon, .. } => {
                // a ← a + g²; w ← w − lr·g / √(a + ε)
                let eps = f32x8::splat(epsilon);
                for_each_lane_1(params, grads, &mut self.slot_1, |w, g, a| {
                    *a += g * g;
                    *w -= lr * g / (*a + eps).sqrt();
                });
            }
            OptimizerKind::RmsProp { rho, epsilon } => {
                // v ← ρ·v + (1 − ρ)·g²; w ← w − lr·g / √(v + ε).
                // Keras computes 1 − ρ in Python (f64), then casts.
                let (rho_v, one_minus_rho) = (f32x8::splat(rho as f32), f32x8::splat((1.0 - rho) as f32));
                let eps = f32x8::splat(epsilon);
                for_each_lane_1(params, grads, &mut self.slot_1, |w, g, v| {
                    *v = rho_v * *v + one_minus_rho * g * g;
                    *w -= lr * g / (*v + eps).sqrt();
                });
            }
            OptimizerKind::Adam { beta_1, beta_2, epsilon } => {
                // m ← m + (g − m)(1 − β₁); v ← v + (g² − v)(1 − β₂);
                // w ← w − m·α / (√v + ε), α = lr·√(1 − β₂ᵗ) / (1 − β₁ᵗ).
                // As Keras: βᵗ and α in f32 (β cast first); 1 − β in f64, then cast.
                let t = self.iterations as f32;
                let (b1_power, b2_power) = ((beta_1 as f32).powf(t), (beta_2 as f32).powf(t));
                let alpha = f32x8::splat(self.learning_rate * (1.0 - b2_power).sqrt() / (1.0 - b1_power));
                let (one_minus_b1, one_minus_b2) =
                    (f32x8::splat((1.0 - beta_1) as f32), f32x8::splat((1.0 - beta_2) as f32));
                let eps = f32x8::splat(epsilon);
                for_each_lane_2(params, grads, &mut self.slot_1, &mut self.slot_2, |w, g, m, v| {
                    *m += (g - *m) * one_minus_b1;
                    *v += (g * g - *v) * one_minus_b2;
                    *w -= *m * alpha / (v.sqrt() + eps);
                });
            }
        }
    }
}

const L: usize = 8;

/// Eight lanes from a chunk of at most eight values, zero-padded.
#[inline(always)]
fn load(s: &[f32]) -> f32x8 {
    let mut lanes = [0.0f32; L];
    lanes[..s.len()].copy_from_slice(s);
    f32x8::from(lanes)
}

/// Writes the first `s.len()` lanes back.
#[inline(always)]
fn store(s: &mut [f32], v: f32x8) {
    let len = s.len();
    s.copy_from_slice(&v.to_array()[..len]);
}

/// Runs `update(w, g, slots)` over the buffers eight lanes at a time; the
/// tail (fewer than eight elements) goes through the same closure, zero-padded,
/// so every element sees exactly one formula. One function per slot count
/// keeps each loop a plain zip of exact chunks, which compiles to vector code.
#[inline(always)]
fn for_each_lane(params: &mut [f32], grads: &[f32], update: impl Fn(&mut f32x8, f32x8)) {
    assert_eq!(grads.len(), params.len());
    let mut w_chunks = params.chunks_exact_mut(L);
    let mut g_chunks = grads.chunks_exact(L);
    for (w, g) in (&mut w_chunks).zip(&mut g_chunks) {
        let mut wv = load(w);
        update(&mut wv, load(g));
        store(w, wv);
    }
    let (w, g) = (w_chunks.into_remainder(), g_chunks.remainder());
    let mut wv = load(w);
    update(&mut wv, load(g));
    store(w, wv);
}

/// [`for_each_lane`] with one state slot.
#[inline(always)]
fn for_each_lane_1(params: &mut [f32], grads: &[f32], s1: &mut [f32], update: impl Fn(&mut f32x8, f32x8, &mut f32x8)) {
    assert!(grads.len() == params.len() && s1.len() == params.len());
    let mut w_chunks = params.chunks_exact_mut(L);
    let mut g_chunks = grads.chunks_exact(L);
    let mut a_chunks = s1.chunks_exact_mut(L);
    for ((w, g), a) in (&mut w_chunks).zip(&mut g_chunks).zip(&mut a_chunks) {
        let (mut wv, mut av) = (load(w), load(a));
        update(&mut wv, load(g), &mut av);
        store(w, wv);
        store(a, av);
    }
    let (w, g, a) = (w_chunks.into_remainder(), g_chunks.remainder(), a_chunks.into_remainder());
    let (mut wv, mut av) = (load(w), load(a));
    update(&mut wv, load(g), &mut av);
    store(w, wv);
    store(a, av);
}

/// [`for_each_lane`] with two state slots.
#[inline(always)]
fn for_each_lane_2(
    params: &mut [f32],
    grads: &[f32],
    s1: &mut [f32],
    s2: &mut [f32],
    update: impl Fn(&mut f32x8, f32x8, &mut f32x8, &mut f32x8),
) {
    assert!(grads.len() == params.len() && s1.len() == params.len() && s2.len() == params.len());
    let mut w_chunks = params.chunks_exact_mut(L);
    let mut g_chunks = grads.chunks_exact(L);
    let mut a_chunks = s1.chunks_exact_mut(L);
    let mut b_chunks = s2.chunks_exact_mut(L);
    for (((w, g), a), b) in (&mut w_chunks).zip(&mut g_chunks).zip(&mut a_chunks).zip(&mut b_chunks) {
        let (mut wv, mut av, mut bv) = (load(w), load(a), load(b));
        update(&mut wv, load(g), &mut av, &mut bv);
        store(w, wv);
        store(a, av);
        store(b, bv);
    }
    let (w, g) = (w_chunks.into_remainder(), g_chunks.remainder());
    let (a, b) = (a_chunks.into_remainder(), b_chunks.into_remainder());
    let (mut wv, mut av, mut bv) = (load(w), load(a), load(b));
    update(&mut wv, load(g), &mut av, &mut bv);
    store(w, wv);
    store(a, av);
    store(b, bv);
}
