//! The GPU layer: device selection ([`device`]), the kernel library and pipeline cache
//! ([`kernels`]), tensors ([`tensor`]) and timing ([`profile`]).

pub mod device;
pub mod kernels;
pub mod profile;
pub mod tensor;

pub use device::{DeviceOptions, Gpu, Rec};
pub use kernels::{Binding, KernelCache, KernelSpec, ShaderId};
pub use tensor::{DType, Tensor};
