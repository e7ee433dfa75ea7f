//! How the length of a timing window moves the best rate on this host: the
//! FMA peak and square SGEMMs, each timed in short and in long windows,
//! alternating in one process (one thread), best of each:
//!
//! ```text
//! cargo run --release --example peak_window -- [SECONDS] [N]...
//! ```
//!
//! SECONDS (default 20) is the whole run; each N (default 256 1024) is a
//! square timed per call (its shortest window) and in chunks of calls at
//! least 20 ms long. A window of a few milliseconds or more cannot miss the
//! host's timer interrupts, so the peak over 20-ms windows is the 100% line
//! for a rate timed in 20-ms chunks (`gemm::fma_peak_gflops_over`).

use simdnet::gemm::{fma_peak_gflops, fma_peak_gflops_over, selected_isa, sgemm_with, Epilogue, MatMut, MatRef};
use std::time::{Duration, Instant};

/// The long window.
const LONG: Duration = Duration::from_millis(20);

/// An n × n problem: its side, A, B and C (row-major).
type Square = (usize, Vec<f32>, Vec<f32>, Vec<f32>);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed: Option<Vec<f64>> = args.iter().map(|a| a.parse().ok()).collect();
    let Some(nums) = parsed.filter(|v| v.iter().skip(1).all(|&n| n >= 1.0 && n.fract() == 0.0)) else {
        eprintln!("usage: peak_window [SECONDS] [N]...   (N: positive integers, sides of square GEMMs)");
        std::process::exit(2);
    };
    let seconds = nums.first().copied().unwrap_or(20.0).max(0.1);
    let mut sides: Vec<usize> = nums.iter().skip(1).map(|&n| n as usize).collect();
    if sides.is_empty() {
        sides = vec![256, 1024];
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .start_handler(|_| simdnet::fpu::flush_denormals_to_zero())
        .build()
        .expect("a thread pool");
    pool.install(|| {
        let isa = selected_isa();
        let mut rng = fastrand::Rng::with_seed(1);
        let mut squares: Vec<Square> = sides
            .iter()
            .map(|&n| {
                let mut v = || (0..n * n).map(|_| rng.f32() - 0.5).collect::<Vec<f32>>();
                (n, v(), v(), vec![0.0; n * n])
            })
            .collect();
        // Best seconds per call: per call, then per chunk of calls.
        let mut best = vec![(f64::INFINITY, f64::INFINITY); squares.len()];
        let (mut short_peak, mut long_peak) = (0.0f64, 0.0f64);
        let start = Instant::now();
        while start.elapsed().as_secs_f64() < seconds {
            short_peak = short_peak.max(fma_peak_gflops(Duration::from_millis(60)));
            long_peak = long_peak.max(fma_peak_gflops_over(Duration::from_millis(60), LONG));
            for ((n, a, b, c), best) in squares.iter_mut().zip(&mut best) {
                let n = *n;
                let mut call = || {
                    let (a, b) = (MatRef::row_major(a, n, n), MatRef::row_major(b, n, n));
                    sgemm_with(isa, 1.0, a, b, 0.0, MatMut::row_major(c, n, n), Epilogue::default());
                };
                call(); // warm
                let t = Instant::now();
                call();
                let one = t.elapsed().as_secs_f64();
                best.0 = best.0.min(one);
                let per_chunk = ((LONG.as_secs_f64() / one).ceil() as usize).max(1);
                for _ in 0..3 {
                    let t = Instant::now();
                    for _ in 0..per_chunk {
                        call();
                    }
                    best.1 = best.1.min(t.elapsed().as_secs_f64() / per_chunk as f64);
                }
                let single = ((0.06 / one) as usize).max(1);
                for _ in 0..single {
                    let t = Instant::now();
                    call();
                    best.0 = best.0.min(t.elapsed().as_secs_f64());
                }
            }
        }
        println!("{} path, one thread, best of each over {seconds} s, alternating", isa.name());
        println!("FMA peak: {short_peak:.1} GFLOP/s in 0.2-ms windows, {long_peak:.1} in {LONG:?} ones");
        for ((n, ..), &(per_call, per_chunk)) in squares.iter().zip(&best) {
            let flops = 2.0 * (*n as f64).powi(3);
            let (g1, g2) = (flops / per_call / 1e9, flops / per_chunk / 1e9);
            println!(
                "{n}²: one call ({:.2} ms) {g1:.1} GFLOP/s = {:.1}% of the short peak; chunks ≥ {LONG:?} {g2:.1} = {:.1}% of the short, {:.1}% of the long",
                per_call * 1e3,
                100.0 * g1 / short_peak,
                100.0 * g2 / short_peak,
                100.0 * g2 / long_peak
            );
        }
    });
}
