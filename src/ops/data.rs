//! The batch gather kernel (shaders/data.wgsl): u8 pixels on the GPU -> a normalised f32 batch
//! and its u32 labels, through the epoch permutation, with optional crop/flip augmentation.

use crate::gpu::kernels::ShaderId;

crate::gpu_params!(
    ShaderId::Data,
    /// Mirrors `GatherParams`.
    pub struct GatherParams {
        pub batch: u32,
        pub c: u32,
        pub h: u32,
        pub w: u32,
        pub start: u32,
        pub split: u32,
        pub pad: u32,
        pub flip: u32,
        pub seed: u32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub _pad2: u32,
        pub mean: [f32; 4],
        pub inv_std: [f32; 4],
    }
);
