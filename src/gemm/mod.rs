//! Single-precision GEMM: C ← α·A·B + β·C on strided views, with an optional
//! fused epilogue (bias + activation) for the Dense layers.
//!
//! Interim interface (reference path only) while the SIMD engine lands.

pub mod reference;

use std::time::Duration;

/// A GEMM implementation path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// AVX-512F microkernel.
    Avx512,
    /// AVX2 + FMA microkernel.
    Avx2,
    /// Portable `wide::f32x8` microkernel.
    Portable,
    /// The plain triple loop (test oracle; slow).
    Reference,
}

impl Isa {
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Portable => "portable",
            Isa::Reference => "reference",
        }
    }
}

/// Paths usable on this machine.
pub fn available_isas() -> Vec<Isa> {
    vec![Isa::Reference]
}

/// The path `sgemm` uses.
pub fn selected_isa() -> Isa {
    Isa::Reference
}

/// This core's FP32 FMA peak in GFLOP/s (interim estimate).
pub fn fma_peak_gflops(_duration: Duration) -> f64 {
    114.5
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

/// What runs after the last K block, in registers: `C = act(C + bias[j])`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    /// One value per column of C, or none.
    pub bias: Option<&'a [f32]>,
    pub act: Activation,
}

fn check_shapes(a: &MatRef, b: &MatRef, c: &MatMut, epi: &Epilogue) {
    assert_eq!(a.cols, b.rows, "sgemm: A is {}x{} but B is {}x{}", a.rows, a.cols, b.rows, b.cols);
    assert_eq!(c.rows, a.rows, "sgemm: C has {} rows, A has {}", c.rows, a.rows);
    assert_eq!(c.cols, b.cols, "sgemm: C has {} cols, B has {}", c.cols, b.cols);
    assert!(a.fits() && b.fits() && c.fits(), "sgemm: a view exceeds its buffer");
    if let Some(bias) = epi.bias {
        assert_eq!(bias.len(), c.cols, "sgemm: bias has {} values, C has {} cols", bias.len(), c.cols);
    }
}

/// C ← act(α·A·B + β·C + bias). Shapes and bounds are checked (panics on a
/// mismatch, which is a programming error, never an input error).
pub fn sgemm(alpha: f32, a: MatRef, b: MatRef, beta: f32, c: MatMut, epi: Epilogue) {
    sgemm_with(selected_isa(), alpha, a, b, beta, c, epi)
}

/// [`sgemm`] on an explicit path.
pub fn sgemm_with(_isa: Isa, alpha: f32, a: MatRef, b: MatRef, beta: f32, c: MatMut, epi: Epilogue) {
    check_shapes(&a, &b, &c, &epi);
    reference::sgemm(alpha, a, b, beta, c, epi);
}
