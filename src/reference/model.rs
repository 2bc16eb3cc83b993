//! A CPU reference of a whole training step for chain models (conv, batch norm, max/avg pooling,
//! linear), composed from the CPU twins: forward, mean softmax cross-entropy, backward, and the
//! SGD update. The golden test runs it beside the GPU plan from the same parameters and batch.
//! BasicBlock follows the same definition as the planner (option-B shortcut).

use crate::graph::model::{Layer, Model};
use crate::ops::conv::ConvShape;
use crate::ops::norm::BnShape;
use crate::ops::optim::SgdParams;
use crate::ops::pool::PoolShape;
use crate::reference::{conv, loss, norm, optim, pool};

/// Parameters in the order `Net::new` creates them, with the BN running stats.
#[derive(Clone, Debug)]
pub struct CpuNet {
    pub params: Vec<Vec<f32>>,
    pub running: Vec<Vec<f32>>,
}

enum Saved {
    Conv(ConvShape),
    Bn(BnShape, Vec<f32>),
    Pool(PoolShape, Vec<u32>),
    Gap(PoolShape),
    Linear {
        fin: usize,
        fout: usize,
        relu: bool,
        z: Vec<f32>,
    },
    Block(Box<BlockSaved>),
}

struct BlockSaved {
    c1s: ConvShape,
    c2s: ConvShape,
    ss: Option<ConvShape>,
    bs1: BnShape,
    bs2: BnShape,
    st: Vec<Vec<f32>>,
    c1: Vec<f32>,
    a1: Vec<f32>,
    c2: Vec<f32>,
    a2: Vec<f32>,
    cs: Vec<f32>,
    as_: Vec<f32>,
    pre: Vec<f32>,
    first_param: usize,
}

fn bn_fwd(
    net: &mut CpuNet,
    ri: &mut usize,
    pi: usize,
    bs: &BnShape,
    x: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let (st, run) = norm::stats(bs, x, &net.running[*ri]);
    net.running[*ri] = run;
    *ri += 1;
    let y = norm::apply(bs, x, &st, &net.params[pi], &net.params[pi + 1]);
    (y, st)
}

/// One training step: returns (mean loss, gradients in parameter order) and updates `net`'s
/// running stats. `x` is batch x C x H x W, `labels` the classes.
pub fn train_step(
    model: &Model,
    net: &mut CpuNet,
    n: usize,
    x: &[f32],
    labels: &[u32],
) -> (f64, Vec<Vec<f32>>) {
    let mut acts = vec![x.to_vec()];
    let mut saved = Vec::new();
    let mut s = model.input;
    let (mut pi, mut ri) = (0usize, 0usize);
    for layer in &model.layers {
        let (c, h, w) = s;
        let xin = acts.last().unwrap().clone();
        let (y, sv, next) = match *layer {
            Layer::Conv {
                cout,
                k,
                stride,
                pad,
            } => {
                let cs = ConvShape {
                    n,
                    cin: c,
                    h,
                    w,
                    cout,
                    k,
                    stride,
                    pad,
                };
                let (oh, ow) = cs.out_hw();
                pi += 1;
                (
                    conv::conv2d_fwd(&cs, &xin, &net.params[pi - 1]),
                    Saved::Conv(cs),
                    (cout, oh, ow),
                )
            }
            Layer::Bn { relu } => {
                let bs = BnShape {
                    n,
                    c,
                    hw: h * w,
                    relu,
                };
                let (st, run) = norm::stats(&bs, &xin, &net.running[ri]);
                net.running[ri] = run;
                ri += 1;
                let y = norm::apply(&bs, &xin, &st, &net.params[pi], &net.params[pi + 1]);
                pi += 2;
                (y, Saved::Bn(bs, st), s)
            }
            Layer::MaxPool2 => {
                let ps = PoolShape { n, c, h, w };
                let (y, arg) = pool::max_fwd(&ps, &xin);
                (y, Saved::Pool(ps, arg), (c, h / 2, w / 2))
            }
            Layer::Gap => {
                let ps = PoolShape { n, c, h, w };
                (pool::gap_fwd(&ps, &xin), Saved::Gap(ps), (c, 1, 1))
            }
            Layer::Linear { fout, relu } => {
                let fin = c * h * w;
                let (wt, b) = (&net.params[pi], &net.params[pi + 1]);
                pi += 2;
                let mut z = vec![0.0f32; n * fout];
                for i in 0..n {
                    for o in 0..fout {
                        let mut acc = f64::from(b[o]);
                        for j in 0..fin {
                            acc += f64::from(xin[i * fin + j]) * f64::from(wt[o * fin + j]);
                        }
                        z[i * fout + o] = acc as f32;
                    }
                }
                let y = if relu {
                    z.iter().map(|v| v.max(0.0)).collect()
                } else {
                    z.clone()
                };
                (y, Saved::Linear { fin, fout, relu, z }, (fout, 1, 1))
            }
            Layer::BasicBlock { cout, stride } => {
                let first_param = pi;
                let c1s = ConvShape {
                    n,
                    cin: c,
                    h,
                    w,
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
                let c1 = conv::conv2d_fwd(&c1s, &xin, &net.params[pi]);
                let (a1, st1) = bn_fwd(net, &mut ri, pi + 1, &bs1, &c1);
                let c2 = conv::conv2d_fwd(&c2s, &a1, &net.params[pi + 3]);
                let (a2, st2) = bn_fwd(net, &mut ri, pi + 4, &bs2, &c2);
                pi += 6;
                let mut st = vec![st1, st2];
                let (ss, cs, as_) = if stride != 1 || c != cout {
                    let ss = ConvShape {
                        n,
                        cin: c,
                        h,
                        w,
                        cout,
                        k: 1,
                        stride,
                        pad: 0,
                    };
                    let cs = conv::conv2d_fwd(&ss, &xin, &net.params[pi]);
                    let (as_, sts) = bn_fwd(net, &mut ri, pi + 1, &bs2, &cs);
                    pi += 3;
                    st.push(sts);
                    (Some(ss), cs, as_)
                } else {
                    (None, Vec::new(), xin.clone())
                };
                let pre: Vec<f32> = a2.iter().zip(&as_).map(|(a, b)| a + b).collect();
                let y = pre.iter().map(|v| v.max(0.0)).collect();
                let sv = BlockSaved {
                    c1s,
                    c2s,
                    ss,
                    bs1,
                    bs2,
                    st,
                    c1,
                    a1,
                    c2,
                    a2,
                    cs,
                    as_,
                    pre,
                    first_param,
                };
                (y, Saved::Block(Box::new(sv)), (cout, oh, ow))
            }
        };
        acts.push(y);
        saved.push(sv);
        s = next;
    }
    let logits = acts.last().unwrap();
    let (dz, per) = loss::softmax_ce(n, model.classes, logits, labels);
    let mean_loss = per.iter().map(|p| f64::from(p[0])).sum::<f64>() / n as f64;

    let mut grads: Vec<Vec<f32>> = net.params.iter().map(|p| vec![0.0; p.len()]).collect();
    let mut g = dz;
    for (li, sv) in saved.iter().enumerate().rev() {
        let xin = &acts[li];
        match sv {
            Saved::Conv(cs) => {
                pi -= 1;
                let (dx, dw) = conv::conv2d_bwd(cs, xin, &net.params[pi], &g);
                grads[pi] = dw;
                g = dx;
            }
            Saved::Bn(bs, st) => {
                pi -= 2;
                let (dx, dg, db) = norm::backward(bs, xin, &acts[li + 1], &g, st, &net.params[pi]);
                grads[pi] = dg;
                grads[pi + 1] = db;
                g = dx;
            }
            Saved::Block(b) => {
                let p0 = b.first_param;
                pi = p0;
                let gpre: Vec<f32> = g
                    .iter()
                    .zip(&b.pre)
                    .map(|(gv, p)| if *p > 0.0 { *gv } else { 0.0 })
                    .collect();
                let (gc2, dg2, db2) =
                    norm::backward(&b.bs2, &b.c2, &b.a2, &gpre, &b.st[1], &net.params[p0 + 4]);
                let (ga1, dw2) = conv::conv2d_bwd(&b.c2s, &b.a1, &net.params[p0 + 3], &gc2);
                let (gc1, dg1, db1) =
                    norm::backward(&b.bs1, &b.c1, &b.a1, &ga1, &b.st[0], &net.params[p0 + 1]);
                let (mut gx, dw1) = conv::conv2d_bwd(&b.c1s, xin, &net.params[p0], &gc1);
                grads[p0] = dw1;
                grads[p0 + 1] = dg1;
                grads[p0 + 2] = db1;
                grads[p0 + 3] = dw2;
                grads[p0 + 4] = dg2;
                grads[p0 + 5] = db2;
                match &b.ss {
                    Some(ss) => {
                        let (gcs, dgs, dbs) = norm::backward(
                            &b.bs2,
                            &b.cs,
                            &b.as_,
                            &gpre,
                            &b.st[2],
                            &net.params[p0 + 7],
                        );
                        let (gxs, dws) = conv::conv2d_bwd(ss, xin, &net.params[p0 + 6], &gcs);
                        grads[p0 + 6] = dws;
                        grads[p0 + 7] = dgs;
                        grads[p0 + 8] = dbs;
                        for (a, b) in gx.iter_mut().zip(&gxs) {
                            *a += b;
                        }
                    }
                    None => {
                        for (a, b) in gx.iter_mut().zip(&gpre) {
                            *a += b;
                        }
                    }
                }
                g = gx;
            }
            Saved::Pool(ps, arg) => g = pool::max_bwd(ps, &g, arg),
            Saved::Gap(ps) => g = pool::gap_bwd(ps, &g),
            Saved::Linear { fin, fout, relu, z } => {
                pi -= 2;
                let (fin, fout) = (*fin, *fout);
                let gz: Vec<f32> = (0..n * fout)
                    .map(|i| if *relu && z[i] <= 0.0 { 0.0 } else { g[i] })
                    .collect();
                let wt = &net.params[pi];
                let mut dw = vec![0.0f32; fout * fin];
                let mut db = vec![0.0f32; fout];
                let mut dx = vec![0.0f32; n * fin];
                for o in 0..fout {
                    let mut sb = 0.0f64;
                    for i in 0..n {
                        sb += f64::from(gz[i * fout + o]);
                    }
                    db[o] = sb as f32;
                    for j in 0..fin {
                        let mut acc = 0.0f64;
                        for i in 0..n {
                            acc += f64::from(gz[i * fout + o]) * f64::from(xin[i * fin + j]);
                        }
                        dw[o * fin + j] = acc as f32;
                    }
                }
                for i in 0..n {
                    for j in 0..fin {
                        let mut acc = 0.0f64;
                        for o in 0..fout {
                            acc += f64::from(gz[i * fout + o]) * f64::from(wt[o * fin + j]);
                        }
                        dx[i * fin + j] = acc as f32;
                    }
                }
                grads[pi] = dw;
                grads[pi + 1] = db;
                g = dx;
            }
        }
    }
    (mean_loss, grads)
}

/// Applies SGD (per-parameter weight decay flags as in `Net`) with zero-initialised `momentum`.
pub fn sgd_step(
    net: &mut CpuNet,
    grads: &[Vec<f32>],
    momentum: &mut [Vec<f32>],
    decay: &[bool],
    p: &SgdParams,
) {
    for i in 0..net.params.len() {
        let mut q = *p;
        q.n = net.params[i].len() as u32;
        if !decay[i] {
            q.weight_decay = 0.0;
        }
        let mask = vec![1.0; net.params[i].len()];
        optim::sgd(&q, &mut net.params[i], &mut momentum[i], &grads[i], &mask);
    }
}

/// Applies Adam (betas 0.9 and 0.999, eps 1e-8; step `t`, 1-based) with moments `m` and `v`.
#[allow(clippy::too_many_arguments)]
pub fn adam_step(
    net: &mut CpuNet,
    grads: &[Vec<f32>],
    m: &mut [Vec<f32>],
    v: &mut [Vec<f32>],
    decay: &[bool],
    lr: f32,
    wd: f32,
    t: u32,
) {
    for i in 0..net.params.len() {
        let p = crate::ops::optim::AdamParams {
            n: net.params[i].len() as u32,
            t,
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: if decay[i] { wd } else { 0.0 },
            ..Default::default()
        };
        let mask = vec![1.0; net.params[i].len()];
        optim::adam(
            &p,
            &mut net.params[i],
            &mut m[i],
            &mut v[i],
            &grads[i],
            &mask,
        );
    }
}
