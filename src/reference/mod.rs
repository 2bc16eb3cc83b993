//! CPU twins of every WGSL entry point, written for clarity rather than speed, in f64 where
//! precision matters. Tests run each kernel against its twin on random inputs of awkward shapes.
//! The modules mirror `ops/`.

pub mod bench;
pub mod conv;
pub mod convert;
pub mod data;
pub mod elementwise;
pub mod gemm;
pub mod loss;
pub mod model;
pub mod norm;
pub mod optim;
pub mod pool;
pub mod quant;
pub mod reduce;
pub mod relax;
