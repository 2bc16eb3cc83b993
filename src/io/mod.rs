//! Files: checkpoints (safetensors) and atomic writes.

pub mod checkpoint;
