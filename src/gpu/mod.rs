//! The GPU layer: device selection ([`device`]), the kernel library and pipeline cache
//! ([`kernels`]), tensors ([`tensor`]), timing ([`profile`]) and keeping a CPU adapter's cores
//! awake during a loop of steps ([`warm`]).

pub mod device;
pub mod kernels;
pub mod profile;
pub mod tensor;
pub mod warm;

pub use device::{DeviceOptions, Gpu, Rec};
pub use kernels::{Binding, KernelCache, KernelSpec, ShaderId};
pub use tensor::{DType, Tensor};
pub use warm::{KeepWarm, KeepWarmMode};
