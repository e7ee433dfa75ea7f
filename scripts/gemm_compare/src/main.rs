//! `simdnet bench`'s GEMM shapes timed on simdnet's SGEMM, the `gemm` crate
//! (x86-v4: its AVX-512 kernels where the CPU has them), `matrixmultiply`,
//! BLIS (the system's `libblis.so.4`, loaded at run time when installed,
//! e.g. Debian's `libblis4-serial`) and, for the squares, numpy's OpenBLAS
//! (`scripts/numpy_gemm.py`, run once per round), one thread each,
//! alternating in rounds; prints the best GFLOP/s of each and its share of
//! the best FMA peak measured in the sitting (in windows as long as the
//! timed chunks, `simdnet::bench::chunk_window`). A library that is not there
//! (BLIS, numpy) leaves its column out and says why.
//!
//! ```text
//! cargo run --release --manifest-path scripts/gemm_compare/Cargo.toml -- [ROUNDS] [SECONDS] [MxNxK]... [LIB]...
//! ```
//!
//! `MxNxK` arguments keep only those shapes (of `simdnet bench`'s list), and
//! library names (`simdnet`, `gemm`, `matrixmultiply`, `BLIS`, `numpy`) only those libraries,
//! e.g. to profile one of them with `perf record`.
//!
//! Every library computes C = A·B (β = 0) from the same operands in the
//! layout training passes them (`simdnet::bench::Operands`); the results are
//! checked against simdnet's before anything is timed.

use simdnet::bench::{best_seconds_per_call, chunk_window, Operands, SHAPES};
use simdnet::gemm::{fma_peak_gflops_over, selected_isa, sgemm_with, Epilogue, MatMut};
use std::time::Duration;

const LIBS: [&str; 5] = ["simdnet", "gemm 0.19", "matrixmultiply", "BLIS", "numpy (OpenBLAS)"];
/// `LIBS` index of BLIS, loaded at run time.
const BLIS: usize = 3;
/// `LIBS` index of numpy, timed by a Python script rather than in process.
const NUMPY: usize = 4;

/// BLIS's typed `bli_sgemm` (`blis.h`, BLIS 0.9: `trans_t` a C enum, `dim_t`
/// and `inc_t` 64-bit on x86-64): C = α·op(A)·op(B) + β·C with general
/// row and column strides, so it reads the same views as simdnet.
type BliSgemm = unsafe extern "C" fn(
    transa: u32,
    transb: u32,
    m: i64,
    n: i64,
    k: i64,
    alpha: *const f32,
    a: *const f32,
    rsa: i64,
    csa: i64,
    b: *const f32,
    rsb: i64,
    csb: i64,
    beta: *const f32,
    c: *mut f32,
    rsc: i64,
    csc: i64,
);
/// `bli_init`: sets BLIS up (its kernel tables) before the queries below,
/// which otherwise abort when `BLIS_ARCH_TYPE` picks a sub-configuration.
type BliInit = unsafe extern "C" fn();
/// `bli_arch_query_id` and `bli_arch_string`: the sub-configuration
/// (kernel set) BLIS picked for this CPU.
type BliArchQueryId = unsafe extern "C" fn() -> u32;
type BliArchString = unsafe extern "C" fn(id: u32) -> *const std::ffi::c_char;
/// `bli_info_get_int_type_size`: bits of `dim_t` / `inc_t` in this build
/// (read as 64-bit: a 32-bit build's answer then fails the check too).
type BliIntTypeSize = unsafe extern "C" fn() -> i64;

/// `bli_sgemm`, once `load_blis` has loaded it.
static BLI_SGEMM: std::sync::OnceLock<BliSgemm> = std::sync::OnceLock::new();

/// Loads BLIS (`$BLIS_LIB`, else `libblis.so.4`) and returns the name of
/// the sub-configuration it runs here, or why it could not.
fn load_blis() -> Result<String, String> {
    let name = std::env::var("BLIS_LIB").unwrap_or_else(|_| "libblis.so.4".to_string());
    let cname = std::ffi::CString::new(name.clone()).map_err(|_| format!("bad library name {name:?}"))?;
    // SAFETY: dlopen/dlsym with NUL-terminated names; the symbols are cast to
    // the prototypes `blis.h` declares for them, and the library stays
    // loaded (never dlclose'd) while they are called.
    unsafe {
        let lib = libc::dlopen(cname.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        if lib.is_null() {
            return Err(format!("cannot load {name} (install libblis4-serial, or set BLIS_LIB)"));
        }
        let sym = |s: &std::ffi::CStr| {
            let p = libc::dlsym(lib, s.as_ptr());
            if p.is_null() {
                Err(format!("{name} has no {s:?}"))
            } else {
                Ok(p)
            }
        };
        let init: BliInit = std::mem::transmute(sym(c"bli_init")?);
        init();
        let int_bits: BliIntTypeSize = std::mem::transmute(sym(c"bli_info_get_int_type_size")?);
        if int_bits() != 64 {
            return Err(format!("{name} has {}-bit dimensions; this harness passes 64-bit ones", int_bits()));
        }
        let gemm: BliSgemm = std::mem::transmute(sym(c"bli_sgemm")?);
        let query: BliArchQueryId = std::mem::transmute(sym(c"bli_arch_query_id")?);
        let arch: BliArchString = std::mem::transmute(sym(c"bli_arch_string")?);
        let arch = std::ffi::CStr::from_ptr(arch(query())).to_string_lossy().into_owned();
        let _ = BLI_SGEMM.set(gemm);
        Ok(format!("{name}, sub-configuration {arch}"))
    }
}

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
        // SAFETY: as above; BLIS is loaded (`load_blis`) before it is listed.
        BLIS => unsafe {
            let gemm = BLI_SGEMM.get().expect("BLIS loaded");
            let (m, n, k) = (m as i64, n as i64, k as i64);
            let (rsa, csa, rsb, csb) = (rsa as i64, csa as i64, rsb as i64, csb as i64);
            gemm(0, 0, m, n, k, &1.0, a.as_ptr(), rsa, csa, b.as_ptr(), rsb, csb, &0.0, c.as_mut_ptr(), n, 1)
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
    // One thread in BLIS too (an OpenMP build would otherwise ask the
    // environment); read when BLIS initialises, after this.
    std::env::set_var("BLIS_NUM_THREADS", "1");
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
    let mut blis_what = None;
    if libs.contains(&BLIS) {
        match load_blis() {
            Ok(what) => blis_what = Some(what),
            Err(e) => {
                eprintln!("BLIS column left out: {e}");
                libs.retain(|&l| l != BLIS);
            }
        }
    }
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
            for &lib in libs.iter().filter(|&&l| l != 0 && l != NUMPY) {
                let name = LIBS[lib];
                let mut got = vec![f32::NAN; m * n];
                multiply(lib, ops, m, n, k, a, b, &mut got);
                let err = want.iter().zip(&got).map(|(w, g)| (w - g).abs()).fold(0.0f32, f32::max);
                assert!(err <= 1e-4 * k as f32, "{name} differs from simdnet on {m}×{n}×{k} by {err}");
            }
        }
        let mut best = vec![[0.0f64; LIBS.len()]; shapes.len()];
        let mut peak = 0.0f64;
        for round in 1..=rounds {
            // Timed in windows as long as the chunks below (see `fma_peak_gflops_over`).
            peak = peak.max(fma_peak_gflops_over(Duration::from_millis(500), chunk_window(budget)));
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
            "GFLOP/s, best of {rounds} alternating rounds, one thread, {} path; % of the sitting's best FMA peak {peak:.1} GFLOP/s ({:.0}-ms windows, as the chunks)",
            selected_isa().name(),
            chunk_window(budget).as_secs_f64() * 1e3
        );
        if let Some(what) = &blis_what {
            println!("BLIS: {what}");
        }
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
