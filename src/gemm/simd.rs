//! A minimal vector abstraction the microkernel body is written against, with
//! one zero-sized implementation per instruction set.
//!
//! Every method is `#[inline(always)]` and carries no `#[target_feature]` of
//! its own: the bodies only become AVX-512 / AVX2 code once they are inlined
//! into the thin `#[target_feature]` entry points in `kernel.rs`. Calling them
//! anywhere else is undefined behaviour on a CPU without the feature, which is
//! why they are all `unsafe`.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// One SIMD register's worth of f32 lanes.
pub(crate) trait Simd: Copy {
    /// f32 lanes per vector.
    const LANES: usize;
    type V: Copy;

    unsafe fn zero() -> Self::V;
    unsafe fn splat(x: f32) -> Self::V;
    /// Unaligned load of `LANES` values.
    unsafe fn load(p: *const f32) -> Self::V;
    /// Unaligned store of `LANES` values.
    unsafe fn store(p: *mut f32, v: Self::V);
    /// Load the first `n < LANES` values, the other lanes are zero; reads
    /// only `p[..n]`.
    unsafe fn load_part(p: *const f32, n: usize) -> Self::V;
    /// Store the first `n < LANES` lanes; writes only `p[..n]`.
    unsafe fn store_part(p: *mut f32, n: usize, v: Self::V);
    /// All lanes = `*p`.
    unsafe fn bcast(p: *const f32) -> Self::V;
    /// a·b + c
    unsafe fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// Lane-wise max(a, 0); NaN maps to 0 like `f32::max(NaN, 0.0)`.
    unsafe fn relu(a: Self::V) -> Self::V;
}

// ---------------------------------------------------------------- AVX-512F

#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct V512;

#[cfg(target_arch = "x86_64")]
impl Simd for V512 {
    const LANES: usize = 16;
    type V = __m512;
    #[inline(always)]
    unsafe fn zero() -> __m512 {
        _mm512_setzero_ps()
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        _mm512_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        _mm512_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        _mm512_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn load_part(p: *const f32, n: usize) -> __m512 {
        // Masked-off lanes are never accessed (no fault, no read).
        _mm512_maskz_loadu_ps(((1u32 << n) - 1) as u16, p)
    }
    #[inline(always)]
    unsafe fn store_part(p: *mut f32, n: usize, v: __m512) {
        _mm512_mask_storeu_ps(p, ((1u32 << n) - 1) as u16, v)
    }
    #[inline(always)]
    unsafe fn bcast(p: *const f32) -> __m512 {
        _mm512_set1_ps(*p)
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn mul(a: __m512, b: __m512) -> __m512 {
        _mm512_mul_ps(a, b)
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        _mm512_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn relu(a: __m512) -> __m512 {
        // max_ps returns the second operand when either is NaN.
        _mm512_max_ps(a, _mm512_setzero_ps())
    }
}

// ---------------------------------------------------------------- AVX2 + FMA

#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct V256;

/// `MASK_TABLE[8 - n ..][..8]` has n leading all-ones lanes.
#[cfg(target_arch = "x86_64")]
static MASK_TABLE: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn mask256(n: usize) -> __m256i {
    _mm256_loadu_si256(MASK_TABLE.as_ptr().add(8 - n) as *const __m256i)
}

#[cfg(target_arch = "x86_64")]
impl Simd for V256 {
    const LANES: usize = 8;
    type V = __m256;
    #[inline(always)]
    unsafe fn zero() -> __m256 {
        _mm256_setzero_ps()
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m256 {
        _mm256_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        _mm256_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        _mm256_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn load_part(p: *const f32, n: usize) -> __m256 {
        // vmaskmovps never touches masked-off lanes.
        _mm256_maskload_ps(p, mask256(n))
    }
    #[inline(always)]
    unsafe fn store_part(p: *mut f32, n: usize, v: __m256) {
        _mm256_maskstore_ps(p, mask256(n), v)
    }
    #[inline(always)]
    unsafe fn bcast(p: *const f32) -> __m256 {
        _mm256_broadcast_ss(&*p)
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m256, b: __m256, c: __m256) -> __m256 {
        _mm256_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn mul(a: __m256, b: __m256) -> __m256 {
        _mm256_mul_ps(a, b)
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        _mm256_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn relu(a: __m256) -> __m256 {
        _mm256_max_ps(a, _mm256_setzero_ps())
    }
}

// ---------------------------------------------------------------- portable (wide)

#[derive(Clone, Copy)]
pub(crate) struct VWide;

impl Simd for VWide {
    const LANES: usize = 8;
    type V = wide::f32x8;
    #[inline(always)]
    unsafe fn zero() -> wide::f32x8 {
        wide::f32x8::ZERO
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> wide::f32x8 {
        wide::f32x8::splat(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> wide::f32x8 {
        wide::f32x8::from((p as *const [f32; 8]).read_unaligned())
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: wide::f32x8) {
        (p as *mut [f32; 8]).write_unaligned(v.to_array())
    }
    #[inline(always)]
    unsafe fn load_part(p: *const f32, n: usize) -> wide::f32x8 {
        // An explicit lane loop: a copy_nonoverlapping of n would be a memcpy call.
        let mut t = [0.0f32; 8];
        for (l, x) in t.iter_mut().enumerate() {
            if l < n {
                *x = *p.add(l);
            }
        }
        wide::f32x8::from(t)
    }
    #[inline(always)]
    unsafe fn store_part(p: *mut f32, n: usize, v: wide::f32x8) {
        let t = v.to_array();
        for (l, x) in t.iter().enumerate() {
            if l < n {
                *p.add(l) = *x;
            }
        }
    }
    #[inline(always)]
    unsafe fn bcast(p: *const f32) -> wide::f32x8 {
        wide::f32x8::splat(*p)
    }
    #[inline(always)]
    unsafe fn fmadd(a: wide::f32x8, b: wide::f32x8, c: wide::f32x8) -> wide::f32x8 {
        a.mul_add(b, c)
    }
    #[inline(always)]
    unsafe fn mul(a: wide::f32x8, b: wide::f32x8) -> wide::f32x8 {
        a * b
    }
    #[inline(always)]
    unsafe fn add(a: wide::f32x8, b: wide::f32x8) -> wide::f32x8 {
        a + b
    }
    #[inline(always)]
    unsafe fn relu(a: wide::f32x8) -> wide::f32x8 {
        // Compare-and-select so NaN maps to 0 like the scalar path.
        let z = wide::f32x8::ZERO;
        a.simd_gt(z).bitselect(a, z)
    }
}
