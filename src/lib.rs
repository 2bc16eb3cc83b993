//! incq trains and incrementally quantizes small convolutional networks on any Vulkan, Metal or
//! DX12 GPU through wgpu. Every kernel is hand-written WGSL (in `shaders/`), every WGSL entry point
//! has a CPU twin in [`reference`], and the host only plans, records and submits work.
//!
//! Layout: [`gpu`] (device, kernel cache, tensors, timing), [`ops`] (kernel families with typed
//! params), [`reference`] (CPU twins), [`bench`] (roofline and kernel benchmarks), [`error`].

pub mod bench;
pub mod data;
pub mod error;
pub mod gpu;
pub mod graph;
pub mod io;
pub mod ops;
pub mod profiler;
pub mod reference;
pub mod schedule;
pub mod train;
pub mod tune;

pub use error::{Error, Result};
pub use gpu::{DeviceOptions, Gpu, Tensor};
