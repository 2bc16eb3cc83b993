//! Kernel families. Each module owns one WGSL file's entry points: a `#[repr(C)]` params struct
//! that mirrors the WGSL uniform (declared with [`gpu_params!`], so a test can check the layouts
//! against naga's), and constructors that return a prepared [`Dispatch`].
//!
//! A [`Dispatch`] is one value (pipeline, bind group, params buffer, workgroup counts). It is
//! built once, when a plan or a benchmark is set up, and `encode` only records it into a pass.

pub mod bench;
pub mod conv;
pub mod convert;
pub mod data;
pub mod elementwise;
pub mod gemm;
pub mod linear;
pub mod loss;
pub mod norm;
pub mod optim;
pub mod pool;
pub mod quant;
pub mod reduce;
pub mod relax;

use std::sync::Arc;

use crate::error::Result;
use crate::gpu::device::{Gpu, Rec};
use crate::gpu::kernels::{Kernel, KernelSpec, Res, ShaderId};

/// A params struct mirrored by a WGSL struct of the same name in `SHADER`.
pub trait GpuParams: bytemuck::Pod {
    /// The WGSL struct's name.
    const WGSL_STRUCT: &'static str;
    /// The file that declares it.
    const SHADER: ShaderId;
    /// (field name, byte offset) of every field, in order.
    fn fields() -> Vec<(&'static str, usize)>;
}

/// Declares a `#[repr(C)] Pod` params struct and its [`GpuParams`] impl.
#[macro_export]
macro_rules! gpu_params {
    ($shader:expr, $(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident : $t:ty,)* }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Copy, Clone, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct $name { $($(#[$fm])* pub $f: $t,)* }
        impl $crate::ops::GpuParams for $name {
            const WGSL_STRUCT: &'static str = stringify!($name);
            const SHADER: $crate::gpu::kernels::ShaderId = $shader;
            fn fields() -> Vec<(&'static str, usize)> {
                vec![$((stringify!($f), core::mem::offset_of!($name, $f)),)*]
            }
        }
    };
}

/// One prepared kernel launch.
pub struct Dispatch {
    pub kernel: Arc<Kernel>,
    pub bind_group: wgpu::BindGroup,
    pub params: wgpu::Buffer,
    pub groups: [u32; 3],
}

impl Dispatch {
    /// Builds the pipeline (cached), the params buffer and the bind group.
    pub fn new<P: GpuParams>(
        gpu: &Gpu,
        spec: &KernelSpec,
        params: &P,
        buffers: &[&wgpu::Buffer],
        groups: [u32; 3],
    ) -> Result<Dispatch> {
        let res: Vec<Res<'_>> = buffers.iter().map(|b| Res::from(*b)).collect();
        Self::with_resources(gpu, spec, params, &res, groups)
    }

    /// Like [`Dispatch::new`] with any resources (buffer ranges, texture views).
    pub fn with_resources<P: GpuParams>(
        gpu: &Gpu,
        spec: &KernelSpec,
        params: &P,
        resources: &[Res<'_>],
        groups: [u32; 3],
    ) -> Result<Dispatch> {
        let kernel = gpu.kernel(spec)?;
        let params = gpu.uniform(&kernel.label, params);
        let bind_group = kernel.bind(gpu, &params, resources);
        Ok(Dispatch {
            kernel,
            bind_group,
            params,
            groups,
        })
    }

    /// Rewrites the params (same layout) without rebuilding anything.
    pub fn set_params<P: GpuParams>(&self, gpu: &Gpu, params: &P) {
        gpu.queue
            .write_buffer(&self.params, 0, bytemuck::bytes_of(params));
    }

    /// Records the dispatch (into the recorder's open compute pass).
    pub fn encode(&self, rec: &mut Rec<'_>) {
        self.kernel
            .dispatch(rec.pass(), &self.bind_group, self.groups);
    }

    /// Records and submits the dispatch on its own (tests and one-off jobs).
    pub fn run(&self, gpu: &Gpu) {
        gpu.run_pass(&self.kernel.label, |pass| self.encode(pass));
    }
}

/// A copy of a buffer into a texture, as one or more regions (a transfer command: it runs at
/// memcpy speed where a packing kernel would load and store every element).
pub struct TexCopy {
    pub label: &'static str,
    pub src: wgpu::Buffer,
    pub dst: wgpu::Texture,
    /// (byte offset in src, bytes per row, texture origin, extent)
    pub regions: Vec<(u64, u32, wgpu::Origin3d, wgpu::Extent3d)>,
}

impl TexCopy {
    pub fn encode(&self, rec: &mut Rec<'_>) {
        let enc = rec.encoder();
        for &(offset, bytes_per_row, origin, extent) in &self.regions {
            enc.copy_buffer_to_texture(
                wgpu::TexelCopyBufferInfo {
                    buffer: &self.src,
                    layout: wgpu::TexelCopyBufferLayout {
                        offset,
                        bytes_per_row: Some(bytes_per_row),
                        rows_per_image: Some(extent.height),
                    },
                },
                wgpu::TexelCopyTextureInfo {
                    texture: &self.dst,
                    mip_level: 0,
                    origin,
                    aspect: wgpu::TextureAspect::All,
                },
                extent,
            );
        }
    }
}

/// One recorded command of an op.
pub enum Step {
    Dispatch(Dispatch),
    Copy(TexCopy),
}

impl Step {
    pub fn encode(&self, rec: &mut Rec<'_>) {
        match self {
            Step::Dispatch(d) => d.encode(rec),
            Step::Copy(c) => c.encode(rec),
        }
    }

    /// The kernel's label, or the copy's.
    pub fn label(&self) -> &str {
        match self {
            Step::Dispatch(d) => &d.kernel.label,
            Step::Copy(c) => c.label,
        }
    }

    /// Records and submits the step on its own.
    pub fn run(&self, gpu: &Gpu) {
        gpu.run_pass(self.label(), |rec| self.encode(rec));
    }
}

impl From<Dispatch> for Step {
    fn from(d: Dispatch) -> Self {
        Step::Dispatch(d)
    }
}

/// A prepared op of one or more steps (dispatches and copies), with the scratch resources it owns
/// (for example the packed textures of the texture-fed GEMM and convs).
pub struct Op {
    pub steps: Vec<Step>,
    pub textures: Vec<wgpu::Texture>,
}

impl From<Dispatch> for Op {
    fn from(d: Dispatch) -> Self {
        Op {
            steps: vec![d.into()],
            textures: Vec::new(),
        }
    }
}

impl Op {
    /// An op of these dispatches, owning no textures.
    pub fn of(steps: Vec<Dispatch>) -> Op {
        Op {
            steps: steps.into_iter().map(Step::from).collect(),
            textures: Vec::new(),
        }
    }

    /// Records every step, in order.
    pub fn encode(&self, rec: &mut Rec<'_>) {
        for s in &self.steps {
            s.encode(rec);
        }
    }

    /// The op's last dispatch (the kernel whose params a caller updates), if it has one.
    pub fn last_dispatch(&self) -> Option<&Dispatch> {
        self.steps.iter().rev().find_map(|s| match s {
            Step::Dispatch(d) => Some(d),
            Step::Copy(_) => None,
        })
    }

    /// Appends `other`'s steps and takes its textures.
    pub fn append(&mut self, other: Op) {
        self.steps.extend(other.steps);
        self.textures.extend(other.textures);
    }

    /// Records and submits the op on its own.
    pub fn run(&self, gpu: &Gpu) {
        gpu.run_pass("op", |rec| self.encode(rec));
    }
}

/// Workgroup grid for `n` elements at `wg` invocations per workgroup.
pub fn grid_for(gpu: &Gpu, n: usize, wg: u32) -> [u32; 3] {
    let groups = (n as u64).div_ceil(u64::from(wg)) as u32;
    crate::gpu::kernels::grid_1d(groups, gpu.limits.max_compute_workgroups_per_dimension)
}
