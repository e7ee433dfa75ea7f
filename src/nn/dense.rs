//! Dense layers: `out = act(inp · weight + bias)`, and its backward pass.
//!
//! Shapes (row-major): inp `[batch, in]`, weight `[in, out]` (Keras' kernel
//! layout), bias `[out]`, out `[batch, out]`. The fast path runs through the
//! GEMM with a fused epilogue; `reference` keeps plain loops as the oracle.

use crate::gemm::{self, Activation, Epilogue, Isa, MatMut, MatRef};

/// out `[batch, out_dim]` = act(inp `[batch, in_dim]` · weight `[in_dim, out_dim]` + bias `[out_dim]`),
/// times `mask` `[batch, out_dim]` elementwise where given (dropout, applied
/// in the GEMM's epilogue: the undropped activations are never stored).
pub fn dense_forward(
    out: &mut [f32],
    inp: &[f32],
    weight: &[f32],
    bias: &[f32],
    mask: Option<&[f32]>,
    batch: usize,
    in_dim: usize,
    out_dim: usize,
    act: Activation,
) {
    gemm::sgemm(
        1.0,
        MatRef::row_major(inp, batch, in_dim),
        MatRef::row_major(weight, in_dim, out_dim),
        0.0,
        MatMut::row_major(&mut out[..batch * out_dim], batch, out_dim),
        Epilogue {
            bias: Some(bias),
            act,
            mask: mask.map(|m| MatRef::row_major(&m[..batch * out_dim], batch, out_dim)),
        },
    );
}

/// Weights (floats) from which [`dense_backward`] takes the input gradient as
/// dinpᵀ = weight · dzᵀ, written through a column-major view of dinp, rather
/// than dinp = dz · weightᵀ: the product then reads the weight in place as a
/// row-major A, where the other form packs a transposed copy of all of it
/// every step (on the calling thread, the other core then reading that copy
/// from its cache). The book CNN's dense (3136×100, 1.25 MB), batch 32, AVX-512
/// Xeon: two threads 0.49–0.52 → 0.15 ms, one thread 0.23–0.26 → 0.27 ms (the
/// strided stores of C). Chosen by shape alone, so the thread count never
/// changes which sums are taken. Smaller weights (the MLP's output layer)
/// keep the plain product.
pub const TRANSPOSED_DX_MIN_WEIGHTS: usize = 1 << 16;

/// Backward through `out = act(inp · weight + bias) · mask`.
///
/// `dout` `[batch, out_dim]` holds dLoss/dout on entry and is turned in place
/// into dLoss/dz (z the pre-activation), using the stored outputs `out` and
/// the forward pass's `mask`, if any. Writes dweight `[in_dim, out_dim]`,
/// dbias `[out_dim]` (overwritten, not accumulated) and, where given, dinp
/// `[batch, in_dim]`.
pub fn dense_backward(
    dinp: Option<&mut [f32]>,
    dweight: &mut [f32],
    dbias: &mut [f32],
    dout: &mut [f32],
    out: &[f32],
    mask: Option<&[f32]>,
    inp: &[f32],
    weight: &[f32],
    batch: usize,
    in_dim: usize,
    out_dim: usize,
    act: Activation,
) {
    let n = batch * out_dim;
    let dout = &mut dout[..n];
    let isa = gemm::selected_isa();
    activation_backward_and_bias_grad(isa, dbias, dout, &out[..n], mask.map(|m| &m[..n]), out_dim, act);
    // dweight = inpᵀ · dz : [in, batch] x [batch, out]
    gemm::sgemm(
        1.0,
        MatRef::row_major(inp, batch, in_dim).t(),
        MatRef::row_major(dout, batch, out_dim),
        0.0,
        MatMut::row_major(dweight, in_dim, out_dim),
        Epilogue::default(),
    );
    let Some(dinp) = dinp else { return };
    if in_dim * out_dim >= TRANSPOSED_DX_MIN_WEIGHTS {
        // dinpᵀ = weight · dzᵀ : [in, out] x [out, batch], into dinp's
        // column-major view (element (i, b) at b·in + i).
        gemm::sgemm(
            1.0,
            MatRef::row_major(weight, in_dim, out_dim),
            MatRef::row_major(dout, batch, out_dim).t(),
            0.0,
            MatMut::strided(&mut dinp[..batch * in_dim], in_dim, batch, 1, in_dim),
            Epilogue::default(),
        );
    } else {
        // dinp = dz · weightᵀ : [batch, out] x [out, in]
        gemm::sgemm(
            1.0,
            MatRef::row_major(dout, batch, out_dim),
            MatRef::row_major(weight, in_dim, out_dim).t(),
            0.0,
            MatMut::row_major(&mut dinp[..batch * in_dim], batch, in_dim),
            Epilogue::default(),
        );
    }
}

/// In one pass: dz = dout ⊙ d(out)/dz in place, and dbias = Σ_rows dz.
///
/// Without a mask, d(out)/dz = act'(out). With dropout's mask (out =
/// act(z)·mask), it is mask·act'(out / mask), and 0 where the mask is 0: the
/// mask multiply of the backward pass happens here, not in a pass of its own.
/// Vectorised for `isa` (the same results on every path).
pub fn activation_backward_and_bias_grad(
    isa: Isa,
    dbias: &mut [f32],
    dout: &mut [f32],
    out: &[f32],
    mask: Option<&[f32]>,
    out_dim: usize,
    act: Activation,
) {
    crate::nn::vectorized(
        isa,
        #[inline(always)]
        || activation_backward_and_bias_grad_plain(dbias, dout, out, mask, out_dim, act),
    )
}

/// [`activation_backward_and_bias_grad`]'s loops (the direct conv calls
/// them inside its own vectorised pass). Columns go in blocks of
/// [`BIAS_BLOCK`] whose sums stay in a local array (registers), each summed
/// in row order: summing into `dbias` itself made every row wait on the
/// previous row's store of the same sums. With a linear activation and no
/// mask, dz is dout: only the sums are taken and `out` is not read.
#[inline(always)]
pub(crate) fn activation_backward_and_bias_grad_plain(
    dbias: &mut [f32],
    dout: &mut [f32],
    out: &[f32],
    mask: Option<&[f32]>,
    out_dim: usize,
    act: Activation,
) {
    for c0 in (0..out_dim).step_by(BIAS_BLOCK) {
        let cn = BIAS_BLOCK.min(out_dim - c0);
        let mut acc = [0.0f32; BIAS_BLOCK];
        // A whole block is a separate call with a constant width, so that
        // `acc` lives in registers.
        if cn == BIAS_BLOCK {
            bias_block(&mut acc, dout, out, mask, out_dim, c0, BIAS_BLOCK, act);
        } else {
            bias_block(&mut acc, dout, out, mask, out_dim, c0, cn, act);
        }
        dbias[c0..c0 + cn].copy_from_slice(&acc[..cn]);
    }
}

/// Columns `c0 .. c0 + width` of [`activation_backward_and_bias_grad_plain`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn bias_block(
    acc: &mut [f32; BIAS_BLOCK],
    dout: &mut [f32],
    out: &[f32],
    mask: Option<&[f32]>,
    out_dim: usize,
    c0: usize,
    width: usize,
    act: Activation,
) {
    let acc = &mut acc[..width];
    for r in 0..dout.len() / out_dim {
        let at = r * out_dim + c0;
        let d = &mut dout[at..at + width];
        match mask {
            // act' = 1 (d · 1 = d): only the sums, `out` is not read.
            None if act == Activation::Linear => {
                for (d, a) in d.iter().zip(acc.iter_mut()) {
                    *a += *d;
                }
            }
            None => {
                for ((d, &y), a) in d.iter_mut().zip(&out[at..at + width]).zip(acc.iter_mut()) {
                    *d *= act.derivative_from_output(y);
                    *a += *d;
                }
            }
            Some(mask) => {
                let (y, m) = (&out[at..at + width], &mask[at..at + width]);
                for (((d, &y), &m), a) in d.iter_mut().zip(y).zip(m).zip(acc.iter_mut()) {
                    *d *= act.masked_derivative_from_output(y, m);
                    *a += *d;
                }
            }
        }
    }
}

/// Columns whose bias sums [`activation_backward_and_bias_grad_plain`]
/// keeps in registers at once: four AVX-512 vectors.
const BIAS_BLOCK: usize = 64;

/// Plain loops: the oracle for the fast Dense paths.
pub mod reference {
    use crate::gemm::Activation;

    /// Same contract as [`super::dense_forward`].
    pub fn dense_forward(
        out: &mut [f32],
        inp: &[f32],
        weight: &[f32],
        bias: &[f32],
        mask: Option<&[f32]>,
        batch: usize,
        in_dim: usize,
        out_dim: usize,
        act: Activation,
    ) {
        for b in 0..batch {
            for o in 0..out_dim {
                let mut z = bias[o] as f64;
                for i in 0..in_dim {
                    z += inp[b * in_dim + i] as f64 * weight[i * out_dim + o] as f64;
                }
                let y = act.apply(z as f32);
                out[b * out_dim + o] = mask.map_or(y, |m| y * m[b * out_dim + o]);
            }
        }
    }

    /// Same contract as [`super::dense_backward`].
    pub fn dense_backward(
        dinp: Option<&mut [f32]>,
        dweight: &mut [f32],
        dbias: &mut [f32],
        dout: &mut [f32],
        out: &[f32],
        mask: Option<&[f32]>,
        inp: &[f32],
        weight: &[f32],
        batch: usize,
        in_dim: usize,
        out_dim: usize,
        act: Activation,
    ) {
        for k in 0..batch * out_dim {
            match mask {
                // d(out)/dz = m · act'(z), with act(z) = out / m.
                Some(mask) if mask[k] != 0.0 => dout[k] *= mask[k] * act.derivative_from_output(out[k] / mask[k]),
                Some(_) => dout[k] = 0.0,
                None => dout[k] *= act.derivative_from_output(out[k]),
            }
        }
        for o in 0..out_dim {
            dbias[o] = (0..batch).map(|b| dout[b * out_dim + o] as f64).sum::<f64>() as f32;
        }
        for i in 0..in_dim {
            for o in 0..out_dim {
                dweight[i * out_dim + o] =
                    (0..batch).map(|b| inp[b * in_dim + i] as f64 * dout[b * out_dim + o] as f64).sum::<f64>() as f32;
            }
        }
        if let Some(dinp) = dinp {
            for b in 0..batch {
                for i in 0..in_dim {
                    dinp[b * in_dim + i] = (0..out_dim)
                        .map(|o| dout[b * out_dim + o] as f64 * weight[i * out_dim + o] as f64)
                        .sum::<f64>() as f32;
                }
            }
        }
    }
}
