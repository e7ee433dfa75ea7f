//! The layers' kernels, one file per kind: Dense (through the GEMM with a
//! fused epilogue), Conv2D (im2col into the GEMM, or direct for short patches), MaxPooling2D and dropout's
//! mask. Each keeps a plain `reference` as its test oracle; the Sequential
//! that strings them together is [`crate::model`].

pub mod conv2d;
pub mod conv_direct;
pub mod dense;
pub mod dropout;
pub mod maxpool;

use crate::gemm::Isa;

/// Runs `f` compiled with `isa`'s instruction set enabled, so that the
/// plain element loops it inlines (col2im's adds, the pool's maxima and
/// selects, the bias gradient's sums) are vectorised at that width rather
/// than at the SSE2 baseline. Same results on every path: the loops are
/// element-wise (or sum in one fixed order), so only their width changes.
///
/// Pass an `#[inline(always)]` closure: a closure LLVM does not inline is
/// compiled as a function of its own, at the baseline width (perf showed
/// SSE code for exactly that).
///
/// # Panics
/// Where `isa` is not available on this CPU.
#[inline(always)]
pub(crate) fn vectorized<R>(isa: Isa, f: impl FnOnce() -> R) -> R {
    assert!(isa.is_available(), "{isa} is not available on this CPU");
    match isa {
        // SAFETY: the CPU has the instruction set (asserted above); `f` is
        // safe code, which these features only let LLVM compile wider.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { with_avx512(f) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { with_avx2(f) },
        _ => f(),
    }
}

/// Images each worker of the current pool takes, in one contiguous run, where
/// a kernel reuses one image's scratch per worker (so that it stays in L2).
/// Which images share a worker never changes an image's result.
pub(crate) fn images_per_worker(batch: usize) -> usize {
    batch.div_ceil(rayon::current_num_threads()).max(1)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}
