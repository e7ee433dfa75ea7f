//! Finite-difference checks of every backward pass: Dense (relu, sigmoid,
//! linear), softmax cross-entropy, dropout, and the whole model.

use simdnet::gemm::Activation;
use simdnet::loss::softmax_cross_entropy;
use simdnet::model::{Model, ModelSpec, Workspace};
use simdnet::nn::dense::{self, reference};

fn rand_vec(rng: &mut fastrand::Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| (rng.f32() * 2.0 - 1.0) * scale).collect()
}

/// Σ r ⊙ dense(x, w, b) (times the dropout mask where given), from the reference forward.
fn weighted_output(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    mask: Option<&[f32]>,
    r: &[f32],
    batch: usize,
    n_in: usize,
    n_out: usize,
    act: Activation,
) -> f64 {
    let mut out = vec![0.0; batch * n_out];
    reference::dense_forward(&mut out, x, w, b, mask, batch, n_in, n_out, act);
    out.iter().zip(r).map(|(&o, &r)| o as f64 * r as f64).sum()
}

fn assert_close(what: &str, analytic: f32, numeric: f64) {
    let tol = 2e-3 + 2e-2 * numeric.abs();
    assert!(
        (analytic as f64 - numeric).abs() <= tol,
        "{what}: backward gives {analytic}, finite differences {numeric}"
    );
}

#[test]
fn dense_backward_matches_finite_differences() {
    let (batch, n_in, n_out) = (5, 7, 6);
    // Dropout's mask (rate 0.5: factors 0 or 2), fused into forward and backward.
    let mask: Vec<f32> = (0..batch * n_out).map(|i| if (i * 7) % 3 == 0 { 0.0 } else { 2.0 }).collect();
    let cases = [Activation::Linear, Activation::Relu, Activation::Sigmoid]
        .into_iter()
        .flat_map(|act| [(act, None), (act, Some(&mask[..]))]);
    for (act, mask) in cases {
        let mut rng = fastrand::Rng::with_seed(7);
        let x = rand_vec(&mut rng, batch * n_in, 1.0);
        let mut w = rand_vec(&mut rng, n_in * n_out, 0.5);
        let mut b = rand_vec(&mut rng, n_out, 0.5);
        let r = rand_vec(&mut rng, batch * n_out, 1.0);
        let mut out = vec![0.0; batch * n_out];
        dense::dense_forward(&mut out, &x, &w, &b, mask, batch, n_in, n_out, act);
        let (mut dx, mut dw, mut db, mut dout) =
            (vec![f32::NAN; batch * n_in], vec![f32::NAN; n_in * n_out], vec![f32::NAN; n_out], r.clone());
        dense::dense_backward(Some(&mut dx), &mut dw, &mut db, &mut dout, &out, mask, &x, &w, batch, n_in, n_out, act);
        let eps = 1e-3f32;
        // Relu's kink: skip weights whose perturbation flips a unit (rare with these values).
        let f = |x: &[f32], w: &[f32], b: &[f32]| weighted_output(x, w, b, mask, &r, batch, n_in, n_out, act);
        let act = format!("{}{}", act.name(), if mask.is_some() { "+dropout" } else { "" });
        for i in 0..w.len() {
            let w0 = w[i];
            w[i] = w0 + eps;
            let up = f(&x, &w, &b);
            w[i] = w0 - eps;
            let down = f(&x, &w, &b);
            w[i] = w0;
            assert_close(&format!("{act} dW[{i}]"), dw[i], (up - down) / (2.0 * eps as f64));
        }
        for i in 0..b.len() {
            let b0 = b[i];
            b[i] = b0 + eps;
            let up = f(&x, &w, &b);
            b[i] = b0 - eps;
            let down = f(&x, &w, &b);
            b[i] = b0;
            assert_close(&format!("{act} db[{i}]"), db[i], (up - down) / (2.0 * eps as f64));
        }
        let mut xm = x.clone();
        for i in 0..x.len() {
            xm[i] = x[i] + eps;
            let up = f(&xm, &w, &b);
            xm[i] = x[i] - eps;
            let down = f(&xm, &w, &b);
            xm[i] = x[i];
            assert_close(&format!("{act} dX[{i}]"), dx[i], (up - down) / (2.0 * eps as f64));
        }
    }
}

#[test]
fn fast_dense_matches_reference_dense() {
    let mut rng = fastrand::Rng::with_seed(3);
    // The last two take the transposed input gradient (weights of at least
    // TRANSPOSED_DX_MIN_WEIGHTS): the book CNN's dense, and odd sizes.
    const { assert!(3136 * 100 >= dense::TRANSPOSED_DX_MIN_WEIGHTS && 1031 * 70 >= dense::TRANSPOSED_DX_MIN_WEIGHTS) };
    const { assert!(65 * 19 < dense::TRANSPOSED_DX_MIN_WEIGHTS) };
    for &(batch, n_in, n_out) in &[(1, 1, 1), (3, 17, 5), (32, 100, 10), (33, 65, 19), (32, 3136, 100), (5, 1031, 70)] {
        let mask: Vec<f32> = (0..batch * n_out).map(|_| if rng.f32() < 0.3 { 0.0 } else { 1.0 / 0.7 }).collect();
        let cases = [Activation::Linear, Activation::Relu, Activation::Sigmoid]
            .into_iter()
            .flat_map(|act| [(act, None), (act, Some(&mask[..]))]);
        for (act, mask) in cases {
            let x = rand_vec(&mut rng, batch * n_in, 1.0);
            let w = rand_vec(&mut rng, n_in * n_out, 0.3);
            let b = rand_vec(&mut rng, n_out, 0.3);
            let g = rand_vec(&mut rng, batch * n_out, 1.0);
            let (mut out_f, mut out_r) = (vec![f32::NAN; batch * n_out], vec![f32::NAN; batch * n_out]);
            dense::dense_forward(&mut out_f, &x, &w, &b, mask, batch, n_in, n_out, act);
            reference::dense_forward(&mut out_r, &x, &w, &b, mask, batch, n_in, n_out, act);
            for (i, (a, e)) in out_f.iter().zip(&out_r).enumerate() {
                assert!(
                    (a - e).abs() <= 1e-4 * (1.0 + e.abs()),
                    "forward {batch}x{n_in}x{n_out} {act:?} mask {} [{i}]: {a} vs {e}",
                    mask.is_some()
                );
            }
            let mut fast =
                (vec![f32::NAN; batch * n_in], vec![f32::NAN; n_in * n_out], vec![f32::NAN; n_out], g.clone());
            let mut refr =
                (vec![f32::NAN; batch * n_in], vec![f32::NAN; n_in * n_out], vec![f32::NAN; n_out], g.clone());
            dense::dense_backward(
                Some(&mut fast.0),
                &mut fast.1,
                &mut fast.2,
                &mut fast.3,
                &out_r,
                mask,
                &x,
                &w,
                batch,
                n_in,
                n_out,
                act,
            );
            reference::dense_backward(
                Some(&mut refr.0),
                &mut refr.1,
                &mut refr.2,
                &mut refr.3,
                &out_r,
                mask,
                &x,
                &w,
                batch,
                n_in,
                n_out,
                act,
            );
            for (name, a, e) in
                [("dX", &fast.0, &refr.0), ("dW", &fast.1, &refr.1), ("db", &fast.2, &refr.2), ("dZ", &fast.3, &refr.3)]
            {
                for (i, (a, e)) in a.iter().zip(e.iter()).enumerate() {
                    assert!(
                        (a - e).abs() <= 1e-4 * (1.0 + e.abs()),
                        "{name} {batch}x{n_in}x{n_out} {act:?} mask {} [{i}]: {a} vs {e}",
                        mask.is_some()
                    );
                }
            }
        }
    }
}

#[test]
fn softmax_cross_entropy_gradient_matches_finite_differences() {
    let (batch, classes) = (4, 10);
    let mut rng = fastrand::Rng::with_seed(11);
    let mut logits = rand_vec(&mut rng, batch * classes, 3.0);
    let labels: Vec<u32> = (0..batch as u32).map(|b| (b * 3) % classes as u32).collect();
    let mut d = vec![f32::NAN; batch * classes];
    let (loss, _) = softmax_cross_entropy(&logits, &labels, classes, Some(&mut d));
    assert!(loss.is_finite() && loss > 0.0);
    let mean_loss = |l: &[f32]| softmax_cross_entropy(l, &labels, classes, None).0 / batch as f64;
    let eps = 1e-2f32;
    for i in 0..logits.len() {
        let z0 = logits[i];
        logits[i] = z0 + eps;
        let up = mean_loss(&logits);
        logits[i] = z0 - eps;
        let down = mean_loss(&logits);
        logits[i] = z0;
        assert_close(&format!("dlogits[{i}]"), d[i], (up - down) / (2.0 * eps as f64));
    }
}

#[test]
fn softmax_cross_entropy_is_stable_and_counts_correct() {
    // Huge logits must not overflow; the loss of a confident right answer is ~0,
    // of a confident wrong one ~ the logit gap.
    let logits = [1000.0f32, 0.0, -1000.0, 0.0, 500.0, 0.0];
    let (loss, correct) = softmax_cross_entropy(&logits, &[0, 2], 3, None);
    assert!(loss.is_finite());
    assert!((loss - 500.0).abs() < 1e-3, "loss {loss}");
    assert_eq!(correct, 1);
}

/// Mean loss of the whole model with dropout off (inference forward).
fn model_loss(model: &Model, ws: &mut Workspace, x: &[f32], labels: &[u32]) -> f64 {
    let logits = model.forward(ws, x, labels.len()).to_vec();
    softmax_cross_entropy(&logits, labels, model.spec.classes(), None).0 / labels.len() as f64
}

#[test]
fn whole_model_gradient_matches_finite_differences() {
    for act in [Activation::Relu, Activation::Sigmoid] {
        let spec = ModelSpec::mlp((3, 4), &[8, 6], act, 5, 0.0).unwrap();
        let mut model = Model::new(spec.clone(), 5);
        let mut rng = fastrand::Rng::with_seed(9);
        let batch = 6;
        let x = rand_vec(&mut rng, batch * 12, 1.0);
        let labels: Vec<u32> = (0..batch as u32).map(|b| b % 5).collect();
        let mut ws = Workspace::new(&spec, batch, 1);
        model.forward_backward(&mut ws, &x, &labels);
        let grads = ws.grads.clone();
        let eps = 1e-2f32;
        for i in (0..model.params.len()).step_by(3) {
            let p0 = model.params[i];
            model.params[i] = p0 + eps;
            let up = model_loss(&model, &mut ws, &x, &labels);
            model.params[i] = p0 - eps;
            let down = model_loss(&model, &mut ws, &x, &labels);
            model.params[i] = p0;
            assert_close(&format!("{} param {i}", act.name()), grads[i], (up - down) / (2.0 * eps as f64));
        }
    }
}
