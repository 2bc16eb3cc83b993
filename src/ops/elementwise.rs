//! Elementwise kernels (shaders/elementwise.wgsl): fill, scale, axpy, add, ReLU forward/backward,
//! and the fused residual add + ReLU. [`elementwise_op`] runs the streaming ops from textures
//! (`ew_tex` in shaders/elementwise.wgsl) on CPU-backed adapters.

use crate::error::{Error, Result};
use crate::gpu::device::Gpu;
use crate::gpu::kernels::Res;
use crate::gpu::kernels::{Binding, KernelSpec, ShaderId};
use crate::gpu::tensor::Tensor;
use crate::ops::{grid_for, Dispatch, Op, Step};

crate::gpu_params!(
    ShaderId::Elementwise,
    /// Mirrors `EwParams`.
    pub struct EwParams {
        pub n: u32,
        pub cols: u32,
        pub alpha: f32,
        pub _pad1: f32,
    }
);

const WG: u32 = 256;
const B1: &[Binding] = &[Binding::Uniform, Binding::ReadWrite];
const B2: &[Binding] = &[Binding::Uniform, Binding::ReadWrite, Binding::Read];
const B3: &[Binding] = &[
    Binding::Uniform,
    Binding::ReadWrite,
    Binding::Read,
    Binding::Read,
];

/// The elementwise entry points.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum EwOp {
    /// out = alpha
    Fill,
    /// out *= alpha
    Scale,
    /// out += alpha * x
    Axpy,
    /// out = max(x, 0)
    ReluFwd,
    /// out[i] += x[i % cols] (x has `cols` values)
    BiasAdd,
    /// out = x + y
    Add,
    /// out = y * (x > 0)
    ReluBwd,
    /// out = max(x + y, 0) (a residual add and its ReLU in one pass)
    AddRelu,
}

impl EwOp {
    pub const ALL: [EwOp; 8] = [
        EwOp::Fill,
        EwOp::Scale,
        EwOp::Axpy,
        EwOp::ReluFwd,
        EwOp::BiasAdd,
        EwOp::Add,
        EwOp::ReluBwd,
        EwOp::AddRelu,
    ];

    pub fn entry(self) -> &'static str {
        match self {
            EwOp::Fill => "fill",
            EwOp::Scale => "scale",
            EwOp::Axpy => "axpy",
            EwOp::ReluFwd => "relu_fwd",
            EwOp::BiasAdd => "bias_add",
            EwOp::Add => "add",
            EwOp::ReluBwd => "relu_bwd",
            EwOp::AddRelu => "add_relu",
        }
    }

    /// How many input tensors besides `out`.
    pub fn inputs(self) -> usize {
        match self {
            EwOp::Fill | EwOp::Scale => 0,
            EwOp::Axpy | EwOp::ReluFwd | EwOp::BiasAdd => 1,
            EwOp::Add | EwOp::ReluBwd | EwOp::AddRelu => 2,
        }
    }
}

/// Prepares `op` on `out` with `inputs` (as many as [`EwOp::inputs`], each as long as `out`).
pub fn elementwise(
    gpu: &Gpu,
    op: EwOp,
    alpha: f32,
    out: &Tensor,
    inputs: &[&Tensor],
) -> Result<Dispatch> {
    if inputs.len() != op.inputs() {
        return Err(Error::Shape {
            op: "elementwise",
            msg: format!(
                "{} takes {} inputs, got {}",
                op.entry(),
                op.inputs(),
                inputs.len()
            ),
        });
    }
    let cols = if op == EwOp::BiasAdd {
        inputs[0].len()
    } else {
        0
    };
    if op == EwOp::BiasAdd && (cols == 0 || !out.len().is_multiple_of(cols)) {
        return Err(Error::Shape {
            op: "elementwise",
            msg: format!(
                "bias of {cols} values does not divide output {:?}",
                out.shape
            ),
        });
    }
    for t in inputs.iter().filter(|_| op != EwOp::BiasAdd) {
        if t.len() != out.len() {
            return Err(Error::Shape {
                op: "elementwise",
                msg: format!(
                    "{}: input {:?} and output {:?} differ in length",
                    op.entry(),
                    t.shape,
                    out.shape
                ),
            });
        }
    }
    let bindings = [B1, B2, B3][op.inputs()];
    let spec =
        KernelSpec::new(ShaderId::Elementwise, op.entry(), bindings).with("WG", f64::from(WG));
    let params = EwParams {
        n: out.len() as u32,
        cols: cols as u32,
        alpha,
        ..Default::default()
    };
    let mut bufs = vec![&out.buf];
    bufs.extend(inputs.iter().map(|t| &t.buf));
    Dispatch::new(gpu, &spec, &params, &bufs, grid_for(gpu, out.len(), WG))
}

/// Like [`elementwise`], as an op: on CPU-backed adapters the ops of a residual block (add_relu,
/// relu_bwd, axpy, add, relu_fwd) over a multiple of 4 values copy their inputs into textures and
/// run `ew_tex` (a texel fetch brings 4 values; a storage load one); otherwise the plain kernel.
pub fn elementwise_op(
    gpu: &Gpu,
    op: EwOp,
    alpha: f32,
    out: &Tensor,
    inputs: &[&Tensor],
) -> Result<Op> {
    // validates arity and lengths; the plain dispatch is the fallback
    let plain = elementwise(gpu, op, alpha, out, inputs)?;
    let code = match op {
        EwOp::AddRelu => 0,
        EwOp::ReluBwd => 1,
        EwOp::Axpy => 2,
        EwOp::Add => 3,
        EwOp::ReluFwd => 4,
        _ => return Ok(plain.into()),
    };
    let n = out.len();
    if gpu.info.device_type != wgpu::DeviceType::Cpu
        || !n.is_multiple_of(4)
        || !crate::ops::conv::act_texture_fits(gpu, n / 4)
    {
        return Ok(plain.into());
    }
    // axpy reads the old out as its second operand
    let srcs: Vec<&Tensor> = if op == EwOp::Axpy {
        vec![inputs[0], out]
    } else {
        inputs.to_vec()
    };
    let mut steps: Vec<Step> = Vec::new();
    let mut textures = Vec::new();
    let mut views = Vec::new();
    for t in &srcs {
        let (copy, tex, view) =
            crate::ops::conv::act_texture_copy(gpu, "elementwise input texture", &t.buf, n / 4);
        steps.push(copy);
        textures.push(tex);
        views.push(view);
    }
    let spec = KernelSpec::new(
        ShaderId::Elementwise,
        "ew_tex",
        &[
            Binding::Uniform,
            Binding::ReadWrite,
            Binding::TexRead,
            Binding::TexRead,
        ],
    )
    .with("OP", f64::from(code));
    let params = EwParams {
        n: n as u32,
        alpha,
        ..Default::default()
    };
    let vb = views.get(1).unwrap_or(&views[0]);
    steps.push(
        Dispatch::with_resources(
            gpu,
            &spec,
            &params,
            &[Res::from(&out.buf), Res::View(&views[0]), Res::View(vb)],
            grid_for(gpu, n / 4, 256),
        )?
        .into(),
    );
    Ok(Op { steps, textures })
}
