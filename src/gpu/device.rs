//! Adapter and device selection, limits and features, and blocking readback.
//!
//! incq is headless: it creates an instance without a display handle, honours wgpu's usual
//! environment variables (`WGPU_BACKEND`, `WGPU_ADAPTER_NAME`, ...), and lets the CLI choose a
//! backend and an adapter by name substring. Device creation never panics: a missing adapter is
//! [`Error::NoAdapter`], whose message says how to install a software Vulkan driver.

use crate::error::{Error, Result};
use crate::gpu::kernels::{Kernel, KernelCache, KernelSpec};
use crate::gpu::warm::{KeepWarm, KeepWarmMode};
use std::sync::Arc;
use wgpu::util::DeviceExt;

/// How to choose the device.
#[derive(Clone, Debug, Default)]
pub struct DeviceOptions {
    /// `vulkan`, `metal`, `dx12` or `gl`; `None` means every primary backend (or `WGPU_BACKEND`).
    pub backend: Option<String>,
    /// Case-insensitive substring of the adapter name (or `WGPU_ADAPTER_NAME`).
    pub adapter: Option<String>,
    /// Whether loops of steps keep the cores awake (`--keep-warm`; see [`crate::gpu::warm`]).
    pub keep_warm: KeepWarmMode,
}

/// One adapter as `incq info` shows it.
#[derive(Clone, Debug)]
pub struct AdapterReport {
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    pub chosen: bool,
}

/// An open device: the one thing every op, plan and test takes by reference.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    /// Every pipeline built on this device.
    pub kernels: KernelCache,
    /// Whether [`Gpu::keep_warm`] starts spinners on this device.
    pub keep_warm: bool,
}

/// Parses a `--backend` value.
pub fn parse_backend(name: &str) -> Result<wgpu::Backends> {
    match name.to_ascii_lowercase().as_str() {
        "vulkan" | "vk" => Ok(wgpu::Backends::VULKAN),
        "metal" | "mtl" => Ok(wgpu::Backends::METAL),
        "dx12" | "d3d12" => Ok(wgpu::Backends::DX12),
        "gl" | "gles" | "opengl" => Ok(wgpu::Backends::GL),
        other => Err(Error::BadArg {
            flag: "--backend".into(),
            msg: format!("'{other}' is not one of vulkan, metal, dx12, gl"),
        }),
    }
}

fn backends_for(opts: &DeviceOptions) -> Result<wgpu::Backends> {
    match &opts.backend {
        Some(b) => parse_backend(b),
        None => Ok(wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY)),
    }
}

fn type_rank(t: wgpu::DeviceType) -> u32 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// Enumerates every adapter of the requested backends and marks the one incq would choose.
pub fn list_adapters(opts: &DeviceOptions) -> Result<Vec<AdapterReport>> {
    let backends = backends_for(opts)?;
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends;
    let instance = wgpu::Instance::new(desc);
    let adapters = pollster::block_on(instance.enumerate_adapters(backends));
    let chosen = choose(&adapters, opts);
    Ok(adapters
        .iter()
        .enumerate()
        .map(|(i, a)| AdapterReport {
            info: a.get_info(),
            limits: a.limits(),
            features: a.features(),
            chosen: Some(i) == chosen,
        })
        .collect())
}

fn choose(adapters: &[wgpu::Adapter], opts: &DeviceOptions) -> Option<usize> {
    let want = opts
        .adapter
        .clone()
        .or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok())
        .map(|s| s.to_ascii_lowercase());
    adapters
        .iter()
        .enumerate()
        .filter(|(_, a)| match &want {
            Some(w) => a.get_info().name.to_ascii_lowercase().contains(w),
            None => true,
        })
        .min_by_key(|(i, a)| (type_rank(a.get_info().device_type), *i))
        .map(|(i, _)| i)
}

impl Gpu {
    /// Opens the device chosen by `opts`, with every feature incq can use that the adapter has
    /// (timestamps, f16, subgroups) and the adapter's own limits.
    pub fn open(opts: &DeviceOptions) -> Result<Gpu> {
        let backends = backends_for(opts)?;
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        desc.backends = backends;
        let instance = wgpu::Instance::new(desc);
        let adapters = pollster::block_on(instance.enumerate_adapters(backends));
        let Some(idx) = choose(&adapters, opts) else {
            let mut detail = String::new();
            if let Some(b) = &opts.backend {
                detail.push_str(&format!(" for --backend {b}"));
            }
            if let Some(a) = &opts.adapter {
                detail.push_str(&format!(" matching --adapter '{a}'"));
            }
            if !adapters.is_empty() {
                let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
                detail.push_str(&format!(" (found: {})", names.join(", ")));
            }
            return Err(Error::NoAdapter { detail });
        };
        let adapter = &adapters[idx];
        let info = adapter.get_info();
        let wanted = wgpu::Features::TIMESTAMP_QUERY
            | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES
            | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
            | wgpu::Features::SHADER_F16
            | wgpu::Features::SUBGROUP;
        let features = adapter.features() & wanted;
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("incq"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: Default::default(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: Default::default(),
        }))
        .map_err(|e| Error::Device {
            adapter: info.name.clone(),
            msg: e.to_string(),
        })?;
        let keep_warm = opts.keep_warm.enabled_for(info.device_type);
        Ok(Gpu {
            device,
            queue,
            info,
            limits,
            features,
            kernels: kernel_cache_from_env()?,
            keep_warm,
        })
    }

    /// The cached pipeline for `spec`.
    pub fn kernel(&self, spec: &KernelSpec) -> Result<Arc<Kernel>> {
        self.kernels.get(self, spec)
    }

    /// A uniform buffer holding one params struct.
    pub fn uniform<T: bytemuck::Pod>(&self, label: &str, params: &T) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::bytes_of(params),
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            })
    }

    /// Records `f` into a fresh encoder (its dispatches into compute passes opened as needed) and
    /// submits it.
    pub fn run_pass(&self, label: &str, f: impl FnOnce(&mut Rec<'_>)) {
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
        {
            let mut rec = Rec::new(&mut enc, label);
            f(&mut rec);
        }
        self.queue.submit([enc.finish()]);
    }

    /// A guard that keeps the cores awake until dropped, where this device's setting says so
    /// (see [`crate::gpu::warm`]): one spinner per core. Loops of training or inference steps hold
    /// one; nothing else needs it.
    pub fn keep_warm(&self) -> KeepWarm {
        if self.keep_warm {
            KeepWarm::start(std::thread::available_parallelism().map_or(1, |n| n.get()))
        } else {
            KeepWarm::none()
        }
    }

    /// True when timestamps can be written at the start and end of compute passes.
    pub fn has_timestamps(&self) -> bool {
        self.features.contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// True when timestamps can be written between dispatches inside a pass.
    pub fn has_timestamps_in_passes(&self) -> bool {
        self.features.contains(
            wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES,
        )
    }

    /// True when WGSL `f16` is available.
    pub fn has_f16(&self) -> bool {
        self.features.contains(wgpu::Features::SHADER_F16)
    }

    /// A short description: "name (backend, driver)".
    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {} {})",
            self.info.name, self.info.backend, self.info.driver, self.info.driver_info
        )
    }

    /// Blocks until all submitted work is done.
    pub fn sync(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| Error::Gpu {
                op: "device sync".into(),
                msg: e.to_string(),
            })
    }

    /// Checks that a single storage binding of `bytes` fits this device.
    pub fn check_binding(&self, what: &str, bytes: u64) -> Result<()> {
        let limit = self
            .limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size);
        if bytes > limit {
            return Err(Error::TooLarge {
                what: what.to_string(),
                bytes,
                limit,
                kind: "storage binding",
            });
        }
        Ok(())
    }

    /// Reads back every layer of an rgba32float texture as f32 values, [layer][row][texel][4].
    pub fn read_texture_rgba32f(&self, tex: &wgpu::Texture) -> Result<Vec<f32>> {
        let (w, h, l) = (tex.width(), tex.height(), tex.depth_or_array_layers());
        let row = u64::from(w) * 16;
        let padded = row.div_ceil(256) * 256;
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("texture readback"),
            size: padded * u64::from(h) * u64::from(l),
            usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("texture readback"),
            });
        enc.copy_texture_to_buffer(
            tex.as_image_copy(),
            wgpu::TexelCopyBufferInfo {
                buffer: &buf,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(padded as u32),
                    rows_per_image: Some(h),
                },
            },
            wgpu::Extent3d {
                width: w,
                height: h,
                depth_or_array_layers: l,
            },
        );
        self.queue.submit([enc.finish()]);
        let raw = self.read_bytes(&buf, 0, buf.size())?;
        let mut out = Vec::with_capacity((row / 4) as usize * (h * l) as usize);
        for r in 0..(h * l) as usize {
            let start = r * padded as usize;
            out.extend_from_slice(bytemuck::cast_slice::<u8, f32>(
                &raw[start..start + row as usize],
            ));
        }
        Ok(out)
    }

    /// Copies `size` bytes of `buf` from `offset` to the host. For tests, metrics and benches:
    /// never on the training hot path.
    pub fn read_bytes(&self, buf: &wgpu::Buffer, offset: u64, size: u64) -> Result<Vec<u8>> {
        let size4 = size.div_ceil(4) * 4;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("incq readback"),
            size: size4.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("readback"),
            });
        enc.copy_buffer_to_buffer(buf, offset, &staging, 0, size4);
        self.queue.submit([enc.finish()]);
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.sync()?;
        let mapped = rx.recv().map_err(|e| Error::Readback {
            what: "buffer".into(),
            msg: e.to_string(),
        })?;
        mapped.map_err(|e| Error::Readback {
            what: "buffer".into(),
            msg: e.to_string(),
        })?;
        let out = {
            let view = slice.get_mapped_range().map_err(|e| Error::Readback {
                what: "buffer".into(),
                msg: e.to_string(),
            })?;
            view[..size as usize].to_vec()
        };
        staging.unmap();
        Ok(out)
    }
}

/// Records commands into one command encoder: dispatches go into a compute pass that is opened on
/// demand, and a transfer command (for example a buffer-to-texture copy) first closes the open
/// pass. With a timestamp query set, the first pass writes query 0 at its beginning and
/// [`Rec::end_timestamps`] writes query 1 after the last command.
pub struct Rec<'e> {
    enc: &'e mut wgpu::CommandEncoder,
    pass: Option<wgpu::ComputePass<'static>>,
    label: String,
    timestamps: Option<&'e wgpu::QuerySet>,
    began: bool,
}

impl<'e> Rec<'e> {
    pub fn new(enc: &'e mut wgpu::CommandEncoder, label: &str) -> Rec<'e> {
        Rec {
            enc,
            pass: None,
            label: label.to_string(),
            timestamps: None,
            began: false,
        }
    }

    /// Like [`Rec::new`], writing timestamps 0 (start) and 1 (end, see [`Rec::end_timestamps`]).
    pub fn with_timestamps(
        enc: &'e mut wgpu::CommandEncoder,
        label: &str,
        qs: &'e wgpu::QuerySet,
    ) -> Rec<'e> {
        Rec {
            timestamps: Some(qs),
            ..Rec::new(enc, label)
        }
    }

    /// The open compute pass (opened now if none is).
    pub fn pass(&mut self) -> &mut wgpu::ComputePass<'static> {
        if self.pass.is_none() {
            let ts = self.timestamps.filter(|_| !self.began);
            self.began = true;
            let p = self
                .enc
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(&self.label),
                    timestamp_writes: ts.map(|q| wgpu::ComputePassTimestampWrites {
                        query_set: q,
                        beginning_of_pass_write_index: Some(0),
                        end_of_pass_write_index: None,
                    }),
                })
                .forget_lifetime();
            self.pass = Some(p);
        }
        self.pass.as_mut().expect("pass opened above")
    }

    /// The encoder, for a transfer command: closes the open compute pass first.
    pub fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        self.pass = None;
        self.enc
    }

    /// Closes the open pass and writes timestamp 1 (and 0, if nothing was recorded) in an empty
    /// pass of its own.
    pub fn end_timestamps(mut self) {
        self.pass = None;
        if let Some(q) = self.timestamps {
            let began = self.began;
            let _ = self.enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(&self.label),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: q,
                    beginning_of_pass_write_index: (!began).then_some(0),
                    end_of_pass_write_index: Some(1),
                }),
            });
        }
    }
}

/// A kernel cache set up from the environment: `INCQ_BOUNDS_CHECKS=1` builds every kernel with
/// wgpu's bounds checks, and `INCQ_SHADER_DIR` replaces the embedded WGSL of each file found
/// there (see [`KernelCache::set_source`]).
fn kernel_cache_from_env() -> Result<KernelCache> {
    let k = KernelCache::default();
    k.set_all_checked(std::env::var("INCQ_BOUNDS_CHECKS").is_ok_and(|v| v == "1"));
    if let Some(dir) = std::env::var_os("INCQ_SHADER_DIR") {
        for &id in crate::gpu::kernels::ShaderId::ALL {
            let path = std::path::Path::new(&dir).join(format!("{}.wgsl", id.name()));
            if path.exists() {
                let wgsl = std::fs::read_to_string(&path).map_err(|e| Error::BadArg {
                    flag: "INCQ_SHADER_DIR".into(),
                    msg: format!("cannot read {}: {e}", path.display()),
                })?;
                k.set_source(id, wgsl);
            }
        }
    }
    Ok(k)
}
