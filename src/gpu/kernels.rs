//! The WGSL kernel library: one `include_str!` table of shader files, and one [`KernelCache`] of
//! compute pipelines keyed by (shader, entry point, override constants).
//!
//! Every pipeline has an explicit bind group layout built from its [`Binding`] list (binding 0 is
//! always the kernel's uniform params struct). Module and pipeline creation run inside a
//! validation error scope, so a broken shader comes back as [`Error::Shader`] naming the file and
//! entry point rather than as a panic in wgpu's default error handler.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::gpu::device::Gpu;

/// One WGSL file per op family.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ShaderId {
    Elementwise,
    Reduce,
    Gemm,
    GemmTex,
    LinearTex,
    Bench,
    Convert,
    Conv,
    ConvSg,
    ConvTex,
    Norm,
    Pool,
    Loss,
    Optim,
    Data,
    Quant,
}

impl ShaderId {
    /// Every shader file, for validation.
    pub const ALL: &'static [ShaderId] = &[
        ShaderId::Elementwise,
        ShaderId::Reduce,
        ShaderId::Gemm,
        ShaderId::GemmTex,
        ShaderId::LinearTex,
        ShaderId::Bench,
        ShaderId::Convert,
        ShaderId::Conv,
        ShaderId::ConvSg,
        ShaderId::ConvTex,
        ShaderId::Norm,
        ShaderId::Pool,
        ShaderId::Loss,
        ShaderId::Optim,
        ShaderId::Data,
        ShaderId::Quant,
    ];

    /// The file's stem in `shaders/`.
    pub fn name(self) -> &'static str {
        match self {
            ShaderId::Elementwise => "elementwise",
            ShaderId::Reduce => "reduce",
            ShaderId::Gemm => "gemm",
            ShaderId::GemmTex => "gemm_tex",
            ShaderId::LinearTex => "linear_tex",
            ShaderId::Bench => "bench",
            ShaderId::Convert => "convert",
            ShaderId::Conv => "conv",
            ShaderId::ConvSg => "conv_sg",
            ShaderId::ConvTex => "conv_tex",
            ShaderId::Norm => "norm",
            ShaderId::Pool => "pool",
            ShaderId::Loss => "loss",
            ShaderId::Optim => "optim",
            ShaderId::Data => "data",
            ShaderId::Quant => "quant",
        }
    }

    /// The WGSL source.
    pub fn source(self) -> &'static str {
        match self {
            ShaderId::Elementwise => include_str!("../../shaders/elementwise.wgsl"),
            ShaderId::Reduce => include_str!("../../shaders/reduce.wgsl"),
            ShaderId::Gemm => include_str!("../../shaders/gemm.wgsl"),
            ShaderId::GemmTex => include_str!("../../shaders/gemm_tex.wgsl"),
            ShaderId::LinearTex => include_str!("../../shaders/linear_tex.wgsl"),
            ShaderId::Bench => include_str!("../../shaders/bench.wgsl"),
            ShaderId::Convert => include_str!("../../shaders/convert.wgsl"),
            ShaderId::Conv => include_str!("../../shaders/conv.wgsl"),
            ShaderId::ConvSg => include_str!("../../shaders/conv_sg.wgsl"),
            ShaderId::ConvTex => include_str!("../../shaders/conv_tex.wgsl"),
            ShaderId::Norm => include_str!("../../shaders/norm.wgsl"),
            ShaderId::Pool => include_str!("../../shaders/pool.wgsl"),
            ShaderId::Loss => include_str!("../../shaders/loss.wgsl"),
            ShaderId::Optim => include_str!("../../shaders/optim.wgsl"),
            ShaderId::Data => include_str!("../../shaders/data.wgsl"),
            ShaderId::Quant => include_str!("../../shaders/quant.wgsl"),
        }
    }

    /// True for files that `enable f16;` and so need `SHADER_F16`.
    pub fn needs_f16(self) -> bool {
        matches!(self, ShaderId::Convert)
    }

    /// True for files whose indexing is proven in bounds (each access is argued in the file's
    /// header, and the host checks buffer sizes, texture limits and the subgroup size before it
    /// builds a dispatch), so they are created without wgpu's runtime bounds checks (unless
    /// `INCQ_BOUNDS_CHECKS=1`, see [`KernelCache::set_all_checked`]).
    pub fn bounds_proven(self) -> bool {
        matches!(self, ShaderId::ConvTex | ShaderId::LinearTex)
    }

    /// True for files that use subgroup operations and so need `SUBGROUP`.
    pub fn needs_subgroups(self) -> bool {
        matches!(
            self,
            ShaderId::GemmTex | ShaderId::LinearTex | ShaderId::ConvSg | ShaderId::ConvTex
        )
    }
}

/// How a binding is used by a kernel.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Binding {
    /// The params struct (always binding 0).
    Uniform,
    /// A storage buffer the kernel only reads.
    Read,
    /// A storage buffer the kernel writes.
    ReadWrite,
    /// A read-only rgba32float 2-D array storage texture.
    TexRead,
    /// A write-only rgba32float 2-D array storage texture.
    TexWrite,
}

/// One resource bound to a kernel: a (range of a) buffer or a texture view.
#[derive(Clone)]
pub enum Res<'a> {
    Buf(wgpu::BufferBinding<'a>),
    View(&'a wgpu::TextureView),
}

impl<'a> From<&'a wgpu::Buffer> for Res<'a> {
    fn from(b: &'a wgpu::Buffer) -> Self {
        Res::Buf(b.as_entire_buffer_binding())
    }
}

impl<'a> From<&'a wgpu::TextureView> for Res<'a> {
    fn from(v: &'a wgpu::TextureView) -> Self {
        Res::View(v)
    }
}

/// What to build: a shader entry point with its bindings and override constants.
#[derive(Clone, Debug)]
pub struct KernelSpec {
    pub shader: ShaderId,
    pub entry: &'static str,
    pub bindings: &'static [Binding],
    /// Override constants (tile and workgroup sizes). Values are exact small integers or floats.
    pub overrides: Vec<(&'static str, f64)>,
}

impl KernelSpec {
    pub fn new(shader: ShaderId, entry: &'static str, bindings: &'static [Binding]) -> Self {
        KernelSpec {
            shader,
            entry,
            bindings,
            overrides: Vec::new(),
        }
    }

    /// Adds an override constant.
    pub fn with(mut self, name: &'static str, value: f64) -> Self {
        self.overrides.push((name, value));
        self
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct KernelKey {
    shader: ShaderId,
    entry: &'static str,
    trusted: bool,
    overrides: Vec<(&'static str, u64)>,
}

/// A built compute pipeline and its bind group layout.
pub struct Kernel {
    pub label: String,
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
    pub bindings: &'static [Binding],
}

impl Kernel {
    /// Builds a bind group: `params` at binding 0, then `resources` in the order of the spec.
    pub fn bind(&self, gpu: &Gpu, params: &wgpu::Buffer, resources: &[Res<'_>]) -> wgpu::BindGroup {
        assert_eq!(
            resources.len() + 1,
            self.bindings.len(),
            "kernel {} takes {} resources besides its params",
            self.label,
            self.bindings.len() - 1
        );
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: params.as_entire_binding(),
        }];
        for (i, r) in resources.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: match r {
                    Res::Buf(b) => wgpu::BindingResource::Buffer(b.clone()),
                    Res::View(v) => wgpu::BindingResource::TextureView(v),
                },
            });
        }
        gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&self.label),
            layout: &self.layout,
            entries: &entries,
        })
    }

    /// Records one dispatch into a pass.
    pub fn dispatch(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        bg: &wgpu::BindGroup,
        groups: [u32; 3],
    ) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, bg, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
    }
}

/// Pipelines cached by (shader, entry, overrides); shader modules cached per (file, checked or
/// not).
#[derive(Default)]
pub struct KernelCache {
    modules: Mutex<HashMap<(ShaderId, bool), Arc<wgpu::ShaderModule>>>,
    kernels: Mutex<HashMap<KernelKey, Arc<Kernel>>>,
    /// Build every kernel with wgpu's bounds checks, the proven ones included (set from
    /// `INCQ_BOUNDS_CHECKS=1` when the device opens; for debugging and for A/B timing).
    all_checked: std::sync::atomic::AtomicBool,
    /// WGSL that replaces a file's embedded source (`set_source`).
    sources: Mutex<HashMap<ShaderId, Arc<str>>>,
}

fn layout_entries(bindings: &[Binding]) -> Vec<wgpu::BindGroupLayoutEntry> {
    bindings
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupLayoutEntry {
            binding: i as u32,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: match b {
                Binding::Uniform => wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                Binding::Read => wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only: true },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                Binding::ReadWrite => wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only: false },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                Binding::TexRead => wgpu::BindingType::StorageTexture {
                    access: wgpu::StorageTextureAccess::ReadOnly,
                    format: wgpu::TextureFormat::Rgba32Float,
                    view_dimension: wgpu::TextureViewDimension::D2Array,
                },
                Binding::TexWrite => wgpu::BindingType::StorageTexture {
                    access: wgpu::StorageTextureAccess::WriteOnly,
                    format: wgpu::TextureFormat::Rgba32Float,
                    view_dimension: wgpu::TextureViewDimension::D2Array,
                },
            },
            count: None,
        })
        .collect()
}

impl KernelCache {
    /// Builds the kernels made from now on with wgpu's runtime bounds checks when `on`, even
    /// where `ShaderId::bounds_proven` holds (kernels already built keep theirs).
    pub fn set_all_checked(&self, on: bool) {
        self.all_checked
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Builds `shader`'s kernels made from now on from `wgsl` instead of the embedded file (for
    /// kernel development: `INCQ_SHADER_DIR=dir` loads `dir/<name>.wgsl` for every file found
    /// there when the device opens, so an edited kernel runs without a rebuild; and for A/B
    /// timing of two versions in one process). The file's bounds-check status is unchanged, so
    /// an edit of a `bounds_proven` file must keep its proof.
    pub fn set_source(&self, shader: ShaderId, wgsl: String) {
        self.sources.lock().unwrap().insert(shader, Arc::from(wgsl));
    }

    fn trusted(&self, spec: &KernelSpec) -> bool {
        spec.shader.bounds_proven() && !self.all_checked.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The module of `shader`, built without wgpu's runtime bounds checks when `trusted`.
    fn module(
        &self,
        gpu: &Gpu,
        shader: ShaderId,
        trusted: bool,
    ) -> Result<Arc<wgpu::ShaderModule>> {
        if let Some(m) = self.modules.lock().unwrap().get(&(shader, trusted)) {
            return Ok(m.clone());
        }
        if shader.needs_f16() && !gpu.has_f16() {
            return Err(Error::Shader {
                shader: shader.name(),
                entry: "*".into(),
                msg: "the adapter lacks SHADER_F16".into(),
            });
        }
        if shader.needs_subgroups() && !gpu.features.contains(wgpu::Features::SUBGROUP) {
            return Err(Error::Shader {
                shader: shader.name(),
                entry: "*".into(),
                msg: "the adapter lacks SUBGROUP".into(),
            });
        }
        let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let source = self.sources.lock().unwrap().get(&shader).cloned();
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(shader.name()),
            source: wgpu::ShaderSource::Wgsl(match &source {
                Some(s) => s.to_string().into(),
                None => shader.source().into(),
            }),
        };
        let module = if trusted {
            // SAFETY: `bounds_proven` lists only files whose every buffer, texture and array
            // access is in bounds by construction, given the host-side checks of their ops
            // (see the file's header); wgpu's injected checks cost a quarter of their time.
            unsafe {
                gpu.device
                    .create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
            }
        } else {
            gpu.device.create_shader_module(desc)
        };
        if let Some(err) = pollster::block_on(scope.pop()) {
            return Err(Error::Shader {
                shader: shader.name(),
                entry: "*".into(),
                msg: err.to_string(),
            });
        }
        let module = Arc::new(module);
        self.modules
            .lock()
            .unwrap()
            .insert((shader, trusted), module.clone());
        Ok(module)
    }

    /// Returns the cached pipeline for `spec`, building it on first use.
    pub fn get(&self, gpu: &Gpu, spec: &KernelSpec) -> Result<Arc<Kernel>> {
        let trusted = self.trusted(spec);
        let key = KernelKey {
            shader: spec.shader,
            entry: spec.entry,
            trusted,
            overrides: spec
                .overrides
                .iter()
                .map(|(n, v)| (*n, v.to_bits()))
                .collect(),
        };
        if let Some(k) = self.kernels.lock().unwrap().get(&key) {
            return Ok(k.clone());
        }
        let module = self.module(gpu, spec.shader, trusted)?;
        let label = format!("{}::{}", spec.shader.name(), spec.entry);
        let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let layout = gpu
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(&label),
                entries: &layout_entries(spec.bindings),
            });
        let pl = gpu
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(&label),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        let pipeline = gpu
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&label),
                layout: Some(&pl),
                module: &module,
                entry_point: Some(spec.entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &spec.overrides,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        if let Some(err) = pollster::block_on(scope.pop()) {
            return Err(Error::Shader {
                shader: spec.shader.name(),
                entry: spec.entry.to_string(),
                msg: err.to_string(),
            });
        }
        let k = Arc::new(Kernel {
            label,
            pipeline,
            layout,
            bindings: spec.bindings,
        });
        self.kernels.lock().unwrap().insert(key, k.clone());
        Ok(k)
    }
}

/// Splits `groups` workgroups into an (x, y) grid that respects the per-dimension limit.
/// Kernels recover the flat index as `wg.x + wg.y * num_workgroups.x`.
pub fn grid_1d(groups: u32, max_per_dim: u32) -> [u32; 3] {
    let groups = groups.max(1);
    if groups <= max_per_dim {
        [groups, 1, 1]
    } else {
        let y = groups.div_ceil(max_per_dim);
        [groups.div_ceil(y), y, 1]
    }
}
