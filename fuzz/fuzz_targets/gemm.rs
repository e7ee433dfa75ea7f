//! Differential SGEMM: `gemm::sgemm` (whatever path this machine selects)
//! against `gemm::reference::sgemm`, on shapes up to 40 and arbitrary strides
//! decoded from the input, with and without the fused epilogue.
//!
//! Input layout: m, n, k (each byte % 41), a layout byte per matrix, α/β/
//! epilogue selectors, then the values (each byte as i8 / 16, cycled).
#![no_main]

use libfuzzer_sys::fuzz_target;
use simdnet::gemm::{self, reference, Activation, Epilogue, MatMut, MatRef};

const MAX_DIM: usize = 40;

/// Reads bytes off the front; zeros once the input runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
}

/// Strides `(rs, cs)` for a `rows × cols` view and the buffer length it needs.
/// `aliasing_ok`: A and B may use any strides (0 included, elements shared);
/// C only layouts where each element has its own slot.
fn layout(sel: u8, pad: u8, rows: usize, cols: usize, aliasing_ok: bool) -> (usize, usize) {
    let small = (pad % 8) as usize;
    match sel % if aliasing_ok { 5 } else { 4 } {
        0 => (cols, 1),                                    // row-major
        1 => (1, rows),                                    // column-major (a transpose)
        2 => (cols + small, 1),                            // row-major, padded leading dimension
        3 => (1, rows + small),                            // column-major, padded leading dimension
        _ => (pad as usize % 50, (sel / 5) as usize % 50), // anything, 0 included
    }
}

fn extent(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let m = b.byte() as usize % (MAX_DIM + 1);
    let n = b.byte() as usize % (MAX_DIM + 1);
    let k = b.byte() as usize % (MAX_DIM + 1);
    let (sa, pa, sb, pb, sc, pc) = (b.byte(), b.byte(), b.byte(), b.byte(), b.byte(), b.byte());
    let flags = b.byte();
    let alpha = [1.0f32, 0.0, -1.0, 0.5, 2.0, -0.25, 3.0, 1.5][(flags & 7) as usize];
    let beta = [0.0f32, 1.0, -1.0, 0.5][((flags >> 3) & 3) as usize];
    // The fourth choice is ReLU with a dropout mask in the epilogue.
    let act_choice = ((flags >> 5) & 3) as usize;
    let act = [Activation::Linear, Activation::Relu, Activation::Sigmoid, Activation::Relu][act_choice];
    let with_mask = act_choice == 3;
    let with_bias = flags & 0x80 != 0;

    let (ars, acs) = layout(sa, pa, m, k, true);
    let (brs, bcs) = layout(sb, pb, k, n, true);
    // C uses a column-major-with-padding layout at most; aliasing C would make
    // the result depend on write order.
    let (crs, ccs) = layout(sc, pc, m, n, false);
    let (ca, cb, cc) = (extent(m, k, ars, acs), extent(k, n, brs, bcs), extent(m, n, crs, ccs));

    let values: Vec<f32> = b.0.iter().map(|&v| (v as i8) as f32 / 16.0).collect();
    let value =
        |i: usize| if values.is_empty() { ((i * 7919) % 17) as f32 / 8.0 - 1.0 } else { values[i % values.len()] };
    let a: Vec<f32> = (0..ca).map(value).collect();
    let bm: Vec<f32> = (0..cb).map(|i| value(i + ca)).collect();
    let bias: Vec<f32> = (0..n).map(|i| value(i + ca + cb)).collect();
    // With β = 0, C must never be read: prefill it with NaN.
    let c0: Vec<f32> = (0..cc).map(|i| if beta == 0.0 { f32::NAN } else { value(i + ca + cb + n) }).collect();

    let av = MatRef::strided(&a, m, k, ars, acs);
    let bv = MatRef::strided(&bm, k, n, brs, bcs);
    // Dropout's mask (0 or 1/(1 − 0.5)), row-major m × n.
    let mask: Vec<f32> = (0..m * n).map(|i| if value(i + 3 * ca) > 0.0 { 2.0 } else { 0.0 }).collect();
    let epi = Epilogue {
        bias: with_bias.then_some(&bias[..]),
        act,
        mask: with_mask.then(|| MatRef::row_major(&mask, m, n)),
    };
    let mut c_fast = c0.clone();
    let mut c_ref = c0.clone();
    gemm::sgemm(alpha, av, bv, beta, MatMut::strided(&mut c_fast, m, n, crs, ccs), epi);
    reference::sgemm(alpha, av, bv, beta, MatMut::strided(&mut c_ref, m, n, crs, ccs), epi);

    // Tolerance: the fast path may sum in another order (and with FMA); its
    // error is bounded by k·ε·Σ|a·b|, scaled by |α|, plus rounding of the β·C
    // and bias terms. Every activation here is 1-Lipschitz.
    let mut touched = vec![false; cc];
    for i in 0..m {
        for j in 0..n {
            let idx = i * crs + j * ccs;
            touched[idx] = true;
            let scale: f32 = (0..k).map(|p| (av.at(i, p) * bv.at(p, j)).abs()).sum::<f32>() * alpha.abs()
                + if beta == 0.0 { 0.0 } else { (beta * c0[idx]).abs() }
                + bias.get(j).filter(|_| with_bias).map_or(0.0, |b| b.abs());
            let tol = 1e-5 * (k as f32 + 2.0) * scale * if with_mask { 2.0 } else { 1.0 } + 1e-6;
            let (x, y) = (c_fast[idx], c_ref[idx]);
            assert!(x.is_finite(), "C[{i},{j}] = {x} (reference {y}); m={m} n={n} k={k}");
            assert!((x - y).abs() <= tol, "C[{i},{j}] = {x}, reference {y} (tol {tol}); m={m} n={n} k={k}");
        }
    }
    // Elements of C's buffer outside the view are left alone.
    for (idx, t) in touched.iter().enumerate() {
        if !t {
            assert_eq!(c_fast[idx].to_bits(), c0[idx].to_bits(), "sgemm wrote outside C at {idx}");
        }
    }
});
