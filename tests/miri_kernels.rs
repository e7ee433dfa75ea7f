//! Small kernel checks sized for Miri (`cargo +nightly miri test --test miri_kernels`):
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
        // B column-major with a padded leading dimension of 2k.
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
    let spec =
        ModelSpec { input_shape: (3, 3), hidden: vec![4], activation: Activation::Relu, classes: 3, dropout: 0.25 };
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
