//! Files: checkpoints (safetensors), atomic writes, and exports of quantized weights as integer
//! codes.

pub mod checkpoint;
pub mod export;
