//! `Tensor`: a GPU storage buffer with a shape and a dtype, and the host upload/download helpers
//! used by tests, metrics and benchmarks (never by the training hot path).

use crate::error::{Error, Result};
use crate::gpu::device::Gpu;
use wgpu::util::DeviceExt;

/// Element type of a tensor.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    U32,
    /// IEEE half; needs `SHADER_F16` for kernels that read it.
    F16,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::U32 => 4,
            DType::F16 => 2,
        }
    }
}

/// A buffer with its shape and dtype. Cloning shares the buffer (wgpu handles are counted).
#[derive(Clone)]
pub struct Tensor {
    pub buf: wgpu::Buffer,
    pub shape: Vec<usize>,
    pub dtype: DType,
}

const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl Tensor {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Size in bytes of the data (the buffer itself is padded with zeros to a multiple of 16
    /// bytes, so kernels may read and write f32 tensors as vec4s).
    pub fn bytes(&self) -> u64 {
        (self.len() * self.dtype.size()) as u64
    }

    fn check(gpu: &Gpu, label: &str, shape: &[usize], dtype: DType) -> Result<u64> {
        let n: usize = shape.iter().product();
        let bytes = ((n * dtype.size()) as u64).div_ceil(16).max(1) * 16;
        gpu.check_binding(&format!("tensor '{label}' of shape {shape:?}"), bytes)?;
        Ok(bytes)
    }

    /// An uninitialised (zeroed by wgpu) tensor.
    pub fn empty(gpu: &Gpu, label: &str, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let bytes = Self::check(gpu, label, shape, dtype)?;
        let buf = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage: USAGE,
            mapped_at_creation: false,
        });
        Ok(Tensor {
            buf,
            shape: shape.to_vec(),
            dtype,
        })
    }

    fn from_bytes(
        gpu: &Gpu,
        label: &str,
        shape: &[usize],
        dtype: DType,
        data: &[u8],
    ) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        if data.len() != n * dtype.size() {
            return Err(Error::Shape {
                op: "Tensor upload",
                msg: format!(
                    "shape {shape:?} needs {} values, got {}",
                    n,
                    data.len() / dtype.size()
                ),
            });
        }
        let bytes = Self::check(gpu, label, shape, dtype)?;
        let mut padded = data.to_vec();
        padded.resize(bytes as usize, 0);
        let buf = gpu
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: &padded,
                usage: USAGE,
            });
        Ok(Tensor {
            buf,
            shape: shape.to_vec(),
            dtype,
        })
    }

    /// Uploads f32 values.
    pub fn from_f32(gpu: &Gpu, label: &str, shape: &[usize], data: &[f32]) -> Result<Tensor> {
        Self::from_bytes(gpu, label, shape, DType::F32, bytemuck::cast_slice(data))
    }

    /// Uploads u32 values.
    pub fn from_u32(gpu: &Gpu, label: &str, shape: &[usize], data: &[u32]) -> Result<Tensor> {
        Self::from_bytes(gpu, label, shape, DType::U32, bytemuck::cast_slice(data))
    }

    /// Uploads f16 values.
    pub fn from_f16(gpu: &Gpu, label: &str, shape: &[usize], data: &[half::f16]) -> Result<Tensor> {
        Self::from_bytes(gpu, label, shape, DType::F16, bytemuck::cast_slice(data))
    }

    /// Overwrites the contents with `data` (same length).
    pub fn write_f32(&self, gpu: &Gpu, data: &[f32]) -> Result<()> {
        self.expect(DType::F32, data.len())?;
        gpu.queue
            .write_buffer(&self.buf, 0, bytemuck::cast_slice(data));
        Ok(())
    }

    /// Overwrites the contents with `data` (same length).
    pub fn write_u32(&self, gpu: &Gpu, data: &[u32]) -> Result<()> {
        self.expect(DType::U32, data.len())?;
        gpu.queue
            .write_buffer(&self.buf, 0, bytemuck::cast_slice(data));
        Ok(())
    }

    /// Fills every 32-bit word of the buffer with `bits` (tests poison outputs with this, so that an
    /// element a kernel never wrote cannot pass for a real value).
    pub fn poison(&self, gpu: &Gpu, bits: u32) {
        let words = (self.buf.size() / 4) as usize;
        gpu.queue
            .write_buffer(&self.buf, 0, bytemuck::cast_slice(&vec![bits; words]));
    }

    fn expect(&self, dtype: DType, n: usize) -> Result<()> {
        if self.dtype != dtype || self.len() != n {
            return Err(Error::Shape {
                op: "Tensor write",
                msg: format!(
                    "tensor is {:?} {:?}, data is {dtype:?} with {n} values",
                    self.dtype, self.shape
                ),
            });
        }
        Ok(())
    }

    /// Downloads f32 values.
    pub fn to_f32(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        self.expect(DType::F32, self.len())?;
        let b = gpu.read_bytes(&self.buf, 0, self.bytes())?;
        Ok(bytemuck::pod_collect_to_vec(&b))
    }

    /// Downloads u32 values.
    pub fn to_u32(&self, gpu: &Gpu) -> Result<Vec<u32>> {
        self.expect(DType::U32, self.len())?;
        let b = gpu.read_bytes(&self.buf, 0, self.bytes())?;
        Ok(bytemuck::pod_collect_to_vec(&b))
    }

    /// Downloads f16 values.
    pub fn to_f16(&self, gpu: &Gpu) -> Result<Vec<half::f16>> {
        self.expect(DType::F16, self.len())?;
        let b = gpu.read_bytes(&self.buf, 0, self.bytes())?;
        Ok(bytemuck::pod_collect_to_vec(&b))
    }
}
