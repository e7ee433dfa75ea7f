//! Inverted dropout: in training, each activation is kept with probability
//! 1 − rate and scaled by 1/(1 − rate), so inference needs no rescaling.
//! After a Dense layer the mask is applied by the GEMM's epilogue; elsewhere
//! (after a convolution or a pooling layer) by [`apply_mask`].

/// Inverted dropout's mask: each factor is 1/(1 − rate) with probability
/// 1 − rate, else 0. Two draws per 64-bit random number, each kept when its
/// 32 bits are at least rate·2³².
pub fn fill_dropout_mask(mask: &mut [f32], rate: f32, rng: &mut fastrand::Rng) {
    let keep_scale = 1.0 / (1.0 - rate);
    let threshold = (rate as f64 * 4_294_967_296.0) as u64;
    let factor = |bits: u64| if bits & 0xffff_ffff >= threshold { keep_scale } else { 0.0 };
    let mut pairs = mask.chunks_exact_mut(2);
    for pair in &mut pairs {
        let r = rng.u64(..);
        pair[0] = factor(r);
        pair[1] = factor(r >> 32);
    }
    if let [last] = pairs.into_remainder() {
        *last = factor(rng.u64(..));
    }
}

/// out = x ⊙ mask (forward), or dx = dout ⊙ mask (backward): the same product.
pub fn apply_mask(out: &mut [f32], x: &[f32], mask: &[f32]) {
    for ((o, &v), &m) in out.iter_mut().zip(x).zip(mask) {
        *o = v * m;
    }
}
