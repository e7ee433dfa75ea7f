//! Softmax fused with sparse categorical cross-entropy, and accuracy.

use wide::f32x8;

/// Values exponentiated per vectorised pass when no `dlogits` buffer is given
/// (a stack buffer: the loss allocates nothing).
const SCRATCH: usize = 1024;

/// For logits `[batch, classes]` and integer labels `[batch]`:
/// returns (Σ loss over the batch, number of correct argmax predictions) and,
/// where `dlogits` is given, writes dMeanLoss/dlogits = (softmax − onehot) / batch.
///
/// Stable: the row maximum is subtracted before exp; the loss is computed as
/// log Σ exp(z − max) − (z_y − max), never as log(p) of an underflowed p.
///
/// Vectorised over the batch: per group of rows, the shifted logits z − max
/// are written contiguously (into `dlogits`, or a stack buffer) and
/// exponentiated eight lanes at a time with no padding between rows (10
/// classes would waste 6 of 16 lanes row by row), then each row is reduced.
pub fn softmax_cross_entropy(
    logits: &[f32],
    labels: &[u32],
    classes: usize,
    mut dlogits: Option<&mut [f32]>,
) -> (f64, usize) {
    if classes == 0 || classes > SCRATCH {
        return reference::softmax_cross_entropy(logits, labels, classes, dlogits);
    }
    let batch = labels.len();
    let inv_batch = 1.0 / batch as f32;
    let mut loss_sum = 0.0f64;
    let mut correct = 0;
    let mut scratch = [0.0f32; SCRATCH];
    // Row maxima of a group (a group has at most SCRATCH rows).
    let mut shift = [0.0f32; SCRATCH];
    let group = SCRATCH / classes;
    let want_grad = dlogits.is_some();
    for first in (0..batch).step_by(group) {
        let rows = group.min(batch - first);
        let span = first * classes..(first + rows) * classes;
        let z = &logits[span.clone()];
        let e: &mut [f32] = match dlogits.as_deref_mut() {
            Some(d) => &mut d[span],
            None => &mut scratch[..rows * classes],
        };
        // Row maxima and argmax; e ← z − max.
        for r in 0..rows {
            let row = &z[r * classes..(r + 1) * classes];
            let best = argmax(row);
            let max = row[best];
            shift[r] = max;
            correct += usize::from(best == labels[first + r] as usize);
            for (o, &v) in e[r * classes..(r + 1) * classes].iter_mut().zip(row) {
                *o = v - max;
            }
        }
        exp_in_place(e);
        for r in 0..rows {
            let y = labels[first + r] as usize;
            let erow = &mut e[r * classes..(r + 1) * classes];
            let sum: f32 = erow.iter().sum();
            loss_sum += (sum.ln() - (z[r * classes + y] - shift[r])) as f64;
            if want_grad {
                let inv_sum = 1.0 / sum;
                for (c, p) in erow.iter_mut().enumerate() {
                    *p = (*p * inv_sum - f32::from(c == y)) * inv_batch;
                }
            }
        }
    }
    (loss_sum, correct)
}

/// x ← eˣ, eight lanes at a time (`wide`'s polynomial exp, within a few ulp
/// of libm's); the tail goes through the same formula, zero-padded.
fn exp_in_place(xs: &mut [f32]) {
    let mut chunks = xs.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = f32x8::from(<[f32; 8]>::try_from(&*c).expect("8 lanes")).exp();
        c.copy_from_slice(&v.to_array());
    }
    let tail = chunks.into_remainder();
    let mut lanes = [0.0f32; 8];
    lanes[..tail.len()].copy_from_slice(tail);
    let n = tail.len();
    tail.copy_from_slice(&f32x8::from(lanes).exp().to_array()[..n]);
}

/// Plain loops: the oracle for the vectorised loss.
pub mod reference {
    /// Same contract as [`super::softmax_cross_entropy`], one row and one
    /// libm `exp` at a time.
    pub fn softmax_cross_entropy(
        logits: &[f32],
        labels: &[u32],
        classes: usize,
        mut dlogits: Option<&mut [f32]>,
    ) -> (f64, usize) {
        let batch = labels.len();
        let inv_batch = 1.0 / batch as f32;
        let mut loss_sum = 0.0f64;
        let mut correct = 0;
        for (b, &label) in labels.iter().enumerate() {
            let row = &logits[b * classes..(b + 1) * classes];
            let (mut argmax, mut max) = (0, row[0]);
            for (c, &z) in row.iter().enumerate() {
                if z > max {
                    (argmax, max) = (c, z);
                }
            }
            let sum: f32 = row.iter().map(|&z| (z - max).exp()).sum();
            let y = label as usize;
            loss_sum += (sum.ln() - (row[y] - max)) as f64;
            correct += usize::from(argmax == y);
            if let Some(d) = dlogits.as_deref_mut() {
                let drow = &mut d[b * classes..(b + 1) * classes];
                let inv_sum = 1.0 / sum;
                for (c, (dz, &z)) in drow.iter_mut().zip(row).enumerate() {
                    let p = (z - max).exp() * inv_sum;
                    *dz = (p - f32::from(c == y)) * inv_batch;
                }
            }
        }
        (loss_sum, correct)
    }
}

/// Softmax probabilities of one row of logits (for predictions and the UI).
pub fn softmax(row: &[f32], probs: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for (p, &z) in probs.iter_mut().zip(row) {
        *p = (z - max).exp();
        sum += *p;
    }
    for p in probs.iter_mut() {
        *p /= sum;
    }
}

/// Index of the largest value (first on ties).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectorised_matches_reference() {
        let mut rng = fastrand::Rng::with_seed(5);
        // Row groups crossing the stack buffer, odd class counts, one row,
        // extreme logits (overflow without the max shift, underflowing exps).
        for &(batch, classes, spread) in &[
            (1, 1, 1.0),
            (32, 10, 4.0),
            (103, 10, 30.0),
            (7, 3, 100.0),
            (300, 10, 1.0),
            (5, 1024, 8.0),
            (2, 1500, 3.0),
        ] {
            let logits: Vec<f32> = (0..batch * classes).map(|_| (rng.f32() * 2.0 - 1.0) * spread).collect();
            let labels: Vec<u32> = (0..batch).map(|_| rng.u32(..classes as u32)).collect();
            let (mut d_fast, mut d_ref) = (vec![f32::NAN; batch * classes], vec![f32::NAN; batch * classes]);
            let (l_fast, c_fast) = softmax_cross_entropy(&logits, &labels, classes, Some(&mut d_fast));
            let (l_ref, c_ref) = reference::softmax_cross_entropy(&logits, &labels, classes, Some(&mut d_ref));
            let (l_none, c_none) = softmax_cross_entropy(&logits, &labels, classes, None);
            assert_eq!(c_fast, c_ref, "{batch}x{classes}: correct predictions");
            assert_eq!(
                (l_none.to_bits(), c_none),
                (l_fast.to_bits(), c_fast),
                "{batch}x{classes}: with and without dlogits"
            );
            assert!(
                (l_fast - l_ref).abs() <= 1e-5 * (1.0 + l_ref.abs()),
                "{batch}x{classes}: loss {l_fast} vs {l_ref}"
            );
            for (i, (a, b)) in d_fast.iter().zip(&d_ref).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-6 * (1.0 + b.abs()) / batch as f32 + 1e-9,
                    "{batch}x{classes} d[{i}]: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn exp_matches_libm() {
        let xs: Vec<f32> = (0..2001).map(|i| -87.0 + i as f32 * 0.0437).chain([0.0, -0.0, -1e-30, 1e-7]).collect();
        let mut got = xs.clone();
        exp_in_place(&mut got);
        for (&x, &g) in xs.iter().zip(&got) {
            let want = x.exp();
            assert!((g - want).abs() <= 4.0 * f32::EPSILON * want, "exp({x}) = {g}, libm {want}");
        }
    }
}
