//! Optimizers with Keras 3's update rules and defaults, stepping one flat
//! parameter buffer in place from a gradient buffer of the same layout.
//!
//! Each step is one pass over the buffers with the loop-invariant terms (bias
//! corrections, 1 − ρ, …) hoisted out of the loop ([`Rule`]).
//!
//! The element loop is written once, generic over the GEMM's vector trait
//! (`gemm::simd::Simd`), and entered through one thin `#[target_feature]`
//! wrapper per instruction set, picked at run time like the GEMM's
//! (`gemm::selected_isa()`, `SIMDNET_ISA` forces one): AVX-512F (16 lanes),
//! AVX2 + FMA (8 lanes), portable `wide::f32x8`. The last partial vector is
//! loaded and stored masked, so every element sees the same formula.
//!
//! The state slots (m, v, accumulators, velocities) and the SGD updates are
//! computed with exactly Keras' operations, bit for bit as [`reference`]. The
//! Adam / RMSprop / Adagrad weight updates replace the exact `sqrt` and
//! division, which are limited by the divider's throughput, with the hardware
//! reciprocal(-square-root) estimates refined by Newton–Raphson: the update
//! stays within a few ulp of the exact formula (see the tests), at a fraction
//! of the cost. `Isa::Reference` runs [`reference`], the exact scalar
//! formulas.

use crate::gemm::simd::{Simd, VWide};
use crate::gemm::{selected_isa, Isa};

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

    /// One update of `params` from `grads` (same layout), in place, on the
    /// instruction-set path [`selected_isa`] picks.
    pub fn step(&mut self, params: &mut [f32], grads: &[f32]) {
        self.step_with(selected_isa(), params, grads)
    }

    /// [`Optimizer::step`] on a given path (`Isa::Reference`: the exact
    /// scalar formulas of [`reference`]). Panics if `isa` is not available on
    /// this CPU or the buffers' lengths differ from the optimizer's.
    pub fn step_with(&mut self, isa: Isa, params: &mut [f32], grads: &[f32]) {
        let n = params.len();
        assert_eq!(grads.len(), n, "optimizer step: {} gradients for {n} parameters", grads.len());
        assert!(isa.is_available(), "optimizer step: {} is not supported by this CPU", isa.name());
        self.iterations += 1;
        let rule = self.rule();
        let made_for = self.slot_1.len().max(self.slot_2.len());
        let (s1, s2) = rule.slots(&mut self.slot_1, &mut self.slot_2);
        assert!(
            s1.as_ref().is_none_or(|s| s.len() == n) && s2.as_ref().is_none_or(|s| s.len() == n),
            "optimizer step: {n} parameters, but the optimizer was made for {made_for}"
        );
        if isa == Isa::Reference {
            return reference::apply(rule, params, grads, s1.unwrap_or_default(), s2.unwrap_or_default());
        }
        let bufs = Bufs {
            w: params.as_mut_ptr(),
            g: grads.as_ptr(),
            s1: s1.map_or(std::ptr::null_mut(), |s| s.as_mut_ptr()),
            s2: s2.map_or(std::ptr::null_mut(), |s| s.as_mut_ptr()),
            n,
        };
        let run = |b: Bufs| {
            // SAFETY: every buffer the rule touches is `b.n` long from its
            // pointer (checked above for the whole step; a part is a
            // sub-range) and they are distinct borrows; `isa` is available on
            // this CPU (checked).
            unsafe {
                match isa {
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx512 => apply_avx512(rule, b),
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx2 => apply_avx2(rule, b),
                    _ => apply::<VWide>(rule, b),
                }
            }
        };
        // Parallel over contiguous parts, one per thread, when each part is
        // big enough to pay for the hand-off. Every element's update is the
        // same lane-wise formula wherever a part starts, so the result is
        // bit-identical for any thread count.
        let parts = (n / PAR_MIN_PARAMS).min(rayon::current_num_threads()).max(1);
        if parts == 1 {
            return run(bufs);
        }
        use rayon::prelude::*;
        let part_len = n.div_ceil(parts).next_multiple_of(16);
        let shared = SendBufs(bufs);
        (0..parts).into_par_iter().for_each(|p| {
            let start = p * part_len;
            if start < n {
                run(shared.part(start, part_len.min(n - start)));
            }
        });
    }

    /// This step's loop invariants (call after incrementing `iterations`).
    fn rule(&self) -> Rule {
        let lr = self.learning_rate;
        match self.kind {
            OptimizerKind::Sgd { momentum: 0.0, .. } => Rule::Sgd { lr },
            OptimizerKind::Sgd { momentum, nesterov } => Rule::Momentum { lr, mu: momentum, nesterov },
            OptimizerKind::Adagrad { epsilon, .. } => Rule::Adagrad { lr, eps: epsilon },
            // Keras computes 1 − ρ in Python (f64), then casts.
            OptimizerKind::RmsProp { rho, epsilon } => {
                Rule::RmsProp { lr, rho: rho as f32, one_minus_rho: (1.0 - rho) as f32, eps: epsilon }
            }
            OptimizerKind::Adam { beta_1, beta_2, epsilon } => {
                // As Keras: βᵗ and α in f32 (β cast first); 1 − β in f64, then cast.
                let t = self.iterations as f32;
                let (b1_power, b2_power) = ((beta_1 as f32).powf(t), (beta_2 as f32).powf(t));
                Rule::Adam {
                    alpha: lr * (1.0 - b2_power).sqrt() / (1.0 - b1_power),
                    one_minus_b1: (1.0 - beta_1) as f32,
                    one_minus_b2: (1.0 - beta_2) as f32,
                    eps: epsilon,
                }
            }
        }
    }
}

/// One step's loop-invariant terms, hoisted out of the element loop; each
/// variant's doc is its per-element formula (Keras').
#[derive(Clone, Copy, Debug)]
enum Rule {
    /// w ← w − lr·g
    Sgd { lr: f32 },
    /// v ← μ·v − lr·g; w ← w + v (Nesterov: w ← w + μ·v − lr·g)
    Momentum { lr: f32, mu: f32, nesterov: bool },
    /// a ← a + g²; w ← w − lr·g / √(a + ε)
    Adagrad { lr: f32, eps: f32 },
    /// v ← ρ·v + (1 − ρ)·g²; w ← w − lr·g / √(v + ε)
    RmsProp { lr: f32, rho: f32, one_minus_rho: f32, eps: f32 },
    /// m ← m + (g − m)(1 − β₁); v ← v + (g² − v)(1 − β₂);
    /// w ← w − m·α / (√v + ε), α = lr·√(1 − β₂ᵗ) / (1 − β₁ᵗ)
    Adam { alpha: f32, one_minus_b1: f32, one_minus_b2: f32, eps: f32 },
}

/// A state slot the rule uses, or none.
type Slot<'a> = Option<&'a mut [f32]>;

impl Rule {
    /// The state slots this rule reads and writes.
    fn slots<'a>(&self, s1: &'a mut [f32], s2: &'a mut [f32]) -> (Slot<'a>, Slot<'a>) {
        match self {
            Rule::Sgd { .. } => (None, None),
            Rule::Momentum { .. } | Rule::Adagrad { .. } | Rule::RmsProp { .. } => (Some(s1), None),
            Rule::Adam { .. } => (Some(s1), Some(s2)),
        }
    }
}

/// The exact per-element formulas in scalar f32, Keras' operations in Keras'
/// order (no estimates, no fused multiply-adds): the oracle the vector paths
/// are tested against, and the path `SIMDNET_ISA=reference` runs.
pub mod reference {
    use super::{Optimizer, Rule};
    use crate::gemm::Isa;

    /// [`Optimizer::step`] with the exact formulas.
    pub fn step(opt: &mut Optimizer, params: &mut [f32], grads: &[f32]) {
        opt.step_with(Isa::Reference, params, grads)
    }

    /// One pass over the buffers; `s1` / `s2` are empty when the rule has no
    /// such slot, else as long as `w`.
    pub(super) fn apply(rule: Rule, w: &mut [f32], g: &[f32], s1: &mut [f32], s2: &mut [f32]) {
        match rule {
            Rule::Sgd { lr } => w.iter_mut().zip(g).for_each(|(w, g)| *w -= lr * g),
            Rule::Momentum { lr, mu, nesterov } => {
                for ((w, g), v) in w.iter_mut().zip(g).zip(s1) {
                    *v = mu * *v - lr * g;
                    *w += if nesterov { mu * *v - lr * g } else { *v };
                }
            }
            Rule::Adagrad { lr, eps } => {
                for ((w, g), a) in w.iter_mut().zip(g).zip(s1) {
                    *a += g * g;
                    *w -= lr * g / (*a + eps).sqrt();
                }
            }
            Rule::RmsProp { lr, rho, one_minus_rho, eps } => {
                for ((w, g), v) in w.iter_mut().zip(g).zip(s1) {
                    *v = rho * *v + one_minus_rho * g * g;
                    *w -= lr * g / (*v + eps).sqrt();
                }
            }
            Rule::Adam { alpha, one_minus_b1, one_minus_b2, eps } => {
                for (((w, g), m), v) in w.iter_mut().zip(g).zip(s1).zip(s2) {
                    *m += (g - *m) * one_minus_b1;
                    *v += (g * g - *v) * one_minus_b2;
                    *w -= *m * alpha / (v.sqrt() + eps);
                }
            }
        }
    }
}

// ---------------------------------------------------------------- vector paths

/// Parameters per part, at least, before a step is split over threads.
///
/// A part must outlast waking a sleeping pool thread. At batch 32 the
/// tutorial model's GEMMs are below `gemm::driver::PAR_MIN_FLOPS`, so the
/// optimizer step was the only parallel work and its worker slept between
/// steps: with parts of 2^15 (its 79,510 parameters split in two), 2 threads
/// made a training step slower than 1 thread did, and a whole step was as
/// fast as 1 thread again (docs/performance.md, *Kernel design*). At 2^17
/// (~50 µs of Adam per part) only models of 262,144 parameters or more
/// split, whose GEMMs keep the pool awake anyway.
const PAR_MIN_PARAMS: usize = 1 << 17;

/// [`Bufs`] handed to the pool's threads; each takes a disjoint part.
struct SendBufs(Bufs);

// SAFETY: the pointers are only used through `part`, and the parts handed to
// different threads are disjoint ranges of the buffers.
unsafe impl Send for SendBufs {}
unsafe impl Sync for SendBufs {}

impl SendBufs {
    /// Elements `start .. start + len` of every buffer (`start + len ≤ n`).
    fn part(&self, start: usize, len: usize) -> Bufs {
        let b = self.0;
        assert!(start + len <= b.n);
        // Null slots stay null (never touched); wrapping_add keeps that free of UB.
        Bufs {
            w: b.w.wrapping_add(start),
            g: b.g.wrapping_add(start),
            s1: if b.s1.is_null() { b.s1 } else { b.s1.wrapping_add(start) },
            s2: if b.s2.is_null() { b.s2 } else { b.s2.wrapping_add(start) },
            n: len,
        }
    }
}

/// Raw views of the buffers of one step: `w`, `g` and the slots the rule uses
/// are `n` long (unused slots are null and never touched).
#[derive(Clone, Copy)]
struct Bufs {
    w: *mut f32,
    g: *const f32,
    s1: *mut f32,
    s2: *mut f32,
    n: usize,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn apply_avx512(rule: Rule, b: Bufs) {
    apply::<crate::gemm::simd::V512>(rule, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn apply_avx2(rule: Rule, b: Bufs) {
    apply::<crate::gemm::simd::V256>(rule, b)
}

/// One pass of `rule` over `b`, one vector at a time.
///
/// # Safety
/// `b` as documented on [`Bufs`]; `S`'s instruction set is enabled in the caller.
#[inline(always)]
unsafe fn apply<S: Simd>(rule: Rule, b: Bufs) {
    match rule {
        Rule::Sgd { lr } => sweep::<S, _>(&SgdLanes::<S> { lr: S::splat(lr) }, b),
        Rule::Momentum { lr, mu, nesterov: false } => {
            sweep::<S, _>(&MomentumLanes::<S, false> { lr: S::splat(lr), mu: S::splat(mu) }, b)
        }
        Rule::Momentum { lr, mu, nesterov: true } => {
            sweep::<S, _>(&MomentumLanes::<S, true> { lr: S::splat(lr), mu: S::splat(mu) }, b)
        }
        Rule::Adagrad { lr, eps } => sweep::<S, _>(
            &RootLanes::<S, false> { lr: S::splat(lr), rho: S::zero(), one_minus_rho: S::zero(), eps: S::splat(eps) },
            b,
        ),
        Rule::RmsProp { lr, rho, one_minus_rho, eps } => sweep::<S, _>(
            &RootLanes::<S, true> {
                lr: S::splat(lr),
                rho: S::splat(rho),
                one_minus_rho: S::splat(one_minus_rho),
                eps: S::splat(eps),
            },
            b,
        ),
        Rule::Adam { alpha, one_minus_b1, one_minus_b2, eps } => sweep::<S, _>(
            &AdamLanes::<S> {
                alpha: S::splat(alpha),
                one_minus_b1: S::splat(one_minus_b1),
                one_minus_b2: S::splat(one_minus_b2),
                eps: S::splat(eps),
            },
            b,
        ),
    }
}

/// One rule's update of lanes `i .. i + part` of every buffer
/// (`0 < part ≤ S::LANES`; `part < S::LANES` only for the last vector).
trait Lanes<S: Simd> {
    /// # Safety
    /// `i + part ≤ b.n`, `b` as documented on [`Bufs`], `S`'s instruction
    /// set enabled.
    unsafe fn update(&self, b: Bufs, i: usize, part: usize);
}

/// Runs `body` over `0..b.n` one vector at a time: a partial first vector
/// up to where `w` is vector-aligned (the buffers are large allocations at the
/// same offset in their pages, so that aligns them all and no access splits
/// a cache line), whole vectors, a partial last one.
#[inline(always)]
unsafe fn sweep<S: Simd, L: Lanes<S>>(body: &L, b: Bufs) {
    let bytes = S::LANES * size_of::<f32>();
    let mut i = ((bytes - b.w as usize % bytes) % bytes / size_of::<f32>()).min(b.n);
    if i > 0 {
        body.update(b, 0, i);
    }
    while i + S::LANES <= b.n {
        body.update(b, i, S::LANES);
        i += S::LANES;
    }
    if i < b.n {
        body.update(b, i, b.n - i);
    }
}

/// Lanes `i .. i + part` of `p`, the others zero (a constant `part` folds the branch).
#[inline(always)]
unsafe fn ld<S: Simd>(p: *const f32, i: usize, part: usize) -> S::V {
    S::load_upto(p.add(i), part)
}

/// Writes lanes `i .. i + part` of `p`.
#[inline(always)]
unsafe fn st<S: Simd>(p: *mut f32, i: usize, part: usize, v: S::V) {
    S::store_upto(p.add(i), part, v)
}

/// √v for v ≥ 0 without the divider, nearly correctly rounded: s₀ = v·y with
/// y ≈ 1/√v ([`Simd::rsqrt_coarse`], ~2^−14), then one correction with the
/// exact FMA residual, s = s₀ + ½y·(v − s₀²), which squares s₀'s error.
///
/// The estimate's argument is clamped to the normal range, so v = 0 gives 0,
/// v = +∞ gives √f32::MAX (finite, so 1/(√v + ε) stays in range) and NaN
/// stays NaN (the clamps return their second operand on NaN). A denormal v
/// (< 2^−126) comes out below √v by less than 2^−63 ≈ 1.1·10^−19 absolute,
/// which vanishes against ε (1e−7 by default); training flushes denormals to
/// zero anyway (`fpu.rs`).
#[inline(always)]
unsafe fn sqrt_nonneg<S: Simd>(v: S::V) -> S::V {
    let v = S::min(S::splat(f32::MAX), v);
    if S::EST_BITS >= 23 {
        return S::sqrt(v); // the portable path: no FMA to make the residual exact
    }
    let y = S::rsqrt_coarse(S::max(S::splat(f32::MIN_POSITIVE), v));
    let s = S::mul(v, y);
    S::fmadd(S::mul(y, S::splat(0.5)), S::fnmadd(s, s, v), s)
}

/// n / d without the divider, nearly correctly rounded for normal n and d
/// with |d| < 2^126 (a denormal n rounds the residual to the denormal grid,
/// costing precision when n / d is much larger than n): q₀ = n·y with y ≈ 1/d ([`Simd::recip_coarse`], ~2^−14), then
/// q = q₀ + y·(n − d·q₀) with the exact FMA residual, which squares q₀'s error.
#[inline(always)]
unsafe fn div<S: Simd>(n: S::V, d: S::V) -> S::V {
    if S::EST_BITS >= 23 {
        return S::div(n, d); // the portable path, as in `sqrt_nonneg`
    }
    let y = S::recip_coarse(d);
    let q = S::mul(n, y);
    S::fmadd(y, S::fnmadd(d, q, n), q)
}

struct SgdLanes<S: Simd> {
    lr: S::V,
}

impl<S: Simd> Lanes<S> for SgdLanes<S> {
    #[inline(always)]
    unsafe fn update(&self, b: Bufs, i: usize, part: usize) {
        let (w, g) = (ld::<S>(b.w, i, part), ld::<S>(b.g, i, part));
        st::<S>(b.w, i, part, S::sub(w, S::mul(self.lr, g)));
    }
}

struct MomentumLanes<S: Simd, const NESTEROV: bool> {
    lr: S::V,
    mu: S::V,
}

impl<S: Simd, const NESTEROV: bool> Lanes<S> for MomentumLanes<S, NESTEROV> {
    #[inline(always)]
    unsafe fn update(&self, b: Bufs, i: usize, part: usize) {
        let (w, g, v) = (ld::<S>(b.w, i, part), ld::<S>(b.g, i, part), ld::<S>(b.s1, i, part));
        let lr_g = S::mul(self.lr, g);
        let v = S::sub(S::mul(self.mu, v), lr_g);
        let w = S::add(w, if NESTEROV { S::sub(S::mul(self.mu, v), lr_g) } else { v });
        st::<S>(b.s1, i, part, v);
        st::<S>(b.w, i, part, w);
    }
}

/// Adagrad (`RMS = false`: a ← a + g²) and RMSprop (`RMS = true`:
/// v ← ρ·v + (1 − ρ)·g²), then w ← w − lr·g / √(a + ε).
struct RootLanes<S: Simd, const RMS: bool> {
    lr: S::V,
    rho: S::V,
    one_minus_rho: S::V,
    eps: S::V,
}

impl<S: Simd, const RMS: bool> Lanes<S> for RootLanes<S, RMS> {
    #[inline(always)]
    unsafe fn update(&self, b: Bufs, i: usize, part: usize) {
        let (w, g, a) = (ld::<S>(b.w, i, part), ld::<S>(b.g, i, part), ld::<S>(b.s1, i, part));
        let a = if RMS {
            S::add(S::mul(self.rho, a), S::mul(S::mul(self.one_minus_rho, g), g))
        } else {
            S::add(a, S::mul(g, g))
        };
        let u = div::<S>(S::mul(self.lr, g), sqrt_nonneg::<S>(S::add(a, self.eps)));
        st::<S>(b.s1, i, part, a);
        st::<S>(b.w, i, part, S::sub(w, u));
    }
}

struct AdamLanes<S: Simd> {
    alpha: S::V,
    one_minus_b1: S::V,
    one_minus_b2: S::V,
    eps: S::V,
}

impl<S: Simd> Lanes<S> for AdamLanes<S> {
    #[inline(always)]
    unsafe fn update(&self, b: Bufs, i: usize, part: usize) {
        let (w, g) = (ld::<S>(b.w, i, part), ld::<S>(b.g, i, part));
        let (m, v) = (ld::<S>(b.s1, i, part), ld::<S>(b.s2, i, part));
        let m = S::add(m, S::mul(S::sub(g, m), self.one_minus_b1));
        let v = S::add(v, S::mul(S::sub(S::mul(g, g), v), self.one_minus_b2));
        // m·α / (√v + ε); √v + ε ≤ √f32::MAX + ε < 2^126, inside div's range.
        let u = div::<S>(S::mul(m, self.alpha), S::add(sqrt_nonneg::<S>(v), self.eps));
        st::<S>(b.s1, i, part, m);
        st::<S>(b.s2, i, part, v);
        st::<S>(b.w, i, part, S::sub(w, u));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::available_isas;

    fn isas() -> Vec<Isa> {
        let v = available_isas();
        let names: Vec<&str> = v.iter().map(|i| i.name()).collect();
        eprintln!("optimizer tests ran ISA paths: {} (each against the reference)", names.join(", "));
        v
    }

    /// How far an update may be from the exact formula's, in ulp of the
    /// exact one. With FMA the residual corrections are exact; the portable
    /// path on baseline x86-64 has no FMA, so its residuals are rounded.
    fn ulp_bound(isa: Isa) -> f32 {
        match isa {
            Isa::Portable => 3.0,
            _ => 2.0,
        }
    }

    /// Zero, denormals, the smallest normals, tiny, typical and huge
    /// magnitudes (each at most `max`), then log-uniform over 1e-12 .. 1e4.
    fn edge_values(rng: &mut fastrand::Rng, n: usize, max: f32) -> Vec<f32> {
        let edges = [
            0.0,
            1e-45,
            1e-40,
            f32::MIN_POSITIVE / 3.0,
            f32::MIN_POSITIVE,
            1e-37,
            1e-30,
            1e-20,
            1e-14,
            1e-10,
            1e-7,
            1e-4,
            0.3,
            1.0,
            7.5,
            1e4,
            1e10,
            1e20,
            1e30,
            3e38,
        ];
        (0..n).map(|i| edges.get(i).copied().unwrap_or_else(|| 10f32.powf(rng.f32() * 16.0 - 12.0)).min(max)).collect()
    }

    fn signed_edge_values(rng: &mut fastrand::Rng, n: usize, max: f32) -> Vec<f32> {
        let v = edge_values(rng, n, max);
        v.into_iter().map(|x| if rng.bool() { -x } else { x }).collect()
    }

    /// One step on `isa` and on the reference from the same state, with the
    /// buffers at `offset` floats into their allocations (so the aligning
    /// head and the masked tail both run). The state slots must agree bit for
    /// bit, the new weights within [`ulp_bound`]; returns the worst in ulp.
    fn compare(isa: Isa, kind: OptimizerKind, offset: usize, w: &[f32], g: &[f32], s1: &[f32], s2: &[f32]) -> f32 {
        let n = w.len();
        let mut fast = Optimizer::new(kind, 0.01, n);
        fast.iterations = 4;
        let (n1, n2) = (fast.slot_1.len(), fast.slot_2.len());
        fast.slot_1.copy_from_slice(&s1[..n1]);
        fast.slot_2.copy_from_slice(&s2[..n2]);
        let mut exact = fast.clone();
        let shifted = |x: &[f32]| [vec![f32::NAN; offset], x.to_vec()].concat();
        let (mut wf, mut we, g) = (shifted(w), shifted(w), shifted(g));
        fast.step_with(isa, &mut wf[offset..], &g[offset..]);
        exact.step_with(Isa::Reference, &mut we[offset..], &g[offset..]);
        let g = &g[offset..];
        let ctx =
            |i: usize| format!("{} {kind:?} [{i}/{n}] w {} g {} s1 {} s2 {}", isa.name(), w[i], g[i], s1[i], s2[i]);
        for (i, (a, b)) in fast.slot_1.iter().zip(&exact.slot_1).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "{}: slot 1 {a:e} vs {b:e}", ctx(i));
        }
        for (i, (a, b)) in fast.slot_2.iter().zip(&exact.slot_2).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "{}: slot 2 {a:e} vs {b:e}", ctx(i));
        }
        assert!(wf[..offset].iter().all(|x| x.is_nan()), "{} {kind:?}: wrote before the buffer", isa.name());
        let mut worst = 0.0f32;
        for (i, (&a, &b)) in wf[offset..].iter().zip(&we[offset..]).enumerate() {
            if a.to_bits() == b.to_bits() {
                continue;
            }
            assert!(a.is_finite() && b.is_finite(), "{}: {a:e} vs exact {b:e}", ctx(i));
            // One ulp of the largest of the old weight, the exact update and
            // the exact new weight (w − u can cancel; with w = 0 this is the
            // update's ulp), at least 2^−100's: results near or in the
            // denormal range, where the products lose bits, are judged
            // absolutely (to 2^−123 per ulp).
            let m = b.abs().max(w[i].abs()).max((w[i] - b).abs()).max(2f32.powi(-100));
            let err = (a - b).abs() / (m.next_up() - m);
            assert!(err <= ulp_bound(isa), "{}: {a:e} vs exact {b:e} ({err} ulp)", ctx(i));
            worst = worst.max(err);
        }
        worst
    }

    #[test]
    fn threads_split_the_step_without_changing_a_bit() {
        // Big enough for several parts; an odd length so the last part is short.
        let n = 5 * PAR_MIN_PARAMS + 13;
        let mut rng = fastrand::Rng::with_seed(21);
        let g: Vec<f32> = (0..n).map(|_| (rng.f32() - 0.5) * 0.02).collect();
        let w0: Vec<f32> = (0..n).map(|_| rng.f32() - 0.5).collect();
        for isa in isas() {
            for kind in
                [OptimizerKind::adam(), OptimizerKind::rmsprop(), OptimizerKind::Sgd { momentum: 0.9, nesterov: true }]
            {
                let run = |threads: usize| {
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                    pool.install(|| {
                        let (mut w, mut opt) = (w0.clone(), Optimizer::new(kind, 1e-3, n));
                        for _ in 0..3 {
                            opt.step_with(isa, &mut w, &g);
                        }
                        (w, opt.slot_1, opt.slot_2)
                    })
                };
                let one = run(1);
                for threads in [2, 3, 4] {
                    let many = run(threads);
                    let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(
                        same(&one.0, &many.0) && same(&one.1, &many.1) && same(&one.2, &many.2),
                        "{} {kind:?}: 1 and {threads} threads differ",
                        isa.name()
                    );
                }
            }
        }
    }

    #[test]
    fn vector_paths_match_reference_within_ulps() {
        let kinds = [
            OptimizerKind::adam(),
            OptimizerKind::Adam { beta_1: 0.5, beta_2: 0.75, epsilon: 1e-3 },
            OptimizerKind::Adam { beta_1: 0.9, beta_2: 0.999, epsilon: 0.0 },
            OptimizerKind::rmsprop(),
            OptimizerKind::adagrad(),
            OptimizerKind::sgd(),
            OptimizerKind::Sgd { momentum: 0.9, nesterov: false },
            OptimizerKind::Sgd { momentum: 0.9, nesterov: true },
        ];
        let mut rng = fastrand::Rng::with_seed(11);
        for isa in isas() {
            for kind in kinds {
                let mut worst = 0.0f32;
                for (n, offset) in (0..40).map(|n| (n, n % 17)).chain([(4099, 0), (4099, 3), (20_000, 5)]) {
                    // Adam's v and the accumulators are ≥ 0, m and velocities any sign.
                    let mut s2 = edge_values(&mut rng, n, f32::MAX);
                    let mut s1 = match kind {
                        OptimizerKind::Adam { .. } | OptimizerKind::Sgd { .. } => signed_edge_values(&mut rng, n, 1e19),
                        _ => s2.clone(),
                    };
                    if kind == (OptimizerKind::Adam { beta_1: 0.9, beta_2: 0.999, epsilon: 0.0 }) {
                        // Without ε, m·α or v near the denormal range lose bits
                        // (see sqrt_nonneg, div); keep them clear of it.
                        for x in s1.iter_mut().chain(&mut s2).filter(|x| x.abs() < 1e-28) {
                            *x = x.signum() * 1e-28 + *x * 1e10;
                        }
                    }
                    let g = signed_edge_values(&mut rng, n, 1e18);
                    // The update alone (w = 0), then on top of weights.
                    worst = worst.max(compare(isa, kind, offset, &vec![0.0; n], &g, &s1, &s2));
                    let w = signed_edge_values(&mut rng, n, 1e3);
                    worst = worst.max(compare(isa, kind, offset, &w, &g, &s1, &s2));
                }
                eprintln!("  {} {kind:?}: worst {worst} ulp", isa.name());
            }
        }
    }

    #[test]
    fn vector_paths_propagate_nan_and_keep_zero_state() {
        for isa in isas() {
            for kind in [OptimizerKind::adam(), OptimizerKind::rmsprop(), OptimizerKind::adagrad()] {
                let mut opt = Optimizer::new(kind, 0.01, 3);
                // A NaN gradient poisons its weight only; a zero gradient on
                // zero state leaves the weight as it was (v = 0: no NaN from √0).
                let mut w = [1.0f32, 2.0, 3.0];
                let g = [f32::NAN, 0.0, 0.5];
                opt.step_with(isa, &mut w, &g);
                assert!(w[0].is_nan(), "{} {}: {w:?}", isa.name(), kind.name());
                if matches!(kind, OptimizerKind::Adam { .. } | OptimizerKind::RmsProp { .. }) {
                    assert_eq!(w[1], 2.0, "{} {}", isa.name(), kind.name());
                }
                assert!(w[1].is_finite() && w[2] < 3.0, "{} {}: {w:?}", isa.name(), kind.name());
            }
        }
    }

    #[test]
    #[should_panic(expected = "made for 3")]
    fn step_checks_buffer_lengths() {
        let mut opt = Optimizer::new(OptimizerKind::adam(), 0.01, 3);
        opt.step_with(Isa::Portable, &mut [0.0; 4], &[0.0; 4]);
    }
}
