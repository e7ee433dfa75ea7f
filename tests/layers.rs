//! Conv2D, MaxPooling2D and standalone Dropout: each fast path against its
//! plain reference (odd sizes, both paddings, channel counts 1, 3, 5, 32,
//! every GEMM path this CPU has, NaN-prefilled outputs), and every backward
//! pass against finite differences, layer by layer and through whole CNNs.

use simdnet::arch::{self, Padding};
use simdnet::gemm::{self, Activation, Isa};
use simdnet::loss::softmax_cross_entropy;
use simdnet::model::{Model, ModelSpec, Workspace};
use simdnet::nn::conv2d::{self, ConvGeometry};
use simdnet::nn::conv_direct::DzSource;
use simdnet::nn::maxpool::{self, PoolGeometry};

fn rand_vec(rng: &mut fastrand::Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| (rng.f32() * 2.0 - 1.0) * scale).collect()
}

fn isas() -> Vec<Isa> {
    let mut v = gemm::available_isas();
    v.push(Isa::Reference);
    v
}

fn assert_near(what: &str, fast: &[f32], reference: &[f32]) {
    assert_eq!(fast.len(), reference.len(), "{what}: lengths");
    for (i, (&f, &r)) in fast.iter().zip(reference).enumerate() {
        let tol = 1e-4 * (1.0 + r.abs());
        assert!((f - r).abs() <= tol, "{what}[{i}]: fast {f}, reference {r}");
    }
}

/// A conv's random inputs, drawn in this order: x `[batch, h, w, cin]`,
/// kernel `[k, k, cin, cout]`, bias `[cout]`.
fn conv_inputs(rng: &mut fastrand::Rng, g: &ConvGeometry, batch: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let x = rand_vec(rng, batch * g.in_len(), 1.0);
    let kernel = rand_vec(rng, g.patch_len() * g.cout, 0.5);
    let bias = rand_vec(rng, g.cout, 0.5);
    (x, kernel, bias)
}

/// The reference backward pass from dLoss/dout `dout`: (dz, dkernel, dbias,
/// dx), each written over NaN.
fn reference_grads(
    dout: &[f32],
    out: &[f32],
    x: &[f32],
    kernel: &[f32],
    g: &ConvGeometry,
    batch: usize,
    act: Activation,
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut dz = dout.to_vec();
    let (mut dk, mut db, mut dx) = (vec![f32::NAN; kernel.len()], vec![f32::NAN; g.cout], vec![f32::NAN; x.len()]);
    conv2d::reference::conv2d_backward(Some(&mut dx), &mut dk, &mut db, &mut dz, out, x, kernel, g, batch, act);
    (dz, dk, db, dx)
}

/// (h, w, cin, k, cout, padding): odd sizes, every kernel size, channel
/// counts 1, 3, 5 and 32, outputs both narrower and wider than a vector.
const CONV_CASES: &[(usize, usize, usize, usize, usize, Padding)] = &[
    (5, 7, 1, 3, 32, Padding::Same),
    (5, 7, 1, 3, 32, Padding::Valid),
    (6, 5, 3, 1, 5, Padding::Same),
    (9, 8, 5, 5, 3, Padding::Same),
    (9, 8, 5, 5, 3, Padding::Valid),
    (7, 7, 32, 3, 17, Padding::Same),
    (4, 11, 3, 7, 2, Padding::Same),
    (7, 9, 1, 7, 1, Padding::Valid),
    (3, 3, 32, 3, 64, Padding::Valid),
    // The direct path (patch k·k·cin ≤ 32): output channels over several
    // vector blocks with a partial last vector, a 1×1 of 32 channels, the
    // book's first layer.
    (11, 13, 2, 3, 70, Padding::Same),
    (6, 9, 32, 1, 20, Padding::Valid),
    (28, 28, 1, 3, 32, Padding::Same),
];

#[test]
fn conv2d_matches_its_reference_on_every_path() {
    for &(h, w, cin, k, cout, padding) in CONV_CASES {
        let g = ConvGeometry::new((h, w, cin), k, cout, padding).unwrap();
        for batch in [1, 3] {
            for act in [Activation::Linear, Activation::Relu, Activation::Sigmoid] {
                let mut rng = fastrand::Rng::with_seed((h * 31 + cin * 7 + k) as u64);
                let (x, kernel, bias) = conv_inputs(&mut rng, &g, batch);
                let r = rand_vec(&mut rng, batch * g.out_len(), 1.0);
                let mut want = vec![f32::NAN; batch * g.out_len()];
                conv2d::reference::conv2d_forward(&mut want, &x, &kernel, &bias, &g, batch, act);
                let (want_dz, want_dk, want_db, want_dx) = reference_grads(&r, &want, &x, &kernel, &g, batch, act);
                for isa in isas() {
                    let what =
                        format!("{h}x{w}x{cin} k{k} {cout} {padding:?} batch {batch} {} {}", act.name(), isa.name());
                    let mut out = vec![f32::NAN; batch * g.out_len()];
                    let mut col = vec![f32::NAN; g.scratch_floats(batch)];
                    conv2d::conv2d_forward_with(isa, &mut out, &mut col, &x, &kernel, &bias, &g, batch, act);
                    assert_near(&format!("{what}: forward"), &out, &want);
                    let mut dz = r.clone();
                    let (mut dk, mut db, mut dx) =
                        (vec![f32::NAN; kernel.len()], vec![f32::NAN; cout], vec![f32::NAN; x.len()]);
                    conv2d::conv2d_backward_from(
                        isa,
                        Some(&mut dx),
                        &mut dk,
                        &mut db,
                        &mut dz,
                        DzSource::InPlace { out: &out, act },
                        &x,
                        &mut col,
                        &kernel,
                        &g,
                        batch,
                    );
                    assert_near(&format!("{what}: dz"), &dz, &want_dz);
                    assert_near(&format!("{what}: dkernel"), &dk, &want_dk);
                    assert_near(&format!("{what}: dbias"), &db, &want_db);
                    assert_near(&format!("{what}: dx"), &dx, &want_dx);
                    // Without dx (a first layer) the weight gradients are the same.
                    let (mut dz, mut dk2, mut db2) = (r.clone(), vec![f32::NAN; kernel.len()], vec![f32::NAN; cout]);
                    conv2d::conv2d_forward_with(isa, &mut out, &mut col, &x, &kernel, &bias, &g, batch, act);
                    let source = DzSource::InPlace { out: &out, act };
                    conv2d::conv2d_backward_from(
                        isa, None, &mut dk2, &mut db2, &mut dz, source, &x, &mut col, &kernel, &g, batch,
                    );
                    assert_eq!((&dk2, &db2), (&dk, &db), "{what}: the weight gradients without dx");
                }
            }
        }
    }
}

/// The pool's backward pass run inside the conv's, image by image: the
/// gradients of the pool's reference backward followed by the conv's
/// reference backward, on the direct path (a first layer: no dx) and the
/// im2col path (with dx), every ISA, NaN-prefilled outputs, pools that drop
/// an edge row or column.
#[test]
fn conv2d_through_pool_matches_the_pool_then_the_conv() {
    let cases = [(9, 7, 1, 3, 19, false), (7, 9, 5, 3, 11, true), (8, 6, 32, 3, 64, true), (5, 5, 1, 3, 32, false)];
    for (h, w, cin, k, cout, with_dx) in cases {
        let g = ConvGeometry::new((h, w, cin), k, cout, Padding::Same).unwrap();
        let pool = PoolGeometry::new((g.oh, g.ow, cout), 2).unwrap();
        let batch = 3;
        for act in [Activation::Relu, Activation::Sigmoid] {
            let mut rng = fastrand::Rng::with_seed((h * 13 + cin) as u64);
            let (x, kernel, bias) = conv_inputs(&mut rng, &g, batch);
            let pool_dout = rand_vec(&mut rng, batch * pool.out_len(), 1.0);
            let mut out = vec![f32::NAN; batch * g.out_len()];
            conv2d::reference::conv2d_forward(&mut out, &x, &kernel, &bias, &g, batch, act);
            let (mut pooled, mut argmax) = (vec![f32::NAN; batch * pool.out_len()], vec![0u32; batch * pool.out_len()]);
            maxpool::reference::maxpool_forward(&mut pooled, &mut argmax, &out, &pool, batch);
            let mut dout = vec![f32::NAN; out.len()];
            maxpool::reference::maxpool_backward(&mut dout, &pool_dout, &argmax, &pool, batch);
            let (want_dz, want_dk, want_db, want_dx) = reference_grads(&dout, &out, &x, &kernel, &g, batch, act);
            for isa in isas() {
                let what = format!("{h}x{w}x{cin} k{k} {cout} {} {}", act.name(), isa.name());
                // The forward pass leaves the direct path's padded input in col.
                let mut col = vec![f32::NAN; g.scratch_floats(batch)];
                let mut fast_out = vec![f32::NAN; out.len()];
                conv2d::conv2d_forward_with(isa, &mut fast_out, &mut col, &x, &kernel, &bias, &g, batch, act);
                let mut dz = vec![f32::NAN; out.len()];
                let (mut dk, mut db, mut dx) =
                    (vec![f32::NAN; kernel.len()], vec![f32::NAN; cout], vec![f32::NAN; x.len()]);
                let source =
                    DzSource::ThroughPool { pool_dout: &pool_dout, pool_out: &pooled, conv_out: &out, pool, act };
                conv2d::conv2d_backward_from(
                    isa,
                    with_dx.then_some(&mut dx[..]),
                    &mut dk,
                    &mut db,
                    &mut dz,
                    source,
                    &x,
                    &mut col,
                    &kernel,
                    &g,
                    batch,
                );
                if with_dx {
                    assert_near(&format!("{what}: dz"), &dz, &want_dz);
                    assert_near(&format!("{what}: dx"), &dx, &want_dx);
                }
                assert_near(&format!("{what}: dkernel"), &dk, &want_dk);
                assert_near(&format!("{what}: dbias"), &db, &want_db);
            }
        }
    }
}

/// A batch of several dW groups (8 images each, the last one short) on the
/// im2col path: the reference's gradients, and the same bits from pools of
/// 1, 2 and 3 threads (whose runs of images differ).
#[test]
fn conv2d_im2col_batches_sum_the_same_on_any_thread_count() {
    let g = ConvGeometry::new((6, 5, 3), 3, 7, Padding::Same).unwrap();
    let batch = 19;
    let mut rng = fastrand::Rng::with_seed(5);
    let (x, kernel, bias) = conv_inputs(&mut rng, &g, batch);
    let r = rand_vec(&mut rng, batch * g.out_len(), 1.0);
    let act = Activation::Relu;
    let mut want = vec![f32::NAN; batch * g.out_len()];
    conv2d::reference::conv2d_forward(&mut want, &x, &kernel, &bias, &g, batch, act);
    let (_, want_dk, want_db, want_dx) = reference_grads(&r, &want, &x, &kernel, &g, batch, act);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut out = vec![f32::NAN; batch * g.out_len()];
            let mut col = vec![f32::NAN; g.scratch_floats(batch)];
            conv2d::conv2d_forward(&mut out, &mut col, &x, &kernel, &bias, &g, batch, act);
            let (mut dz, mut dk, mut db, mut dx) =
                (r.clone(), vec![f32::NAN; kernel.len()], vec![f32::NAN; g.cout], vec![f32::NAN; x.len()]);
            conv2d::conv2d_backward(
                Some(&mut dx),
                &mut dk,
                &mut db,
                &mut dz,
                &out,
                &x,
                &mut col,
                &kernel,
                &g,
                batch,
                act,
            );
            (out, dk, db, dx)
        })
    };
    let one = run(1);
    assert_near("forward", &one.0, &want);
    assert_near("dkernel", &one.1, &want_dk);
    assert_near("dbias", &one.2, &want_db);
    assert_near("dx", &one.3, &want_dx);
    for threads in [2, 3] {
        assert!(run(threads) == one, "{threads} threads differ from one");
    }
}

/// Σ r ⊙ conv(x) from the f64 reference forward.
fn conv_objective(
    x: &[f32],
    kernel: &[f32],
    bias: &[f32],
    r: &[f32],
    g: &ConvGeometry,
    batch: usize,
    act: Activation,
) -> f64 {
    let mut out = vec![0.0; batch * g.out_len()];
    conv2d::reference::conv2d_forward(&mut out, x, kernel, bias, g, batch, act);
    out.iter().zip(r).map(|(&o, &r)| o as f64 * r as f64).sum()
}

/// Checks `analytic[i]` against central differences `fd(i, eps)` for each
/// index, and returns how many were checked. Max pooling (and relu) have
/// kinks: where the estimates at two step sizes disagree, a window's maximum
/// changed hands inside the step and the point is skipped; elsewhere both
/// are smooth estimates and the gradient must match them.
fn fd_checked(
    what: &str,
    indices: impl Iterator<Item = usize>,
    analytic: &[f32],
    mut fd: impl FnMut(usize, f32) -> f64,
) -> usize {
    let mut checked = 0;
    for i in indices {
        let (coarse, fine) = (fd(i, 1e-3), fd(i, 2.5e-4));
        if (coarse - fine).abs() > 1e-3 + 1e-2 * fine.abs() {
            continue;
        }
        assert_fd(&format!("{what}[{i}]"), analytic[i], fine);
        checked += 1;
    }
    checked
}

fn assert_fd(what: &str, analytic: f32, numeric: f64) {
    let tol = 2e-3 + 2e-2 * numeric.abs();
    assert!(
        (analytic as f64 - numeric).abs() <= tol,
        "{what}: backward gives {analytic}, finite differences {numeric}"
    );
}

#[test]
fn conv2d_backward_matches_finite_differences() {
    // Linear and sigmoid are smooth; relu's kink is covered by the reference comparison above.
    for &(h, w, cin, k, cout, padding) in CONV_CASES {
        for act in [Activation::Linear, Activation::Sigmoid] {
            let g = ConvGeometry::new((h, w, cin), k, cout, padding).unwrap();
            let batch = 2;
            let mut rng = fastrand::Rng::with_seed(11 + k as u64);
            let mut x = rand_vec(&mut rng, batch * g.in_len(), 1.0);
            let mut kernel = rand_vec(&mut rng, g.patch_len() * cout, 0.3);
            let mut bias = rand_vec(&mut rng, cout, 0.3);
            let r = rand_vec(&mut rng, batch * g.out_len(), 1.0);
            let mut out = vec![0.0; batch * g.out_len()];
            let mut col = vec![0.0; g.scratch_floats(batch)];
            conv2d::conv2d_forward(&mut out, &mut col, &x, &kernel, &bias, &g, batch, act);
            let (mut dk, mut db, mut dx, mut dz) =
                (vec![f32::NAN; kernel.len()], vec![f32::NAN; cout], vec![f32::NAN; x.len()], r.clone());
            conv2d::conv2d_backward(
                Some(&mut dx),
                &mut dk,
                &mut db,
                &mut dz,
                &out,
                &x,
                &mut col,
                &kernel,
                &g,
                batch,
                act,
            );
            let eps = 1e-2f32;
            let what = format!("{h}x{w}x{cin} k{k} {cout} {padding:?} {}", act.name());
            let step = |n: usize| (n / 23).max(1);
            for i in (0..x.len()).step_by(step(x.len())) {
                let x0 = x[i];
                x[i] = x0 + eps;
                let up = conv_objective(&x, &kernel, &bias, &r, &g, batch, act);
                x[i] = x0 - eps;
                let down = conv_objective(&x, &kernel, &bias, &r, &g, batch, act);
                x[i] = x0;
                assert_fd(&format!("{what} dx[{i}]"), dx[i], (up - down) / (2.0 * eps as f64));
            }
            for i in (0..kernel.len()).step_by(step(kernel.len())) {
                let k0 = kernel[i];
                kernel[i] = k0 + eps;
                let up = conv_objective(&x, &kernel, &bias, &r, &g, batch, act);
                kernel[i] = k0 - eps;
                let down = conv_objective(&x, &kernel, &bias, &r, &g, batch, act);
                kernel[i] = k0;
                assert_fd(&format!("{what} dkernel[{i}]"), dk[i], (up - down) / (2.0 * eps as f64));
            }
            for i in 0..cout {
                let b0 = bias[i];
                bias[i] = b0 + eps;
                let up = conv_objective(&x, &kernel, &bias, &r, &g, batch, act);
                bias[i] = b0 - eps;
                let down = conv_objective(&x, &kernel, &bias, &r, &g, batch, act);
                bias[i] = b0;
                assert_fd(&format!("{what} dbias[{i}]"), db[i], (up - down) / (2.0 * eps as f64));
            }
        }
    }
}

#[test]
fn im2col_and_col2im_are_adjoint() {
    // <im2col(x), c> = <x, col2im(c)> for any x and c: col2im is im2col's transpose.
    for &(h, w, cin, k, cout, padding) in CONV_CASES {
        let g = ConvGeometry::new((h, w, cin), k, cout, padding).unwrap();
        let mut rng = fastrand::Rng::with_seed(3);
        let x = rand_vec(&mut rng, 2 * g.in_len(), 1.0);
        let c = rand_vec(&mut rng, 2 * g.col_len(), 1.0);
        let mut col = vec![f32::NAN; c.len()];
        conv2d::im2col(&mut col, &x, &g, 2);
        let mut back = vec![f32::NAN; x.len()];
        conv2d::col2im(&mut back, &c, &g, 2);
        let lhs: f64 = col.iter().zip(&c).map(|(&a, &b)| a as f64 * b as f64).sum();
        let rhs: f64 = x.iter().zip(&back).map(|(&a, &b)| a as f64 * b as f64).sum();
        assert!((lhs - rhs).abs() < 1e-3 * (1.0 + lhs.abs()), "{h}x{w}x{cin} k{k}: {lhs} vs {rhs}");
    }
}

#[test]
fn maxpool_matches_its_reference_and_routes_to_the_first_maximum() {
    for (h, w, c, k) in [(28, 28, 32, 2), (7, 7, 3, 2), (9, 10, 5, 3), (5, 5, 1, 5), (4, 6, 17, 1), (6, 7, 70, 2)] {
        let g = PoolGeometry::new((h, w, c), k).unwrap();
        assert_eq!((g.oh, g.ow), (h / k, w / k));
        for ties in [false, true] {
            let batch = 3;
            let mut rng = fastrand::Rng::with_seed(h as u64);
            // With ties: values from a few levels, so windows hold equal maxima.
            let x: Vec<f32> = (0..batch * g.in_len())
                .map(|_| if ties { rng.u8(0..3) as f32 } else { rng.f32() * 2.0 - 1.0 })
                .collect();
            let mut out = vec![f32::NAN; batch * g.out_len()];
            let (mut want, mut want_arg) = (out.clone(), vec![u32::MAX; batch * g.out_len()]);
            maxpool::maxpool_forward(&mut out, &x, &g, batch);
            maxpool::reference::maxpool_forward(&mut want, &mut want_arg, &x, &g, batch);
            assert_eq!(out, want, "{h}x{w}x{c} pool {k}");
            let dout = rand_vec(&mut rng, out.len(), 1.0);
            let (mut dx, mut want_dx) = (vec![f32::NAN; x.len()], vec![f32::NAN; x.len()]);
            maxpool::maxpool_backward(&mut dx, &dout, &x, &out, &g, batch, Activation::Linear);
            maxpool::reference::maxpool_backward(&mut want_dx, &dout, &want_arg, &g, batch);
            assert_eq!(dx, want_dx);
            // With the derivative of the activation that made x, fused in.
            for act in [Activation::Relu, Activation::Sigmoid] {
                let mut dz = vec![f32::NAN; x.len()];
                maxpool::maxpool_backward(&mut dz, &dout, &x, &out, &g, batch, act);
                let want: Vec<f32> = want_dx.iter().zip(&x).map(|(&d, &x)| d * act.derivative_from_output(x)).collect();
                assert_eq!(dz, want, "{h}x{w}x{c} pool {k}, {act:?}");
            }
            if !ties {
                // Finite differences: nudging the maximum moves the output by as much.
                let objective = |x: &[f32]| {
                    let (mut o, mut a) = (vec![0.0; out.len()], vec![0; out.len()]);
                    maxpool::reference::maxpool_forward(&mut o, &mut a, x, &g, batch);
                    o.iter().zip(&dout).map(|(&o, &d)| o as f64 * d as f64).sum::<f64>()
                };
                let mut xp = x.clone();
                let checked =
                    fd_checked(&format!("{h}x{w}x{c} pool {k}: dx"), (0..x.len()).step_by(7), &dx, |i, eps| {
                        xp[i] = x[i] + eps;
                        let up = objective(&xp);
                        xp[i] = x[i] - eps;
                        let down = objective(&xp);
                        xp[i] = x[i];
                        (up - down) / (2.0 * eps as f64)
                    });
                assert!(checked * 10 >= x.len().div_ceil(7) * 9, "{checked} of {} checked", x.len().div_ceil(7));
            }
        }
    }
    let g = PoolGeometry::new((2, 2, 1), 2).unwrap();
    let (x, mut out, mut dx) = ([1.0, 3.0, 3.0, 2.0], vec![0.0], vec![f32::NAN; 4]);
    maxpool::maxpool_forward(&mut out, &x, &g, 1);
    maxpool::maxpool_backward(&mut dx, &[5.0], &x, &out, &g, 1, Activation::Linear);
    assert_eq!((out[0], dx), (3.0, vec![0.0, 5.0, 0.0, 0.0]), "the first of two equal maxima");
    // A NaN first in its window is the window's maximum and takes the gradient.
    let (x, mut dx) = ([f32::NAN, 3.0, 1.0, 2.0], vec![1.0; 4]);
    maxpool::maxpool_forward(&mut out, &x, &g, 1);
    maxpool::maxpool_backward(&mut dx, &[5.0], &x, &out, &g, 1, Activation::Linear);
    assert!(out[0].is_nan());
    assert_eq!(dx, vec![5.0, 0.0, 0.0, 0.0]);
}

/// The mean training loss of `model` on `x`, dropout masks drawn from a
/// fresh copy of the same random stream each time (so the same masks).
fn training_loss(model: &Model, ws: &mut Workspace, x: &[f32], labels: &[u32], seed: u64) -> f64 {
    ws.rng = fastrand::Rng::with_seed(seed);
    model.forward_backward(ws, x, labels).0 / labels.len() as f64
}

fn check_model_gradient(arch_text: &str, input: (usize, usize), batch: usize, every: usize) {
    let spec = ModelSpec::new(input, &arch::parse(arch_text).unwrap()).unwrap();
    let classes = spec.classes();
    let mut model = Model::new(spec.clone(), 5);
    let mut rng = fastrand::Rng::with_seed(9);
    let x = rand_vec(&mut rng, batch * spec.input_dim(), 1.0);
    let labels: Vec<u32> = (0..batch as u32).map(|b| b % classes as u32).collect();
    let mut ws = Workspace::new(&spec, batch, 1);
    training_loss(&model, &mut ws, &x, &labels, 77);
    let grads = ws.grads.clone();
    assert!(grads.iter().all(|g| g.is_finite()));
    let (mut checked, mut tried) = (0, 0);
    for layer in spec.param_layers() {
        tried += (layer.kernel.start..layer.bias.end).step_by(every).count();
        let what = format!("{arch_text}: {}", layer.name);
        checked += fd_checked(&what, (layer.kernel.start..layer.bias.end).step_by(every), &grads, |i, eps| {
            let p0 = model.params[i];
            model.params[i] = p0 + eps;
            let up = training_loss(&model, &mut ws, &x, &labels, 77);
            model.params[i] = p0 - eps;
            let down = training_loss(&model, &mut ws, &x, &labels, 77);
            model.params[i] = p0;
            (up - down) / (2.0 * eps as f64)
        });
    }
    assert!(checked > 20 && checked * 10 >= tried * 8, "{checked} of {tried} parameters checked");
}

#[test]
fn whole_cnn_gradients_match_finite_differences() {
    // Every layer kind, both paddings, standalone dropout after a conv and a
    // pool, fused dropout after a dense, gradients flowing through two convs.
    check_model_gradient(
        "conv2d(3,3,sigmoid,same),dropout(0.3),maxpool(2),conv2d(5,3,sigmoid,valid),flatten,dense(7,sigmoid),dropout(0.4),dense(4)",
        (9, 9),
        3,
        3,
    );
    check_model_gradient("conv2d(4,5,linear,same),maxpool(3),dropout(0.5),flatten,dense(3)", (7, 8), 2, 2);
    check_model_gradient("conv2d(2,1),conv2d(3,3,sigmoid),flatten,dense(5)", (5, 6), 2, 1);
    // A pool after a conv on the im2col path (patch 36) that needs its dx:
    // the pool's backward runs inside the conv's.
    check_model_gradient(
        "conv2d(4,3,sigmoid,same),conv2d(5,3,sigmoid,valid),maxpool(2),flatten,dense(3)",
        (9, 9),
        2,
        3,
    );
}

#[test]
fn a_cnn_trains_to_the_same_weights_on_one_and_two_threads() {
    let spec = ModelSpec::new((28, 28), &arch::cnn(10)).unwrap();
    let mut rng = fastrand::Rng::with_seed(4);
    let images = 96;
    let x = rand_vec(&mut rng, images * 784, 1.0);
    let labels: Vec<u32> = (0..images as u32).map(|i| i % 10).collect();
    let train = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut model = Model::new(spec.clone(), 3);
            let mut opt =
                simdnet::optim::Optimizer::new(simdnet::optim::OptimizerKind::adam(), 1e-3, spec.param_count());
            let mut ws = Workspace::new(&spec, 32, 3);
            for (xs, ys) in x.chunks(32 * 784).zip(labels.chunks(32)) {
                model.train_step(&mut opt, &mut ws, xs, ys);
            }
            model.params
        })
    };
    let one = train(1);
    let two = train(2);
    let bits = |p: &[f32]| p.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert!(bits(&one) == bits(&two), "weights differ between 1 and 2 threads");
    assert_ne!(bits(&one), bits(&Model::new(spec.clone(), 3).params), "training changed the weights");
}

#[test]
fn a_small_cnn_learns_a_separable_task() {
    // Bright top half → class 0, bright bottom half → class 1: loss must fall.
    let spec =
        ModelSpec::new((8, 8), &arch::parse("conv2d(4,3,relu,same),maxpool(2),flatten,dense(2)").unwrap()).unwrap();
    let mut model = Model::new(spec.clone(), 1);
    let mut opt = simdnet::optim::Optimizer::new(simdnet::optim::OptimizerKind::adam(), 1e-2, spec.param_count());
    let mut ws = Workspace::new(&spec, 16, 1);
    let mut rng = fastrand::Rng::with_seed(2);
    let mut batch = || {
        let labels: Vec<u32> = (0..16).map(|_| rng.u32(0..2)).collect();
        let x: Vec<f32> =
            labels.iter().flat_map(|&y| (0..64).map(move |p| if (p < 32) == (y == 0) { 1.0 } else { 0.0 })).collect();
        (x, labels)
    };
    let (x0, y0) = batch();
    let first = softmax_cross_entropy(model.forward(&mut ws, &x0, 16), &y0, 2, None).0;
    for _ in 0..60 {
        let (x, y) = batch();
        model.train_step(&mut opt, &mut ws, &x, &y);
    }
    let last = softmax_cross_entropy(model.forward(&mut ws, &x0, 16), &y0, 2, None).0;
    assert!(last < first * 0.2, "loss {first} → {last}");
}
