//! MaxPooling2D, channels-last, pool k×k with stride k and Keras' `valid`
//! padding (rows and columns left over at the edges are dropped).
//!
//! Shapes: x `[batch, h, w, c]`, out `[batch, h/k, w/k, c]`. The gradient
//! goes to the first maximum of each window (as TensorFlow routes it) and
//! zero everywhere else. The forward pass stores only the maxima; the
//! backward pass finds each window's first input equal to its maximum again
//! (TensorFlow's MaxPoolGrad does the same), so the forward's inner loop is
//! a branch-free `max` over a vector of channels, with no index to carry.

use crate::gemm::Activation;
use rayon::prelude::*;

/// Sizes of one MaxPooling2D layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeometry {
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub k: usize,
    pub oh: usize,
    pub ow: usize,
}

impl PoolGeometry {
    /// The geometry, or why the pool does not fit the input.
    pub fn new((h, w, c): (usize, usize, usize), k: usize) -> Result<PoolGeometry, String> {
        if k == 0 || c == 0 {
            return Err(format!("an empty pool: size {k} over {c} channels"));
        }
        if k > h || k > w {
            return Err(format!("a {k}x{k} pool is larger than its {h}x{w} input"));
        }
        Ok(PoolGeometry { h, w, c, k, oh: h / k, ow: w / k })
    }
    pub fn in_len(&self) -> usize {
        self.h * self.w * self.c
    }
    pub fn out_len(&self) -> usize {
        self.oh * self.ow * self.c
    }
    /// Offset in its image of window (oy, ox)'s input (dy, dx), channel 0.
    #[inline]
    fn input_at(&self, oy: usize, ox: usize, dy: usize, dx: usize) -> usize {
        ((oy * self.k + dy) * self.w + ox * self.k + dx) * self.c
    }
}

/// out `[batch, oh, ow, c]` = the window maxima of x `[batch, h, w, c]`.
pub fn maxpool_forward(out: &mut [f32], x: &[f32], g: &PoolGeometry, batch: usize) {
    let (out, x) = (&mut out[..batch * g.out_len()], &x[..batch * g.in_len()]);
    out.par_chunks_mut(g.out_len()).zip(x.par_chunks(g.in_len())).for_each(|(out, x)| forward_image(out, x, g));
}

fn forward_image(out: &mut [f32], x: &[f32], g: &PoolGeometry) {
    for (o, out) in out.chunks_exact_mut(g.c).enumerate() {
        let (oy, ox) = (o / g.ow, o % g.ow);
        out.copy_from_slice(&x[g.input_at(oy, ox, 0, 0)..][..g.c]);
        for dy in 0..g.k {
            for dx in 0..g.k {
                let row = &x[g.input_at(oy, ox, dy, dx)..][..g.c];
                // `v > m` keeps the first of equal maxima (and a NaN only
                // when it comes first): one vector max over the channels.
                for (m, &v) in out.iter_mut().zip(row) {
                    *m = if v > *m { v } else { *m };
                }
            }
        }
    }
}

/// Channels handled together in the backward pass (a vector's worth or two).
const CHANNEL_BLOCK: usize = 32;

/// dx `[batch, h, w, c]` (overwritten): each window's dout at the first
/// input of x equal to the window's maximum `out`, zero elsewhere; times
/// `act`'s derivative there, where x is `act`'s output (a Conv2D's, whose
/// backward pass then skips it: one pass over the large tensor instead of
/// two). `Activation::Linear` routes dout unchanged.
pub fn maxpool_backward(
    dx: &mut [f32],
    dout: &[f32],
    x: &[f32],
    out: &[f32],
    g: &PoolGeometry,
    batch: usize,
    act: Activation,
) {
    let (n_in, n_out) = (batch * g.in_len(), batch * g.out_len());
    dx[..n_in]
        .par_chunks_mut(g.in_len())
        .zip(dout[..n_out].par_chunks(g.out_len()))
        .zip(x[..n_in].par_chunks(g.in_len()).zip(out[..n_out].par_chunks(g.out_len())))
        .for_each(|((dx, dout), (x, out))| backward_image(dx, dout, x, out, g, act, None));
}

/// One image of [`maxpool_backward`] (the direct conv's backward pass makes
/// its dz with it, image by image), and, where `sums` is given, dx's sum
/// over positions per channel `[c]` (that conv's bias gradient), taken from
/// the pooled `[oh, ow, c]` gradients instead of a pass over dx.
#[inline(always)]
pub(crate) fn backward_image(
    dx: &mut [f32],
    dout: &[f32],
    x: &[f32],
    out: &[f32],
    g: &PoolGeometry,
    act: Activation,
    sums: Option<&mut [f32]>,
) {
    // One copy of the loop per activation, so that its derivative is a
    // constant formula LLVM vectorizes: with `act` read inside the loop it
    // computed `left` one channel at a time (the book CNN's first pool:
    // 0.55 → 0.45 ms for the backward of conv + pool on an AVX-512 Xeon).
    match act {
        Activation::Relu => routed(dx, dout, x, out, g, sums, |m| Activation::Relu.derivative_from_output(m)),
        Activation::Sigmoid => routed(dx, dout, x, out, g, sums, |m| Activation::Sigmoid.derivative_from_output(m)),
        Activation::Linear => routed(dx, dout, x, out, g, sums, |m| Activation::Linear.derivative_from_output(m)),
    }
}

/// [`backward_image`] with the activation's derivative (from its output) as `act_grad`.
#[inline(always)]
fn routed(
    dx: &mut [f32],
    dout: &[f32],
    x: &[f32],
    out: &[f32],
    g: &PoolGeometry,
    mut sums: Option<&mut [f32]>,
    act_grad: impl Fn(f32) -> f32,
) {
    if let Some(sums) = sums.as_deref_mut() {
        sums[..g.c].fill(0.0);
    }
    // Rows and columns left over at the edges get no gradient.
    if g.oh * g.k != g.h || g.ow * g.k != g.w {
        dx.fill(0.0);
    }
    for o in 0..g.oh * g.ow {
        let (oy, ox) = (o / g.ow, o % g.ow);
        for c0 in (0..g.c).step_by(CHANNEL_BLOCK) {
            let cn = CHANNEL_BLOCK.min(g.c - c0);
            let (m, d) = (&out[o * g.c + c0..][..cn], &dout[o * g.c + c0..][..cn]);
            // The gradient not yet routed, per channel: taken by the first
            // input equal to the maximum (selects, no branches, so the loop
            // runs a vector of channels at a time).
            // The routed input equals the maximum: act' from it is the window's.
            let mut left = [0.0f32; CHANNEL_BLOCK];
            for ((l, &d), &m) in left.iter_mut().zip(d).zip(m) {
                *l = d * act_grad(m);
            }
            // Each window routes all of it (some input equals the maximum,
            // or the maximum is NaN and the first input takes it), so dx's
            // channel sums are those of `left`, window by window.
            if let Some(sums) = sums.as_deref_mut() {
                for (s, &l) in sums[c0..][..cn].iter_mut().zip(&left) {
                    *s += l;
                }
            }
            for dy in 0..g.k {
                for dxk in 0..g.k {
                    let i = g.input_at(oy, ox, dy, dxk) + c0;
                    let (xs, dxs) = (&x[i..][..cn], &mut dx[i..][..cn]);
                    for (((dx, &x), &m), left) in dxs.iter_mut().zip(xs).zip(m).zip(&mut left) {
                        // A NaN maximum came from the window's first input.
                        let hit = (x == m) | m.is_nan();
                        *dx = if hit { *left } else { 0.0 };
                        *left = if hit { 0.0 } else { *left };
                    }
                }
            }
        }
    }
}

/// Plain loops: the oracle.
pub mod reference {
    use super::PoolGeometry;

    /// out and, per output, the index of its first maximum.
    pub fn maxpool_forward(out: &mut [f32], argmax: &mut [u32], x: &[f32], g: &PoolGeometry, batch: usize) {
        for b in 0..batch {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    for ch in 0..g.c {
                        let mut best = (f32::NEG_INFINITY, usize::MAX);
                        for dy in 0..g.k {
                            for dx in 0..g.k {
                                let i = ((oy * g.k + dy) * g.w + ox * g.k + dx) * g.c + ch;
                                let v = x[b * g.in_len() + i];
                                if best.1 == usize::MAX || v > best.0 {
                                    best = (v, i);
                                }
                            }
                        }
                        let o = b * g.out_len() + (oy * g.ow + ox) * g.c + ch;
                        out[o] = best.0;
                        argmax[o] = best.1 as u32;
                    }
                }
            }
        }
    }

    pub fn maxpool_backward(dx: &mut [f32], dout: &[f32], argmax: &[u32], g: &PoolGeometry, batch: usize) {
        dx[..batch * g.in_len()].fill(0.0);
        for b in 0..batch {
            for o in 0..g.out_len() {
                dx[b * g.in_len() + argmax[b * g.out_len() + o] as usize] += dout[b * g.out_len() + o];
            }
        }
    }
}
