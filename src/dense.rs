//! Dense layers: `out = act(inp · weight + bias)`, and its backward pass.
//!
//! Shapes (row-major): inp `[batch, in]`, weight `[in, out]` (Keras' kernel
//! layout), bias `[out]`, out `[batch, out]`. The fast path runs through the
//! GEMM with a fused epilogue; `reference` keeps plain loops as the oracle.

use crate::gemm::{self, Activation, Epilogue, MatMut, MatRef};

/// out `[batch, out_dim]` = act(inp `[batch, in_dim]` · weight `[in_dim, out_dim]` + bias `[out_dim]`).
pub fn dense_forward(
    out: &mut [f32],
    inp: &[f32],
    weight: &[f32],
    bias: &[f32],
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
        Epilogue { bias: Some(bias), act },
    );
}

/// Backward through `out = act(inp · weight + bias)`.
///
/// `dout` `[batch, out_dim]` holds dLoss/dout on entry and is turned in place
/// into dLoss/dz (z the pre-activation), using the stored outputs `out`.
/// Writes dweight `[in_dim, out_dim]`, dbias `[out_dim]` (overwritten, not
/// accumulated) and, where given, dinp `[batch, in_dim]`.
pub fn dense_backward(
    dinp: Option<&mut [f32]>,
    dweight: &mut [f32],
    dbias: &mut [f32],
    dout: &mut [f32],
    out: &[f32],
    inp: &[f32],
    weight: &[f32],
    batch: usize,
    in_dim: usize,
    out_dim: usize,
    act: Activation,
) {
    let dout = &mut dout[..batch * out_dim];
    activation_backward_and_bias_grad(dbias, dout, &out[..batch * out_dim], out_dim, act);
    // dweight = inpᵀ · dz : [in, batch] x [batch, out]
    gemm::sgemm(
        1.0,
        MatRef::row_major(inp, batch, in_dim).t(),
        MatRef::row_major(dout, batch, out_dim),
        0.0,
        MatMut::row_major(dweight, in_dim, out_dim),
        Epilogue::default(),
    );
    if let Some(dinp) = dinp {
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

/// In one pass: dz = dout ⊙ act'(out) in place, and dbias = Σ_rows dz.
pub fn activation_backward_and_bias_grad(
    dbias: &mut [f32],
    dout: &mut [f32],
    out: &[f32],
    out_dim: usize,
    act: Activation,
) {
    dbias.fill(0.0);
    for (drow, orow) in dout.chunks_exact_mut(out_dim).zip(out.chunks_exact(out_dim)) {
        for ((d, &y), db) in drow.iter_mut().zip(orow).zip(dbias.iter_mut()) {
            *d *= act.derivative_from_output(y);
            *db += *d;
        }
    }
}

/// Plain loops: the oracle for the fast Dense paths.
pub mod reference {
    use crate::gemm::Activation;

    pub fn dense_forward(
        out: &mut [f32],
        inp: &[f32],
        weight: &[f32],
        bias: &[f32],
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
                out[b * out_dim + o] = act.apply(z as f32);
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
        inp: &[f32],
        weight: &[f32],
        batch: usize,
        in_dim: usize,
        out_dim: usize,
        act: Activation,
    ) {
        for k in 0..batch * out_dim {
            dout[k] *= act.derivative_from_output(out[k]);
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
