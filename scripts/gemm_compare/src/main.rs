//! `simdnet bench`'s GEMM shapes timed on simdnet's SGEMM, the `gemm` crate
//! (x86-v4: its AVX-512 kernels where the CPU has them), `matrixmultiply`
//! and, for the squares, numpy's OpenBLAS (`scripts/numpy_gemm.py`, run once
//! per round), one thread each, alternating in rounds; prints the best
//! GFLOP/s of each and its share of the best FMA peak measured in the sitting.
//!
//! ```text
//! cargo run --release --manifest-path scripts/gemm_compare/Cargo.toml -- [ROUNDS] [SECONDS] [MxNxK]... [LIB]...
//! ```
//!
//! `MxNxK` arguments keep only those shapes (of `simdnet bench`'s list), and
//! library names (`simdnet`, `gemm`, `matrixmultiply`, `numpy`) only those libraries,
//! e.g. to profile one of them with `perf record`.
//!
//! Every library computes C = A·B (β = 0) from the same operands in the
//! layout training passes them (`simdnet::bench::Operands`); the results are
//! checked against simdnet's before anything is timed.

use simdnet::bench::{best_seconds_per_call, Operands, SHAPES};
use simdnet::gemm::{fma_peak_gflops, selected_isa, sgemm_with, Epilogue, MatMut};
use std::time::Duration;

const LIBS: [&str; 4] = ["simdnet", "gemm 0.19", "matrixmultiply", "numpy (OpenBLAS)"];
/// `LIBS` index of numpy, timed by a Python script rather than in process.
const NUMPY: usize = 3;

/// Runs `scripts/numpy_gemm.py` for one round of the squares `sizes`:
/// GFLOP/s per size, or why it could not.
fn numpy_round(sizes: &[usize], budget: Duration) -> Result<Vec<f64>, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../numpy_gemm.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .args(["1".to_string(), budget.as_secs_f64().to_string()])
        .args(sizes.iter().map(|n| n.to_string()))
        .output()
        .map_err(|e| format!("cannot run python3 {script}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{script} failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    sizes
        .iter()
        .map(|n| {
            let line = format!("{n}x{n}x{n}: ");
            text.lines()
                .find_map(|l| l.strip_prefix(&line)?.strip_suffix(" GFLOP/s")?.parse().ok())
                .ok_or_else(|| format!("{script} printed no figure for {n}x{n}x{n}"))
        })
        .collect()
}

/// C = A·B on library `lib` (one thread).
fn multiply(lib: usize, ops: Operands, m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    // The other libraries take the strides of the views simdnet reads.
    let (av, bv) = ops.views(a, b, m, n, k);
    let (rsa, csa, rsb, csb) = (av.rs as isize, av.cs as isize, bv.rs as isize, bv.cs as isize);
    match lib {
        0 => sgemm_with(selected_isa(), 1.0, av, bv, 0.0, MatMut::row_major(c, m, n), Epilogue::default()),
        // SAFETY: a holds m·k and b k·n values, c m·n; the strides are those
        // of the views `Operands::views` built over exactly those buffers.
        1 => unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                csa,
                rsa,
                b.as_ptr(),
                csb,
                rsb,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        },
        // SAFETY: as above.
        _ => unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                1.0,
                a.as_ptr(),
                rsa,
                csa,
                b.as_ptr(),
                rsb,
                csb,
                0.0,
                c.as_mut_ptr(),
                n as isize,
                1,
            )
        },
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let nums: Vec<f64> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let rounds = nums.first().copied().unwrap_or(3.0).max(1.0) as usize;
    let budget = Duration::from_secs_f64(nums.get(1).copied().unwrap_or(0.25).max(0.01));
    let shape_args: Vec<&String> = args.iter().filter(|a| a.contains('x')).collect();
    let lib_args: Vec<&String> = args.iter().filter(|a| a.parse::<f64>().is_err() && !a.contains('x')).collect();
    for a in &lib_args {
        if !LIBS.iter().any(|l| l.starts_with(a.as_str())) {
            eprintln!("unknown library {a:?}: expected one of {LIBS:?}");
            std::process::exit(2);
        }
    }
    let shapes: Vec<_> = SHAPES
        .iter()
        .copied()
        .filter(|&(m, n, k, ..)| shape_args.is_empty() || shape_args.iter().any(|s| **s == format!("{m}x{n}x{k}")))
        .collect();
    if shapes.is_empty() {
        eprintln!("no shape of simdnet bench matches {shape_args:?}");
        std::process::exit(2);
    }
    let mut libs: Vec<usize> = (0..LIBS.len())
        .filter(|&l| lib_args.is_empty() || lib_args.iter().any(|a| LIBS[l].starts_with(a.as_str())))
        .collect();
    // numpy is timed on the squares only (see `scripts/numpy_gemm.py`).
    let squares: Vec<usize> = shapes
        .iter()
        .filter(|&&(m, n, k, ops, _)| m == n && n == k && ops == Operands::RowMajor)
        .map(|s| s.0)
        .collect();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("a one-thread pool");
    pool.install(|| {
        let mut rng = xorshift_uniform(1);
        let operands: Vec<(Vec<f32>, Vec<f32>)> = shapes
            .iter()
            .map(|&(m, n, k, ..)| ((0..m * k).map(|_| rng()).collect(), (0..k * n).map(|_| rng()).collect()))
            .collect();
        // The same product from every library before timing anything.
        for (&(m, n, k, ops, _), (a, b)) in shapes.iter().zip(&operands) {
            let mut want = vec![f32::NAN; m * n];
            multiply(0, ops, m, n, k, a, b, &mut want);
            for (lib, name) in LIBS.iter().enumerate().take(NUMPY).skip(1) {
                let mut got = vec![f32::NAN; m * n];
                multiply(lib, ops, m, n, k, a, b, &mut got);
                let err = want.iter().zip(&got).map(|(w, g)| (w - g).abs()).fold(0.0f32, f32::max);
                assert!(err <= 1e-4 * k as f32, "{name} differs from simdnet on {m}×{n}×{k} by {err}");
            }
        }
        let mut best = vec![[0.0f64; LIBS.len()]; shapes.len()];
        let mut peak = 0.0f64;
        for round in 1..=rounds {
            peak = peak.max(fma_peak_gflops(Duration::from_millis(200)));
            for (s, (&(m, n, k, ops, _), (a, b))) in shapes.iter().zip(&operands).enumerate() {
                let mut c = vec![0.0f32; m * n];
                for &lib in libs.iter().filter(|&&l| l != NUMPY) {
                    let best = &mut best[s][lib];
                    let t = best_seconds_per_call(budget, || multiply(lib, ops, m, n, k, a, b, &mut c));
                    *best = best.max(2.0 * (m * n * k) as f64 / t / 1e9);
                }
            }
            if libs.contains(&NUMPY) && !squares.is_empty() {
                match numpy_round(&squares, budget) {
                    Ok(g) => {
                        for (&n, g) in squares.iter().zip(g) {
                            let s = shapes.iter().position(|&(m, nn, k, ..)| (m, nn, k) == (n, n, n)).expect("a square shape");
                            best[s][NUMPY] = best[s][NUMPY].max(g);
                        }
                    }
                    Err(e) => {
                        eprintln!("numpy column left out: {e}");
                        libs.retain(|&l| l != NUMPY);
                    }
                }
            }
            eprintln!("round {round}/{rounds} done");
        }
        println!(
            "GFLOP/s, best of {rounds} alternating rounds, one thread, {} path; % of the sitting's best FMA peak {peak:.1} GFLOP/s",
            selected_isa().name()
        );
        let names: Vec<&str> = libs.iter().map(|&l| LIBS[l]).collect();
        println!("| m×n×k | what | {} |", names.join(" | "));
        println!("|---|---|{}", "---:|".repeat(libs.len()));
        for (&(m, n, k, _, what), best) in shapes.iter().zip(&best) {
            let cells: Vec<String> = libs
                .iter()
                .map(|&l| match best[l] {
                    0.0 => "—".to_string(),
                    g => format!("{g:.1} ({:.1}%)", 100.0 * g / peak),
                })
                .collect();
            println!("| {m}×{n}×{k} | {what} | {} |", cells.join(" | "));
        }
    });
}

/// Uniform values in [-0.5, 0.5) from a fixed seed (xorshift; no extra crate).
fn xorshift_uniform(seed: u64) -> impl FnMut() -> f32 {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }
}
