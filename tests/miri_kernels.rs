//! Small kernel checks sized for Miri (`MIRIFLAGS="-Zmiri-tree-borrows -Zmiri-ignore-leaks"
//! cargo +nightly miri test --test miri_kernels`, see docs/safety.md):
//! the GEMM on strided and transposed views, the `wide` pixel scaling with its
//! scalar tail, and one training step through every layer kernel. They also run
//! (in milliseconds) in the normal test suite.
use simdnet::batch::scale_pixels;
use simdnet::gemm::{self, Activation, Epilogue, MatMut, MatRef};
use simdnet::model::{Model, ModelSpec, Workspace};
use simdnet::optim::{Optimizer, OptimizerKind};

#[test]
fn sgemm_small_strided() {
    for (m, n, k) in [(1, 1, 1), (3, 5, 2), (9, 7, 4), (0, 3, 2), (2, 0, 3), (4, 3, 0)] {
        // A is stored transposed ([k, m] row-major, viewed as its transpose);
        // B column-major with a padded leading dimension of 2k (packed four
        // columns at a time through the 4 × 4 register transpose: 9×7×4 has
        // one whole block and three columns left).
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 1.0).collect();
        let b: Vec<f32> = (0..k * n * 2).map(|i| 1.0 - i as f32 * 0.25).collect();
        let bias: Vec<f32> = (0..n).map(|j| j as f32).collect();
        let mut c = vec![f32::NAN; m * n];
        let mut r = vec![f32::NAN; m * n];
        let av = MatRef::row_major(&a, k, m).t();
        let bv = MatRef::strided(&b, k, n, 1, 2 * k);
        let epi = Epilogue { bias: Some(&bias), act: Activation::Relu, mask: None };
        gemm::sgemm(1.0, av, bv, 0.0, MatMut::row_major(&mut c, m, n), epi);
        gemm::reference::sgemm(1.0, av, bv, 0.0, MatMut::row_major(&mut r, m, n), epi);
        assert_eq!(c, r);
        // By hand, element by element.
        for i in 0..m {
            for j in 0..n {
                let dot: f32 = (0..k).map(|p| a[p * m + i] * b[p + j * 2 * k]).sum();
                assert!((c[i * n + j] - (dot + bias[j]).max(0.0)).abs() <= 1e-4, "{m}x{n}x{k} at ({i}, {j})");
            }
        }
    }
}

#[test]
fn sgemm_packs_row_major_a() {
    // A wide C with a row-major A whose row stride is 4 KiB: the driver packs
    // A, four rows at a time through the 4 × 4 register transpose (k = 9: two
    // whole blocks and a scalar tail; m = 6: one group of four, two rows left).
    let (m, n, k) = (6, 130, 9);
    let a: Vec<f32> = (0..m * 1024).map(|i| (i % 13) as f32 * 0.5 - 3.0).collect();
    let b: Vec<f32> = (0..k * n).map(|i| 1.0 - (i % 7) as f32 * 0.25).collect();
    let mut c = vec![f32::NAN; m * n];
    let mut r = vec![f32::NAN; m * n];
    let av = MatRef::strided(&a, m, k, 1024, 1);
    let bv = MatRef::row_major(&b, k, n);
    gemm::sgemm(1.0, av, bv, 0.0, MatMut::row_major(&mut c, m, n), Epilogue::default());
    gemm::reference::sgemm(1.0, av, bv, 0.0, MatMut::row_major(&mut r, m, n), Epilogue::default());
    // Small integers and quarters: every sum is exact in f32.
    assert_eq!(c, r);
}

#[test]
fn sgemm_dropout_mask_and_sigmoid() {
    // The mask (row stride n + 1) multiplies after ReLU in registers, and
    // after the sigmoid in its vectorised pass over the stored tile.
    for (m, n, k) in [(1, 1, 1), (3, 5, 2), (9, 17, 3)] {
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.25 - 1.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| 0.5 - i as f32 * 0.125).collect();
        let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.1).collect();
        let mask: Vec<f32> = (0..m * (n + 1)).map(|i| if i % 3 == 0 { 0.0 } else { 1.5 }).collect();
        for act in [Activation::Relu, Activation::Sigmoid] {
            let epi = Epilogue { bias: Some(&bias), act, mask: Some(MatRef::strided(&mask, m, n, n + 1, 1)) };
            let (av, bv) = (MatRef::row_major(&a, m, k), MatRef::row_major(&b, k, n));
            let mut c = vec![f32::NAN; m * n];
            let mut r = vec![f32::NAN; m * n];
            gemm::sgemm(1.0, av, bv, 0.0, MatMut::row_major(&mut c, m, n), epi);
            gemm::reference::sgemm(1.0, av, bv, 0.0, MatMut::row_major(&mut r, m, n), epi);
            for (x, y) in c.iter().zip(&r) {
                assert!((x - y).abs() <= 1e-5, "{m}x{n}x{k} {act:?}: {x} vs {y}");
            }
        }
    }
}

#[test]
fn scale_pixels_all_lengths() {
    for len in 0..20 {
        let p: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
        let mut out = vec![0.0; len];
        scale_pixels(&mut out, &p);
        for (o, &p) in out.iter().zip(&p) {
            assert!((o - p as f32 / 255.0).abs() < 1e-7);
        }
    }
}

#[test]
fn train_step_tiny() {
    let spec = ModelSpec::mlp((3, 3), &[4], Activation::Relu, 3, 0.25).unwrap();
    let mut model = Model::new(spec.clone(), 1);
    let mut opt = Optimizer::new(OptimizerKind::adam(), 0.01, spec.param_count());
    let mut ws = Workspace::new(&spec, 5, 1);
    let x: Vec<f32> = (0..5 * 9).map(|i| (i % 7) as f32 / 7.0).collect();
    let y = [0u32, 1, 2, 1, 0];
    let before = model.params.clone();
    let (l0, _) = model.train_step(&mut opt, &mut ws, &x, &y);
    assert!(l0.is_finite());
    assert!(model.params.iter().zip(&before).any(|(a, b)| a != b), "the step changed nothing");
}
