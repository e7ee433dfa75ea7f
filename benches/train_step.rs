//! One full training step (forward, loss, backward, optimizer) of the tutorial
//! model, per batch size and optimizer. Throughput is Elements(batch), so
//! criterion's elem/s reads as samples/s. One thread (set RAYON_NUM_THREADS to change).
//!
//! `optimizer_step/<name>` times `Optimizer::step` alone over the tutorial
//! model's 79,510 parameters; Throughput is Elements(parameters), so elem/s
//! reads as parameters updated per second.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use simdnet::gemm::Activation;
use simdnet::model::{Model, ModelSpec, Workspace};
use simdnet::optim::{Optimizer, OptimizerKind};
use std::time::Duration;

fn train_step(c: &mut Criterion) {
    let threads = std::env::var("RAYON_NUM_THREADS").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    // Denormals flushed on the pool's threads, as `simdnet train` does: without
    // it, Adam's moments of always-zero border pixels decay into denormals and
    // the step measures the CPU's slow path instead of the engine.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .start_handler(|_| simdnet::fpu::flush_denormals_to_zero())
        .build()
        .unwrap();
    let spec = ModelSpec::mlp((28, 28), &[100], Activation::Relu, 10, 0.0).unwrap();
    let optimizers = [
        ("adam", OptimizerKind::adam()),
        ("sgd", OptimizerKind::sgd()),
        ("sgd_nesterov", OptimizerKind::Sgd { momentum: 0.9, nesterov: true }),
        ("rmsprop", OptimizerKind::rmsprop()),
        ("adagrad", OptimizerKind::adagrad()),
    ];
    for (name, kind) in optimizers {
        let mut group = c.benchmark_group(format!("train_step/{name}"));
        group.measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500)).sample_size(20);
        for batch in [32usize, 128, 256] {
            let mut rng = fastrand::Rng::with_seed(1);
            let x: Vec<f32> = (0..batch * 784).map(|_| rng.f32()).collect();
            let y: Vec<u32> = (0..batch).map(|_| rng.u32(0..10)).collect();
            let mut model = Model::new(spec.clone(), 42);
            let mut opt = Optimizer::new(kind, kind.default_learning_rate(), spec.param_count());
            let mut ws = Workspace::new(&spec, batch, 42);
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_function(BenchmarkId::from_parameter(batch), |b| {
                pool.install(|| b.iter(|| model.train_step(&mut opt, &mut ws, &x, &y)))
            });
        }
        group.finish();
    }
}

fn optimizer_step(c: &mut Criterion) {
    simdnet::fpu::flush_denormals_to_zero();
    let spec = ModelSpec::mlp((28, 28), &[100], Activation::Relu, 10, 0.0).unwrap();
    let n = spec.param_count();
    let mut rng = fastrand::Rng::with_seed(7);
    let grads: Vec<f32> = (0..n).map(|_| (rng.f32() - 0.5) * 0.02).collect();
    let mut group = c.benchmark_group("optimizer_step");
    group.measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500)).sample_size(30);
    group.throughput(Throughput::Elements(n as u64));
    for (name, kind) in [
        ("adam", OptimizerKind::adam()),
        ("rmsprop", OptimizerKind::rmsprop()),
        ("adagrad", OptimizerKind::adagrad()),
        ("sgd_nesterov", OptimizerKind::Sgd { momentum: 0.9, nesterov: true }),
    ] {
        let mut params: Vec<f32> = (0..n).map(|_| rng.f32() - 0.5).collect();
        let mut opt = Optimizer::new(kind, kind.default_learning_rate(), n);
        group.bench_function(BenchmarkId::from_parameter(name), |b| b.iter(|| opt.step(&mut params, &grads)));
    }
    group.finish();
}

criterion_group!(benches, train_step, optimizer_step);
criterion_main!(benches);
