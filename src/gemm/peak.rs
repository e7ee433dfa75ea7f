//! Measures this core's FP32 FMA peak, the 100 % line for GEMM efficiency.

use std::hint::black_box;
use std::time::{Duration, Instant};

use super::simd::Simd;
use super::Isa;

/// 12 independent accumulator chains: enough to cover FMA latency × ports on
/// current x86 cores (4 cycles × 2 ports = 8 in flight).
const CHAINS: usize = 12;
/// FMA rounds per timed batch.
const ROUNDS: usize = 1 << 16;

/// `ROUNDS × CHAINS` vector FMAs; returns the accumulators so nothing is
/// optimised away.
#[inline(always)]
unsafe fn fma_loop<S: Simd>(seed: f32) -> f32 {
    let x = S::splat(black_box(0.999_999));
    let y = S::splat(black_box(1e-7));
    let mut acc = [S::splat(seed); CHAINS];
    for _ in 0..ROUNDS {
        for a in acc.iter_mut() {
            *a = S::fmadd(*a, x, y);
        }
    }
    let mut s = S::zero();
    for a in acc {
        s = S::add(s, a);
    }
    let mut out = [0.0f32; 16];
    S::store(out.as_mut_ptr(), s);
    out[0]
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn loop_avx512(seed: f32) -> f32 {
    fma_loop::<super::simd::V512>(seed)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn loop_avx2(seed: f32) -> f32 {
    fma_loop::<super::simd::V256>(seed)
}

fn loop_portable(seed: f32) -> f32 {
    // SAFETY: the portable vector type needs no CPU feature.
    unsafe { fma_loop::<super::simd::VWide>(seed) }
}

/// Runs `f` (one batch of `flops`) in windows of about `window` each (a
/// whole number of batches, at least one) for about `duration`, and returns
/// the best window's rate in GFLOP/s.
fn best_rate(duration: Duration, window: Duration, flops: f64, f: impl FnMut() -> f32) -> f64 {
    flops / timed_windows(duration, window, f).best_batch_s / 1e9
}

/// What [`timed_windows`] timed: the calibration batch, the batches in each
/// window and how many windows ran.
#[derive(Debug, Clone, Copy)]
// Only the tests read how the time was cut into windows.
#[cfg_attr(not(test), allow(dead_code))]
struct Windows {
    /// Seconds the calibration batch took (not part of the result).
    calibration_s: f64,
    batches: usize,
    windows: usize,
    /// The best window's seconds per batch.
    best_batch_s: f64,
}

/// Times one batch of `f`, sizes a window to `window` in whole batches (at
/// least one) and runs windows until `duration` has passed (at least one).
fn timed_windows(duration: Duration, window: Duration, mut f: impl FnMut() -> f32) -> Windows {
    let t = Instant::now();
    black_box(f());
    let calibration_s = t.elapsed().as_secs_f64().max(1e-9);
    let batches = ((window.as_secs_f64() / calibration_s).round() as usize).max(1);
    let start = Instant::now();
    let mut best_batch_s = f64::INFINITY;
    let mut windows = 0;
    loop {
        let t = Instant::now();
        for _ in 0..batches {
            black_box(f());
        }
        best_batch_s = best_batch_s.min(t.elapsed().as_secs_f64() / batches as f64);
        windows += 1;
        if start.elapsed() >= duration {
            break;
        }
    }
    Windows { calibration_s, batches, windows, best_batch_s }
}

/// Windows of one batch each (`best_rate` rounds a window to whole
/// batches, at least one): `ROUNDS` rounds, ~0.2 ms at AVX-512 on Zen 4,
/// short enough to miss most of the host's interrupts.
const SHORT_WINDOW: Duration = Duration::ZERO;

/// This core's FP32 FMA peak in GFLOP/s (one thread), measured for about
/// `duration` with a loop of 12 independent vector accumulators on the
/// widest vectors of [`super::selected_isa`] (AVX-512 or AVX2; `wide` f32x8
/// for the portable/reference paths). Best of many short batches (~0.2 ms),
/// so a noisy machine reads close to its true peak.
pub fn fma_peak_gflops(duration: Duration) -> f64 {
    on_isa(super::selected_isa(), duration, SHORT_WINDOW)
}

/// [`fma_peak_gflops`] timed in windows of about `window` each, best over
/// about `duration`: the 100% line for rates timed in windows that long.
///
/// A window of a few milliseconds or more cannot miss the host's timer
/// interrupts (and, on a shared VM, its other tenants), which take the
/// same share of any code's time, so the peak timed in 20-ms windows reads
/// slightly (under 1%) below the one in 0.2-ms windows (`examples/peak_window`,
/// docs/performance.md). A GEMM timed in 20-ms chunks then compares with the
/// 20-ms peak; compared with the 0.2-ms one it would be charged for the
/// interrupts.
pub fn fma_peak_gflops_over(duration: Duration, window: Duration) -> f64 {
    on_isa(super::selected_isa(), duration, window)
}

/// [`fma_peak_gflops`] for an explicit ISA (which must be available).
pub fn fma_peak_gflops_with(isa: Isa, duration: Duration) -> f64 {
    assert!(isa.is_available(), "fma_peak_gflops: ISA {} is not supported by this CPU", isa.name());
    on_isa(isa, duration, SHORT_WINDOW)
}

fn on_isa(isa: Isa, duration: Duration, window: Duration) -> f64 {
    let batch = |lanes: usize| (ROUNDS * CHAINS * lanes * 2) as f64;
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512F availability was checked (selected/asserted).
        Isa::Avx512 => best_rate(duration, window, batch(16), || unsafe { loop_avx512(1.0) }),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2 + FMA availability was checked (selected/asserted).
        Isa::Avx2 => best_rate(duration, window, batch(8), || unsafe { loop_avx2(1.0) }),
        _ => best_rate(duration, window, batch(8), || loop_portable(1.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window longer than the whole duration is still timed, once, and
    /// holds as many batches as the calibration says fit in it. Counts
    /// calls rather than timing the call, so a host that gets quieter (or
    /// busier) between calibration and window cannot fail it.
    #[test]
    fn a_window_longer_than_the_duration_is_timed_once() {
        let mut calls = 0usize;
        let w = timed_windows(Duration::from_millis(1), Duration::from_millis(30), || {
            calls += 1;
            std::thread::sleep(Duration::from_millis(1));
            0.0
        });
        assert_eq!(w.windows, 1, "{w:?}");
        assert_eq!(w.batches, ((0.030 / w.calibration_s).round() as usize).max(1), "{w:?}");
        assert_eq!(calls, 1 + w.batches, "{w:?}");
        // sleep(1 ms) lasts at least 1 ms, so at most 30 batches fit.
        assert!(w.batches <= 30, "{w:?}");
        assert!(w.best_batch_s >= 1e-3, "{w:?}");
    }

    /// Windows shorter than the duration repeat until it has passed.
    #[test]
    fn short_windows_repeat_for_the_duration() {
        let t = Instant::now();
        let w = timed_windows(Duration::from_millis(20), Duration::ZERO, || {
            std::thread::sleep(Duration::from_millis(1));
            0.0
        });
        assert_eq!(w.batches, 1, "{w:?}");
        assert!(w.windows >= 2, "{w:?}");
        assert!(t.elapsed() >= Duration::from_millis(20), "{w:?}");
    }
}
