//! `simdnet bench`: GEMM GFLOP/s against this core's measured FP32 FMA peak,
//! and training samples/s per batch size, without criterion.

use crate::batch::Batch;
use crate::cli::BenchArgs;
use crate::dataset::Dataset;
use crate::error::Result;
use crate::gemm::{self, Activation, Epilogue, MatMut, MatRef};
use crate::model::{Model, ModelSpec, Op, Workspace};
use crate::nn::conv_direct::DzSource;
use crate::nn::{conv2d, dense, maxpool};
use crate::optim::{Optimizer, OptimizerKind};
use std::io::Write;
use std::time::{Duration, Instant};

/// How a bench shape's operands lie in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operands {
    /// A `[m, k]` and B `[k, n]`, both row-major.
    RowMajor,
    /// A read as the transpose of a row-major `[k, m]` buffer: a weight
    /// gradient's Xᵀ (or Hᵀ).
    TransA,
    /// B read as the transpose of a row-major `[n, k]` buffer: an input
    /// gradient's Wᵀ.
    TransB,
}

impl Operands {
    /// The A `[m, k]` and B `[k, n]` views of buffers `a` (m·k values) and
    /// `b` (k·n values) in this layout.
    pub fn views<'a>(self, a: &'a [f32], b: &'a [f32], m: usize, n: usize, k: usize) -> (MatRef<'a>, MatRef<'a>) {
        let av = if self == Operands::TransA { MatRef::row_major(a, k, m).t() } else { MatRef::row_major(a, m, k) };
        let bv = if self == Operands::TransB { MatRef::row_major(b, n, k).t() } else { MatRef::row_major(b, k, n) };
        (av, bv)
    }
}

/// GEMM shapes (m, n, k) the bench reports: squares, then the tutorial
/// model's training GEMMs at batch 32 (forward, dW, dX) and batch 256, with
/// their operands laid out as training passes them.
pub const SHAPES: &[(usize, usize, usize, Operands, &str)] = &[
    (64, 64, 64, Operands::RowMajor, "square"),
    (128, 128, 128, Operands::RowMajor, "square"),
    (256, 256, 256, Operands::RowMajor, "square"),
    (512, 512, 512, Operands::RowMajor, "square"),
    (1024, 1024, 1024, Operands::RowMajor, "square"),
    (32, 100, 784, Operands::RowMajor, "fwd dense, batch 32"),
    (784, 100, 32, Operands::TransA, "dW dense (Xᵀ), batch 32"),
    (32, 10, 100, Operands::RowMajor, "fwd dense_1, batch 32"),
    (100, 10, 32, Operands::TransA, "dW dense_1 (Hᵀ), b. 32"),
    (32, 100, 10, Operands::TransB, "dX dense_1 (Wᵀ), b. 32"),
    (256, 100, 784, Operands::RowMajor, "fwd dense, batch 256"),
    (784, 100, 256, Operands::TransA, "dW dense (Xᵀ), b. 256"),
];

/// How long one timed chunk of calls lasts in [`best_seconds_per_call`]
/// with `budget` (unless one call takes longer): the window to measure the
/// FMA peak in when comparing with it (see
/// [`gemm::fma_peak_gflops_over`]).
pub fn chunk_window(budget: Duration) -> Duration {
    budget / 10
}

/// Calls `f` repeatedly for about `budget` and returns the best seconds per
/// call over chunks of calls lasting about [`chunk_window`] (the minimum is
/// the least noisy estimate on a shared machine).
pub fn best_seconds_per_call(budget: Duration, mut f: impl FnMut()) -> f64 {
    f(); // warm caches and packing buffers
    let t = Instant::now();
    f();
    let one = t.elapsed().as_secs_f64().max(1e-9);
    let per_chunk = ((chunk_window(budget).as_secs_f64() / one) as usize).max(1);
    let start = Instant::now();
    let mut best = f64::INFINITY;
    while start.elapsed() < budget || best.is_infinite() {
        let t = Instant::now();
        for _ in 0..per_chunk {
            f();
        }
        best = best.min(t.elapsed().as_secs_f64() / per_chunk as f64);
    }
    best
}

/// GFLOP/s of `sgemm` (β = 0, no epilogue) on an m×n×k problem.
pub fn gemm_gflops(isa: gemm::Isa, m: usize, n: usize, k: usize, ops: Operands, budget: Duration) -> f64 {
    let mut rng = fastrand::Rng::with_seed(1);
    let a: Vec<f32> = (0..m * k).map(|_| rng.f32() - 0.5).collect();
    let b: Vec<f32> = (0..k * n).map(|_| rng.f32() - 0.5).collect();
    let mut c = vec![0.0f32; m * n];
    let s = best_seconds_per_call(budget, || {
        let (av, bv) = ops.views(&a, &b, m, n, k);
        gemm::sgemm_with(isa, 1.0, av, bv, 0.0, MatMut::row_major(&mut c, m, n), Epilogue::default())
    });
    2.0 * (m * n * k) as f64 / s / 1e9
}

/// Samples/s of full training steps (gather from the data set, forward,
/// backward, optimizer) of `spec` at `batch_size`.
pub fn train_samples_per_second(
    data: &Dataset,
    spec: &ModelSpec,
    kind: OptimizerKind,
    batch_size: usize,
    budget: Duration,
) -> f64 {
    let mut model = Model::new(spec.clone(), 42);
    let mut opt = Optimizer::new(kind, kind.default_learning_rate(), spec.param_count());
    let mut ws = Workspace::new(spec, batch_size, 42);
    let d = data.train.image_len();
    let mut batch = Batch::new(batch_size, d);
    // At least one whole batch, repeating images when the training set is
    // smaller than a batch (`Dataset::open` refuses an empty one).
    let count = data.train.count.max(1);
    let indices: Vec<u32> = (0..count.max(batch_size)).map(|i| (i % count) as u32).collect();
    let mut chunks = indices.chunks_exact(batch_size).cycle();
    let s = best_seconds_per_call(budget, || {
        let chunk = chunks.next().expect("cycle never ends");
        batch.gather(&data.train, chunk);
        model.train_step(&mut opt, &mut ws, batch.inputs(d), batch.labels());
    });
    batch_size as f64 / s
}

/// One layer's kernels timed alone at a batch size: seconds per call.
#[derive(Clone, Debug)]
pub struct LayerTiming {
    /// Keras' name and class (`conv2d_1`, `Conv2D`).
    pub name: String,
    pub class: &'static str,
    /// Forward FLOP per sample (dW and dX cost as much each).
    pub flops: u64,
    pub forward: f64,
    /// The weight gradient, the activation's derivative and the bias
    /// gradient included (layers with parameters).
    pub dw: Option<f64>,
    /// The input gradient (where the model needs it): the backward pass
    /// with it minus the backward pass without it; MaxPooling2D's routing.
    pub dx: Option<f64>,
    /// `dw` includes the backward pass of the MaxPooling2D after the layer
    /// (which then has no `dx` of its own): [`ModelSpec::pool_backward_in_conv`].
    pub pool_in_dw: bool,
}

/// Times each layer of `spec` alone on random inputs of `batch` samples, on
/// the calls training makes (Flatten and fused dropout cost nothing).
pub fn layer_timings(spec: &ModelSpec, batch: usize, budget: Duration) -> Vec<LayerTiming> {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut rand = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.f32() - 0.5).collect() };
    let mut rows = Vec::new();
    for (l, layer) in spec.layers().iter().enumerate() {
        let (n_in, n_out) = (batch * layer.input.len(), batch * layer.output.len());
        let x = rand(n_in);
        let mut out = vec![0.0f32; n_out];
        let mut dout = rand(n_out);
        let mut dx = vec![0.0f32; n_in];
        let needs_dx = spec.needs_input_grad(l);
        let (kernel, bias) = (rand(layer.kernel.len()), rand(layer.bias.len()));
        let (mut dkernel, mut dbias) = (vec![0.0f32; kernel.len()], vec![0.0f32; bias.len()]);
        let time = |f: &mut dyn FnMut()| best_seconds_per_call(budget, f);
        let (forward, dw, dx_time) = match layer.op {
            Op::Conv2D { geometry: g, act } => {
                let mut col = vec![0.0f32; g.scratch_floats(batch)];
                let mut fwd = || conv2d::conv2d_forward(&mut out, &mut col, &x, &kernel, &bias, &g, batch, act);
                let forward = time(&mut fwd);
                // As training: the pool's backward pass inside this one, or
                // dz in place (where a MaxPooling2D after it applies act').
                let pool_after = spec.pool_backward_in_conv(l + 1).then(|| {
                    let Op::MaxPool(pg) = spec.layers()[l + 1].op else { unreachable!("a pool follows") };
                    let pool_dout = rand(batch * pg.out_len());
                    let mut pooled = vec![0.0f32; batch * pg.out_len()];
                    maxpool::maxpool_forward(&mut pooled, &out, &pg, batch);
                    (pg, pool_dout, pooled)
                });
                let source = match &pool_after {
                    Some((pool, pool_dout, pooled)) => {
                        DzSource::ThroughPool { pool_dout, pool_out: pooled, conv_out: &out, pool: *pool, act }
                    }
                    None => DzSource::InPlace { out: &out, act: spec.conv_backward_activation(l, act) },
                };
                let mut bwd = |dx: Option<&mut [f32]>| {
                    conv2d::conv2d_backward_from(
                        gemm::selected_isa(),
                        dx,
                        &mut dkernel,
                        &mut dbias,
                        &mut dout,
                        source,
                        &x,
                        &mut col,
                        &kernel,
                        &g,
                        batch,
                    )
                };
                let dw = time(&mut || bwd(None));
                (forward, Some(dw), needs_dx.then(|| (time(&mut || bwd(Some(&mut dx))) - dw).max(0.0)))
            }
            Op::Dense { in_dim, out_dim, act } => {
                let forward =
                    time(&mut || dense::dense_forward(&mut out, &x, &kernel, &bias, None, batch, in_dim, out_dim, act));
                let mut bwd = |dx: Option<&mut [f32]>| {
                    dense::dense_backward(
                        dx,
                        &mut dkernel,
                        &mut dbias,
                        &mut dout,
                        &out,
                        None,
                        &x,
                        &kernel,
                        batch,
                        in_dim,
                        out_dim,
                        act,
                    )
                };
                let dw = time(&mut || bwd(None));
                let dx = needs_dx.then(|| (time(&mut || bwd(Some(&mut dx))) - dw).max(0.0));
                (forward, Some(dw), dx)
            }
            Op::MaxPool(g) => {
                let forward = time(&mut || maxpool::maxpool_forward(&mut out, &x, &g, batch));
                let act = spec.pool_fused_activation(l).unwrap_or_default();
                let timed = needs_dx && !spec.pool_backward_in_conv(l);
                let dx =
                    timed.then(|| time(&mut || maxpool::maxpool_backward(&mut dx, &dout, &x, &out, &g, batch, act)));
                (forward, None, dx)
            }
            Op::Flatten | Op::Dropout { .. } => continue,
        };
        rows.push(LayerTiming {
            name: layer.name.clone(),
            class: layer.class,
            flops: layer.forward_flops(),
            forward,
            dw,
            dx: dx_time,
            pool_in_dw: spec.pool_backward_in_conv(l + 1),
        });
    }
    rows
}

/// `simdnet bench --arch`: the model's layers one by one, then its whole
/// training step, against the one-core FMA peak.
fn run_model_report(args: &BenchArgs, data: &Dataset, spec: &ModelSpec, budget: Duration) -> std::io::Result<()> {
    let batch = args.batch_size as usize;
    let _ = writeln!(
        std::io::stderr(),
        "simdnet bench: timing the FMA peak, {} layers and the training step at batch {batch}",
        spec.layers().len()
    );
    let window = chunk_window(budget);
    let mut peak = gemm::fma_peak_gflops_over(budget, window);
    let timings = layer_timings(spec, batch, budget);
    peak = peak.max(gemm::fma_peak_gflops_over(budget / 2, window));
    let step = train_samples_per_second(data, spec, OptimizerKind::adam(), batch, budget * 4);
    peak = peak.max(gemm::fma_peak_gflops_over(budget / 2, window));
    let all_cores_peak = peak * args.threads as f64;

    let mut out = std::io::stdout().lock();
    writeln!(out, "FP32 FMA peak, one core ({}): {peak:.1} GFLOP/s (the 100% below)", gemm::selected_isa().name())?;
    writeln!(out, "\n{}\nbatch {batch}, {} thread(s), each layer's calls timed alone", spec.describe(), args.threads)?;
    writeln!(out, "  {:<30} {:<8} {:>10} {:>9} {:>10}", "layer", "pass", "ms/step", "GFLOP/s", "% of peak")?;
    let mut sum = 0.0;
    for t in &timings {
        let label = format!("{} ({})", t.name, t.class);
        let dw = if t.pool_in_dw { "dW+pool" } else { "dW" };
        let passes = [("forward", Some(t.forward)), (dw, t.dw), ("dX", t.dx)];
        for (i, (pass, secs)) in passes.into_iter().enumerate() {
            let Some(secs) = secs else { continue };
            sum += secs;
            let name = if i == 0 { label.as_str() } else { "" };
            if t.flops == 0 {
                writeln!(out, "  {name:<30} {pass:<8} {:>10.3} {:>9} {:>10}", secs * 1e3, "-", "-")?;
            } else {
                let g = (t.flops * batch as u64) as f64 / secs / 1e9;
                let pct = 100.0 * g / all_cores_peak;
                writeln!(out, "  {name:<30} {pass:<8} {:>10.3} {g:>9.1} {pct:>9.1}%", secs * 1e3)?;
            }
        }
    }
    let flops = spec.train_flops_per_sample() as f64;
    let step_secs = batch as f64 / step;
    writeln!(out, "  {:<39} {:>10.3}", "sum of the layers", sum * 1e3)?;
    writeln!(
        out,
        "\nTraining step (gather, layers, loss, Adam): {:.3} ms = {step:.0} samples/s, {:.1} GFLOP/s, {:.1}% of peak",
        step_secs * 1e3,
        step * flops / 1e9,
        100.0 * step * flops / 1e9 / all_cores_peak
    )?;
    writeln!(
        out,
        "  FLOP limit at this peak: {:.0} samples/s ({:.1} MFLOP per sample); a 48,000-image epoch in {:.1} s",
        all_cores_peak * 1e9 / flops,
        flops / 1e6,
        48_000.0 / step
    )?;
    // The workspace the step above ran in (its buffers, not an estimate).
    let ws = Workspace::new(spec, batch, 42).bytes();
    let mib = |b: usize| b as f64 / (1 << 20) as f64;
    writeln!(
        out,
        "Memory: the step's workspace {:.1} MiB at batch {batch} (activations, their gradients, masks, conv \
         scratch, parameter gradients); parameters and Adam's two slots {:.1} MiB; allocated once, none per step",
        mib(ws),
        mib(4 * 3 * spec.param_count())
    )?;
    Ok(())
}

/// Runs the whole report.
pub fn run(args: &BenchArgs) -> Result<()> {
    // The flag is bounded (cli::parse_bench_seconds); a library caller's
    // value is checked too, as `from_secs_f32` panics on overflow.
    let budget = Duration::try_from_secs_f32(args.seconds)
        .map_err(|e| crate::Error::new(format!("--seconds {}: {e}", args.seconds)))?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads as usize)
        .start_handler(|_| crate::fpu::flush_denormals_to_zero())
        .build()
        .map_err(|e| crate::Error::new(format!("--threads {}: {e}", args.threads)))?;
    let mut data = Dataset::open(&args.data.data_dir(), &args.data.cache_dir())?;
    // As training does, so the samples/s below are training's.
    data.train.prefer_huge_pages();
    // The --arch model, checked against the data before anything is timed.
    let model = match &args.arch {
        Some(arch) => {
            let model_args =
                crate::cli::ModelArgs { arch: arch.clone(), hidden: None, activation: None, dropout: None };
            Some(crate::app::model_spec(&model_args, &data)?)
        }
        None => None,
    };
    let printed = pool.install(|| -> std::io::Result<()> {
        crate::fpu::flush_denormals_to_zero();
        if let Some(spec) = &model {
            return run_model_report(args, &data, spec, budget);
        }
        let isa = gemm::selected_isa();
        let spec = ModelSpec::mlp((data.train.rows, data.train.cols), &[100], Activation::Relu, data.classes, 0.0)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", args.data.data_dir().display())))?;
        let batches = [32, 128, 256];
        let secs = budget.as_secs_f64();
        // What the wait is for (the report is printed when all is timed);
        // a closed stderr is no reason to stop.
        let _ = writeln!(
            std::io::stderr(),
            "simdnet bench: timing the FMA peak, {} GEMM shapes and {} batch sizes (about {:.0} s)",
            SHAPES.len(),
            batches.len(),
            secs * (2.5 + 1.5 * SHAPES.len() as f64 + 2.5 * batches.len() as f64)
        );
        // The timings below are the best of chunks ~budget / 10 long, so
        // the 100% line is the peak timed in windows as long (the host's
        // interrupts cost both alike; see `gemm::fma_peak_gflops_over`).
        // It is the best of slices taken before every timing: a busy spell
        // only ever lowers a window's rate, and a 100% line measured in one
        // would flatter every row. The short-window peak is shown too.
        let window = chunk_window(budget);
        let short_peak = gemm::fma_peak_gflops(budget);
        let mut peak = gemm::fma_peak_gflops_over(budget, window);
        let mut gemms = Vec::with_capacity(SHAPES.len());
        for &(m, n, k, ops, _) in SHAPES {
            peak = peak.max(gemm::fma_peak_gflops_over(budget / 2, window));
            gemms.push(gemm_gflops(isa, m, n, k, ops, budget));
        }
        let mut trains = Vec::with_capacity(batches.len());
        for batch in batches {
            peak = peak.max(gemm::fma_peak_gflops_over(budget / 2, window));
            trains.push(train_samples_per_second(&data, &spec, OptimizerKind::adam(), batch, budget * 2));
        }
        let all_cores_peak = peak * args.threads as f64;

        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "FP32 FMA peak, one core ({}): {peak:.1} GFLOP/s in {:.0}-ms windows, as the timings below \
             (their 100%); {short_peak:.1} in 0.2-ms ones",
            isa.name(),
            window.as_secs_f64() * 1e3
        )?;
        writeln!(out, "\nSGEMM, {} thread(s), path {}", args.threads, isa.name())?;
        // The lane ceiling: the kernels vectorise over C's n columns, so n
        // not a multiple of the vector width caps the share of peak (n = 10
        // on AVX-512 with Hᵀ: 10 of 16 lanes) unless its last few columns
        // take an interleaved tail (n = 100: 100%) or, n = 10 with A by
        // rows, the split thin kernel (100%).
        writeln!(out, "  {:<16} {:<24} {:>9} {:>10} {:>13}", "m×n×k", "what", "GFLOP/s", "% of peak", "lane ceiling")?;
        for (&(m, n, k, ops, what), g) in SHAPES.iter().zip(gemms) {
            let pct = 100.0 * g / all_cores_peak;
            let ceiling = 100.0 * isa.lane_ceiling(n, k, ops != Operands::TransA);
            writeln!(out, "  {:<16} {:<24} {g:>9.1} {pct:>9.1}% {ceiling:>12.1}%", format!("{m}×{n}×{k}"), what)?;
        }
        let flops = spec.train_flops_per_sample() as f64;
        writeln!(
            out,
            "\nTraining {} with Adam, {} thread(s) ({:.0} FLOP per sample)",
            spec.describe(),
            args.threads,
            flops
        )?;
        writeln!(out, "  {:<6} {:>12} {:>10} {:>9} {:>10}", "batch", "samples/s", "µs/step", "GFLOP/s", "% of peak")?;
        for (batch, sps) in batches.into_iter().zip(trains) {
            let g = sps * flops / 1e9;
            writeln!(
                out,
                "  {batch:<6} {sps:>12.0} {:>10.1} {g:>9.1} {:>9.1}%",
                batch as f64 / sps * 1e6,
                100.0 * g / all_cores_peak
            )?;
        }
        Ok(())
    });
    crate::error::printed(printed)
}
