//! Times one SGEMM shape (on one thread unless `GEMM_SHAPE_THREADS` says
//! more), for quick A/B runs of two builds:
//!
//! ```text
//! cargo run --release --example gemm_shape -- M N K [SECONDS] [--trans-a | --trans-b]
//! ```
//!
//! Prints the best GFLOP/s over chunks of calls within SECONDS (default
//! 0.25; `simdnet bench`'s timing, `bench::gemm_gflops`) and its share of
//! the FMA peak measured just before in windows as long as the chunks
//! (`bench::chunk_window`), as `simdnet bench` does.
//! `--trans-a` reads A as the transpose of a row-major `[k, m]` buffer (the
//! weight gradient's Xᵀ), `--trans-b` reads B as the transpose of a
//! row-major `[n, k]` buffer (a feature-major activation in a weight
//! gradient, or Wᵀ in an input gradient). `SIMDNET_ISA` picks the path as for `simdnet`.
//! Alternate two binaries and keep the best of each: the host's noise only
//! ever makes a run slower.

use simdnet::bench::{chunk_window, gemm_gflops, Operands};
use simdnet::gemm::{fma_peak_gflops_over, selected_isa};
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let trans_a = args.iter().any(|a| a == "--trans-a");
    let trans_b = args.iter().any(|a| a == "--trans-b");
    let nums: Vec<f64> = args.iter().filter(|a| !a.starts_with("--")).filter_map(|a| a.parse().ok()).collect();
    if nums.len() < 3 || nums[..3].iter().any(|&v| v < 1.0 || v.fract() != 0.0) || (trans_a && trans_b) {
        eprintln!("usage: gemm_shape M N K [SECONDS] [--trans-a | --trans-b]   (M, N, K positive integers)");
        std::process::exit(2);
    }
    let ops = match (trans_a, trans_b) {
        (true, _) => Operands::TransA,
        (_, true) => Operands::TransB,
        _ => Operands::RowMajor,
    };
    let (m, n, k) = (nums[0] as usize, nums[1] as usize, nums[2] as usize);
    let seconds = nums.get(3).copied().unwrap_or(0.25).max(0.01);

    let threads = std::env::var("GEMM_SHAPE_THREADS").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .start_handler(|_| simdnet::fpu::flush_denormals_to_zero())
        .build()
        .expect("a thread pool");
    pool.install(|| {
        let isa = selected_isa();
        let budget = Duration::from_secs_f64(seconds);
        let peak = fma_peak_gflops_over(Duration::from_millis(500).max(budget), chunk_window(budget));
        let g = gemm_gflops(isa, m, n, k, ops, budget);
        println!(
            "{m}x{n}x{k}{}{}: {g:.1} GFLOP/s = {:.1}% of {peak:.1} ({}, {threads} thread(s))",
            if trans_a { " (Aᵀ)" } else { "" },
            if trans_b { " (Bᵀ)" } else { "" },
            100.0 * g / peak,
            isa.name()
        );
    });
}
