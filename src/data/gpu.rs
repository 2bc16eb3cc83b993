//! The data set on the GPU: pixels stay u8 (packed 4 to a u32 word) and labels u32, uploaded
//! once. A data set larger than one storage binding (CIFAR-10's 150 MB against lavapipe's 128 MiB)
//! is split in two at an image boundary. [`GpuDataset::gather`] prepares the per-step batch
//! gather, whose params (batch start, seed) are rewritten before each step.

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::gpu::device::Gpu;
use crate::gpu::kernels::{Binding, KernelSpec, ShaderId};
use crate::gpu::tensor::Tensor;
use crate::ops::data::GatherParams;
use crate::ops::{grid_for, Dispatch};

/// A data set resident on the GPU.
pub struct GpuDataset {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub split: usize,
    pub img0: Tensor,
    pub img1: Tensor,
    pub labels: Tensor,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

fn words(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks(4)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(w)
        })
        .collect()
}

impl GpuDataset {
    /// Uploads `d`, splitting the pixels across two bindings when one cannot hold them.
    pub fn upload(gpu: &Gpu, d: &Dataset) -> Result<GpuDataset> {
        let limit = gpu
            .limits
            .max_storage_buffer_binding_size
            .min(gpu.limits.max_buffer_size) as usize;
        Self::upload_with_limit(gpu, d, limit)
    }

    /// Like [`GpuDataset::upload`] with an explicit per-binding byte limit (tests force the split).
    pub fn upload_with_limit(gpu: &Gpu, d: &Dataset, limit: usize) -> Result<GpuDataset> {
        let per = d.image_len();
        if !per.is_multiple_of(4) {
            return Err(Error::Shape {
                op: "dataset upload",
                msg: format!("image size {per} bytes is not a multiple of 4"),
            });
        }
        let per_binding = (limit / per).max(1);
        if d.n > 2 * per_binding {
            return Err(Error::TooLarge {
                what: format!("{} data set of {} images", d.kind.name(), d.n),
                bytes: (d.n * per) as u64,
                limit: 2 * limit as u64,
                kind: "pair of storage bindings",
            });
        }
        let split = d.n.min(per_binding);
        let w0 = words(&d.images[..split * per]);
        let w1 = if split < d.n {
            words(&d.images[split * per..])
        } else {
            vec![0u32]
        };
        let labels: Vec<u32> = d.labels.iter().map(|&l| u32::from(l)).collect();
        Ok(GpuDataset {
            n: d.n,
            c: d.c,
            h: d.h,
            w: d.w,
            split,
            img0: Tensor::from_u32(gpu, "dataset pixels 0", &[w0.len()], &w0)?,
            img1: Tensor::from_u32(gpu, "dataset pixels 1", &[w1.len()], &w1)?,
            labels: Tensor::from_u32(gpu, "dataset labels", &[labels.len()], &labels)?,
            mean: d.mean.clone(),
            std: d.std.clone(),
        })
    }

    /// The params of one gather (batch `batch` starting at `start` in the permutation).
    pub fn params(&self, batch: usize, start: usize, augment: bool, seed: u32) -> GatherParams {
        let mut mean = [0.0; 4];
        let mut inv_std = [1.0; 4];
        for i in 0..self.c.min(4) {
            mean[i] = self.mean[i];
            inv_std[i] = 1.0 / self.std[i];
        }
        GatherParams {
            batch: batch as u32,
            c: self.c as u32,
            h: self.h as u32,
            w: self.w as u32,
            start: start as u32,
            split: self.split as u32,
            pad: if augment { 4 } else { 0 },
            flip: augment as u32,
            seed,
            mean,
            inv_std,
            ..Default::default()
        }
    }

    /// Prepares the gather into `out` (batch x C x H x W f32) and `out_labels` (u32): 4 pixels
    /// per invocation (gather_batch4) where each plane is whole u32 words, else one per pixel.
    pub fn gather(
        &self,
        gpu: &Gpu,
        p: &GatherParams,
        perm: &Tensor,
        out: &Tensor,
        out_labels: &Tensor,
    ) -> Result<Dispatch> {
        let words = (self.h * self.w).is_multiple_of(4)
            && p.batch <= gpu.limits.max_compute_workgroups_per_dimension;
        self.gather_entry(gpu, p, perm, out, out_labels, words)
    }

    /// [`GpuDataset::gather`] with the one-pixel-per-invocation kernel (gather_batch) whatever
    /// the shape, to compare the two.
    pub fn gather_per_pixel(
        &self,
        gpu: &Gpu,
        p: &GatherParams,
        perm: &Tensor,
        out: &Tensor,
        out_labels: &Tensor,
    ) -> Result<Dispatch> {
        self.gather_entry(gpu, p, perm, out, out_labels, false)
    }

    fn gather_entry(
        &self,
        gpu: &Gpu,
        p: &GatherParams,
        perm: &Tensor,
        out: &Tensor,
        out_labels: &Tensor,
        words: bool,
    ) -> Result<Dispatch> {
        const WG: u32 = 64;
        let spec = KernelSpec::new(
            ShaderId::Data,
            if words {
                "gather_batch4"
            } else {
                "gather_batch"
            },
            &[
                Binding::Uniform,
                Binding::ReadWrite,
                Binding::ReadWrite,
                Binding::Read,
                Binding::Read,
                Binding::Read,
                Binding::Read,
            ],
        )
        .with("WG", f64::from(WG));
        let per = self.c * self.h * self.w;
        let groups = if words {
            [((per / 4) as u32).div_ceil(WG), p.batch, 1]
        } else {
            grid_for(gpu, p.batch as usize * per, WG)
        };
        Dispatch::new(
            gpu,
            &spec,
            p,
            &[
                &out.buf,
                &out_labels.buf,
                &perm.buf,
                &self.img0.buf,
                &self.img1.buf,
                &self.labels.buf,
            ],
            groups,
        )
    }
}
