//! A training step allocates nothing after the first: proven with a counting
//! global allocator. (One test in this binary, so no other test thread
//! allocates while counting.)

use simdnet::gemm::Activation;
use simdnet::model::{Model, ModelSpec, Workspace};
use simdnet::optim::{Optimizer, OptimizerKind};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

struct Counting;
static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn training_steps_allocate_nothing_after_the_first() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    // Every worker has started (thread start-up allocates) before counting.
    pool.broadcast(|_| ());
    let mlp = |hidden: &[usize], dropout| ModelSpec::mlp((28, 28), hidden, Activation::Relu, 10, dropout).unwrap();
    let layers = |list: &str| ModelSpec::new((28, 28), &simdnet::arch::parse(list).unwrap()).unwrap();
    for (batch, spec, kind) in [
        (32, mlp(&[100], 0.0), OptimizerKind::adam()),
        (256, mlp(&[300, 100], 0.3), OptimizerKind::Sgd { momentum: 0.9, nesterov: true }),
        (7, mlp(&[33], 0.0), OptimizerKind::rmsprop()),
        (32, ModelSpec::new((28, 28), &simdnet::arch::cnn(10)).unwrap(), OptimizerKind::adam()),
        (5, layers("conv2d(3,5,sigmoid,valid),dropout(0.2),maxpool(3),flatten,dense(10)"), OptimizerKind::adagrad()),
    ] {
        let mut model = Model::new(spec.clone(), 1);
        let mut opt = Optimizer::new(kind, 0.01, spec.param_count());
        let mut ws = Workspace::new(&spec, batch, 1);
        let x: Vec<f32> = (0..batch * 784).map(|i| (i % 255) as f32 / 255.0).collect();
        let y: Vec<u32> = (0..batch as u32).map(|i| i % 10).collect();
        // As the binary runs it (app::run_in_pool): on a thread of a
        // two-thread pool, so the kernels' parallel paths run too.
        pool.install(|| {
            model.train_step(&mut opt, &mut ws, &x, &y); // the first may allocate (packing buffers)
            COUNTING.store(true, Ordering::SeqCst);
            for _ in 0..5 {
                model.train_step(&mut opt, &mut ws, &x, &y);
            }
            // A short last batch of the epoch, too.
            model.train_step(&mut opt, &mut ws, &x[..(batch / 2 + 1) * 784], &y[..batch / 2 + 1]);
            COUNTING.store(false, Ordering::SeqCst);
        });
        let n = ALLOCATIONS.swap(0, Ordering::SeqCst);
        assert_eq!(n, 0, "batch {batch}, {}: {n} heap allocations in 6 training steps", spec.describe());
    }
}
