// The expected values are Keras' printed float32 values, verbatim.
#![allow(clippy::excessive_precision)]

//! Optimizer updates against Keras 3's reference trajectories
//! (../shared/reference/keras_optimizers.md): w0 = [1, -2, 0.5], loss = ½‖w‖²
//! so the gradient equals w; three steps, each checked.
//!
//! Produced with Keras 3.15.1 (JAX backend, float32):
//! ```python
//! opt = keras.optimizers.Adam()   # etc.
//! w = keras.Variable([1.0, -2.0, 0.5])
//! for _ in range(3):
//!     opt.apply_gradients([(w.value, w)]); print(w.numpy())
//! ```

use simdnet::optim::{Optimizer, OptimizerKind};

fn trajectory(kind: OptimizerKind, lr: Option<f32>) -> Vec<[f32; 3]> {
    let lr = lr.unwrap_or(kind.default_learning_rate());
    let mut opt = Optimizer::new(kind, lr, 3);
    let mut w = [1.0f32, -2.0, 0.5];
    (0..3)
        .map(|_| {
            let g = w;
            opt.step(&mut w, &g);
            w
        })
        .collect()
}

fn check(name: &str, kind: OptimizerKind, lr: Option<f32>, expected: [[f32; 3]; 3]) {
    let got = trajectory(kind, lr);
    for (step, (g, e)) in got.iter().zip(&expected).enumerate() {
        for (i, (&gv, &ev)) in g.iter().zip(e).enumerate() {
            let rel = ((gv - ev) / ev).abs();
            assert!(rel < 1e-6, "{name} step {} w[{i}] = {gv}, Keras gives {ev} (rel error {rel:e})", step + 1);
        }
    }
}

#[test]
fn sgd_matches_keras() {
    check(
        "SGD()",
        OptimizerKind::sgd(),
        None,
        [
            [0.99000001, -1.98000002, 0.495000005],
            [0.980100036, -1.96020007, 0.490050018],
            [0.970299006, -1.94059801, 0.485149503],
        ],
    );
}

#[test]
fn sgd_momentum_matches_keras() {
    check(
        "SGD(momentum=0.9)",
        OptimizerKind::Sgd { momentum: 0.9, nesterov: false },
        Some(0.01),
        [
            [0.99000001, -1.98000002, 0.495000005],
            [0.971100032, -1.94220006, 0.485550016],
            [0.944379032, -1.88875806, 0.472189516],
        ],
    );
}

#[test]
fn sgd_nesterov_matches_keras() {
    check(
        "SGD(momentum=0.9, nesterov=True)",
        OptimizerKind::Sgd { momentum: 0.9, nesterov: true },
        Some(0.01),
        [
            [0.981000006, -1.96200001, 0.490500003],
            [0.954261005, -1.90852201, 0.477130502],
            [0.920893967, -1.84178793, 0.460446984],
        ],
    );
}

#[test]
fn rmsprop_matches_keras() {
    check(
        "RMSprop()",
        OptimizerKind::rmsprop(),
        None,
        [
            [0.996837735, -1.99683774, 0.496837735],
            [0.994547009, -1.99454534, 0.494550496],
            [0.992630661, -1.99262667, 0.492638797],
        ],
    );
    check(
        "RMSprop(lr=0.1)",
        OptimizerKind::rmsprop(),
        Some(0.1),
        [
            [0.683772385, -1.68377233, 0.183772862],
            [0.49887079, -1.4738754, 0.0695319772],
            [0.369180739, -1.30871797, 0.0244355872],
        ],
    );
}

#[test]
fn adam_matches_keras() {
    check(
        "Adam()",
        OptimizerKind::adam(),
        None,
        [
            [0.999000013, -1.99899995, 0.499000013],
            [0.998000026, -1.99800003, 0.498000085],
            [0.997000098, -1.9970001, 0.497000247],
        ],
    );
    check(
        "Adam(lr=0.1)",
        OptimizerKind::adam(),
        Some(0.1),
        [
            [0.900000989, -1.90000081, 0.400001317],
            [0.800414443, -1.8001684, 0.301190197],
            [0.701589048, -1.70062578, 0.204874724],
        ],
    );
}

#[test]
fn adagrad_matches_keras() {
    check(
        "Adagrad()",
        OptimizerKind::adagrad(),
        None,
        [
            [0.999046564, -1.99901223, 0.499154836],
            [0.998356819, -1.99830973, 0.498509973],
            [0.997789323, -1.99773502, 0.497968525],
        ],
    );
    check(
        "Adagrad(lr=0.1)",
        OptimizerKind::adagrad(),
        Some(0.1),
        [
            [0.904653728, -1.901227, 0.415484577],
            [0.83933872, -1.83277667, 0.358012259],
            [0.787512779, -1.77770066, 0.313633621],
        ],
    );
}

#[test]
fn keras_default_learning_rates() {
    assert_eq!(OptimizerKind::sgd().default_learning_rate(), 0.01);
    for k in [OptimizerKind::adam(), OptimizerKind::rmsprop(), OptimizerKind::adagrad()] {
        assert_eq!(k.default_learning_rate(), 0.001, "{}", k.name());
    }
}

#[test]
fn optimizer_step_over_long_buffers_matches_elementwise_rule() {
    // The same rule must hold for every element of a long buffer (vectorised
    // loops and their remainders): each element's trajectory equals a
    // one-element optimizer's.
    for kind in [
        OptimizerKind::adam(),
        OptimizerKind::rmsprop(),
        OptimizerKind::adagrad(),
        OptimizerKind::Sgd { momentum: 0.9, nesterov: true },
        OptimizerKind::sgd(),
    ] {
        let n = 37;
        let mut opt = Optimizer::new(kind, 0.01, n);
        let mut w: Vec<f32> = (0..n).map(|i| (i as f32 - 18.0) * 0.1).collect();
        let mut singles: Vec<(Optimizer, [f32; 1])> = w.iter().map(|&x| (Optimizer::new(kind, 0.01, 1), [x])).collect();
        for _ in 0..4 {
            let g: Vec<f32> = w.iter().map(|x| x * 0.5 + 0.1).collect();
            opt.step(&mut w, &g);
            for (o, s) in &mut singles {
                let gs = [s[0] * 0.5 + 0.1];
                o.step(s, &gs);
            }
        }
        for (i, (&a, (_, s))) in w.iter().zip(&singles).enumerate() {
            assert!((a - s[0]).abs() <= 1e-6 * a.abs().max(1.0), "{} element {i}: {a} vs {}", kind.name(), s[0]);
        }
    }
}
