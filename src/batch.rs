//! Batches: the seeded validation holdout, a seeded shuffle per epoch, and the
//! gather of u8 pixels into a reused f32 buffer scaled to [0, 1].

use crate::dataset::Split;
use crate::gemm::Isa;

/// Splits `0..count` into (train, validation) indices exactly as the book
/// does, with scikit-learn's `train_test_split(range(count), test_size =
/// fraction, random_state = seed)`: numpy's `RandomState(seed).permutation(count)`,
/// whose first `ceil(count * fraction)` indices are held out and the rest,
/// in that order, train. So `--seed 42` validates on the book's 12,000
/// images, and a Python user can rebuild any seed's split.
pub fn holdout(count: usize, fraction: f64, seed: u32) -> (Vec<u32>, Vec<u32>) {
    let order = numpy_permutation(count, seed);
    let n_val = ((count as f64) * fraction).ceil().min(count as f64) as usize;
    let val = order[..n_val].to_vec();
    let train = order[n_val..].to_vec();
    (train, val)
}

/// numpy's legacy `RandomState(seed).permutation(n)`: MT19937 seeded by
/// `init_genrand(seed)`, then a Fisher–Yates shuffle of `0..n` from the last
/// index down, each swap partner drawn by `random_interval(i)` (32-bit
/// draws masked to `i`'s bit length, redrawn until ≤ i).
fn numpy_permutation(n: usize, seed: u32) -> Vec<u32> {
    assert!(n <= u32::MAX as usize, "permutation of {n} indices");
    let mut mt = rand_mt::Mt::new(seed);
    let mut order: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        let max = i as u32;
        let mask = u32::MAX >> max.leading_zeros();
        let j = loop {
            let v = mt.next_u32() & mask;
            if v <= max {
                break v;
            }
        };
        order.swap(i, j as usize);
    }
    order
}

/// Reused input buffers for one batch: `x` is `[batch, image_len]`, `y` is `[batch]`.
pub struct Batch {
    pub x: Vec<f32>,
    pub y: Vec<u32>,
    /// Rows filled by the last gather (the last batch of an epoch may be short).
    pub len: usize,
}

impl Batch {
    pub fn new(capacity: usize, image_len: usize) -> Batch {
        Batch { x: vec![0.0; capacity * image_len], y: vec![0; capacity], len: 0 }
    }

    /// Copies images `indices` of `split` into the buffers, pixels scaled by
    /// 1/255. Never allocates: `indices.len()` must not exceed the capacity.
    pub fn gather(&mut self, split: &Split, indices: &[u32]) {
        let d = split.image_len();
        assert!(indices.len() * d <= self.x.len(), "batch of {} exceeds capacity", indices.len());
        let labels = split.labels();
        // Shuffled rows of the mapped file miss the caches: ask for the next
        // images' lines while converting this one (latency, not bandwidth,
        // bounds this loop).
        const AHEAD: usize = 2;
        for &i in indices.iter().take(AHEAD) {
            prefetch(split.image(i as usize));
        }
        for (row, &i) in indices.iter().enumerate() {
            if let Some(&next) = indices.get(row + AHEAD) {
                prefetch(split.image(next as usize));
            }
            let i = i as usize;
            scale_pixels(&mut self.x[row * d..(row + 1) * d], split.image(i));
            self.y[row] = labels[i] as u32;
        }
        self.len = indices.len();
    }

    /// `[len, image_len]` inputs of the last gather.
    pub fn inputs(&self, image_len: usize) -> &[f32] {
        &self.x[..self.len * image_len]
    }

    pub fn labels(&self) -> &[u32] {
        &self.y[..self.len]
    }
}

/// out[i] = pixels[i] / 255, on the selected instruction set (the release
/// binary targets baseline x86-64, where this loop would be SSE2 only).
pub fn scale_pixels(out: &mut [f32], pixels: &[u8]) {
    scale_pixels_with(crate::gemm::selected_isa(), out, pixels)
}

/// [`scale_pixels`] on an explicit instruction set (for tests); an ISA this
/// CPU lacks runs the plain loop.
pub fn scale_pixels_with(isa: Isa, out: &mut [f32], pixels: &[u8]) {
    assert_eq!(out.len(), pixels.len());
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX-512F (checked at run time just before).
        Isa::Avx512 if isa.is_available() => unsafe { scale_pixels_avx512(out, pixels) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX2 (checked at run time just before).
        Isa::Avx2 if isa.is_available() => unsafe { scale_pixels_avx2(out, pixels) },
        _ => scale_pixels_plain(out, pixels),
    }
}

/// The loop itself: a plain zip, which LLVM turns into widening loads
/// (u8 → i32 → f32) and vector multiplies at the width of the instruction
/// set it is compiled for; that beats assembling vectors by hand.
#[inline(always)]
fn scale_pixels_plain(out: &mut [f32], pixels: &[u8]) {
    const SCALE: f32 = 1.0 / 255.0;
    for (o, &p) in out.iter_mut().zip(pixels) {
        *o = p as f32 * SCALE;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn scale_pixels_avx512(out: &mut [f32], pixels: &[u8]) {
    scale_pixels_plain(out, pixels)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scale_pixels_avx2(out: &mut [f32], pixels: &[u8]) {
    scale_pixels_plain(out, pixels)
}

/// Hints the CPU to load `bytes` into the caches (a no-op off x86_64).
#[inline(always)]
fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is only a hint: it never faults and changes no
        // state; the pointer is inside a live slice.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values printed by numpy 2.4 and scikit-learn 1.9:
    /// `np.random.RandomState(s).permutation(n)` and
    /// `train_test_split(np.arange(60000), test_size=0.2, random_state=42)`.
    #[test]
    fn the_split_is_scikit_learns() {
        assert_eq!(numpy_permutation(10, 0), [2, 8, 4, 9, 1, 6, 7, 3, 0, 5]);
        assert_eq!(numpy_permutation(5, 7), [0, 3, 2, 1, 4]);
        assert_eq!(numpy_permutation(1, 3), [0]);
        assert!(numpy_permutation(0, 3).is_empty());
        let (train, val) = holdout(60_000, 0.2, 42);
        assert_eq!((train.len(), val.len()), (48_000, 12_000));
        assert_eq!(val[..8], [12628, 37730, 39991, 8525, 8279, 51012, 14871, 15127]);
        assert_eq!(train[..4], [48572, 38696, 13611, 35213]);
        assert_eq!(train[train.len() - 3..], [860, 15795, 56422]);
        let mut all: Vec<u32> = train.iter().chain(&val).copied().collect();
        all.sort_unstable();
        assert!(all.iter().enumerate().all(|(i, &v)| v == i as u32));
        // scikit-learn rounds the held-out count up: 10 × 0.25 holds out 3.
        assert_eq!(holdout(10, 0.25, 1).1.len(), 3);
    }

    #[test]
    fn every_isa_scales_like_the_plain_loop() {
        // Every byte value, odd lengths (vector tails), NaN-prefilled outputs.
        let pixels: Vec<u8> = (0..1000u32).map(|i| (i * 37 % 256) as u8).collect();
        for isa in crate::gemm::available_isas() {
            for len in [0, 1, 15, 16, 17, 63, 784, 1000] {
                let mut got = vec![f32::NAN; len];
                scale_pixels_with(isa, &mut got, &pixels[..len]);
                let mut want = vec![f32::NAN; len];
                scale_pixels_plain(&mut want, &pixels[..len]);
                assert_eq!(got, want, "{} len {len}", isa.name());
                assert!(got
                    .iter()
                    .zip(&pixels)
                    .all(|(&g, &p)| g == p as f32 / 255.0 || (g - p as f32 / 255.0).abs() < 1e-7));
            }
            eprintln!("scale_pixels: {} path checked", isa.name());
        }
    }
}
