//! SGEMM throughput per instruction-set path: squares and the MLP's shapes.
//!
//! `Throughput::Elements(2·m·n·k)`: one element = one FLOP, so criterion's
//! "elem/s" column reads directly as FLOP/s (e.g. "120 Gelem/s" = 120 GFLOP/s).
//!
//! Runs on one thread by default (a 1-thread rayon pool) so the numbers
//! compare with the single-core FMA peak printed first; set
//! `SIMDNET_BENCH_THREADS=N` to measure the parallel path.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use simdnet::bench::Operands;
use simdnet::gemm::{available_isas, fma_peak_gflops_with, sgemm_with, Activation, Epilogue, Isa, MatMut};

/// How an MLP GEMM reads its operands.
#[derive(Clone, Copy)]
enum Form {
    /// C = A·B, both row-major, no epilogue.
    Plain,
    /// C = A·B, both row-major (forward pass: X·W, with bias + relu).
    Forward,
    /// C = Aᵀ·B with A stored [k, m] (weight gradient: Xᵀ·dZ).
    TransA,
    /// C = A·Bᵀ with B stored [n, k] (input gradient: dZ·Wᵀ).
    TransB,
}

impl Form {
    fn operands(self) -> Operands {
        match self {
            Form::Plain | Form::Forward => Operands::RowMajor,
            Form::TransA => Operands::TransA,
            Form::TransB => Operands::TransB,
        }
    }
}

fn pool() -> rayon::ThreadPool {
    let threads = std::env::var("SIMDNET_BENCH_THREADS").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("rayon pool")
}

fn fill(len: usize) -> Vec<f32> {
    (0..len).map(|i| ((i * 7919 % 1000) as f32 / 1000.0) - 0.5).collect()
}

fn bench_shape(
    g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    pool: &rayon::ThreadPool,
    label: &str,
    (m, n, k): (usize, usize, usize),
    form: Form,
) {
    let a = fill(m * k);
    let b = fill(k * n);
    let bias = fill(n);
    let mut c = vec![0.0f32; m * n];
    // Elements = FLOP (2 per multiply-add), so elem/s = FLOP/s.
    g.throughput(Throughput::Elements((2 * m * n * k) as u64));
    for isa in available_isas() {
        g.bench_with_input(BenchmarkId::new(isa.name(), label), &isa, |bch, &isa: &Isa| {
            pool.install(|| {
                bch.iter(|| {
                    let (av, bv) = form.operands().views(&a, &b, m, n, k);
                    let epi = match form {
                        Form::Forward => Epilogue { bias: Some(&bias), act: Activation::Relu, mask: None },
                        _ => Epilogue::default(),
                    };
                    sgemm_with(isa, 1.0, black_box(av), black_box(bv), 0.0, MatMut::row_major(&mut c, m, n), epi);
                    black_box(&mut c);
                })
            })
        });
    }
}

fn squares(cr: &mut Criterion) {
    for isa in available_isas() {
        let peak = fma_peak_gflops_with(isa, Duration::from_millis(300));
        eprintln!("{}: single-core FP32 FMA peak ≈ {peak:.1} GFLOP/s (0.2-ms batches)", isa.name());
    }
    let pool = pool();
    let mut g = cr.benchmark_group("gemm_square");
    g.measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500)).sample_size(20);
    for s in [64, 128, 256, 512, 1024] {
        bench_shape(&mut g, &pool, &s.to_string(), (s, s, s), Form::Plain);
    }
    g.finish();
}

fn mlp(cr: &mut Criterion) {
    let pool = pool();
    let mut g = cr.benchmark_group("gemm_mlp");
    g.measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500)).sample_size(20);
    // Labels are m×n×k; the Dense layers of 784→100(relu)→10 at batch b.
    for batch in [32, 256] {
        let shapes = [
            ((batch, 100, 784), Form::Forward, "fwd1"),
            ((784, 100, batch), Form::TransA, "dW1"),
            ((batch, 10, 100), Form::Forward, "fwd2"),
            ((100, 10, batch), Form::TransA, "dW2"),
            ((batch, 100, 10), Form::TransB, "dX2"),
            ((batch, 784, 100), Form::TransB, "dX1"),
        ];
        for ((m, n, k), form, name) in shapes {
            bench_shape(&mut g, &pool, &format!("{name}_{m}x{n}x{k}"), (m, n, k), form);
        }
    }
    g.finish();
}

criterion_group!(benches, squares, mlp);
criterion_main!(benches);
