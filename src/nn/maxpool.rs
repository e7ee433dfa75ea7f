//! MaxPooling2D, channels-last, pool k×k with stride k and Keras' `valid`
//! padding (rows and columns left over at the edges are dropped).
//!
//! Shapes: x `[batch, h, w, c]`, out `[batch, h/k, w/k, c]`. The forward pass
//! records, per output, the index in its image of the input it took (the
//! first maximum of the window, as TensorFlow routes the gradient); the
//! backward pass sends each gradient there and zero everywhere else.

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
}

/// out `[batch, oh, ow, c]` = the window maxima of x; `argmax` `[batch, oh, ow, c]`
/// receives each maximum's index within its image.
pub fn maxpool_forward(out: &mut [f32], argmax: &mut [u32], x: &[f32], g: &PoolGeometry, batch: usize) {
    let (out, argmax, x) =
        (&mut out[..batch * g.out_len()], &mut argmax[..batch * g.out_len()], &x[..batch * g.in_len()]);
    out.par_chunks_mut(g.out_len())
        .zip(argmax.par_chunks_mut(g.out_len()))
        .zip(x.par_chunks(g.in_len()))
        .for_each(|((out, argmax), x)| forward_image(out, argmax, x, g));
}

fn forward_image(out: &mut [f32], argmax: &mut [u32], x: &[f32], g: &PoolGeometry) {
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let o = (oy * g.ow + ox) * g.c;
            let first = (oy * g.k * g.w + ox * g.k) * g.c;
            out[o..o + g.c].copy_from_slice(&x[first..first + g.c]);
            for (a, i) in argmax[o..o + g.c].iter_mut().zip(first..) {
                *a = i as u32;
            }
            for dy in 0..g.k {
                for dx in 0..g.k {
                    let i0 = ((oy * g.k + dy) * g.w + ox * g.k + dx) * g.c;
                    // Channels run along the vector: compare c values at a time.
                    for ch in 0..g.c {
                        let v = x[i0 + ch];
                        if v > out[o + ch] {
                            out[o + ch] = v;
                            argmax[o + ch] = (i0 + ch) as u32;
                        }
                    }
                }
            }
        }
    }
}

/// dx `[batch, h, w, c]` (overwritten): dout routed to the recorded maxima.
pub fn maxpool_backward(dx: &mut [f32], dout: &[f32], argmax: &[u32], g: &PoolGeometry, batch: usize) {
    let dx = &mut dx[..batch * g.in_len()];
    dx.par_chunks_mut(g.in_len())
        .zip(dout[..batch * g.out_len()].par_chunks(g.out_len()))
        .zip(argmax[..batch * g.out_len()].par_chunks(g.out_len()))
        .for_each(|((dx, dout), argmax)| {
            dx.fill(0.0);
            // Windows do not overlap (stride = pool): each input gets at most one gradient.
            for (&d, &i) in dout.iter().zip(argmax) {
                dx[i as usize] = d;
            }
        });
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
