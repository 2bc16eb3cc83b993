//! Compiling a [`Model`] into a [`Plan`]: every buffer is allocated and every pipeline and bind
//! group built once, up front; a training step is then only `encode_train` into one compute pass
//! and one submit (gather, forward, loss, backward, optimizer), and an eval step `encode_eval`.
//!
//! Parameters live in a [`Net`] shared by the train and eval plans. Each weight tensor carries the
//! buffers the quantization schedules need — `w`, `grad`, `momentum`, `mask` — and a
//! [`WeightMode`]; in `Float` mode `w_eff` is `w` itself (no copy).

use crate::error::{Error, Result};
use crate::gpu::device::Gpu;
use crate::gpu::tensor::{DType, Tensor};
use crate::gpu::Rec;
use crate::graph::model::{Layer, Model};
use crate::ops::conv::{self, ConvShape, ConvVariant};
use crate::ops::elementwise::{elementwise, elementwise_op, EwOp};
use crate::ops::gemm::{gemm, GemmDesc, GemmVariant};
use crate::ops::linear::{self, Epilogue, Form};
use crate::ops::norm::{self, BnBwd, BnShape};
use crate::ops::optim;
use crate::ops::pool::{self, PoolShape};
use crate::ops::reduce::{reduce, ReduceOp, ReduceShape};
use crate::ops::{loss, Dispatch, Op};
use std::collections::HashMap;

/// How forward reads a weight tensor.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum WeightMode {
    /// `w_eff` is `w` (float training, and INQ, which stores frozen weights already quantized).
    Float,
    /// `w_eff` is its own buffer, rewritten from `w` by a schedule's kernel at the start of every
    /// step (BinaryRelax's relaxed weights, STE's projection); the gradient updates `w`.
    Derived,
}

/// How a layer's activations are quantized after its ReLU. Schedules add modes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ActMode {
    Float,
}

/// One trainable tensor and the buffers that travel with it.
pub struct Param {
    pub name: String,
    pub shape: Vec<usize>,
    pub w: Tensor,
    pub grad: Tensor,
    pub momentum: Tensor,
    /// Adam's second moment (Adam uses `momentum` as its first moment).
    pub second: Tensor,
    pub mask: Tensor,
    /// What forward reads in `Derived` mode.
    pub eff: Option<Tensor>,
    pub mode: WeightMode,
    /// Weight decay applies (conv and linear weights; not BN affine parameters or biases).
    pub decay: bool,
}

impl Param {
    /// What forward reads.
    pub fn w_eff(&self) -> &Tensor {
        match (&self.mode, &self.eff) {
            (WeightMode::Derived, Some(e)) => e,
            _ => &self.w,
        }
    }
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Parameter indices of one batch norm: gamma, beta, and its running-stats buffer.
#[derive(Copy, Clone, Debug)]
struct BnIdx {
    gamma: usize,
    beta: usize,
    running: usize,
}

#[derive(Clone, Debug)]
enum LayerIdx {
    Conv(usize),
    Bn(BnIdx),
    Linear {
        w: usize,
        b: usize,
    },
    Block {
        w1: usize,
        bn1: BnIdx,
        w2: usize,
        bn2: BnIdx,
        proj: Option<(usize, BnIdx)>,
    },
    None,
}

/// Parameters and state of a model on the GPU, shared by its plans.
pub struct Net {
    pub model: Model,
    pub params: Vec<Param>,
    /// Non-trainable state (BN running means then variances, 2C each), with names.
    pub buffers: Vec<(String, Tensor)>,
    idx: Vec<LayerIdx>,
    pub act_modes: Vec<ActMode>,
}

struct InitRng(u64);

impl InitRng {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

impl Net {
    /// Allocates and initialises every parameter: conv and linear weights and biases uniform in
    /// ±1/sqrt(fan_in) (PyTorch's default), BN gamma 1 and beta 0, running stats (0, 1).
    pub fn new(gpu: &Gpu, model: &Model, seed: u64) -> Result<Net> {
        let shapes = model.shapes()?;
        let mut rng = InitRng(seed ^ 0x5DEE_CE66_D1CE_5EED);
        let mut net = Net {
            model: model.clone(),
            params: Vec::new(),
            buffers: Vec::new(),
            idx: Vec::new(),
            act_modes: vec![ActMode::Float; model.layers.len()],
        };
        let mut s = model.input;
        for (i, layer) in model.layers.iter().enumerate() {
            let (c, h, w) = s;
            let li = match *layer {
                Layer::Conv { cout, k, .. } => {
                    LayerIdx::Conv(net.conv(gpu, &mut rng, &format!("l{i}.conv"), c, cout, k)?)
                }
                Layer::Bn { .. } => LayerIdx::Bn(net.bn(gpu, &format!("l{i}.bn"), c)?),
                Layer::Linear { fout, .. } => {
                    let fin = c * h * w;
                    let bound = 1.0 / (fin as f32).sqrt();
                    let wv: Vec<f32> = (0..fout * fin).map(|_| rng.next() * bound).collect();
                    let bv: Vec<f32> = (0..fout).map(|_| rng.next() * bound).collect();
                    let wi = net.add_param(
                        gpu,
                        &format!("l{i}.linear.weight"),
                        &[fout, fin],
                        &wv,
                        true,
                    )?;
                    let bi =
                        net.add_param(gpu, &format!("l{i}.linear.bias"), &[fout], &bv, false)?;
                    LayerIdx::Linear { w: wi, b: bi }
                }
                Layer::BasicBlock { cout, stride } => {
                    let n = format!("l{i}.block");
                    let w1 = net.conv(gpu, &mut rng, &format!("{n}.conv1"), c, cout, 3)?;
                    let bn1 = net.bn(gpu, &format!("{n}.bn1"), cout)?;
                    let w2 = net.conv(gpu, &mut rng, &format!("{n}.conv2"), cout, cout, 3)?;
                    let bn2 = net.bn(gpu, &format!("{n}.bn2"), cout)?;
                    let proj = if stride != 1 || c != cout {
                        Some((
                            net.conv(gpu, &mut rng, &format!("{n}.shortcut.conv"), c, cout, 1)?,
                            net.bn(gpu, &format!("{n}.shortcut.bn"), cout)?,
                        ))
                    } else {
                        None
                    };
                    LayerIdx::Block {
                        w1,
                        bn1,
                        w2,
                        bn2,
                        proj,
                    }
                }
                Layer::MaxPool2 | Layer::Gap => LayerIdx::None,
            };
            net.idx.push(li);
            s = shapes[i];
        }
        Ok(net)
    }

    fn conv(
        &mut self,
        gpu: &Gpu,
        rng: &mut InitRng,
        name: &str,
        cin: usize,
        cout: usize,
        k: usize,
    ) -> Result<usize> {
        let bound = 1.0 / ((cin * k * k) as f32).sqrt();
        let v: Vec<f32> = (0..cout * cin * k * k)
            .map(|_| rng.next() * bound)
            .collect();
        self.add_param(gpu, &format!("{name}.weight"), &[cout, cin, k, k], &v, true)
    }

    fn bn(&mut self, gpu: &Gpu, name: &str, c: usize) -> Result<BnIdx> {
        let gamma = self.add_param(gpu, &format!("{name}.weight"), &[c], &vec![1.0; c], false)?;
        let beta = self.add_param(gpu, &format!("{name}.bias"), &[c], &vec![0.0; c], false)?;
        let mut rs = vec![0.0; c];
        rs.extend(vec![1.0; c]);
        self.buffers.push((
            format!("{name}.running_stats"),
            Tensor::from_f32(gpu, name, &[2 * c], &rs)?,
        ));
        Ok(BnIdx {
            gamma,
            beta,
            running: self.buffers.len() - 1,
        })
    }

    fn add_param(
        &mut self,
        gpu: &Gpu,
        name: &str,
        shape: &[usize],
        init: &[f32],
        decay: bool,
    ) -> Result<usize> {
        let n = init.len();
        self.params.push(Param {
            name: name.to_string(),
            shape: shape.to_vec(),
            w: Tensor::from_f32(gpu, name, &[n], init)?,
            grad: Tensor::from_f32(gpu, &format!("{name}.grad"), &[n], &vec![0.0; n])?,
            momentum: Tensor::from_f32(gpu, &format!("{name}.momentum"), &[n], &vec![0.0; n])?,
            second: Tensor::from_f32(gpu, &format!("{name}.second"), &[n], &vec![0.0; n])?,
            mask: Tensor::from_f32(gpu, &format!("{name}.mask"), &[n], &vec![1.0; n])?,
            eff: None,
            mode: WeightMode::Float,
            decay,
        });
        Ok(self.params.len() - 1)
    }

    /// Gives parameter `i` its own `w_eff` buffer (a copy of `w` until a schedule rewrites it).
    /// Plans built afterwards read it in forward and backward.
    pub fn derive(&mut self, gpu: &Gpu, i: usize) -> Result<()> {
        let p = &mut self.params[i];
        if p.eff.is_none() {
            let t = Tensor::empty(gpu, &format!("{}.eff", p.name), &[p.len()], DType::F32)?;
            let mut enc = gpu.device.create_command_encoder(&Default::default());
            enc.copy_buffer_to_buffer(&p.w.buf, 0, &t.buf, 0, p.w.bytes());
            gpu.queue.submit([enc.finish()]);
            p.eff = Some(t);
        }
        p.mode = WeightMode::Derived;
        Ok(())
    }

    /// Total number of trainable values.
    pub fn num_params(&self) -> usize {
        self.params.iter().map(|p| p.len()).sum()
    }
}

/// Optimizer settings of a plan (the learning rate is rewritten as the schedule moves).
#[derive(Copy, Clone, Debug)]
pub struct OptimConfig {
    pub lr: f32,
    /// SGD momentum (unused by Adam).
    pub momentum: f32,
    pub weight_decay: f32,
    pub nesterov: bool,
    /// Adam (betas 0.9 and 0.999, eps 1e-8) instead of SGD.
    pub adam: bool,
}

impl OptimConfig {
    /// The optimizer of WORKLOADS.md's training steps: SGD, lr 0.01, momentum 0.9, no weight
    /// decay or Nesterov (PyTorch `SGD(lr=0.01, momentum=0.9)`).
    pub const WORKLOAD: OptimConfig = OptimConfig {
        lr: 0.01,
        momentum: 0.9,
        weight_decay: 0.0,
        nesterov: false,
        adam: false,
    };
}

/// A compiled train or eval step at a fixed batch size.
pub struct Plan {
    pub batch: usize,
    pub train: bool,
    pub input: Tensor,
    pub labels: Tensor,
    pub logits: usize,
    pub classes: usize,
    pub metrics: Tensor,
    tensors: Vec<Tensor>,
    fwd: Vec<Op>,
    loss: Vec<Dispatch>,
    bwd: Vec<Op>,
    /// Optimizer ops (each ends with its kernel, after any copies that feed it) with the
    /// parameters each updates.
    opt: Vec<(Upd, Op)>,
    opt_cfg: Option<OptimConfig>,
    /// The layer each forward / backward op belongs to (for profiles).
    fwd_names: Vec<String>,
    bwd_names: Vec<String>,
}

struct B<'a> {
    gpu: &'a Gpu,
    tuner: Option<&'a crate::tune::Tuner>,
    n: usize,
    variant: GemmVariant,
    conv: ConvVariant,
    tensors: Vec<Tensor>,
    fwd: Vec<Op>,
    bwd: Vec<Op>,
    train: bool,
    opt: Option<OptimConfig>,
    /// The logits' gradient, where the fused loss can also write its rows into the texture the
    /// last linear layer's backward reads (training, a batch of one workgroup).
    loss_dz: Option<usize>,
    /// That texture, once the last linear layer has made it.
    loss_dz_rows: Option<wgpu::TextureView>,
    /// Row textures that the layer producing an activation also stores it into, for the linear
    /// layer that reads it next (by tensor), so that no copy fills them.
    x_rows: HashMap<usize, linear::RowsTex>,
    /// Row textures that a backward pass planned earlier reads a gradient from and that the
    /// backward pass producing that gradient (planned later) must also store it into (by tensor).
    /// Every entry is taken by its producer before the plan is done.
    dx_rows: HashMap<usize, linear::RowsTex>,
    /// Per weight: the forward's row texture of `w` (where forward reads `w` itself), and the
    /// texture that backward stores the gradient into; the optimizer reads both without copies.
    w_rows: HashMap<usize, linear::RowsTex>,
    grad_rows: HashMap<usize, linear::RowsTex>,
}

impl B<'_> {
    fn conv_variant(&self, s: &ConvShape) -> Result<ConvVariant> {
        match self.tuner {
            Some(t) => t.conv(self.gpu, s),
            None => Ok(self.conv),
        }
    }

    /// Whether, in training, the batch norm after the conv `cs` can write its dx into the conv's dy
    /// row texture (the conv takes dy by rows, and the norm writes rows of the conv's width).
    fn norm_dx_rows_ok(&self, cs: &ConvShape, relu: bool) -> Result<bool> {
        let (oh, ow) = cs.out_hw();
        let bs = BnShape {
            n: self.n,
            c: cs.cout,
            hw: oh * ow,
            relu,
        };
        Ok(self.train
            && norm::dx_rows_ok(self.gpu, &bs, ow)
            && conv::rows_io_ok(self.gpu, self.conv_variant(cs)?, cs))
    }

    fn gemm_variant(&self, d: &GemmDesc) -> Result<GemmVariant> {
        match self.tuner {
            Some(t) => t.gemm(self.gpu, d),
            None => Ok(self.variant),
        }
    }

    /// Whether a linear layer of `fin` -> `fout` runs the texture-fed kernels of ops/linear.rs:
    /// on devices whose default GEMM is `Tex` (they replace that GEMM and its packing, so the
    /// tuner's pick among the generic GEMMs does not apply), where they cover the shape.
    fn linear_tex(&self, fin: usize, fout: usize) -> bool {
        self.variant == GemmVariant::Tex && linear::covers(self.gpu, self.n, fin, fout)
    }

    fn t(&mut self, len: usize, dtype: DType) -> Result<usize> {
        self.tensors
            .push(Tensor::empty(self.gpu, "activation", &[len.max(1)], dtype)?);
        Ok(self.tensors.len() - 1)
    }
    fn buf(&self, i: usize) -> &wgpu::Buffer {
        &self.tensors[i].buf
    }
}

impl Plan {
    /// Compiles `net` for batches of `batch` with each device's default kernel variants. `opt` is
    /// `Some` for a training plan.
    pub fn new(gpu: &Gpu, net: &Net, batch: usize, opt: Option<OptimConfig>) -> Result<Plan> {
        Self::build(gpu, net, batch, opt, None)
    }

    /// Like [`Plan::new`], with the GEMM and conv variants of every layer chosen by `tuner`.
    pub fn new_tuned(
        gpu: &Gpu,
        net: &Net,
        batch: usize,
        opt: Option<OptimConfig>,
        tuner: &crate::tune::Tuner,
    ) -> Result<Plan> {
        Self::build(gpu, net, batch, opt, Some(tuner))
    }

    fn build(
        gpu: &Gpu,
        net: &Net,
        batch: usize,
        opt: Option<OptimConfig>,
        tuner: Option<&crate::tune::Tuner>,
    ) -> Result<Plan> {
        if batch == 0 {
            return Err(Error::BadArg {
                flag: "--batch".into(),
                msg: "batch must be positive".into(),
            });
        }
        let model = &net.model;
        let shapes = model.shapes()?;
        let (c0, h0, w0) = model.input;
        let mut b = B {
            gpu,
            tuner,
            n: batch,
            variant: GemmVariant::default_for(gpu),
            conv: ConvVariant::default_for(gpu),
            tensors: Vec::new(),
            fwd: Vec::new(),
            bwd: Vec::new(),
            train: opt.is_some(),
            opt,
            loss_dz: None,
            loss_dz_rows: None,
            x_rows: HashMap::new(),
            dx_rows: HashMap::new(),
            w_rows: HashMap::new(),
            grad_rows: HashMap::new(),
        };
        // A max pooling right after batch norm is computed by the norm's apply kernel
        // (bn_pool_tex), so that norm's output is never stored: it gets no full-size buffer.
        // Where norm::pool_bwd_ok holds, the norm's backward pass also does the pooling's
        // (bn_pool_bwd_*_tex, from the pooled dy): no argmax and no full-size dy.
        let (pooled_bn, pooled_bwd): (Vec<bool>, Vec<bool>) = (0..model.layers.len())
            .map(|i| {
                let s = if i == 0 { model.input } else { shapes[i - 1] };
                let Layer::Bn { relu } = model.layers[i] else {
                    return Ok((false, false));
                };
                let bs = BnShape {
                    n: batch,
                    c: s.0,
                    hw: s.1 * s.2,
                    relu,
                };
                let pooled = matches!(model.layers.get(i + 1), Some(Layer::MaxPool2))
                    && norm::pool_ok(gpu, &bs, s.2);
                // rows of a width that is not a multiple of 4 only where dx goes into the row
                // texture of the conv before (that conv's dy_rows below)
                let prev_conv_rows = match i.checked_sub(1).map(|j| &model.layers[j]) {
                    Some(&Layer::Conv {
                        cout,
                        k,
                        stride,
                        pad,
                    }) => {
                        let ps = if i == 1 { model.input } else { shapes[i - 2] };
                        let cs = ConvShape {
                            n: batch,
                            cin: ps.0,
                            h: ps.1,
                            w: ps.2,
                            cout,
                            k,
                            stride,
                            pad,
                        };
                        b.norm_dx_rows_ok(&cs, relu)?
                    }
                    _ => false,
                };
                let pooled_bwd = norm::pool_bwd_ok(gpu, &bs, s.2)
                    || (prev_conv_rows && norm::pool_bwd_rows_ok(gpu, &bs, s.2));
                Ok((pooled, pooled && pooled_bwd))
            })
            .collect::<Result<Vec<(bool, bool)>>>()?
            .into_iter()
            .unzip();
        let input = b.t(batch * c0 * h0 * w0, DType::F32)?;
        let mut acts = vec![input];
        let mut grads = vec![b.t(batch * c0 * h0 * w0, DType::F32)?];
        for (i, s) in shapes.iter().enumerate() {
            let len = batch * s.0 * s.1 * s.2;
            acts.push(b.t(if pooled_bn[i] { 1 } else { len }, DType::F32)?);
            grads.push(b.t(if pooled_bwd[i] { 1 } else { len }, DType::F32)?);
        }
        b.loss_dz = (b.train && batch <= loss::FUSED_MAX).then(|| *grads.last().unwrap());
        let mut s = model.input;
        let (mut fwd_names, mut bwd_names) = (Vec::new(), Vec::new());
        // A max pooling that the batch norm before it computed: Some(its argmax), or Some(None)
        // where nothing reads the argmax (an inference plan, or pooled_bwd).
        let mut pooled_arg: Option<Option<usize>> = None;
        // Row textures that a texture-fed producer writes for the conv that reads them, so the
        // conv packs nothing (conv::rows_io_ok): a pooled batch norm writes the input of the conv
        // two layers on (conv_x_rows[conv]); a batch norm's backward writes the dy of the conv
        // before it (bn_dx_rows[bn], with its row width). The activation or gradient buffer in
        // between is then never written.
        let mut conv_x_rows: Vec<Option<wgpu::TextureView>> = vec![None; model.layers.len()];
        let mut bn_dx_rows: Vec<Option<(usize, wgpu::TextureView)>> =
            vec![None; model.layers.len()];
        // the texture a conv writes its y into for the texture-fed batch norm after it
        // (bn_x_tex[bn]); the conv's y buffer is then never written
        let mut bn_x_tex: Vec<Option<wgpu::TextureView>> = vec![None; model.layers.len()];
        for (i, layer) in model.layers.iter().enumerate() {
            let kind = match layer {
                Layer::Conv { .. } => "conv",
                Layer::Bn { .. } => "bn",
                Layer::MaxPool2 => "maxpool",
                Layer::Gap => "gap",
                Layer::Linear { .. } => "linear",
                Layer::BasicBlock { .. } => "block",
            };
            let name = format!("l{i}.{kind}");
            let (x, y, gx, gy) = (acts[i], acts[i + 1], grads[i], grads[i + 1]);
            let need_dx = i > 0;
            match (layer, &net.idx[i]) {
                (
                    Layer::Conv {
                        cout,
                        k,
                        stride,
                        pad,
                    },
                    LayerIdx::Conv(p),
                ) => {
                    let cs = ConvShape {
                        n: batch,
                        cin: s.0,
                        h: s.1,
                        w: s.2,
                        cout: *cout,
                        k: *k,
                        stride: *stride,
                        pad: *pad,
                    };
                    // dy from the next layer's batch norm in a row texture, where packing it
                    // would cost a kernel (rows of a multiple of 4 columns are copied instead,
                    // which is cheaper than the norm storing texels)
                    // (and where that norm's backward also does a max pooling's: its dx kernel
                    // stores texels either way, so the conv gets them without a copy or a
                    // full-size dx buffer; for other widths it can only write rows)
                    let (oh, ow) = cs.out_hw();
                    let next_bn = matches!(model.layers.get(i + 1), Some(Layer::Bn { .. }));
                    let dy_rows = (next_bn
                        && (!ow.is_multiple_of(4) || pooled_bwd[i + 1])
                        && b.norm_dx_rows_ok(&cs, false)?)
                    .then(|| conv::planes_texture(gpu, "conv dy rows", batch, *cout, oh, ow));
                    let y_rows = match next_bn {
                        true => conv_y_texture(&b, &cs)?,
                        false => None,
                    };
                    let io = ConvIo {
                        x_rows: conv_x_rows[i].take(),
                        dy_rows: dy_rows.as_ref().map(|(_, v)| v),
                        y_rows: y_rows.as_ref().map(|(_, v)| v),
                    };
                    let (f, mut bw) = plan_conv(
                        &mut b,
                        net,
                        &cs,
                        *p,
                        x,
                        y,
                        gy,
                        need_dx.then_some(gx),
                        false,
                        io,
                    )?;
                    if let Some((t, v)) = dy_rows {
                        bn_dx_rows[i + 1] = Some((ow, v));
                        if let Some(bw) = bw.as_mut() {
                            bw.textures.push(t);
                        }
                    }
                    let mut f = f;
                    if let Some((t, v)) = y_rows {
                        bn_x_tex[i + 1] = Some(v);
                        f.textures.push(t);
                    }
                    b.push((f, bw));
                }
                (Layer::Bn { relu }, LayerIdx::Bn(bi)) => {
                    let bs = BnShape {
                        n: batch,
                        c: s.0,
                        hw: s.1 * s.2,
                        relu: *relu,
                    };
                    let mut x_rows_texture = None;
                    let out = if pooled_bn[i] {
                        let (oh, ow) = (s.1 / 2, s.2 / 2);
                        let arg = match b.train && !pooled_bwd[i] {
                            true => Some(b.t(batch * s.0 * oh * ow, DType::U32)?),
                            false => None,
                        };
                        pooled_arg = Some(arg);
                        // the conv after the pooling takes the pooled values as a row texture
                        let next = match model.layers.get(i + 2) {
                            Some(&Layer::Conv {
                                cout,
                                k,
                                stride,
                                pad,
                            }) => Some(ConvShape {
                                n: batch,
                                cin: s.0,
                                h: oh,
                                w: ow,
                                cout,
                                k,
                                stride,
                                pad,
                            }),
                            _ => None,
                        };
                        let rows = match next {
                            Some(cs) => conv::rows_io_ok(gpu, b.conv_variant(&cs)?, &cs),
                            None => false,
                        };
                        if rows {
                            let (t, v) =
                                conv::planes_texture(gpu, "pooled rows", batch, s.0, oh, ow);
                            x_rows_texture = Some(t);
                            conv_x_rows[i + 2] = Some(v.clone());
                            BnTo::PoolRows { w: s.2, y: v, arg }
                        } else {
                            BnTo::Pool {
                                w: s.2,
                                y: acts[i + 2],
                                arg,
                            }
                        }
                    } else {
                        BnTo::Y(y)
                    };
                    let dx_rows = bn_dx_rows[i].take();
                    // with pooled_bwd, dy is the pooling's (pooled) dy
                    let (gy, pooled_w) = match pooled_bwd[i] {
                        true => (grads[i + 2], Some(s.2)),
                        false => (gy, None),
                    };
                    // the pooled dy from the texture-fed linear layer after the pooling, which
                    // stores it there in its fused backward pass
                    let fin = s.0 * (s.1 / 2) * (s.2 / 2);
                    let gy_rows = match model.layers.get(i + 2) {
                        Some(Layer::Linear { fout, .. })
                            if pooled_bwd[i]
                                && b.linear_tex(fin, *fout)
                                && linear::bwd_fused_ok(fin) =>
                        {
                            let r = linear::rows_tex_unfilled(
                                gpu,
                                "bn pooled dy (stored by the linear layer after)",
                                batch,
                                fin,
                            )?;
                            b.dx_rows.insert(gy, r.clone());
                            Some(r)
                        }
                        _ => None,
                    };
                    let dy = BnDy {
                        gy,
                        dx_rows,
                        pooled_w,
                        gy_rows: gy_rows.as_ref().map(|r| r.view.clone()),
                    };
                    let x_tex = bn_x_tex[i].take();
                    let (mut f, mut bw) =
                        plan_bn(&mut b, net, &bs, *bi, (x, x_tex.as_ref()), out, dy, gx)?;
                    f.textures.extend(x_rows_texture);
                    if let (Some(bw), Some(r)) = (bw.as_mut(), gy_rows) {
                        bw.textures.push(r.texture);
                    }
                    b.push((f, bw));
                }
                (Layer::MaxPool2, _) => {
                    let ps = PoolShape {
                        n: batch,
                        c: s.0,
                        h: s.1,
                        w: s.2,
                    };
                    let (oh, ow) = ps.max_out();
                    let arg = match pooled_arg.take() {
                        Some(arg) => arg,
                        None => {
                            let arg = b.t(batch * s.0 * oh * ow, DType::U32)?;
                            let d = pool::max_fwd(gpu, &ps, b.buf(x), b.buf(y), b.buf(arg))?;
                            b.fwd.push(d.into());
                            Some(arg)
                        }
                    };
                    // no argmax: the batch norm's backward pass does this one's
                    if let (true, true, Some(arg)) = (b.train, need_dx, arg) {
                        b.bwd.push(
                            pool::max_bwd(gpu, &ps, b.buf(gy), b.buf(arg), b.buf(gx))?.into(),
                        );
                    }
                }
                (Layer::Gap, _) => {
                    let ps = PoolShape {
                        n: batch,
                        c: s.0,
                        h: s.1,
                        w: s.2,
                    };
                    b.fwd
                        .push(pool::gap_fwd(gpu, &ps, b.buf(x), b.buf(y))?.into());
                    if b.train && need_dx {
                        b.bwd
                            .push(pool::gap_bwd(gpu, &ps, b.buf(gy), b.buf(gx))?.into());
                    }
                }
                (Layer::Linear { fout, relu }, LayerIdx::Linear { w, b: bias }) => {
                    let fin = s.0 * s.1 * s.2;
                    // A texture-fed linear layer after a ReLU'd linear layer applies that ReLU's
                    // backward in its backward-data store, so the earlier layer skips its own.
                    let fused = |l: Option<&Layer>, fin: usize| match l {
                        Some(Layer::Linear { fout, .. }) => b.linear_tex(fin, *fout),
                        _ => false,
                    };
                    let prev_relu =
                        i > 0 && matches!(model.layers[i - 1], Layer::Linear { relu: true, .. });
                    let masks_dx = prev_relu && fused(Some(layer), fin);
                    let next_masks = *relu && fused(model.layers.get(i + 1), *fout);
                    let l = LinearLayer {
                        fin,
                        fout: *fout,
                        relu: *relu,
                        w: *w,
                        bias: *bias,
                        gy_masked: next_masks,
                        mask_dx: masks_dx,
                        next_tex: fused(model.layers.get(i + 1), *fout),
                    };
                    plan_linear(&mut b, net, &l, x, y, gy, need_dx.then_some(gx))?;
                }
                (
                    Layer::BasicBlock { cout, stride },
                    LayerIdx::Block {
                        w1,
                        bn1,
                        w2,
                        bn2,
                        proj,
                    },
                ) => {
                    plan_block(
                        &mut b,
                        net,
                        s,
                        *cout,
                        *stride,
                        (*w1, *bn1, *w2, *bn2, *proj),
                        x,
                        y,
                        gy,
                        need_dx.then_some(gx),
                    )?;
                }
                (l, _) => {
                    return Err(Error::Shape {
                        op: "plan",
                        msg: format!("layer {i} {l:?} has no parameters allocated"),
                    })
                }
            }
            s = shapes[i];
            fwd_names.resize(b.fwd.len(), name.clone());
            bwd_names.resize(b.bwd.len(), name);
        }
        if let Some(t) = b.x_rows.keys().chain(b.dx_rows.keys()).next() {
            return Err(Error::Shape {
                op: "plan",
                msg: format!("no kernel stores tensor {t}'s row texture (a planner bug)"),
            });
        }
        let logits = *acts.last().unwrap();
        let glogits = *grads.last().unwrap();
        let labels = b.t(batch, DType::U32)?;
        let per_sample = b.t(2 * batch, DType::F32)?;
        let metrics_t = Tensor::from_f32(gpu, "metrics", &[4], &[0.0; 4])?;
        // one dispatch where the batch fits a workgroup (each dispatch costs a fixed wake-up of
        // the worker threads on CPU-backed adapters)
        let dz_rows = b.loss_dz_rows.take();
        let loss = if batch <= loss::FUSED_MAX {
            vec![loss::softmax_ce_metrics(
                gpu,
                batch,
                model.classes,
                b.buf(logits),
                b.buf(labels),
                b.buf(glogits),
                b.buf(per_sample),
                &metrics_t.buf,
                dz_rows.as_ref(),
            )?]
        } else {
            vec![
                loss::softmax_ce(
                    gpu,
                    batch,
                    model.classes,
                    b.buf(logits),
                    b.buf(labels),
                    b.buf(glogits),
                    b.buf(per_sample),
                )?,
                loss::accumulate(gpu, batch, b.buf(per_sample), &metrics_t.buf)?,
            ]
        };
        let mut optd = Vec::new();
        if let Some(cfg) = opt {
            if cfg.adam {
                for (pi, p) in net.params.iter().enumerate() {
                    let bufs = optim::AdamBufs {
                        w: &p.w.buf,
                        m: &p.momentum.buf,
                        v: &p.second.buf,
                        grad: &p.grad.buf,
                        mask: &p.mask.buf,
                    };
                    optd.push((
                        Upd::Adam(pi),
                        optim::adam(gpu, &adam_params(p, &cfg, 1), &bufs)?.into(),
                    ));
                }
            } else {
                // SGD: a tensor of at least MULTI_MIN elements gets its own dispatch; the others
                // share one per MULTI_SLOTS (a dispatch costs a fixed wake-up on CPU-backed
                // adapters, while sgd_multi's per-slot branches seem to cost per element: all
                // 12 of LeNet-BN's tensors in sgd_multi made its step about 1 ms slower)
                let (big, small): (Vec<usize>, Vec<usize>) =
                    (0..net.params.len()).partition(|&pi| net.params[pi].len() >= MULTI_MIN);
                for pi in big {
                    let p = &net.params[pi];
                    let bufs = (&p.w.buf, &p.momentum.buf, &p.grad.buf, &p.mask.buf);
                    let sp = sgd_params(p, &cfg);
                    // CPU-backed adapters read the four tensors from textures (copies fill them)
                    // (w and the gradient from the linear layer's textures where it made them)
                    let op = if sgd_reads_textures(gpu, p, &cfg) {
                        let given = optim::SgdTextures {
                            w: b.w_rows.get(&pi).map(|r| &r.view),
                            grad: b.grad_rows.get(&pi).map(|r| &r.view),
                        };
                        optim::sgd_tex(gpu, &sp, bufs.0, bufs.1, bufs.2, bufs.3, given)?
                    } else {
                        optim::sgd(gpu, &sp, bufs.0, bufs.1, bufs.2, bufs.3)?.into()
                    };
                    optd.push((Upd::Sgd(pi), op));
                }
                for chunk in small.chunks(optim::MULTI_SLOTS) {
                    let slots: Vec<optim::SgdSlot<'_>> = chunk
                        .iter()
                        .map(|&pi| {
                            let p = &net.params[pi];
                            optim::SgdSlot {
                                n: p.len(),
                                weight_decay: decay(p, &cfg),
                                w: &p.w.buf,
                                mom: &p.momentum.buf,
                                grad: &p.grad.buf,
                                mask: &p.mask.buf,
                            }
                        })
                        .collect();
                    let d = optim::sgd_multi(gpu, cfg.lr, cfg.momentum, cfg.nesterov, &slots)?;
                    optd.push((Upd::SgdMulti(chunk.to_vec()), d.into()));
                }
            }
        }
        let tensors = b.tensors;
        // The gather kernel writes these; the plan's dispatches hold the same buffers.
        let input_t = tensors[input].clone();
        let labels_t = tensors[labels].clone();
        Ok(Plan {
            batch,
            train: opt.is_some(),
            input: input_t,
            labels: labels_t,
            logits,
            classes: model.classes,
            metrics: metrics_t,
            tensors,
            fwd: b.fwd,
            loss,
            bwd: b.bwd,
            opt: optd,
            opt_cfg: opt,
            fwd_names,
            bwd_names,
        })
    }

    /// Records forward, loss, backward and the optimizer (a training step without its gather).
    pub fn encode_train(&self, pass: &mut Rec<'_>) {
        for o in &self.fwd {
            o.encode(pass);
        }
        for d in &self.loss {
            d.encode(pass);
        }
        for o in self.bwd.iter().rev() {
            o.encode(pass);
        }
        for (_, d) in &self.opt {
            d.encode(pass);
        }
    }

    /// Every step (dispatch or copy) of a training step (eval step when not `train`) in
    /// execution order, with the layer or stage it belongs to, for profiling.
    pub fn dispatches(&self, train: bool) -> Vec<(String, StepRef<'_>)> {
        let mut v: Vec<(String, StepRef<'_>)> = Vec::new();
        for (o, n) in self.fwd.iter().zip(&self.fwd_names) {
            v.extend(
                o.steps
                    .iter()
                    .map(|d| (format!("{n} fwd"), StepRef::Step(d))),
            );
        }
        v.extend(
            self.loss
                .iter()
                .map(|d| ("loss".to_string(), StepRef::Dispatch(d))),
        );
        if train {
            for (o, n) in self.bwd.iter().zip(&self.bwd_names).rev() {
                v.extend(
                    o.steps
                        .iter()
                        .map(|d| (format!("{n} bwd"), StepRef::Step(d))),
                );
            }
            v.extend(self.opt.iter().flat_map(|(_, o)| {
                o.steps
                    .iter()
                    .map(|d| ("optimizer".to_string(), StepRef::Step(d)))
            }));
        }
        v
    }

    /// Records forward and the loss/metrics (an eval step without its gather).
    pub fn encode_eval(&self, pass: &mut Rec<'_>) {
        for o in &self.fwd {
            o.encode(pass);
        }
        for d in &self.loss {
            d.encode(pass);
        }
    }

    /// Sets the learning rate and, for Adam, the 1-based step count of the next optimizer update.
    pub fn set_step(&mut self, gpu: &Gpu, net: &Net, lr: f32, step: u32) {
        if let Some(cfg) = self.opt_cfg.as_mut() {
            cfg.lr = lr;
            let cfg = *cfg;
            for (u, o) in &self.opt {
                // every optimizer op ends with its kernel
                let Some(d) = o.last_dispatch() else { continue };
                match u {
                    Upd::Adam(pi) => {
                        d.set_params(gpu, &adam_params(&net.params[*pi], &cfg, step.max(1)))
                    }
                    Upd::Sgd(pi) => d.set_params(gpu, &sgd_params(&net.params[*pi], &cfg)),
                    Upd::SgdMulti(pis) => {
                        let slots: Vec<(usize, f32)> = pis
                            .iter()
                            .map(|&pi| (net.params[pi].len(), decay(&net.params[pi], &cfg)))
                            .collect();
                        let p = optim::sgd_multi_params(cfg.lr, cfg.momentum, cfg.nesterov, &slots);
                        d.set_params(gpu, &p);
                    }
                }
            }
        }
    }

    /// Sets how many samples of the batch count in the loss and metrics (a short last eval batch).
    pub fn set_valid(&self, gpu: &Gpu, n: usize) {
        let p = crate::ops::loss::LossParams {
            n: n as u32,
            classes: self.classes as u32,
            ..Default::default()
        };
        for d in &self.loss {
            d.set_params(gpu, &p);
        }
    }

    /// The logits tensor (batch x classes).
    pub fn logits(&self) -> &Tensor {
        &self.tensors[self.logits]
    }

    /// Reads (mean loss, accuracy, count) accumulated since the last reset. A device sync.
    pub fn read_metrics(&self, gpu: &Gpu) -> Result<(f64, f64, f64)> {
        let m = self.metrics.to_f32(gpu)?;
        let n = f64::from(m[2]).max(1.0);
        Ok((f64::from(m[0]) / n, f64::from(m[1]) / n, f64::from(m[2])))
    }

    /// Zeroes the metric accumulators.
    pub fn reset_metrics(&self, gpu: &Gpu) {
        gpu.queue
            .write_buffer(&self.metrics.buf, 0, bytemuck::cast_slice(&[0.0f32; 4]));
    }
}

fn adam_params(p: &Param, cfg: &OptimConfig, t: u32) -> optim::AdamParams {
    optim::AdamParams {
        n: p.len() as u32,
        t,
        lr: cfg.lr,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: decay(p, cfg),
        ..Default::default()
    }
}

/// Tensors of at least this many elements get an SGD dispatch of their own (`sgd`); smaller ones
/// share `sgd_multi` dispatches. On lavapipe the LeNet-BN optimizer took 1.95 ms as 12 `sgd`
/// dispatches, 1.82 as 2 `sgd_multi` and 1.43 split this way (2 + 2; a scratch program, each
/// recorded 10 times per pass).
const MULTI_MIN: usize = 4096;

/// Whether the SGD update of `p` has a dispatch of its own that reads its operands from textures
/// (`sgd_tex`: CPU-backed adapters, tensors of at least MULTI_MIN elements, SGD).
fn sgd_reads_textures(gpu: &Gpu, p: &Param, cfg: &OptimConfig) -> bool {
    !cfg.adam
        && p.len() >= MULTI_MIN
        && gpu.info.device_type == wgpu::DeviceType::Cpu
        && crate::ops::conv::act_texture_fits(gpu, p.len().div_ceil(4))
}

/// What an optimizer dispatch updates.
enum Upd {
    Adam(usize),
    Sgd(usize),
    SgdMulti(Vec<usize>),
}

fn sgd_params(p: &Param, cfg: &OptimConfig) -> optim::SgdParams {
    optim::SgdParams {
        n: p.len() as u32,
        nesterov: cfg.nesterov as u32,
        lr: cfg.lr,
        momentum: cfg.momentum,
        weight_decay: decay(p, cfg),
        ..Default::default()
    }
}

/// The weight decay of parameter `p` (conv and linear weights only).
fn decay(p: &Param, cfg: &OptimConfig) -> f32 {
    if p.decay {
        cfg.weight_decay
    } else {
        0.0
    }
}

/// Forward op and (in training plans) backward op of one layer.
type Ops = (Op, Option<Op>);

fn one(d: Vec<Dispatch>) -> Op {
    Op::of(d)
}

#[allow(clippy::too_many_arguments)]
fn plan_conv(
    b: &mut B<'_>,
    net: &Net,
    cs: &ConvShape,
    p: usize,
    x: usize,
    y: usize,
    gy: usize,
    gx: Option<usize>,
    acc_dx: bool,
    io: ConvIo<'_>,
) -> Result<Ops> {
    let gpu = b.gpu;
    let w = &net.params[p];
    let cv = b.conv_variant(cs)?;
    let out = match io.y_rows {
        Some(v) => conv::ConvY::Rows(v),
        None => conv::ConvY::Buf(b.buf(y)),
    };
    let (f, x_rows) = match io.x_rows {
        Some(v) => {
            let f = conv::fwd_rows_to(gpu, cv, cs, &v, &w.w_eff().buf, out)?;
            (f, Some(v))
        }
        None => conv::fwd_keep_input_to(gpu, cv, cs, b.buf(x), &w.w_eff().buf, out)?,
    };
    if !b.train {
        return Ok((f, None));
    }
    // backward-data reads the forward's packed weights where the forward ran conv_tex
    let bw = conv::bwd_with(
        gpu,
        cv,
        cs,
        b.buf(gy),
        b.buf(x),
        x_rows.as_ref(),
        &w.w_eff().buf,
        conv::tex_fwd_weights(gpu, cv, cs, &f),
        &w.grad.buf,
        gx.map(|gx| (b.buf(gx), acc_dx)),
        io.dy_rows,
    )?;
    Ok((f, Some(bw)))
}

/// The texture that the conv of `cs` writes y into, for the texture-fed batch norm after it to
/// read x from, where the conv's output rows are whole texels (conv::y_rows_ok): the conv's y
/// buffer is then never written, and nothing copies it into the norm's texture.
fn conv_y_texture(b: &B<'_>, cs: &ConvShape) -> Result<Option<(wgpu::Texture, wgpu::TextureView)>> {
    let (oh, ow) = cs.out_hw();
    let bs = BnShape {
        n: cs.n,
        c: cs.cout,
        hw: oh * ow,
        relu: false,
    };
    let ok = norm::tex_ok(b.gpu, &bs) && conv::y_rows_ok(b.gpu, b.conv_variant(cs)?, cs);
    Ok(ok.then(|| conv::planes_texture(b.gpu, "conv y (the norm's x)", cs.n, cs.cout, oh, ow)))
}

/// Row textures a conv reads instead of packing its x or dy buffer (conv::rows_io_ok), and the
/// texture it writes y into instead of its buffer (conv::y_rows_ok).
#[derive(Default)]
struct ConvIo<'a> {
    x_rows: Option<wgpu::TextureView>,
    dy_rows: Option<&'a wgpu::TextureView>,
    y_rows: Option<&'a wgpu::TextureView>,
}

/// Where a planned batch norm writes: y, or the max pooling of y (y's index is not stored).
enum BnTo {
    Y(usize),
    Pool {
        w: usize,
        y: usize,
        arg: Option<usize>,
    },
    /// The pooled values into a row texture for the conv that reads them.
    PoolRows {
        w: usize,
        y: wgpu::TextureView,
        arg: Option<usize>,
    },
}

/// Where a batch norm's backward pass takes dy and writes dx.
struct BnDy {
    /// dy: the norm's output gradient, or with `pooled_w` the pooling's (pooled) one.
    gy: usize,
    /// dx into the row texture of the conv before (its row width), not the gradient buffer.
    dx_rows: Option<(usize, wgpu::TextureView)>,
    /// The norm's backward pass also does the max pooling's that its forward fused, over rows
    /// of this width (norm::backward_tex_pooled).
    pooled_w: Option<usize>,
    /// With `pooled_w`: the pooled dy is in this texture (its values in order), which the layer
    /// after the pooling stores, so nothing copies `gy` there.
    gy_rows: Option<wgpu::TextureView>,
}

impl BnDy {
    /// dy from the gradient buffer `gy`, dx into the gradient buffer.
    fn plain(gy: usize) -> BnDy {
        BnDy {
            gy,
            dx_rows: None,
            pooled_w: None,
            gy_rows: None,
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn plan_bn(
    b: &mut B<'_>,
    net: &Net,
    bs: &BnShape,
    bi: BnIdx,
    (x, x_tex): (usize, Option<&wgpu::TextureView>),
    to: BnTo,
    dy: BnDy,
    gx: usize,
) -> Result<Ops> {
    let BnDy {
        gy,
        dx_rows,
        pooled_w,
        gy_rows,
    } = dy;
    let gpu = b.gpu;
    let stats = b.t(2 * bs.c, DType::F32)?;
    let running = &net.buffers[bi.running].1.buf;
    let (gamma, beta) = (&net.params[bi.gamma], &net.params[bi.beta]);
    let bw = BnBwd {
        x: b.buf(x),
        beta: &beta.w_eff().buf,
        dy: b.buf(gy),
        stats: b.buf(stats),
        gamma: &gamma.w_eff().buf,
        dgamma: &gamma.grad.buf,
        dbeta: &beta.grad.buf,
        dx: b.buf(gx),
    };
    if norm::tex_ok(gpu, bs) {
        let out = match to {
            BnTo::Y(y) => norm::BnOut::Y(b.buf(y)),
            BnTo::Pool { w, y, arg } => norm::BnOut::MaxPool2 {
                w,
                y: b.buf(y),
                arg: arg.map(|a| b.buf(a)),
            },
            BnTo::PoolRows { w, ref y, arg } => norm::BnOut::MaxPool2Rows {
                w,
                y,
                arg: arg.map(|a| b.buf(a)),
            },
        };
        let (f, xv) = norm::forward_tex_with(
            gpu, bs, b.train, bw.x, x_tex, bw.stats, running, bw.gamma, bw.beta, out,
        )?;
        let bwd = match b.train {
            true => Some(match (&dx_rows, pooled_w) {
                (None, Some(w)) => {
                    let io = norm::PooledIo {
                        dx_rows: None,
                        dy: gy_rows.as_ref(),
                    };
                    norm::backward_tex_pooled_with(gpu, bs, &bw, &xv, w, io)?
                }
                (Some((rw, v)), Some(w)) if *rw == w => {
                    let io = norm::PooledIo {
                        dx_rows: Some(v),
                        dy: gy_rows.as_ref(),
                    };
                    norm::backward_tex_pooled_with(gpu, bs, &bw, &xv, w, io)?
                }
                (Some(_), Some(_)) => {
                    return Err(Error::Shape {
                        op: "plan",
                        msg: format!("{bs:?}: dx rows of another width than the pooling's"),
                    })
                }
                (Some((w, v)), None) => norm::backward_tex_rows(gpu, bs, &bw, &xv, *w, v)?,
                (None, None) => norm::backward_tex(gpu, bs, &bw, &xv)?,
            }),
            false => None,
        };
        return Ok((f, bwd));
    }
    // The plan fuses pooling, and has the conv before write x into a texture, only where
    // norm::tex_ok holds.
    if x_tex.is_some() {
        return Err(Error::Shape {
            op: "plan",
            msg: format!("{bs:?}: x in a texture needs the texture kernels"),
        });
    }
    let BnTo::Y(y) = to else {
        return Err(Error::Shape {
            op: "plan",
            msg: format!("{bs:?}: batch norm fused with pooling needs the texture kernels"),
        });
    };
    let st = norm::stats(gpu, bs, b.train, bw.x, bw.stats, running)?;
    let ap = norm::apply(gpu, bs, bw.x, bw.stats, bw.gamma, bw.beta, b.buf(y))?;
    let f = one(vec![st, ap]);
    if !b.train {
        return Ok((f, None));
    }
    let [d1, d2] = norm::backward(gpu, bs, &bw)?;
    Ok((f, Some(one(vec![d1, d2]))))
}

/// A step of a plan as [`Plan::dispatches`] lists it.
#[derive(Copy, Clone)]
pub enum StepRef<'a> {
    Step(&'a crate::ops::Step),
    Dispatch(&'a Dispatch),
}

impl StepRef<'_> {
    pub fn encode(&self, rec: &mut Rec<'_>) {
        match self {
            StepRef::Step(s) => s.encode(rec),
            StepRef::Dispatch(d) => d.encode(rec),
        }
    }

    pub fn label(&self) -> &str {
        match self {
            StepRef::Step(s) => s.label(),
            StepRef::Dispatch(d) => &d.kernel.label,
        }
    }
}

impl B<'_> {
    fn push(&mut self, (f, bw): Ops) {
        self.fwd.push(f);
        if let Some(bw) = bw {
            self.bwd.push(bw);
        }
    }
}

/// A linear layer as the plan builds it.
struct LinearLayer {
    fin: usize,
    fout: usize,
    relu: bool,
    /// Param indices of the weight and the bias.
    w: usize,
    bias: usize,
    /// The next layer's backward-data already applied this layer's ReLU backward to gy.
    gy_masked: bool,
    /// This layer's backward-data applies the previous layer's ReLU backward (mask: x > 0).
    mask_dx: bool,
    /// The next layer is a texture-fed linear layer too.
    next_tex: bool,
}

fn plan_linear(
    b: &mut B<'_>,
    net: &Net,
    l: &LinearLayer,
    x: usize,
    y: usize,
    gy: usize,
    gx: Option<usize>,
) -> Result<()> {
    if b.linear_tex(l.fin, l.fout) {
        return plan_linear_tex(b, net, l, x, y, gy, gx);
    }
    debug_assert!(!l.gy_masked && !l.mask_dx);
    let gpu = b.gpu;
    let n = b.n;
    let (fin, fout, relu) = (l.fin, l.fout, l.relu);
    let (w, bias) = (&net.params[l.w], &net.params[l.bias]);
    let z = if relu { b.t(n * fout, DType::F32)? } else { y };
    let fd = GemmDesc {
        trans_b: true,
        ..GemmDesc::new(n, fout, fin)
    };
    let mut f = gemm(
        gpu,
        b.gemm_variant(&fd)?,
        &GemmDesc {
            trans_b: true,
            ..GemmDesc::new(n, fout, fin)
        },
        b.buf(x),
        &w.w_eff().buf,
        b.buf(z),
    )?;
    f.steps
        .push(elementwise(gpu, EwOp::BiasAdd, 1.0, &b.tensors[z], &[bias.w_eff()])?.into());
    if relu {
        f.steps
            .push(elementwise(gpu, EwOp::ReluFwd, 0.0, &b.tensors[y], &[&b.tensors[z]])?.into());
    }
    b.fwd.push(f);
    if b.train {
        let gz = if relu { b.t(n * fout, DType::F32)? } else { gy };
        let mut steps: Vec<crate::ops::Step> = Vec::new();
        let mut textures = Vec::new();
        if relu {
            steps.push(
                elementwise(
                    gpu,
                    EwOp::ReluBwd,
                    0.0,
                    &b.tensors[gz],
                    &[&b.tensors[z], &b.tensors[gy]],
                )?
                .into(),
            );
        }
        let wd = GemmDesc {
            trans_a: true,
            ..GemmDesc::new(fout, fin, n)
        };
        let dw = gemm(
            gpu,
            b.gemm_variant(&wd)?,
            &GemmDesc {
                trans_a: true,
                ..GemmDesc::new(fout, fin, n)
            },
            b.buf(gz),
            b.buf(x),
            &w.grad.buf,
        )?;
        steps.extend(dw.steps);
        textures.extend(dw.textures);
        steps.push(
            reduce(
                gpu,
                ReduceOp::OuterSum,
                ReduceShape::per_channel(n, fout, 1),
                &b.tensors[gz],
                &bias.grad,
            )?
            .into(),
        );
        if let Some(gx) = gx {
            let xd = GemmDesc::new(n, fin, fout);
            let dx = gemm(
                gpu,
                b.gemm_variant(&xd)?,
                &xd,
                b.buf(gz),
                &w.w_eff().buf,
                b.buf(gx),
            )?;
            steps.extend(dx.steps);
            textures.extend(dx.textures);
        }
        b.bwd.push(Op { steps, textures });
    }
    Ok(())
}

/// [`plan_linear`] with the texture-fed kernels: the forward pass copies W into a texture, and x
/// unless the linear layer before stored it there (both shared with the backward pass), and adds
/// the bias and ReLU in its store; the backward pass reads dz from a texture (stored by the loss
/// or the next linear layer, or copied) for backward-weight (which also sums the bias gradient)
/// and backward-data, and stores dW into the optimizer's gradient texture and dx into the texture
/// of the layer before where that layer asked for one (`B::dx_rows`).
fn plan_linear_tex(
    b: &mut B<'_>,
    net: &Net,
    l: &LinearLayer,
    x: usize,
    y: usize,
    gy: usize,
    gx: Option<usize>,
) -> Result<()> {
    let gpu = b.gpu;
    let n = b.n;
    let (w, bias) = (&net.params[l.w], &net.params[l.bias]);
    let mut steps = Vec::new();
    // x: stored into its texture by the linear layer before, or copied
    let tx = match b.x_rows.remove(&x) {
        Some(t) => t,
        None => {
            let (sx, tx) = linear::rows_tex(gpu, "linear x", n, l.fin, b.buf(x))?;
            steps.push(sx);
            tx
        }
    };
    let (sw, tw) = linear::rows_tex(gpu, "linear W", l.fout, l.fin, &w.w_eff().buf)?;
    steps.push(sw);
    // where forward reads w itself (and its rows are whole texels, so the texture is w's vec4s
    // in order), the optimizer reads w from this texture
    if w.mode == WeightMode::Float && l.fin.is_multiple_of(4) {
        b.w_rows.insert(l.w, tw.clone());
    }
    let epi = Epilogue::Bias {
        bias: &bias.w_eff().buf,
        relu: l.relu,
    };
    // y in the next linear layer's x texture too, where its rows are whole texels
    let y_rows = match l.next_tex && l.fout.is_multiple_of(4) {
        true => Some(linear::rows_tex_unfilled(
            gpu,
            "linear x (stored by the layer before)",
            n,
            l.fout,
        )?),
        false => None,
    };
    let f = linear::gemm(
        gpu,
        Form::Nt,
        &tx,
        &tw,
        b.buf(y),
        epi,
        None,
        y_rows.as_ref(),
    )?;
    steps.push(f.into());
    let mut textures = vec![tx.texture.clone(), tw.texture.clone()];
    if let Some(r) = y_rows {
        textures.push(r.texture.clone());
        b.x_rows.insert(y, r);
    }
    b.fwd.push(Op { steps, textures });
    if !b.train {
        return Ok(());
    }
    let mut steps: Vec<crate::ops::Step> = Vec::new();
    // dz = dy masked by y > 0 (the same set as z > 0), unless the next layer did it
    let gz = if l.relu && !l.gy_masked {
        let gz = b.t(n * l.fout, DType::F32)?;
        let ins = [&b.tensors[y], &b.tensors[gy]];
        steps.push(elementwise(gpu, EwOp::ReluBwd, 0.0, &b.tensors[gz], &ins)?.into());
        gz
    } else {
        gy
    };
    // the logits' gradient: the fused loss writes its rows into the texture itself
    let tg = if b.loss_dz == Some(gz) {
        let tg = linear::rows_tex_unfilled(gpu, "linear dz (from the loss)", n, l.fout)?;
        b.loss_dz_rows = Some(tg.view.clone());
        tg
    } else if gz == gy && l.next_tex && linear::bwd_fused_ok(l.fout) {
        // the next layer's fused backward stores its dx (this dz: it applied this ReLU's
        // backward) into the texture as well
        let tg = linear::rows_tex_unfilled(gpu, "linear dz (stored by the next layer)", n, l.fout)?;
        b.dx_rows.insert(gy, tg.clone());
        tg
    } else {
        let (sg, tg) = linear::rows_tex(gpu, "linear dz", n, l.fout, b.buf(gz))?;
        steps.push(sg);
        tg
    };
    // dW = dzᵀ x with the bias gradient (dz summed over the batch), and dx = dz W: one dispatch
    // where dx's rows are vec4s (every dispatch costs a fixed wake-up on CPU-backed adapters)
    if let Some(gx) = gx.filter(|_| linear::bwd_fused_ok(l.fin)) {
        // dW also into the optimizer's gradient texture, dx into the texture a backward pass
        // planned before this one reads
        let dw_rows = match b.opt {
            Some(cfg) if sgd_reads_textures(gpu, w, &cfg) => {
                Some(linear::rows_tex_unfilled(gpu, "linear dW", l.fout, l.fin)?)
            }
            _ => None,
        };
        let dx_rows = b.dx_rows.remove(&gx);
        let mask = l.mask_dx.then(|| b.buf(x));
        let rows = linear::BwdRows {
            dw: dw_rows.as_ref(),
            dx: dx_rows.as_ref(),
        };
        steps.push(
            linear::gemm_bwd(
                gpu,
                &tg,
                &tx,
                &tw,
                &w.grad.buf,
                &bias.grad.buf,
                b.buf(gx),
                mask,
                rows,
            )?
            .into(),
        );
        let mut textures = vec![tg.texture];
        if let Some(r) = dw_rows {
            textures.push(r.texture.clone());
            b.grad_rows.insert(l.w, r);
        }
        b.bwd.push(Op { steps, textures });
        return Ok(());
    }
    let dw = linear::gemm(
        gpu,
        Form::Tn,
        &tg,
        &tx,
        &w.grad.buf,
        Epilogue::None,
        Some(&bias.grad.buf),
        None,
    )?;
    steps.push(dw.into());
    if let Some(gx) = gx {
        let epi = match l.mask_dx {
            true => Epilogue::Mask(b.buf(x)),
            false => Epilogue::None,
        };
        steps.push(linear::gemm(gpu, Form::Nn, &tg, &tw, b.buf(gx), epi, None, None)?.into());
    }
    b.bwd.push(Op {
        steps,
        textures: vec![tg.texture],
    });
    Ok(())
}

type BlockIdx = (usize, BnIdx, usize, BnIdx, Option<(usize, BnIdx)>);

/// A conv and the batch norm after it: conv (weights p) from x into c (gradients gc, and gx with
/// `acc_dx` as plan_conv), then the norm from c into a (its dy ga, its dx gc), the conv writing c
/// into the texture the norm reads where [`conv_y_texture`] allows.
#[allow(clippy::type_complexity)]
fn plan_conv_bn(
    b: &mut B<'_>,
    net: &Net,
    cs: &ConvShape,
    (p, x, c, gc, gx, acc_dx): (usize, usize, usize, usize, Option<usize>, bool),
    bs: &BnShape,
    bi: BnIdx,
    (a, ga): (usize, usize),
) -> Result<(Ops, Ops)> {
    let yt = conv_y_texture(b, cs)?;
    let io = ConvIo {
        y_rows: yt.as_ref().map(|(_, v)| v),
        ..ConvIo::default()
    };
    let mut conv = plan_conv(b, net, cs, p, x, c, gc, gx, acc_dx, io)?;
    let xt = yt.as_ref().map(|(_, v)| v);
    let bn = plan_bn(b, net, bs, bi, (c, xt), BnTo::Y(a), BnDy::plain(ga), gc)?;
    conv.0.textures.extend(yt.map(|(t, _)| t));
    Ok((conv, bn))
}

/// A BasicBlock: y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).
#[allow(clippy::too_many_arguments)]
fn plan_block(
    b: &mut B<'_>,
    net: &Net,
    s: (usize, usize, usize),
    cout: usize,
    stride: usize,
    (w1, bn1, w2, bn2, proj): BlockIdx,
    x: usize,
    y: usize,
    gy: usize,
    gx: Option<usize>,
) -> Result<()> {
    let gpu = b.gpu;
    let n = b.n;
    let c1s = ConvShape {
        n,
        cin: s.0,
        h: s.1,
        w: s.2,
        cout,
        k: 3,
        stride,
        pad: 1,
    };
    let (oh, ow) = c1s.out_hw();
    let c2s = ConvShape {
        n,
        cin: cout,
        h: oh,
        w: ow,
        cout,
        k: 3,
        stride: 1,
        pad: 1,
    };
    let len = n * cout * oh * ow;
    let bs1 = BnShape {
        n,
        c: cout,
        hw: oh * ow,
        relu: true,
    };
    let bs2 = BnShape {
        n,
        c: cout,
        hw: oh * ow,
        relu: false,
    };
    let mut t = || b.t(len, DType::F32);
    let (c1, a1, c2, a2) = (t()?, t()?, t()?, t()?);
    let (gc1, ga1, gc2, gpre) = (t()?, t()?, t()?, t()?);
    let (conv1, bn1o) = plan_conv_bn(
        b,
        net,
        &c1s,
        (w1, x, c1, gc1, gx, false),
        &bs1,
        bn1,
        (a1, ga1),
    )?;
    let conv2 = (w2, a1, c2, gc2, Some(ga1), false);
    let (conv2, bn2o) = plan_conv_bn(b, net, &c2s, conv2, &bs2, bn2, (a2, gpre))?;
    // Forward in order; backward collected in execution order, then pushed reversed (the plan
    // runs its backward list from the end).
    let mut fwd = vec![conv1.0, bn1o.0, conv2.0, bn2o.0];
    let mut bwd_exec = Vec::new();
    let relu_bwd = elementwise_op(
        gpu,
        EwOp::ReluBwd,
        0.0,
        &b.tensors[gpre],
        &[&b.tensors[y], &b.tensors[gy]],
    )?;
    bwd_exec.push(relu_bwd);
    bwd_exec.extend([bn2o.1, conv2.1, bn1o.1, conv1.1].into_iter().flatten());
    let sc = match proj {
        Some((ws, bns)) => {
            let ss = ConvShape {
                n,
                cin: s.0,
                h: s.1,
                w: s.2,
                cout,
                k: 1,
                stride,
                pad: 0,
            };
            let (cs, as_, gcs) = (
                b.t(len, DType::F32)?,
                b.t(len, DType::F32)?,
                b.t(len, DType::F32)?,
            );
            let bss = BnShape {
                n,
                c: cout,
                hw: oh * ow,
                relu: false,
            };
            // conv1's backward writes gx; the shortcut's accumulates into it afterwards.
            let conv = (ws, x, cs, gcs, gx, true);
            let (sconv, sbn) = plan_conv_bn(b, net, &ss, conv, &bss, bns, (as_, gpre))?;
            fwd.push(sconv.0);
            fwd.push(sbn.0);
            bwd_exec.extend([sbn.1, sconv.1].into_iter().flatten());
            as_
        }
        None => {
            if let (Some(gx), true) = (gx, b.train) {
                bwd_exec.push(elementwise_op(
                    gpu,
                    EwOp::Axpy,
                    1.0,
                    &b.tensors[gx],
                    &[&b.tensors[gpre]],
                )?);
            }
            x
        }
    };
    // y = relu(a2 + sc) in one pass; the backward masks by y > 0, the same set as a2 + sc > 0
    fwd.push(elementwise_op(
        gpu,
        EwOp::AddRelu,
        0.0,
        &b.tensors[y],
        &[&b.tensors[a2], &b.tensors[sc]],
    )?);
    b.fwd.extend(fwd);
    if b.train {
        b.bwd.extend(bwd_exec.into_iter().rev());
    }
    Ok(())
}
