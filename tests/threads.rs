//! For a given seed, the trained weights are bit-identical whatever the thread
//! count: no kernel splits a reduction across threads.

use simdnet::gemm::Activation;
use simdnet::model::{Model, ModelSpec, Workspace};
use simdnet::optim::{Optimizer, OptimizerKind};

fn train(threads: usize, batch: usize) -> Vec<f32> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| {
        let spec = ModelSpec::mlp((28, 28), &[300, 100], Activation::Relu, 10, 0.2).unwrap();
        let mut model = Model::new(spec.clone(), 3);
        let mut opt = Optimizer::new(OptimizerKind::adam(), 1e-3, spec.param_count());
        let mut ws = Workspace::new(&spec, batch, 3);
        let mut rng = fastrand::Rng::with_seed(5);
        for _ in 0..4 {
            let x: Vec<f32> = (0..batch * 784).map(|_| rng.f32()).collect();
            let y: Vec<u32> = (0..batch).map(|_| rng.u32(0..10)).collect();
            model.train_step(&mut opt, &mut ws, &x, &y);
        }
        model.params
    })
}

#[test]
fn one_and_two_threads_give_identical_weights() {
    for batch in [32, 256] {
        let one = train(1, batch);
        let two = train(2, batch);
        assert!(one.iter().zip(&two).all(|(a, b)| a.to_bits() == b.to_bits()), "batch {batch}: weights differ");
    }
}
