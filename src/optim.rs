//! Optimizers with Keras 3's update rules and defaults, stepping one flat
//! parameter buffer in place from a gradient buffer of the same layout.
//!
//! Each step is one pass over the buffers with the loop-invariant terms (bias
//! corrections, 1 − ρ, …) hoisted out of the loop.

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

    /// One update of `params` from `grads` (same layout), in place.
    pub fn step(&mut self, params: &mut [f32], grads: &[f32]) {
        assert_eq!(params.len(), grads.len());
        self.iterations += 1;
        let lr = self.learning_rate;
        match self.kind {
            OptimizerKind::Sgd { momentum, nesterov } => {
                if momentum == 0.0 {
                    // w ← w − lr·g
                    for (w, &g) in params.iter_mut().zip(grads) {
                        *w -= lr * g;
                    }
                } else {
                    // Keras: v ← μ·v − lr·g; w ← w + v (Nesterov: w ← w + μ·v − lr·g)
                    for ((w, &g), v) in params.iter_mut().zip(grads).zip(&mut self.slot_1) {
                        *v = momentum * *v - lr * g;
                        *w += if nesterov { momentum * *v - lr * g } else { *v };
                    }
                }
            }
            OptimizerKind::Adagrad { epsilon, .. } => {
                // a ← a + g²; w ← w − lr·g / √(a + ε)
                for ((w, &g), a) in params.iter_mut().zip(grads).zip(&mut self.slot_1) {
                    *a += g * g;
                    *w -= lr * g / (*a + epsilon).sqrt();
                }
            }
            OptimizerKind::RmsProp { rho, epsilon } => {
                // v ← ρ·v + (1 − ρ)·g²; w ← w − lr·g / √(v + ε)
                // Keras computes 1 − ρ in Python (f64), then casts.
                let (rho, one_minus_rho) = (rho as f32, (1.0 - rho) as f32);
                for ((w, &g), v) in params.iter_mut().zip(grads).zip(&mut self.slot_1) {
                    *v = rho * *v + one_minus_rho * g * g;
                    *w -= lr * g / (*v + epsilon).sqrt();
                }
            }
            OptimizerKind::Adam { beta_1, beta_2, epsilon } => {
                // m ← m + (g − m)(1 − β₁); v ← v + (g² − v)(1 − β₂);
                // w ← w − α·m / (√v + ε), α = lr·√(1 − β₂ᵗ) / (1 − β₁ᵗ)
                // As Keras: βᵗ and α in f32 (β cast first); 1 − β in f64, then cast.
                let t = self.iterations as f32;
                let (b1_power, b2_power) = ((beta_1 as f32).powf(t), (beta_2 as f32).powf(t));
                let alpha = lr * (1.0 - b2_power).sqrt() / (1.0 - b1_power);
                let (one_minus_b1, one_minus_b2) = ((1.0 - beta_1) as f32, (1.0 - beta_2) as f32);
                for (((w, &g), m), v) in params.iter_mut().zip(grads).zip(&mut self.slot_1).zip(&mut self.slot_2) {
                    *m += (g - *m) * one_minus_b1;
                    *v += (g * g - *v) * one_minus_b2;
                    *w -= *m * alpha / (v.sqrt() + epsilon);
                }
            }
        }
    }
}
