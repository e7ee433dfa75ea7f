//! The layers' kernels, one file per kind: Dense (through the GEMM with a
//! fused epilogue), Conv2D (im2col into the GEMM, or direct for short patches), MaxPooling2D and dropout's
//! mask. Each keeps a plain `reference` as its test oracle; the Sequential
//! that strings them together is [`crate::model`].

pub mod conv2d;
pub mod conv_direct;
pub mod dense;
pub mod dropout;
pub mod maxpool;
