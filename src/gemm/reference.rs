//! The plain triple loop: the oracle every optimized GEMM path is tested against.

use super::{Epilogue, MatMut, MatRef};

/// C ← act(α·A·B + β·C + bias) · mask, accumulating in f64 is *not* done on purpose:
/// f32 accumulation in k order, as the fast kernels do, so tolerances stay tight.
pub fn sgemm(alpha: f32, a: MatRef, b: MatRef, beta: f32, mut c: MatMut, epi: Epilogue) {
    for i in 0..c.rows {
        for j in 0..c.cols {
            let mut acc = 0.0f32;
            for p in 0..a.cols {
                acc += a.at(i, p) * b.at(p, j);
            }
            let mut v = alpha * acc;
            if beta != 0.0 {
                v += beta * *c.at_mut(i, j);
            }
            if let Some(bias) = epi.bias {
                v += bias[j];
            }
            v = epi.act.apply(v);
            if let Some(mask) = epi.mask {
                v *= mask.at(i, j);
            }
            *c.at_mut(i, j) = v;
        }
    }
}
