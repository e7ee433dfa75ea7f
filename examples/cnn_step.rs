//! Runs the chapter-8 CNN's training step (batch 32, Adam, one thread) on
//! random images for a while and prints ms per step: a target for `perf`
//! that holds nothing but the step.
//!
//! ```text
//! cargo build --release --example cnn_step
//! perf record -g target/release/examples/cnn_step [SECONDS]
//! ```

use simdnet::arch;
use simdnet::model::{Model, ModelSpec, Workspace};
use simdnet::optim::{Optimizer, OptimizerKind};
use std::time::{Duration, Instant};

fn main() {
    let seconds: f64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(5.0);
    simdnet::fpu::flush_denormals_to_zero();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .start_handler(|_| simdnet::fpu::flush_denormals_to_zero())
        .build()
        .expect("a pool of one thread");
    let batch = 32;
    let spec = ModelSpec::new((28, 28), &arch::cnn(10)).expect("the book's CNN");
    let mut rng = fastrand::Rng::with_seed(1);
    let x: Vec<f32> = (0..batch * 784).map(|_| rng.f32()).collect();
    let y: Vec<u32> = (0..batch).map(|_| rng.u32(0..10)).collect();
    let mut model = Model::new(spec.clone(), 42);
    let kind = OptimizerKind::adam();
    let mut opt = Optimizer::new(kind, kind.default_learning_rate(), spec.param_count());
    let mut ws = Workspace::new(&spec, batch, 42);
    let (start, mut steps, mut best) = (Instant::now(), 0u64, f64::INFINITY);
    pool.install(|| {
        while start.elapsed() < Duration::from_secs_f64(seconds) {
            let t = Instant::now();
            for _ in 0..10 {
                model.train_step(&mut opt, &mut ws, &x, &y);
            }
            best = best.min(t.elapsed().as_secs_f64() / 10.0);
            steps += 10;
        }
    });
    let mean = start.elapsed().as_secs_f64() / steps as f64;
    println!("{steps} steps: mean {:.3} ms, best of 10-step chunks {:.3} ms", mean * 1e3, best * 1e3);
}
