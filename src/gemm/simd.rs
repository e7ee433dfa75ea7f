//! A minimal vector abstraction the microkernel body (and the optimizer's
//! element loops, `optim.rs`) is written against, with one zero-sized
//! implementation per instruction set.
//!
//! Every method is `#[inline(always)]` and carries no `#[target_feature]` of
//! its own: the bodies only become AVX-512 / AVX2 code once they are inlined
//! into the thin `#[target_feature]` entry points in `kernel.rs` and
//! `optim.rs`. Calling them anywhere else is undefined behaviour on a CPU
//! without the feature, which is why they are all `unsafe`.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// One SIMD register's worth of f32 lanes.
pub(crate) trait Simd: Copy {
    /// f32 lanes per vector.
    const LANES: usize;
    /// Vector registers the instruction set names (32 zmm with AVX-512, 16
    /// ymm with AVX2): how many accumulators a register-blocked tile may hold.
    const REGISTERS: usize;
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
    /// `*p` = lane 0 of `v`.
    unsafe fn store_lane0(p: *mut f32, v: Self::V);

    /// Interleave factor of the kernels' interleaved tail vector (see
    /// `kernel.rs`): one vector holds `LANES / IL` columns × `IL` consecutive
    /// k, lane `c·IL + q` for column c and k offset q.
    const IL: usize;
    /// Every `IL`-lane group = `p[..IL]`.
    unsafe fn bcast_il(p: *const f32) -> Self::V;
    /// As [`Simd::bcast_il`] with only `p[..n]` read (`0 < n < IL`), the
    /// other values zero.
    unsafe fn bcast_il_part(p: *const f32, n: usize) -> Self::V;
    /// Lane c (c < `LANES / IL`) = the sum of lanes `c·IL .. (c + 1)·IL`;
    /// the other lanes are unspecified.
    unsafe fn reduce_il(x: Self::V) -> Self::V;
    /// Lane c (c < `LANES / IL`) = lane `c·IL + q` (q < IL); the other
    /// lanes are unspecified.
    unsafe fn pick_il(x: Self::V, q: usize) -> Self::V;

    /// The first `min(n, LANES)` values (n ≥ 1): a plain load for a whole
    /// vector, else a masked one reading only `p[..n]`.
    #[inline(always)]
    unsafe fn load_upto(p: *const f32, n: usize) -> Self::V {
        if n >= Self::LANES {
            Self::load(p)
        } else {
            Self::load_part(p, n)
        }
    }
    /// Stores the first `min(n, LANES)` lanes (n ≥ 1), writing only `p[..n]`.
    #[inline(always)]
    unsafe fn store_upto(p: *mut f32, n: usize, v: Self::V) {
        if n >= Self::LANES {
            Self::store(p, v)
        } else {
            Self::store_part(p, n, v)
        }
    }
    /// a·b + c
    unsafe fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// Lane-wise max(a, 0); NaN maps to 0 like `f32::max(NaN, 0.0)`.
    unsafe fn relu(a: Self::V) -> Self::V;

    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
    /// c − a·b
    unsafe fn fnmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// Lane-wise `if a > b { a } else { b }` (x86 `maxps`: a NaN in either gives b).
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    /// Lane-wise `if a < b { a } else { b }` (x86 `minps`: a NaN in either gives b).
    unsafe fn min(a: Self::V, b: Self::V) -> Self::V;

    /// The hardware estimates [`Simd::rsqrt_est`] and [`Simd::recip_est`]
    /// have a relative error below 2^−`EST_BITS`.
    const EST_BITS: u32;
    /// Hardware estimate of 1/√x for normal x > 0 (0 → +∞, +∞ → 0).
    unsafe fn rsqrt_est(x: Self::V) -> Self::V;
    /// Hardware estimate of 1/x for normal x with |x| < 2^126 (0 → ±∞).
    unsafe fn recip_est(x: Self::V) -> Self::V;

    unsafe fn div(a: Self::V, b: Self::V) -> Self::V;
    /// √x, correctly rounded (the divider's unit).
    unsafe fn sqrt(x: Self::V) -> Self::V;
    /// Round to the nearest integer (ties to even), as f32.
    unsafe fn round(x: Self::V) -> Self::V;
    /// 2ⁿ for integer-valued n in [−126, 127], built in the exponent bits.
    unsafe fn pow2i(n: Self::V) -> Self::V;

    /// eˣ as Cephes' `expf`: n = round(x·log₂e), r = x − n·ln 2 (ln 2 in
    /// two parts, so r is exact), eʳ by a degree-6 polynomial, times 2ⁿ.
    /// Within 2 ulp of libm on [−87.3, 88]; x is clamped to that range
    /// (below, eˣ is under the smallest normal; above, a sigmoid is 0 in
    /// f32 anyway), with the constants first so a NaN passes through.
    #[inline(always)]
    unsafe fn exp(x: Self::V) -> Self::V {
        let x = Self::min(Self::splat(88.0), Self::max(Self::splat(-87.3), x));
        let n = Self::round(Self::mul(x, Self::splat(std::f32::consts::LOG2_E)));
        let r = Self::fnmadd(n, Self::splat(0.693_359_4), x);
        let r = Self::fnmadd(n, Self::splat(-2.121_944_4e-4), r);
        let mut p = Self::splat(1.987_569_1e-4);
        for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5] {
            p = Self::fmadd(p, r, Self::splat(c));
        }
        let p = Self::fmadd(p, Self::mul(r, r), Self::add(r, Self::splat(1.0)));
        Self::mul(p, Self::pow2i(n))
    }

    /// 1 / (1 + e⁻ˣ), in registers (the GEMM's sigmoid epilogue).
    #[inline(always)]
    unsafe fn sigmoid(x: Self::V) -> Self::V {
        let one = Self::splat(1.0);
        Self::div(one, Self::add(one, Self::exp(Self::sub(Self::zero(), x))))
    }

    /// 1/√x with relative error below ~2^−14 for normal x > 0 (0, ∞ and
    /// denormals are the caller's to keep away): the estimate, refined by one
    /// Newton–Raphson step, y ← y + ½·y·(1 − x·y²), when it is coarser. A
    /// final correction with an FMA residual (see `optim.rs`) squares the
    /// error again, past single precision.
    #[inline(always)]
    unsafe fn rsqrt_coarse(x: Self::V) -> Self::V {
        let y = Self::rsqrt_est(x);
        if Self::EST_BITS >= 14 {
            y
        } else {
            rsqrt_step::<Self>(x, y)
        }
    }

    /// 1/x with relative error below ~2^−14 for normal x with |x| < 2^126:
    /// the estimate, refined by one Newton–Raphson step, y ← y + y·(1 − x·y),
    /// when it is coarser.
    #[inline(always)]
    unsafe fn recip_coarse(x: Self::V) -> Self::V {
        let y = Self::recip_est(x);
        if Self::EST_BITS >= 14 {
            y
        } else {
            Self::fmadd(y, Self::fnmadd(x, y, Self::splat(1.0)), y)
        }
    }
}

/// One Newton–Raphson step for 1/√x from y: y + ½·y·(1 − x·y²), the
/// residual in one FMA.
#[inline(always)]
unsafe fn rsqrt_step<S: Simd>(x: S::V, y: S::V) -> S::V {
    let e = S::fnmadd(S::mul(x, y), y, S::splat(1.0));
    S::fmadd(S::mul(y, S::splat(0.5)), e, y)
}

// ---------------------------------------------------------------- AVX-512F

#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct V512;

/// A mask of the first `min(n, 16)` lanes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn mask512(n: usize) -> u16 {
    ((1u32 << n.min(16)) - 1) as u16
}

#[cfg(target_arch = "x86_64")]
impl Simd for V512 {
    const LANES: usize = 16;
    const REGISTERS: usize = 32;
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
        _mm512_maskz_loadu_ps(mask512(n), p)
    }
    #[inline(always)]
    unsafe fn store_part(p: *mut f32, n: usize, v: __m512) {
        _mm512_mask_storeu_ps(p, mask512(n), v)
    }
    /// Branch-free, the masked load for any `n`: a masked access costs the
    /// same as a plain one on AVX-512, and tile epilogues call this once per
    /// row with the same `n`.
    #[inline(always)]
    unsafe fn load_upto(p: *const f32, n: usize) -> __m512 {
        Self::load_part(p, n)
    }
    /// Whole vectors, and a last vector of 4 or 8 columns (n = 100 in
    /// 16-lane vectors: 6 + 4; an interleaved tail's 4), take a plain
    /// store of that width: on Zen 4 a masked 512-bit store costs more
    /// (measured on the dW shape 784×100×32, docs/performance.md, *Kernel
    /// design*).
    #[inline(always)]
    unsafe fn store_upto(p: *mut f32, n: usize, v: __m512) {
        match n {
            16.. => _mm512_storeu_ps(p, v),
            8 => _mm256_storeu_ps(p, _mm512_castps512_ps256(v)),
            4 => _mm_storeu_ps(p, _mm512_castps512_ps128(v)),
            _ => Self::store_part(p, n, v),
        }
    }
    #[inline(always)]
    unsafe fn bcast(p: *const f32) -> __m512 {
        _mm512_set1_ps(*p)
    }
    #[inline(always)]
    unsafe fn store_lane0(p: *mut f32, v: __m512) {
        _mm_store_ss(p, _mm512_castps512_ps128(v))
    }
    const IL: usize = 4;
    #[inline(always)]
    unsafe fn bcast_il(p: *const f32) -> __m512 {
        // vbroadcastf32x4 from memory: a load-port µop only.
        _mm512_broadcast_f32x4(_mm_loadu_ps(p))
    }
    #[inline(always)]
    unsafe fn bcast_il_part(p: *const f32, n: usize) -> __m512 {
        let x = Self::load_part(p, n);
        _mm512_shuffle_f32x4::<0>(x, x)
    }
    #[inline(always)]
    unsafe fn reduce_il(x: __m512) -> __m512 {
        // Lanes (0 1 2 3) → pair sums, then quad sums in every lane of a quad.
        let x = _mm512_add_ps(x, _mm512_permute_ps::<0b10_11_00_01>(x));
        let x = _mm512_add_ps(x, _mm512_permute_ps::<0b01_00_11_10>(x));
        _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), x)
    }
    #[inline(always)]
    unsafe fn pick_il(x: __m512, q: usize) -> __m512 {
        let q = q as i32;
        _mm512_permutexvar_ps(_mm512_setr_epi32(q, 4 + q, 8 + q, 12 + q, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), x)
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
    #[inline(always)]
    unsafe fn sub(a: __m512, b: __m512) -> __m512 {
        _mm512_sub_ps(a, b)
    }
    #[inline(always)]
    unsafe fn fnmadd(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fnmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn max(a: __m512, b: __m512) -> __m512 {
        _mm512_max_ps(a, b)
    }
    #[inline(always)]
    unsafe fn min(a: __m512, b: __m512) -> __m512 {
        _mm512_min_ps(a, b)
    }
    /// `vrsqrt14ps` / `vrcp14ps`: relative error < 2^−14.
    const EST_BITS: u32 = 14;
    #[inline(always)]
    unsafe fn rsqrt_est(x: __m512) -> __m512 {
        _mm512_rsqrt14_ps(x)
    }
    #[inline(always)]
    unsafe fn sqrt(x: __m512) -> __m512 {
        _mm512_sqrt_ps(x)
    }
    #[inline(always)]
    unsafe fn div(a: __m512, b: __m512) -> __m512 {
        _mm512_div_ps(a, b)
    }
    #[inline(always)]
    unsafe fn round(x: __m512) -> __m512 {
        _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(x)
    }
    #[inline(always)]
    unsafe fn pow2i(n: __m512) -> __m512 {
        _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127))))
    }
    #[inline(always)]
    unsafe fn recip_est(x: __m512) -> __m512 {
        _mm512_rcp14_ps(x)
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
    const REGISTERS: usize = 16;
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
    unsafe fn store_lane0(p: *mut f32, v: __m256) {
        _mm_store_ss(p, _mm256_castps256_ps128(v))
    }
    const IL: usize = 2;
    #[inline(always)]
    unsafe fn bcast_il(p: *const f32) -> __m256 {
        // vbroadcastsd of the pair p[0], p[1] as one 64-bit value.
        _mm256_castpd_ps(_mm256_set1_pd((p as *const f64).read_unaligned()))
    }
    #[inline(always)]
    unsafe fn bcast_il_part(p: *const f32, _n: usize) -> __m256 {
        // n = 1: the pair (p[0], 0), little-endian.
        _mm256_castpd_ps(_mm256_set1_pd(f64::from_bits((*p).to_bits() as u64)))
    }
    #[inline(always)]
    unsafe fn reduce_il(x: __m256) -> __m256 {
        let x = _mm256_add_ps(x, _mm256_permute_ps::<0b10_11_00_01>(x));
        _mm256_permutevar8x32_ps(x, _mm256_setr_epi32(0, 2, 4, 6, 0, 0, 0, 0))
    }
    #[inline(always)]
    unsafe fn pick_il(x: __m256, q: usize) -> __m256 {
        let q = q as i32;
        _mm256_permutevar8x32_ps(x, _mm256_setr_epi32(q, 2 + q, 4 + q, 6 + q, 0, 0, 0, 0))
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
    #[inline(always)]
    unsafe fn sub(a: __m256, b: __m256) -> __m256 {
        _mm256_sub_ps(a, b)
    }
    #[inline(always)]
    unsafe fn fnmadd(a: __m256, b: __m256, c: __m256) -> __m256 {
        _mm256_fnmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn max(a: __m256, b: __m256) -> __m256 {
        _mm256_max_ps(a, b)
    }
    #[inline(always)]
    unsafe fn min(a: __m256, b: __m256) -> __m256 {
        _mm256_min_ps(a, b)
    }
    /// `vrsqrtps` / `vrcpps`: relative error ≤ 1.5·2^−12.
    const EST_BITS: u32 = 11;
    #[inline(always)]
    unsafe fn rsqrt_est(x: __m256) -> __m256 {
        _mm256_rsqrt_ps(x)
    }
    #[inline(always)]
    unsafe fn sqrt(x: __m256) -> __m256 {
        _mm256_sqrt_ps(x)
    }
    #[inline(always)]
    unsafe fn div(a: __m256, b: __m256) -> __m256 {
        _mm256_div_ps(a, b)
    }
    #[inline(always)]
    unsafe fn round(x: __m256) -> __m256 {
        _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(x)
    }
    #[inline(always)]
    unsafe fn pow2i(n: __m256) -> __m256 {
        _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127))))
    }
    #[inline(always)]
    unsafe fn recip_est(x: __m256) -> __m256 {
        _mm256_rcp_ps(x)
    }
}

// ---------------------------------------------------------------- portable (wide)

#[derive(Clone, Copy)]
pub(crate) struct VWide;

impl Simd for VWide {
    const LANES: usize = 8;
    // An f32x8 is two SSE registers where AVX is not compiled in.
    const REGISTERS: usize = 8;
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
    unsafe fn store_lane0(p: *mut f32, v: wide::f32x8) {
        *p = v.to_array()[0];
    }
    #[inline(always)]
    unsafe fn bcast(p: *const f32) -> wide::f32x8 {
        wide::f32x8::splat(*p)
    }
    /// The portable kernel has no interleaved tail (IL = 1 is plain columns).
    const IL: usize = 1;
    #[inline(always)]
    unsafe fn bcast_il(p: *const f32) -> wide::f32x8 {
        Self::bcast(p)
    }
    #[inline(always)]
    unsafe fn bcast_il_part(p: *const f32, _n: usize) -> wide::f32x8 {
        Self::bcast(p)
    }
    #[inline(always)]
    unsafe fn reduce_il(x: wide::f32x8) -> wide::f32x8 {
        x
    }
    #[inline(always)]
    unsafe fn pick_il(x: wide::f32x8, _q: usize) -> wide::f32x8 {
        x
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
    #[inline(always)]
    unsafe fn sub(a: wide::f32x8, b: wide::f32x8) -> wide::f32x8 {
        a - b
    }
    #[inline(always)]
    unsafe fn fnmadd(a: wide::f32x8, b: wide::f32x8, c: wide::f32x8) -> wide::f32x8 {
        // Fused where the build enables FMA, else a·b rounded, then c − that.
        a.mul_neg_add(b, c)
    }
    #[inline(always)]
    unsafe fn max(a: wide::f32x8, b: wide::f32x8) -> wide::f32x8 {
        a.simd_gt(b).bitselect(a, b)
    }
    #[inline(always)]
    unsafe fn min(a: wide::f32x8, b: wide::f32x8) -> wide::f32x8 {
        a.simd_lt(b).bitselect(a, b)
    }
    /// `wide` uses `rsqrtps` / `rcpps` on x86 (≤ 1.5·2^−12) and exact
    /// operations elsewhere; refined as for the coarser.
    // Correctly rounded square root and division, not the CPU's estimates:
    // without FMA the refinements' residuals are rounded (RMSprop came out
    // 4 ulp from the exact update on Zen 3), and the estimate instructions
    // differ between CPUs; so the optimizer's `sqrt_nonneg` and `div` take
    // the divider here, and the portable path gives the same bits on any
    // x86-64.
    const EST_BITS: u32 = 23;
    #[inline(always)]
    unsafe fn rsqrt_est(x: wide::f32x8) -> wide::f32x8 {
        wide::f32x8::ONE / x.sqrt()
    }
    #[inline(always)]
    unsafe fn recip_est(x: wide::f32x8) -> wide::f32x8 {
        wide::f32x8::ONE / x
    }
    #[inline(always)]
    unsafe fn sqrt(x: wide::f32x8) -> wide::f32x8 {
        x.sqrt()
    }
    #[inline(always)]
    unsafe fn div(a: wide::f32x8, b: wide::f32x8) -> wide::f32x8 {
        a / b
    }
    #[inline(always)]
    unsafe fn round(x: wide::f32x8) -> wide::f32x8 {
        x.round()
    }
    #[inline(always)]
    unsafe fn pow2i(n: wide::f32x8) -> wide::f32x8 {
        // NaN lanes give NaN, as the x86 paths' integer-indefinite does not,
        // but the product with a NaN polynomial is NaN either way.
        wide::f32x8::from(n.to_array().map(|n| f32::from_bits(((n as i32 + 127) << 23) as u32)))
    }
}
