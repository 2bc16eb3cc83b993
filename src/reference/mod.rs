//! CPU twins of every WGSL entry point, written for clarity rather than speed, in f64 where
//! precision matters. Tests run each kernel against its twin on random inputs of awkward shapes.
//! The modules mirror `ops/`.

pub mod bench;
pub mod convert;
pub mod elementwise;
pub mod gemm;
pub mod reduce;
