//! Single-precision GEMM: C ← α·A·B + β·C on strided views, with an optional
//! fused epilogue (bias + activation) for the Dense layers.
//!
//! Transposes are strides, not copies: Aᵀ of a row-major `[k, m]` buffer is the
//! view `rows = m, cols = k, rs = 1, cs = m`. With β = 0, C is never read (it
//! may hold NaN).
//!
//! `reference` keeps the plain triple loop; it is the test oracle for every
//! optimized path.
//!
//! The fast path is BLIS-style (see `driver.rs` for the five loops and the
//! block sizes, `kernel.rs` for the register-blocked microkernels, `split.rs`
//! for the output layer's 10-column products) with one microkernel per
//! instruction set: AVX-512F, AVX2+FMA (both `std::arch`,
//! picked at run time) and a portable one on `wide::f32x8`. The choice is
//! detected once and cached; `SIMDNET_ISA=avx512|avx2|portable|reference`
//! forces one.

mod driver;
mod kernel;
mod peak;
pub mod reference;
pub(crate) mod simd;
#[cfg(target_arch = "x86_64")]
mod split;
#[cfg(test)]
mod tests;

pub use driver::{KC, MC, NC, PAR_MIN_FLOPS};
pub use peak::{fma_peak_gflops, fma_peak_gflops_over, fma_peak_gflops_with};

use std::sync::OnceLock;

/// An instruction-set path for [`sgemm_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// AVX-512F microkernels (8 × 32 tiles; 8 × 48 for shallow products
    /// wider than 32 columns, see `driver::runs_shallow`).
    Avx512,
    /// AVX2 + FMA microkernel (6 × 16 tile).
    Avx2,
    /// Portable `wide::f32x8` microkernel (6 × 8 tile).
    Portable,
    /// The plain triple loop (test oracle; slow).
    Reference,
}

impl Isa {
    /// f32 lanes of one vector on this path: its microkernel's `LANES` (1
    /// for the scalar reference; paths this target cannot build report the
    /// portable kernel's).
    pub fn lanes(self) -> usize {
        use kernel::Kernel;
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => kernel::Avx512::LANES,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => kernel::Avx2::LANES,
            Isa::Reference => 1,
            _ => kernel::Portable::LANES,
        }
    }

    /// The share of FMA lanes doing useful work when C has `n` columns and
    /// the product is `k` deep, A read by rows (`a_by_rows`: a row-major A,
    /// as in X·W) or not: the kernels vectorise over C's columns, so a row
    /// of n values takes ceil(n / lanes) vectors (n = 10 on AVX-512 with a
    /// transposed A: one vector, 62.5%), unless
    /// - the last vector has few enough columns for an interleaved tail (see
    ///   `kernel.rs`; k ≥ 16), which costs `lanes / IL` lanes (n = 100 on
    ///   AVX-512: 6 vectors + 4 columns, 100%), or
    /// - n is 9 or 10, A is read by rows and k ≥ 16 on AVX-512: the split
    ///   thin kernel (`split.rs`) spends 10 lanes per k step (n = 10: 100%).
    ///
    /// No tiling of that layout can exceed this fraction of peak.
    pub fn lane_ceiling(self, n: usize, k: usize, a_by_rows: bool) -> f64 {
        use kernel::Kernel;
        // FMA lanes per row and k step.
        fn slots<K: Kernel>(n: usize, k: usize, a_by_rows: bool) -> usize {
            // Earlier NC parts are whole panels; the last decides.
            let last = (n - 1) % driver::NC + 1;
            if driver::runs_split::<K>(last, k, a_by_rows, true) {
                // Half an FMA per k for 8 columns, an eighth for 2.
                return n - last + K::LANES / 2 + K::LANES / 8;
            }
            let w = driver::il_tail_cols::<K>(last, k);
            if w > 0 {
                n - w + K::LANES / K::IL
            } else {
                n.div_ceil(K::LANES) * K::LANES
            }
        }
        let s = match self {
            _ if n == 0 => return 1.0,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 if driver::runs_shallow(n, k, !a_by_rows) => slots::<kernel::Avx512Shallow>(n, k, a_by_rows),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => slots::<kernel::Avx512>(n, k, a_by_rows),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => slots::<kernel::Avx2>(n, k, a_by_rows),
            Isa::Reference => return 1.0,
            _ => slots::<kernel::Portable>(n, k, a_by_rows),
        };
        n as f64 / s as f64
    }

    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Portable => "portable",
            Isa::Reference => "reference",
        }
    }

    /// Parses the names `name()` returns (as used by `SIMDNET_ISA`).
    pub fn from_name(s: &str) -> Option<Isa> {
        match s.trim().to_ascii_lowercase().as_str() {
            "avx512" | "avx512f" => Some(Isa::Avx512),
            "avx2" => Some(Isa::Avx2),
            "portable" | "wide" => Some(Isa::Portable),
            "reference" | "ref" => Some(Isa::Reference),
            _ => None,
        }
    }

    /// Whether this CPU can run the path (detected once, cached).
    pub fn is_available(self) -> bool {
        let (avx512, avx2) = *cpu_features();
        match self {
            Isa::Avx512 => avx512,
            Isa::Avx2 => avx2,
            Isa::Portable | Isa::Reference => true,
        }
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// (avx512f, avx2 + fma), detected once.
fn cpu_features() -> &'static (bool, bool) {
    static FEATURES: OnceLock<(bool, bool)> = OnceLock::new();
    FEATURES.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            let avx512 = avx2 && is_x86_feature_detected!("avx512f");
            (avx512, avx2)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            (false, false)
        }
    })
}

/// Whether this CPU is an AMD Zen 4 (family 19h with AVX-512), whose
/// AVX-512 runs on 256-bit units: at its FMA peak a tile takes half the
/// bytes of B per cycle that full-width 512-bit units (Intel's, Zen 5's)
/// take, which lets the AVX-512 kernels read a row-major B in place (see
/// `Kernel::B_IN_PLACE`) and take deep k blocks (`Kernel::DEEP_KC`).
/// Detected once.
pub(crate) fn half_width_avx512() -> bool {
    static ZEN4: OnceLock<bool> = OnceLock::new();
    *ZEN4.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::__cpuid;
            // SAFETY: every x86-64 CPU has CPUID, and leaves 0 and 1 always
            // exist. (Newer Rust declares `__cpuid` safe, hence the allow.)
            #[allow(unused_unsafe)]
            let (vendor, id) = unsafe { (__cpuid(0), __cpuid(1)) };
            // "Auth" "enti" "cAMD"
            let amd = [vendor.ebx, vendor.edx, vendor.ecx] == [0x6874_7541, 0x6974_6e65, 0x444d_4163];
            let family = ((id.eax >> 8) & 0xf) + ((id.eax >> 20) & 0xff);
            amd && family == 0x19 && cpu_features().0
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// The L2 cache of one core in bytes, as CPUID reports it (leaf
/// 0x8000_0006, which AMD and Intel both fill), or 1 MiB where the CPU
/// does not say. `SIMDNET_L2_KIB` overrides it, for measuring a block size
/// against another cache. Detected once.
pub fn l2_bytes() -> usize {
    static L2: OnceLock<usize> = OnceLock::new();
    *L2.get_or_init(|| {
        let set = std::env::var("SIMDNET_L2_KIB").ok().and_then(|s| s.trim().parse::<usize>().ok());
        set.filter(|&k| (64..=65536).contains(&k)).map_or_else(reported_l2_bytes, |k| k * 1024)
    })
}

fn reported_l2_bytes() -> usize {
    const DEFAULT: usize = 1024 * 1024;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::__cpuid;
        // SAFETY: every x86-64 CPU has CPUID; leaf 0x8000_0006 is read only
        // where leaf 0x8000_0000 says it exists.
        #[allow(unused_unsafe)]
        let max_ext = unsafe { __cpuid(0x8000_0000) }.eax;
        if max_ext < 0x8000_0006 {
            return DEFAULT;
        }
        // SAFETY: as above.
        #[allow(unused_unsafe)]
        let kib = (unsafe { __cpuid(0x8000_0006) }.ecx >> 16) as usize;
        if kib == 0 {
            DEFAULT
        } else {
            kib * 1024
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        DEFAULT
    }
}

/// The optimized paths this CPU can run, fastest first (the reference loop
/// is not listed; it is always available through [`sgemm_with`]).
pub fn available_isas() -> Vec<Isa> {
    [Isa::Avx512, Isa::Avx2, Isa::Portable].into_iter().filter(|i| i.is_available()).collect()
}

/// The path [`sgemm`] uses: `SIMDNET_ISA` if set and available, else the
/// fastest available one. Decided once per process.
pub fn selected_isa() -> Isa {
    static SELECTED: OnceLock<Isa> = OnceLock::new();
    *SELECTED.get_or_init(|| {
        let best = available_isas()[0];
        match std::env::var("SIMDNET_ISA") {
            Ok(s) if !s.trim().is_empty() => match Isa::from_name(&s) {
                Some(isa) if isa.is_available() => isa,
                Some(isa) => {
                    eprintln!("SIMDNET_ISA={s}: {} is not supported by this CPU, using {}", isa.name(), best.name());
                    best
                }
                None => {
                    eprintln!("SIMDNET_ISA={s}: unknown (avx512|avx2|portable|reference), using {}", best.name());
                    best
                }
            },
            _ => best,
        }
    })
}

/// Elementwise activation applied in a GEMM epilogue or a Dense layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Activation {
    /// Identity (the output layer, whose softmax is fused with the loss).
    #[default]
    Linear,
    Relu,
    Sigmoid,
}

impl Activation {
    pub fn name(self) -> &'static str {
        match self {
            Activation::Linear => "linear",
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
        }
    }

    #[inline(always)]
    pub fn apply(self, z: f32) -> f32 {
        match self {
            Activation::Linear => z,
            Activation::Relu => z.max(0.0),
            Activation::Sigmoid => 1.0 / (1.0 + (-z).exp()),
        }
    }

    /// d act / d z expressed through the activation's output y = act(z), so the
    /// backward pass needs only the stored outputs.
    #[inline(always)]
    pub fn derivative_from_output(self, y: f32) -> f32 {
        match self {
            Activation::Linear => 1.0,
            Activation::Relu => {
                if y > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Sigmoid => y * (1.0 - y),
        }
    }

    /// d(act(z)·m)/dz from the masked output `out = act(z)·m`, m ≥ 0
    /// (dropout's mask): m·act'(z), 0 where m = 0. Branch-free, so the
    /// backward loop vectorises.
    #[inline(always)]
    pub fn masked_derivative_from_output(self, out: f32, m: f32) -> f32 {
        match self {
            Activation::Linear => m,
            // out > 0 exactly when z > 0 and m > 0.
            Activation::Relu => {
                if out > 0.0 {
                    m
                } else {
                    0.0
                }
            }
            Activation::Sigmoid => {
                let y = if m > 0.0 { out / m } else { 0.0 };
                m * y * (1.0 - y)
            }
        }
    }
}

/// A read-only strided matrix view: element (i, j) is `data[i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

/// A mutable strided matrix view: element (i, j) is `data[i * rs + j * cs]`.
#[derive(Debug)]
pub struct MatMut<'a> {
    pub data: &'a mut [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

/// Index one past the largest element a `rows × cols` view with strides
/// `(rs, cs)` touches; `None` on overflow. An empty view touches nothing.
fn extent(rows: usize, cols: usize, rs: usize, cs: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return Some(0);
    }
    (rows - 1).checked_mul(rs)?.checked_add((cols - 1).checked_mul(cs)?)?.checked_add(1)
}

impl<'a> MatRef<'a> {
    /// Row-major `[rows, cols]` view of a contiguous buffer.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::strided(data, rows, cols, cols, 1)
    }
    /// Strided view; panics if the view does not fit in `data`.
    pub fn strided(data: &'a [f32], rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        let m = MatRef { data, rows, cols, rs, cs };
        assert!(m.fits(), "MatRef {rows}x{cols} (rs {rs}, cs {cs}) exceeds buffer of {}", data.len());
        m
    }
    /// The transpose, as a view of the same memory.
    pub fn t(self) -> Self {
        MatRef { data: self.data, rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs }
    }
    pub fn fits(&self) -> bool {
        extent(self.rows, self.cols, self.rs, self.cs).is_some_and(|e| e <= self.data.len())
    }
    #[inline(always)]
    pub fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.rs + j * self.cs]
    }
}

impl<'a> MatMut<'a> {
    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self::strided(data, rows, cols, cols, 1)
    }
    pub fn strided(data: &'a mut [f32], rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        let len = data.len();
        let m = MatMut { data, rows, cols, rs, cs };
        assert!(m.fits(), "MatMut {rows}x{cols} (rs {rs}, cs {cs}) exceeds buffer of {len}");
        m
    }
    pub fn fits(&self) -> bool {
        extent(self.rows, self.cols, self.rs, self.cs).is_some_and(|e| e <= self.data.len())
    }
    #[inline(always)]
    pub fn at_mut(&mut self, i: usize, j: usize) -> &mut f32 {
        &mut self.data[i * self.rs + j * self.cs]
    }
}

/// What runs after the last K block, on each register tile before it is
/// stored (sigmoid and its mask: on the tile just stored, still in L1):
/// `C[i, j] = act(C[i, j] + bias[j]) · mask[i, j]`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    /// One value per column of C, or none.
    pub bias: Option<&'a [f32]>,
    pub act: Activation,
    /// A factor per element of C, applied after the activation, or none:
    /// dropout's mask (0 or 1/(1 − rate)), so the dropped activations are
    /// written once and the undropped ones never. Same shape as C, unit
    /// column stride.
    pub mask: Option<MatRef<'a>>,
}

fn check_shapes(a: &MatRef, b: &MatRef, c: &MatMut, epi: &Epilogue) {
    assert_eq!(a.cols, b.rows, "sgemm: A is {}x{} but B is {}x{}", a.rows, a.cols, b.rows, b.cols);
    assert_eq!(c.rows, a.rows, "sgemm: C has {} rows, A has {}", c.rows, a.rows);
    assert_eq!(c.cols, b.cols, "sgemm: C has {} cols, B has {}", c.cols, b.cols);
    assert!(a.fits() && b.fits() && c.fits(), "sgemm: a view exceeds its buffer");
    if let Some(bias) = epi.bias {
        assert_eq!(bias.len(), c.cols, "sgemm: bias has {} values, C has {} cols", bias.len(), c.cols);
    }
    if let Some(mask) = epi.mask {
        assert!(
            mask.rows == c.rows && mask.cols == c.cols,
            "sgemm: mask is {}x{}, C is {}x{}",
            mask.rows,
            mask.cols,
            c.rows,
            c.cols
        );
        assert!(mask.cs == 1 || mask.cols <= 1, "sgemm: the mask needs a unit column stride");
        assert!(mask.fits(), "sgemm: the mask exceeds its buffer");
    }
}

/// C ← act(α·A·B + β·C + bias) · mask. Shapes and bounds are checked (panics on a
/// mismatch, which is a programming error, never an input error).
/// Uses [`selected_isa`]; parallel over the current rayon pool above
/// [`PAR_MIN_FLOPS`], with results bit-identical for any thread count.
pub fn sgemm(alpha: f32, a: MatRef, b: MatRef, beta: f32, c: MatMut, epi: Epilogue) {
    sgemm_with(selected_isa(), alpha, a, b, beta, c, epi);
}

/// [`sgemm`] on an explicit instruction-set path.
///
/// # Panics
/// On a shape mismatch, a view exceeding its buffer, or an ISA this CPU
/// does not support.
pub fn sgemm_with(isa: Isa, alpha: f32, a: MatRef, b: MatRef, beta: f32, mut c: MatMut, epi: Epilogue) {
    check_shapes(&a, &b, &c, &epi);
    assert!(isa.is_available(), "sgemm: ISA {} is not supported by this CPU", isa.name());
    match isa {
        // Shallow products wider than 32 columns (the first layer's weight
        // gradient, k = batch) take 8 × 48 tiles.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if driver::runs_shallow(b.cols, a.cols, a.rs == 1 && a.cs != 1) => {
            driver::gemm::<kernel::Avx512Shallow>(alpha, &a, &b, beta, &mut c, &epi)
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => driver::gemm::<kernel::Avx512>(alpha, &a, &b, beta, &mut c, &epi),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => driver::gemm::<kernel::Avx2>(alpha, &a, &b, beta, &mut c, &epi),
        Isa::Portable => driver::gemm::<kernel::Portable>(alpha, &a, &b, beta, &mut c, &epi),
        Isa::Reference => reference::sgemm(alpha, a, b, beta, c, epi),
        #[allow(unreachable_patterns)]
        _ => unreachable!("unavailable ISA"),
    }
}
