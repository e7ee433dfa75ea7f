//! The input gradient of the book's second conv (14×14×32 → 64, 3×3, same,
//! batch 32), two ways, alternating in one process (one thread), best of
//! each: the engine's (`conv2d::input_gradient`: a GEMM and a col2im per
//! image, the image's dcol kept in L2) and the whole batch's
//! GEMM into one dcol followed by one col2im (what it replaced).
//!
//! ```text
//! cargo run --release --example conv_dx -- [ROUNDS]
//! ```

use simdnet::arch::Padding;
use simdnet::gemm::{self, Epilogue, MatMut, MatRef};
use simdnet::nn::conv2d::{self, ConvGeometry};
use std::time::Instant;

/// Best ms per call over 30 chunks of 5 calls.
fn best_ms(mut f: impl FnMut()) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..30 {
        let t = Instant::now();
        for _ in 0..5 {
            f();
        }
        best = best.min(t.elapsed().as_secs_f64() / 5.0);
    }
    best * 1e3
}

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    simdnet::fpu::flush_denormals_to_zero();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("a pool of one thread");
    pool.install(|| {
        let g = ConvGeometry::new((14, 14, 32), 3, 64, Padding::Same).expect("the book's second conv");
        let batch = 32;
        let (m, kk, n) = (batch * g.positions(), g.patch_len(), g.cout);
        let mut rng = fastrand::Rng::with_seed(1);
        let mut rand = |len: usize| -> Vec<f32> { (0..len).map(|_| rng.f32() - 0.5).collect() };
        let (kernel, dout) = (rand(kk * n), rand(m * n));
        let mut col = rand(g.scratch_floats(batch));
        let mut dx = vec![0.0f32; batch * g.in_len()];
        let kernel_t: Vec<f32> = (0..n * kk).map(|i| kernel[(i % kk) * n + i / kk]).collect();
        let isa = gemm::selected_isa();
        let flops = 2.0 * (m * n * kk) as f64;
        let pct = |ms: f64| flops / (ms * 1e-3) / 1e9;
        for round in 1..=rounds {
            let engine = best_ms(|| conv2d::input_gradient(isa, &mut dx, &dout, &kernel, &mut col, &g, batch));
            let mut dcol = vec![0.0f32; m * kk];
            let whole_gemm = best_ms(|| {
                gemm::sgemm_with(
                    isa,
                    1.0,
                    MatRef::row_major(&dout, m, n),
                    MatRef::row_major(&kernel_t, n, kk),
                    0.0,
                    MatMut::row_major(&mut dcol, m, kk),
                    Epilogue::default(),
                )
            });
            let whole_col2im = best_ms(|| conv2d::col2im(&mut dx, &dcol, &g, batch));
            println!(
                "round {round}: per image {engine:.3} ms ({:.1} GFLOP/s); whole batch {:.3} ms = GEMM {whole_gemm:.3} + col2im {whole_col2im:.3} ({:.1} GFLOP/s)",
                pct(engine),
                whole_gemm + whole_col2im,
                pct(whole_gemm + whole_col2im)
            );
        }
    });
}
