//! simdnet: trains small neural networks on the CPU with hand-written SIMD
//! kernels. Data flows as the modules read:
//!
//! idx (mmap'd IDX files) → dataset → batch (shuffle, u8 → f32) → model
//! (nn: dense, conv2d, maxpool → gemm) → loss → model backward → optim → train (metrics,
//! callbacks) → events → headless / tui; inspect (filters, weight statistics, feature maps) →
//! picture (PNG) for the dashboard's Inside panel and `simdnet inspect`, plot for `simdnet plot`.

pub mod app;
pub mod arch;
pub mod atomic;
pub mod batch;
pub mod bench;
pub mod callbacks;
pub mod checkpoint;
pub mod cli;
pub mod compare;
pub mod dataset;
pub mod error;
pub mod evaluate;
pub mod events;
pub mod files;
pub mod fpu;
pub mod gemm;
pub mod headless;
pub mod idx;
pub mod inspect;
pub mod interrupt;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod nn;
pub mod optim;
pub mod picture;
pub mod plot;
pub mod summary;
pub mod train;
pub mod tui;

pub use error::{Error, Result};
