//! Softmax fused with sparse categorical cross-entropy, and accuracy.

/// For logits `[batch, classes]` and integer labels `[batch]`:
/// returns (Σ loss over the batch, number of correct argmax predictions) and,
/// where `dlogits` is given, writes dMeanLoss/dlogits = (softmax − onehot) / batch.
///
/// Stable: the row maximum is subtracted before exp; the loss is computed as
/// log Σ exp(z − max) − (z_y − max), never as log(p) of an underflowed p.
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
        let log_sum = sum.ln();
        let y = label as usize;
        loss_sum += (log_sum - (row[y] - max)) as f64;
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
