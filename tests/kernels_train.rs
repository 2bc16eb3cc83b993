//! Training kernels against their CPU twins, and every backward kernel against central finite
//! differences of its forward twin (L = sum(forward(x) * r) for a random r, step 1e-2 in f64,
//! 24 sampled coordinates, tolerance abs 2e-3 + rel 2e-2: the f32 rounding of the forward
//! outputs bounds how well a difference quotient can agree).
//! Shapes are awkward on purpose: batch 1, odd sizes, stride 2, 1x1 kernels, padding.

mod common;
use common::{assert_close, assert_exact_f32, gpu, write_rows_texture, Rng, Tol, POISON};
use incq::gpu::{DType, Tensor};
use incq::ops::conv::{ConvShape, ConvVariant, ConvY};
use incq::ops::norm::{BnBwd, BnShape};
use incq::ops::pool::PoolShape;
use incq::ops::{conv, loss, norm, optim, pool};
use incq::reference;

fn up(g: &incq::Gpu, v: &[f32]) -> Tensor {
    Tensor::from_f32(g, "t", &[v.len()], v).unwrap()
}

fn out(g: &incq::Gpu, n: usize) -> Tensor {
    let t = Tensor::empty(g, "out", &[n], DType::F32).unwrap();
    t.poison(g, POISON);
    t
}

/// Central differences of `f` (a scalar function of `x`) at sampled coordinates vs `grad`.
fn fd_check(what: &str, x: &[f32], grad: &[f32], f: &dyn Fn(&[f32]) -> f64) {
    let mut rng = Rng::new(77);
    let h = 1e-2f32;
    for _ in 0..24 {
        let i = rng.below(x.len() as u64) as usize;
        let mut xp = x.to_vec();
        xp[i] += h;
        let mut xm = x.to_vec();
        xm[i] -= h;
        let num = (f(&xp) - f(&xm)) / (2.0 * f64::from(h));
        let err = (num - f64::from(grad[i])).abs();
        assert!(
            err <= 2e-3 + 2e-2 * num.abs(),
            "{what}: finite difference at {i}: numeric {num:e}, GPU {:e}",
            grad[i]
        );
    }
}

fn dot(a: &[f32], r: &[f32]) -> f64 {
    a.iter()
        .zip(r)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum()
}

#[test]
fn conv2d_fwd_bwd_data_bwd_weight_match_twins() {
    conv_variant_matches_twins(ConvVariant::Direct);
}

/// conv2d_fwd_sg, conv2d_bwd_data_sg, conv2d_bwd_weight_sg (strides 2, 1x1) and
/// conv2d_bwd_weight_win (stride 1, K 3 and 5), with sliced partial sums.
#[test]
fn conv2d_sg_kernels_match_twins() {
    let Some(g) = gpu() else { return };
    if !ConvVariant::candidates(g).contains(&ConvVariant::Subgroup) {
        eprintln!("conv2d_*_sg: this adapter has no subgroups of 8 or more; the variant is never selected here");
        return;
    }
    conv_variant_matches_twins(ConvVariant::Subgroup);
}

/// The texture-fed conv kernels at 8 and 16 channels per invocation: pack_act and pack_act2 (odd
/// and even widths; or the copy that fills row textures of a multiple of 4 columns), pack_wt,
/// conv_tex and conv_tex4 (forward, and
/// backward-data at stride 1), conv_bwd_data2_tex (backward-data at stride 2), pack_act_c4,
/// pack_c4_from_rows and conv_dw_tex (backward-weight), alone and through conv::bwd.
#[test]
fn conv2d_tex_kernels_match_twins() {
    let Some(g) = gpu() else { return };
    if !ConvVariant::tex_supported(g) {
        eprintln!("conv_tex: this adapter has no subgroups of exactly 8; the variant is never selected here");
        return;
    }
    conv_variant_matches_twins(ConvVariant::Tex { co: 16 });
    conv_variant_matches_twins(ConvVariant::Tex { co: 8 });
}

/// Backward-weight (conv_dw_rows_tex) over more output positions than one invocation may loop
/// over (llvmpipe's 65,535-iteration guard): the position range is split into slices even where
/// the taps and channels alone fill 64 workgroups.
#[test]
fn conv_dw_splits_long_reductions() {
    let Some(g) = gpu() else { return };
    if !ConvVariant::tex_supported(g) {
        return;
    }
    // 13 x 5 tap rows and 64 channels fill 72 workgroups; 66,000 rows of one texel each are
    // 66,000 positions per invocation unless sliced
    let s = ConvShape {
        n: 1,
        cin: 13,
        h: 66_000,
        w: 4,
        cout: 64,
        k: 5,
        stride: 1,
        pad: 2,
    };
    let mut rng = Rng::new(77);
    let x = rng.vec(s.x_len(), -1.0, 1.0);
    let dy = rng.vec(s.y_len(), -1.0, 1.0);
    let tdw = out(g, s.w_len());
    let v = ConvVariant::Tex { co: 8 };
    conv::bwd_weight(g, v, &s, &up(g, &dy).buf, &up(g, &x).buf, &tdw.buf, false)
        .unwrap()
        .run(g);
    let w0 = vec![0.0; s.w_len()];
    let (_, dw_ref) = reference::conv::conv2d_bwd(&s, &x, &w0, &dy);
    // each weight sums up to 264,000 products of magnitude below 1 (|terms| sum to about 66,000):
    // an f32 sum of that length is good to about 1e-2 absolute
    assert_close(
        "conv_dw_rows_tex over 264,000 positions",
        &tdw.to_f32(g).unwrap(),
        &dw_ref,
        Tol {
            abs: 1e-2,
            rel: 1e-3,
        },
    );
}

fn conv_shapes() -> Vec<ConvShape> {
    let s = |n, cin, h, w, cout, k, stride, pad| ConvShape {
        n,
        cin,
        h,
        w,
        cout,
        k,
        stride,
        pad,
    };
    vec![
        s(1, 1, 5, 5, 1, 3, 1, 1),
        s(2, 3, 7, 9, 5, 3, 1, 1),
        s(3, 6, 14, 14, 16, 5, 1, 0), // LeNet conv2 at batch 3 (conv_tex2: widths 10 and 14)
        s(2, 1, 28, 28, 6, 5, 1, 2),  // LeNet conv1
        s(2, 4, 9, 8, 6, 3, 2, 1),    // stride 2, odd input
        s(2, 5, 8, 8, 7, 1, 2, 0),    // 1x1 stride-2 shortcut
        s(1, 2, 6, 6, 3, 1, 1, 0),
        s(2, 9, 8, 8, 17, 3, 1, 1), // 16+1 channels: a CB=16 block and a ragged one
        s(1, 20, 5, 5, 10, 3, 2, 1), // more than 16 input channels for bwd_data
        s(3, 7, 13, 11, 19, 5, 1, 2), // odd widths: ragged texels in and out, K 5, pad 2
        s(1, 3, 4, 12, 9, 3, 1, 0), // no padding, width a multiple of 4
        s(2, 2, 6, 7, 5, 4, 1, 3),  // even kernel, pad K - 1
        s(2, 16, 32, 40, 8, 3, 1, 1), // several texture rows
        s(2, 3, 17, 19, 9, 3, 2, 1), // stride 2, ragged output texels
        s(2, 6, 16, 16, 10, 1, 2, 0), // 1x1 stride-2 shortcut, output width 8
    ]
}

fn conv_variant_matches_twins(v: ConvVariant) {
    let Some(g) = gpu() else { return };
    for (t, s) in conv_shapes().into_iter().enumerate() {
        let mut rng = Rng::new(t as u64);
        let x = rng.vec(s.x_len(), -1.0, 1.0);
        let w = rng.vec(s.w_len(), -1.0, 1.0);
        let dy = rng.vec(s.y_len(), -1.0, 1.0);
        let (tx, tw, tdy) = (up(g, &x), up(g, &w), up(g, &dy));
        let (ty, tdx, tdw) = (out(g, s.y_len()), out(g, s.x_len()), out(g, s.w_len()));
        conv::fwd(g, v, &s, &tx.buf, &tw.buf, &ty.buf)
            .unwrap()
            .run(g);
        conv::bwd_data(g, v, &s, &tdy.buf, &tw.buf, &tdx.buf, false)
            .unwrap()
            .run(g);
        conv::bwd_weight(g, v, &s, &tdy.buf, &tx.buf, &tdw.buf, false)
            .unwrap()
            .run(g);
        let y_ref = reference::conv::conv2d_fwd(&s, &x, &w);
        let (dx_ref, dw_ref) = reference::conv::conv2d_bwd(&s, &x, &w, &dy);
        assert_close(
            &format!("conv2d_fwd {s:?}"),
            &ty.to_f32(g).unwrap(),
            &y_ref,
            Tol::BALANCED,
        );
        let dx = tdx.to_f32(g).unwrap();
        let dw = tdw.to_f32(g).unwrap();
        assert_close(
            &format!("conv2d_bwd_data {s:?}"),
            &dx,
            &dx_ref,
            Tol::BALANCED,
        );
        assert_close(
            &format!("conv2d_bwd_weight {s:?}"),
            &dw,
            &dw_ref,
            Tol::BALANCED,
        );
        // the whole backward pass as one op (dy packed once where both halves use textures, x
        // read from the forward pass's texture where backward-weight takes it by rows), and
        // backward-weight alone (a first layer) from the same texture
        let (tdx2, tdw2, tdw3) = (out(g, s.x_len()), out(g, s.w_len()), out(g, s.w_len()));
        let ty2 = out(g, s.y_len());
        let (f, x_rows) = conv::fwd_keep_input(g, v, &s, &tx.buf, &tw.buf, &ty2.buf).unwrap();
        f.run(g);
        // y into a poisoned texture (conv_tex4_rows) where the output rows are whole texels: the
        // same bits as the buffer, texel for texel; elsewhere a clear error
        let (oh, ow) = s.out_hw();
        let (yt, yv) = conv::planes_texture(g, "y rows", s.n, s.cout, oh, ow);
        let to_rows = conv::fwd_keep_input_to(g, v, &s, &tx.buf, &tw.buf, ConvY::Rows(&yv));
        if conv::y_rows_ok(g, v, &s) {
            write_rows_texture(g, &yt, &[], POISON);
            to_rows.unwrap().0.run(g);
            let got = g.read_texture_rgba32f(&yt).unwrap();
            let what = format!("conv_tex4_rows: conv fwd y into a texture {s:?} {v:?}");
            assert_exact_f32(&what, &got[..s.y_len()], &ty2.to_f32(g).unwrap());
        } else {
            let err = to_rows
                .err()
                .expect("y into a texture where y_rows_ok fails");
            assert!(err.to_string().contains("y into a texture"), "{err}");
        }
        for (dw_out, dx) in [(&tdw2, Some((&tdx2.buf, false))), (&tdw3, None)] {
            let (x, w) = (&tx.buf, &tw.buf);
            conv::bwd(
                g,
                v,
                &s,
                &tdy.buf,
                x,
                x_rows.as_ref(),
                w,
                &dw_out.buf,
                dx,
                None,
            )
            .unwrap()
            .run(g);
        }
        assert_close(
            &format!("conv bwd without dx: dw {s:?}"),
            &tdw3.to_f32(g).unwrap(),
            &dw_ref,
            Tol::BALANCED,
        );
        assert_close(
            &format!("conv bwd: dx {s:?}"),
            &tdx2.to_f32(g).unwrap(),
            &dx_ref,
            Tol::BALANCED,
        );
        assert_close(
            &format!("conv bwd: dw {s:?}"),
            &tdw2.to_f32(g).unwrap(),
            &dw_ref,
            Tol::BALANCED,
        );
        // backward-data from the forward's packed weights (conv_tex's FLIPW, stride 1): the same
        // bits as from its own flipped pack, and the same dw
        let (tdx4, tdw4) = (out(g, s.x_len()), out(g, s.w_len()));
        conv::bwd_with(
            g,
            v,
            &s,
            &tdy.buf,
            &tx.buf,
            x_rows.as_ref(),
            &tw.buf,
            conv::tex_fwd_weights(g, v, &s, &f),
            &tdw4.buf,
            Some((&tdx4.buf, false)),
            None,
        )
        .unwrap()
        .run(g);
        let f32s = |t: &Tensor| t.to_f32(g).unwrap();
        let what = format!("dx from the forward's weights {s:?} {v:?}");
        assert_exact_f32(&what, &f32s(&tdx4), &f32s(&tdx2));
        let what = format!("dw beside it {s:?} {v:?}");
        assert_exact_f32(&what, &f32s(&tdw4), &f32s(&tdw2));
        fd_check("conv2d_bwd_data", &x, &dx, &|xv| {
            dot(&reference::conv::conv2d_fwd(&s, xv, &w), &dy)
        });
        fd_check("conv2d_bwd_weight", &w, &dw, &|wv| {
            dot(&reference::conv::conv2d_fwd(&s, &x, wv), &dy)
        });
    }
}

#[test]
fn conv2d_accumulate_adds_into_the_output() {
    let Some(g) = gpu() else { return };
    // widths 6 (the texture conv's paired stores) and 7 (its scalar stores)
    for w_in in [6, 7] {
        let s = ConvShape {
            n: 2,
            cin: 3,
            h: 5,
            w: w_in,
            cout: 4,
            k: 3,
            stride: 1,
            pad: 1,
        };
        let mut rng = Rng::new(9);
        let (x, w, dy) = (
            rng.vec(s.x_len(), -1.0, 1.0),
            rng.vec(s.w_len(), -1.0, 1.0),
            rng.vec(s.y_len(), -1.0, 1.0),
        );
        let base = rng.vec(s.w_len(), -1.0, 1.0);
        let base_x = rng.vec(s.x_len(), -1.0, 1.0);
        let (tdw, tdx) = (up(g, &base), up(g, &base_x));
        let (dx, dw) = reference::conv::conv2d_bwd(&s, &x, &w, &dy);
        let want: Vec<f32> = base.iter().zip(&dw).map(|(a, b)| a + b).collect();
        let want_x: Vec<f32> = base_x.iter().zip(&dx).map(|(a, b)| a + b).collect();
        for v in [ConvVariant::Direct, ConvVariant::default_for(g)] {
            tdw.write_f32(g, &base).unwrap();
            conv::bwd_weight(g, v, &s, &up(g, &dy).buf, &up(g, &x).buf, &tdw.buf, true)
                .unwrap()
                .run(g);
            let label = format!("conv2d_bwd_weight accumulate {v:?} {s:?}");
            assert_close(&label, &tdw.to_f32(g).unwrap(), &want, Tol::BALANCED);
            tdx.write_f32(g, &base_x).unwrap();
            conv::bwd_data(g, v, &s, &up(g, &dy).buf, &up(g, &w).buf, &tdx.buf, true)
                .unwrap()
                .run(g);
            let label = format!("conv2d_bwd_data accumulate {v:?} {s:?}");
            assert_close(&label, &tdx.to_f32(g).unwrap(), &want_x, Tol::BALANCED);
        }
    }
}

fn bn_shapes() -> Vec<BnShape> {
    vec![
        BnShape {
            n: 1,
            c: 1,
            hw: 7,
            relu: false,
        },
        BnShape {
            n: 3,
            c: 5,
            hw: 49,
            relu: true,
        },
        BnShape {
            n: 2,
            c: 16,
            hw: 100,
            relu: false,
        },
        BnShape {
            n: 64,
            c: 3,
            hw: 1,
            relu: true,
        },
        BnShape {
            n: 5,
            c: 2,
            hw: 300,
            relu: true,
        },
    ]
}

/// bn_stats_tex, bn_apply_tex, bn_bwd_reduce_tex and bn_bwd_dx_tex (x and dy copied into
/// textures) against the same twins, on shapes with H*W a multiple of 4.
#[test]
fn batch_norm_texture_kernels_match_twins() {
    let Some(g) = gpu() else { return };
    let shape = |n, c, hw, relu| BnShape { n, c, hw, relu };
    let shapes = [
        shape(1, 1, 4, true),
        shape(3, 5, 36, true),
        shape(2, 3, 1024, false),
        shape(7, 2, 100, true),
    ];
    for (t, s) in shapes.into_iter().enumerate() {
        if !norm::tex_ok(g, &s) {
            eprintln!("bn_*_tex: not selected on this adapter (not CPU-backed)");
            return;
        }
        bn_case(g, s, 70 + t as u64, true);
    }
}

#[test]
fn batch_norm_kernels_match_twins() {
    let Some(g) = gpu() else { return };
    for (t, s) in bn_shapes().into_iter().enumerate() {
        bn_case(g, s, 40 + t as u64, false);
    }
}

/// Batch norm forward and backward on `s` against the twins, through the storage-buffer kernels
/// or (`tex`) the texture-fed ones, with finite-difference checks of the backward pass.
fn bn_case(g: &incq::Gpu, s: BnShape, seed: u64, tex: bool) {
    let k = if tex { "_tex" } else { "" };
    let mut rng = Rng::new(seed);
    let x: Vec<f32> = (0..s.len()).map(|_| rng.normal() * 2.0 + 0.5).collect();
    let gamma = rng.vec(s.c, 0.5, 1.5);
    let beta = rng.vec(s.c, -0.5, 0.5);
    let running = [rng.vec(s.c, -0.1, 0.1), rng.vec(s.c, 0.9, 1.1)].concat();
    let dy = rng.vec(s.len(), -1.0, 1.0);
    let (tx, tg, tb, tr, tdy) = (
        up(g, &x),
        up(g, &gamma),
        up(g, &beta),
        up(g, &running),
        up(g, &dy),
    );
    let (tst, ty) = (out(g, 2 * s.c), out(g, s.len()));
    let xv = if tex {
        let (f, xv) = norm::forward_tex(
            g,
            &s,
            true,
            &tx.buf,
            &tst.buf,
            &tr.buf,
            &tg.buf,
            &tb.buf,
            norm::BnOut::Y(&ty.buf),
        )
        .unwrap();
        f.run(g);
        // x from a texture its producer wrote (a conv's y, conv::ConvY::Rows), beside a NaN x
        // buffer that must not be read: the same bits as from the copy
        let (xt, xv2) = conv::planes_texture(g, "bn x rows", s.n, s.c, 1, s.hw);
        write_rows_texture(g, &xt, &x, POISON);
        let nan_x = up(g, &vec![f32::NAN; s.len()]);
        let (tst2, ty2, tr2) = (out(g, 2 * s.c), out(g, s.len()), up(g, &running));
        let (f2, _) = norm::forward_tex_with(
            g,
            &s,
            true,
            &nan_x.buf,
            Some(&xv2),
            &tst2.buf,
            &tr2.buf,
            &tg.buf,
            &tb.buf,
            norm::BnOut::Y(&ty2.buf),
        )
        .unwrap();
        f2.run(g);
        for (what, a, b) in [
            ("stats", &tst2, &tst),
            ("y", &ty2, &ty),
            ("running", &tr2, &tr),
        ] {
            let what = format!("bn forward_tex_with x in a texture {s:?}: {what}");
            assert_exact_f32(&what, &a.to_f32(g).unwrap(), &b.to_f32(g).unwrap());
        }
        Some(xv)
    } else {
        norm::stats(g, &s, true, &tx.buf, &tst.buf, &tr.buf)
            .unwrap()
            .run(g);
        norm::apply(g, &s, &tx.buf, &tst.buf, &tg.buf, &tb.buf, &ty.buf)
            .unwrap()
            .run(g);
        None
    };
    let (st_ref, run_ref) = reference::norm::stats(&s, &x, &running);
    let st = tst.to_f32(g).unwrap();
    assert_close(&format!("bn_stats{k} {s:?}"), &st, &st_ref, Tol::BALANCED);
    assert_close(
        &format!("bn_stats{k} running {s:?}"),
        &tr.to_f32(g).unwrap(),
        &run_ref,
        Tol::BALANCED,
    );
    let y = ty.to_f32(g).unwrap();
    assert_close(
        &format!("bn_apply{k} {s:?}"),
        &y,
        &reference::norm::apply(&s, &x, &st, &gamma, &beta),
        Tol::BALANCED,
    );

    let (tdx, tdg, tdb) = (out(g, s.len()), out(g, s.c), out(g, s.c));
    let b = BnBwd {
        x: &tx.buf,
        beta: &tb.buf,
        dy: &tdy.buf,
        stats: &tst.buf,
        gamma: &tg.buf,
        dgamma: &tdg.buf,
        dbeta: &tdb.buf,
        dx: &tdx.buf,
    };
    match &xv {
        Some(xv) => norm::backward_tex(g, &s, &b, xv).unwrap().run(g),
        None => {
            for d in norm::backward(g, &s, &b).unwrap() {
                d.run(g);
            }
        }
    }
    let (dx_ref, dg_ref, db_ref) = reference::norm::backward(&s, &x, &y, &dy, &st, &gamma);
    let dx = tdx.to_f32(g).unwrap();
    assert_close(
        &format!("bn_bwd_dx{k} {s:?}"),
        &dx,
        &dx_ref,
        Tol::PERMISSIVE,
    );
    let dg = tdg.to_f32(g).unwrap();
    assert_close(
        &format!("bn_bwd_reduce{k} dgamma {s:?}"),
        &dg,
        &dg_ref,
        Tol::PERMISSIVE,
    );
    assert_close(
        &format!("bn_bwd_reduce{k} dbeta {s:?}"),
        &tdb.to_f32(g).unwrap(),
        &db_ref,
        Tol::PERMISSIVE,
    );
    if !s.relu && s.n * s.hw > 1 {
        let fwd = |xv: &[f32]| {
            let (st, _) = reference::norm::stats(&s, xv, &running);
            reference::norm::apply(&s, xv, &st, &gamma, &beta)
        };
        fd_check(&format!("bn_bwd_dx{k}"), &x, &dx, &|xv| dot(&fwd(xv), &dy));
        fd_check(&format!("bn_bwd_reduce{k} dgamma"), &gamma, &dg, &|gv| {
            dot(&reference::norm::apply(&s, &x, &st, gv, &beta), &dy)
        });
    }
}

#[test]
fn bn_eval_stats_matches_twin() {
    let Some(g) = gpu() else { return };
    let s = BnShape {
        n: 2,
        c: 70,
        hw: 3,
        relu: false,
    };
    let mut rng = Rng::new(3);
    let running = [rng.vec(s.c, -1.0, 1.0), rng.vec(s.c, 0.0, 3.0)].concat();
    let (tr, tx, tst) = (up(g, &running), up(g, &[0.0; 420]), out(g, 2 * s.c));
    norm::stats(g, &s, false, &tx.buf, &tst.buf, &tr.buf)
        .unwrap()
        .run(g);
    assert_close(
        "bn_eval_stats",
        &tst.to_f32(g).unwrap(),
        &reference::norm::eval_stats(&s, &running),
        Tol::STRICT,
    );
}

#[test]
fn pooling_kernels_match_twins() {
    let Some(g) = gpu() else { return };
    for (t, s) in [
        PoolShape {
            n: 1,
            c: 1,
            h: 2,
            w: 2,
        },
        PoolShape {
            n: 3,
            c: 6,
            h: 28,
            w: 28,
        },
        PoolShape {
            n: 2,
            c: 5,
            h: 7,
            w: 9,
        },
        PoolShape {
            n: 2,
            c: 64,
            h: 8,
            w: 8,
        },
        // even widths take the vec2 kernels: odd height, and LeNet's second pool
        PoolShape {
            n: 3,
            c: 2,
            h: 7,
            w: 10,
        },
        PoolShape {
            n: 1,
            c: 16,
            h: 10,
            w: 10,
        },
        // widths of a multiple of 4 take maxpool2_bwd4: odd height, and the narrowest
        PoolShape {
            n: 2,
            c: 3,
            h: 9,
            w: 12,
        },
        PoolShape {
            n: 1,
            c: 2,
            h: 5,
            w: 4,
        },
    ]
    .into_iter()
    .enumerate()
    {
        let mut rng = Rng::new(60 + t as u64);
        let x = rng.vec(s.n * s.c * s.h * s.w, -3.0, 3.0);
        let (oh, ow) = s.max_out();
        let m = s.n * s.c * oh * ow;
        let dy = rng.vec(m, -1.0, 1.0);
        let tx = up(g, &x);
        let ty = out(g, m);
        let targ = Tensor::empty(g, "arg", &[m], DType::U32).unwrap();
        targ.poison(g, POISON);
        pool::max_fwd(g, &s, &tx.buf, &ty.buf, &targ.buf)
            .unwrap()
            .run(g);
        let (y_ref, arg_ref) = reference::pool::max_fwd(&s, &x);
        // even widths run maxpool2_fwd2 / maxpool2_bwd2 (vec2 loads and stores; widths of a
        // multiple of 4 maxpool2_bwd4), odd ones maxpool2_fwd / maxpool2_bwd
        let v = if s.w % 2 == 0 { "2" } else { "" };
        let vb = match s.w % 4 {
            0 => "4",
            2 => "2",
            _ => "",
        };
        let (fwd, bwd) = (format!("maxpool2_fwd{v}"), format!("maxpool2_bwd{vb}"));
        common::assert_exact_f32(&fwd, &ty.to_f32(g).unwrap(), &y_ref);
        assert_eq!(targ.to_u32(g).unwrap(), arg_ref, "{fwd} argmax {s:?}");
        let tdx = out(g, x.len());
        pool::max_bwd(g, &s, &up(g, &dy).buf, &targ.buf, &tdx.buf)
            .unwrap()
            .run(g);
        let dx = tdx.to_f32(g).unwrap();
        common::assert_exact_f32(&bwd, &dx, &reference::pool::max_bwd(&s, &dy, &arg_ref));
        fd_check(&bwd, &x, &dx, &|xv| {
            dot(&reference::pool::max_fwd(&s, xv).0, &dy)
        });

        let tg = out(g, s.n * s.c);
        pool::gap_fwd(g, &s, &tx.buf, &tg.buf).unwrap().run(g);
        assert_close(
            "gap_fwd",
            &tg.to_f32(g).unwrap(),
            &reference::pool::gap_fwd(&s, &x),
            Tol::BALANCED,
        );
        let gdy = rng.vec(s.n * s.c, -1.0, 1.0);
        let tgdx = out(g, x.len());
        pool::gap_bwd(g, &s, &up(g, &gdy).buf, &tgdx.buf)
            .unwrap()
            .run(g);
        let gdx = tgdx.to_f32(g).unwrap();
        assert_close(
            "gap_bwd",
            &gdx,
            &reference::pool::gap_bwd(&s, &gdy),
            Tol::STRICT,
        );
        fd_check("gap_bwd", &x, &gdx, &|xv| {
            dot(&reference::pool::gap_fwd(&s, xv), &gdy)
        });
    }
}

#[test]
fn maxpool_ties_pick_the_first_maximum() {
    let Some(g) = gpu() else { return };
    let s = PoolShape {
        n: 1,
        c: 1,
        h: 2,
        w: 4,
    };
    let x = [1.0, 1.0, 0.0, 2.0, 1.0, 1.0, 2.0, 2.0];
    let ty = out(g, 2);
    let targ = Tensor::empty(g, "arg", &[2], DType::U32).unwrap();
    pool::max_fwd(g, &s, &up(g, &x).buf, &ty.buf, &targ.buf)
        .unwrap()
        .run(g);
    assert_eq!(targ.to_u32(g).unwrap(), vec![0, 1]);
    assert_eq!(targ.to_u32(g).unwrap(), reference::pool::max_fwd(&s, &x).1);
}

#[test]
fn softmax_ce_and_metrics_match_twins() {
    let Some(g) = gpu() else { return };
    for &(n, classes) in &[
        (1usize, 10usize),
        (64, 10),
        (7, 3),
        (130, 10),
        (256, 10),
        (300, 5),
    ] {
        let mut rng = Rng::new(n as u64);
        let z = rng.vec(n * classes, -4.0, 4.0);
        let labels: Vec<u32> = (0..n).map(|_| rng.below(classes as u64) as u32).collect();
        let tz = up(g, &z);
        let tl = Tensor::from_u32(g, "labels", &[n], &labels).unwrap();
        let (tdz, tper) = (out(g, n * classes), out(g, 2 * n));
        loss::softmax_ce(g, n, classes, &tz.buf, &tl.buf, &tdz.buf, &tper.buf)
            .unwrap()
            .run(g);
        let (dz_ref, per_ref) = reference::loss::softmax_ce(n, classes, &z, &labels);
        let dz = tdz.to_f32(g).unwrap();
        assert_close("softmax_ce dz", &dz, &dz_ref, Tol::STRICT);
        let per_flat: Vec<f32> = per_ref.iter().flatten().copied().collect();
        assert_close(
            "softmax_ce per-sample",
            &tper.to_f32(g).unwrap(),
            &per_flat,
            Tol::BALANCED,
        );
        fd_check("softmax_ce", &z, &dz, &|zv| {
            reference::loss::mean_loss(n, classes, zv, &labels)
        });

        let tm = up(g, &[1.5, 2.0, 3.0, 0.0]);
        loss::accumulate(g, n, &tper.buf, &tm.buf).unwrap().run(g);
        let want = reference::loss::accumulate([1.5, 2.0, 3.0], &per_ref);
        assert_close(
            "metrics_accumulate",
            &tm.to_f32(g).unwrap()[..3],
            &want,
            Tol::BALANCED,
        );

        // the fused kernel, without and with dz's rows into a row texture: the same bits as the
        // two dispatches (outputs and the texture poisoned first), the rows padded with zeros
        let rows = incq::ops::linear::rows_tex_unfilled(g, "dz rows", n.min(256), classes).unwrap();
        let f32s = |t: &Tensor| t.to_f32(g).unwrap();
        for to_rows in [false, true] {
            // the entry point each form runs
            let entry = match to_rows {
                false => "softmax_ce_metrics",
                true => "softmax_ce_metrics_rows",
            };
            let what = format!("{entry}, n {n}");
            let (fdz, fper) = (out(g, n * classes), out(g, 2 * n));
            let fm = up(g, &[1.5, 2.0, 3.0, 0.0]);
            write_rows_texture(g, &rows.texture, &[], POISON);
            let fused = loss::softmax_ce_metrics(
                g,
                n,
                classes,
                &tz.buf,
                &tl.buf,
                &fdz.buf,
                &fper.buf,
                &fm.buf,
                to_rows.then_some(&rows.view),
            );
            if n > loss::FUSED_MAX {
                let e = fused.err().expect("too many samples for one workgroup");
                assert!(e.to_string().contains("256"), "{e}");
                continue;
            }
            fused.unwrap().run(g);
            assert_exact_f32(&format!("{what}: dz"), &f32s(&fdz), &f32s(&tdz));
            assert_exact_f32(&format!("{what}: per-sample"), &f32s(&fper), &f32s(&tper));
            assert_exact_f32(&format!("{what}: metrics"), &f32s(&fm), &f32s(&tm));
            if to_rows {
                let w4 = classes.div_ceil(4) * 4;
                let tex = g.read_texture_rgba32f(&rows.texture).unwrap();
                let mut want = vec![0.0f32; n * w4];
                for (r, row) in f32s(&tdz).chunks(classes).enumerate() {
                    want[r * w4..r * w4 + classes].copy_from_slice(row);
                }
                assert_exact_f32(&format!("{what}: texture"), &tex[..n * w4], &want);
            }
        }
        if n > loss::FUSED_MAX {
            continue;
        }
        // a texture not in the row layout (16 texels wide) is refused
        let narrow = g.device.create_texture(&wgpu::TextureDescriptor {
            label: Some("narrow"),
            size: wgpu::Extent3d {
                width: 16,
                height: 1,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba32Float,
            usage: wgpu::TextureUsages::STORAGE_BINDING,
            view_formats: &[],
        });
        let view = narrow.create_view(&wgpu::TextureViewDescriptor {
            dimension: Some(wgpu::TextureViewDimension::D2Array),
            ..Default::default()
        });
        let e = loss::softmax_ce_metrics(
            g,
            n,
            classes,
            &tz.buf,
            &tl.buf,
            &tdz.buf,
            &tper.buf,
            &tm.buf,
            Some(&view),
        )
        .err()
        .expect("a texture outside the row layout");
        assert!(e.to_string().contains("dz rows"), "{e}");
    }
}

#[test]
fn sgd_and_adam_match_twins_and_respect_the_mask() {
    let Some(g) = gpu() else { return };
    let n = 1001;
    let mut rng = Rng::new(5);
    let w = rng.vec(n, -1.0, 1.0);
    let grad = rng.vec(n, -1.0, 1.0);
    let mom = rng.vec(n, -0.1, 0.1);
    let mask: Vec<f32> = (0..n).map(|i| if i % 3 == 0 { 0.0 } else { 1.0 }).collect();
    for nesterov in [0, 1] {
        let p = optim::SgdParams {
            n: n as u32,
            nesterov,
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 5e-4,
            ..Default::default()
        };
        let (tw, tm) = (up(g, &w), up(g, &mom));
        optim::sgd(
            g,
            &p,
            &tw.buf,
            &tm.buf,
            &up(g, &grad).buf,
            &up(g, &mask).buf,
        )
        .unwrap()
        .run(g);
        let (mut w2, mut m2) = (w.clone(), mom.clone());
        reference::optim::sgd(&p, &mut w2, &mut m2, &grad, &mask);
        let got = tw.to_f32(g).unwrap();
        assert_close("sgd w", &got, &w2, Tol::STRICT);
        assert_close("sgd momentum", &tm.to_f32(g).unwrap(), &m2, Tol::STRICT);
        let gm = tm.to_f32(g).unwrap();
        for i in (0..n).step_by(3) {
            assert_eq!(
                got[i].to_bits(),
                w[i].to_bits(),
                "sgd moved frozen weight {i}"
            );
            assert_eq!(
                gm[i].to_bits(),
                mom[i].to_bits(),
                "sgd moved the momentum of frozen weight {i}"
            );
        }
    }
    let p = optim::AdamParams {
        n: n as u32,
        t: 3,
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 1e-4,
        ..Default::default()
    };
    let v0 = rng.vec(n, 0.0, 0.01);
    let (tw, tm, tv) = (up(g, &w), up(g, &mom), up(g, &v0));
    let b = optim::AdamBufs {
        w: &tw.buf,
        m: &tm.buf,
        v: &tv.buf,
        grad: &up(g, &grad).buf,
        mask: &up(g, &mask).buf,
    };
    optim::adam(g, &p, &b).unwrap().run(g);
    let (mut w2, mut m2, mut v2) = (w.clone(), mom.clone(), v0.clone());
    reference::optim::adam(&p, &mut w2, &mut m2, &mut v2, &grad, &mask);
    let got = tw.to_f32(g).unwrap();
    assert_close(
        "adam w",
        &got,
        &w2,
        Tol {
            abs: 1e-6,
            rel: 1e-5,
        },
    );
    assert_close("adam m", &tm.to_f32(g).unwrap(), &m2, Tol::STRICT);
    assert_close("adam v", &tv.to_f32(g).unwrap(), &v2, Tol::STRICT);
    for i in (0..n).step_by(3) {
        assert_eq!(
            got[i].to_bits(),
            w[i].to_bits(),
            "adam moved frozen weight {i}"
        );
    }
}

/// An SGD variant's new weights and momentum (`got`) against sgd's (`sgd`), bit for bit; the
/// elements with mask 0 keep their weight and momentum (`old`), and every other weight moved.
fn assert_sgd_update(
    what: &str,
    got: (&[f32], &[f32]),
    sgd: (&[f32], &[f32]),
    old: (&[f32], &[f32]),
    mask: &[f32],
) {
    assert_exact_f32(&format!("{what}: w against sgd's"), got.0, sgd.0);
    assert_exact_f32(&format!("{what}: momentum against sgd's"), got.1, sgd.1);
    for (i, &m) in mask.iter().enumerate() {
        if m == 0.0 {
            assert_eq!(
                got.0[i].to_bits(),
                old.0[i].to_bits(),
                "{what}: frozen w[{i}] moved"
            );
            assert_eq!(
                got.1[i].to_bits(),
                old.1[i].to_bits(),
                "{what}: frozen momentum[{i}] moved"
            );
        } else {
            assert_ne!(
                got.0[i].to_bits(),
                old.0[i].to_bits(),
                "{what}: w[{i}] not updated"
            );
        }
    }
}

/// sgd_multi against one sgd dispatch per tensor (bit for bit) and the CPU twin, with awkward
/// sizes (1, 3, 5, 1001, 4097), per-tensor weight decay, masked elements, both momentum forms,
/// and fewer tensors than slots.
#[test]
fn sgd_multi_matches_sgd_per_tensor_bit_for_bit() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::new(11);
    let sizes = [1001usize, 1, 3, 4097, 5, 64];
    for (nesterov, count) in [(false, 6usize), (true, 6), (false, 2), (true, 1)] {
        let mut host = Vec::new();
        for (k, &n) in sizes[..count].iter().enumerate() {
            let w = rng.vec(n, -1.0, 1.0);
            let grad = rng.vec(n, -1.0, 1.0);
            let mom = rng.vec(n, -0.1, 0.1);
            let mask: Vec<f32> = (0..n)
                .map(|i| if (i + k) % 3 == 0 { 0.0 } else { 1.0 })
                .collect();
            let wd = if k % 2 == 0 { 5e-4 } else { 0.0 };
            host.push((w, grad, mom, mask, wd));
        }
        let multi: Vec<_> = host
            .iter()
            .map(|(w, gr, m, mk, _)| (up(g, w), up(g, m), up(g, gr), up(g, mk)))
            .collect();
        let slots: Vec<optim::SgdSlot<'_>> = multi
            .iter()
            .zip(&host)
            .map(|((w, m, gr, mk), h)| optim::SgdSlot {
                n: h.0.len(),
                weight_decay: h.4,
                w: &w.buf,
                mom: &m.buf,
                grad: &gr.buf,
                mask: &mk.buf,
            })
            .collect();
        optim::sgd_multi(g, 0.05, 0.9, nesterov, &slots)
            .unwrap()
            .run(g);
        for (k, ((w, m, _, _), (w0, gr, m0, mk, wd))) in multi.iter().zip(&host).enumerate() {
            let p = optim::SgdParams {
                n: w0.len() as u32,
                nesterov: nesterov as u32,
                lr: 0.05,
                momentum: 0.9,
                weight_decay: *wd,
                ..Default::default()
            };
            let (tw, tm) = (up(g, w0), up(g, m0));
            optim::sgd(g, &p, &tw.buf, &tm.buf, &up(g, gr).buf, &up(g, mk).buf)
                .unwrap()
                .run(g);
            let (gw, gm) = (w.to_f32(g).unwrap(), m.to_f32(g).unwrap());
            let (sw, sm) = (tw.to_f32(g).unwrap(), tm.to_f32(g).unwrap());
            let what = format!("sgd_multi slot {k} (nesterov {nesterov}, {count} slots)");
            assert_sgd_update(&what, (&gw, &gm), (&sw, &sm), (w0, m0), mk);
            let (mut w2, mut m2) = (w0.clone(), m0.clone());
            reference::optim::sgd(&p, &mut w2, &mut m2, gr, mk);
            assert_close(&format!("sgd_multi slot {k} w"), &gw, &w2, Tol::STRICT);
            assert_close(
                &format!("sgd_multi slot {k} momentum"),
                &gm,
                &m2,
                Tol::STRICT,
            );
        }
    }
    // seven tensors do not fit one dispatch
    let t = up(g, &[0.0; 4]);
    let slot = || optim::SgdSlot {
        n: 4,
        weight_decay: 0.0,
        w: &t.buf,
        mom: &t.buf,
        grad: &t.buf,
        mask: &t.buf,
    };
    let seven: Vec<_> = (0..7).map(|_| slot()).collect();
    let e = optim::sgd_multi(g, 0.1, 0.9, false, &seven)
        .err()
        .expect("7 slots");
    assert!(e.to_string().contains("1 to 6"), "{e}");
}

/// sgd_tex (texture-fed reads) against sgd bit for bit and the CPU twin: sizes 1, 5 (a partial
/// texel), 1001, and 48,121 (several texture rows, LeNet's first linear layer and one more), both
/// momentum forms, weight decay, frozen (mask 0) and scaled (mask 0.5) elements.
#[test]
fn sgd_tex_matches_sgd_bit_for_bit() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::new(13);
    for (n, nesterov) in [(1usize, 0u32), (5, 1), (1001, 0), (48_121, 1)] {
        let w = rng.vec(n, -1.0, 1.0);
        let grad = rng.vec(n, -1.0, 1.0);
        let mom = rng.vec(n, -0.1, 0.1);
        let mask: Vec<f32> = (0..n)
            .map(|i| match i % 5 {
                0 => 0.0,
                1 => 0.5,
                _ => 1.0,
            })
            .collect();
        let p = optim::SgdParams {
            n: n as u32,
            nesterov,
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 5e-4,
            ..Default::default()
        };
        let (tw, tm, sw, sm) = (up(g, &w), up(g, &mom), up(g, &w), up(g, &mom));
        let (tg, tk) = (up(g, &grad), up(g, &mask));
        let none = optim::SgdTextures::default();
        optim::sgd_tex(g, &p, &tw.buf, &tm.buf, &tg.buf, &tk.buf, none)
            .unwrap()
            .run(g);
        optim::sgd(g, &p, &sw.buf, &sm.buf, &tg.buf, &tk.buf)
            .unwrap()
            .run(g);
        let (gw, gm) = (tw.to_f32(g).unwrap(), tm.to_f32(g).unwrap());
        let (ew, em) = (sw.to_f32(g).unwrap(), sm.to_f32(g).unwrap());
        assert_sgd_update(
            &format!("sgd_tex, n {n}"),
            (&gw, &gm),
            (&ew, &em),
            (&w, &mom),
            &mask,
        );
        let (mut w2, mut m2) = (w.clone(), mom.clone());
        reference::optim::sgd(&p, &mut w2, &mut m2, &grad, &mask);
        assert_close(&format!("sgd_tex w, n {n}"), &gw, &w2, Tol::STRICT);
        assert_close(&format!("sgd_tex momentum, n {n}"), &gm, &m2, Tol::STRICT);
        // w and the gradient from given textures (no copies): their buffers hold poison, so the
        // same bits can only come from the textures; the textures' tails are poison too
        let given = |v: &[f32]| {
            let r = incq::ops::linear::rows_tex_unfilled(g, "given", 1, n).unwrap();
            write_rows_texture(g, &r.texture, v, POISON);
            r
        };
        let (gwt, ggt) = (given(&w), given(&grad));
        let (hw, hm, hg) = (up(g, &w), up(g, &mom), up(g, &grad));
        hw.poison(g, POISON);
        hg.poison(g, POISON);
        let tex = optim::SgdTextures {
            w: Some(&gwt.view),
            grad: Some(&ggt.view),
        };
        let op = optim::sgd_tex(g, &p, &hw.buf, &hm.buf, &hg.buf, &tk.buf, tex).unwrap();
        assert_eq!(
            op.steps.len(),
            3,
            "copies of momentum and mask, and the kernel"
        );
        op.run(g);
        assert_exact_f32(
            &format!("sgd_tex given w, n {n}"),
            &hw.to_f32(g).unwrap(),
            &gw,
        );
        assert_exact_f32(
            &format!("sgd_tex given momentum, n {n}"),
            &hm.to_f32(g).unwrap(),
            &gm,
        );
    }
    // a buffer shorter than n is refused, naming it
    let short = up(g, &[0.0; 4]);
    let big = up(g, &[0.0; 8]);
    let p = optim::SgdParams {
        n: 8,
        ..Default::default()
    };
    let none = optim::SgdTextures::default();
    let e = optim::sgd_tex(g, &p, &big.buf, &big.buf, &short.buf, &big.buf, none)
        .err()
        .expect("short grad");
    assert!(e.to_string().contains("grad"), "{e}");
    // so is a given texture of fewer texels than the tensor's (a 2048-texel one for 3 rows)
    let small = incq::ops::linear::rows_tex_unfilled(g, "small", 1, 8).unwrap();
    let p = optim::SgdParams {
        n: 3 * 2048 * 4,
        ..Default::default()
    };
    let t = up(g, &vec![0.0; 3 * 2048 * 4]);
    let tex = optim::SgdTextures {
        w: None,
        grad: Some(&small.view),
    };
    let e = optim::sgd_tex(g, &p, &t.buf, &t.buf, &t.buf, &t.buf, tex)
        .err()
        .expect("a texture too small");
    assert!(e.to_string().contains("gradient texture"), "{e}");
}

#[test]
fn gather_batch_matches_twin_with_and_without_augmentation() {
    let Some(g) = gpu() else { return };
    use incq::data::gpu::GpuDataset;
    use incq::data::{DataKind, Dataset};
    let mut rng = Rng::new(12);
    // gather_batch4 (planes of whole words: 28x28, 32x32, 2x6) and gather_batch (planes of 5
    // pixels: words across channels)
    for (kind, c, h, w) in [
        (DataKind::Mnist, 1usize, 28usize, 28usize),
        (DataKind::Cifar10, 3, 32, 32),
        (DataKind::Cifar10, 3, 2, 6),
        (DataKind::Cifar10, 4, 1, 5),
    ] {
        let n = 37;
        let (mut mean, mut std) = kind.norm();
        mean.resize(c, 0.25);
        std.resize(c, 0.5);
        let d = Dataset {
            kind,
            images: (0..n * c * h * w).map(|_| rng.below(256) as u8).collect(),
            labels: (0..n).map(|_| rng.below(10) as u8).collect(),
            n,
            c,
            h,
            w,
            mean,
            std,
        };
        // Force the two-binding split (images 0..20 in img0, the rest in img1).
        let gd = GpuDataset::upload_with_limit(g, &d, 20 * c * h * w).unwrap();
        assert_eq!(gd.split, 20);
        assert!(GpuDataset::upload_with_limit(g, &d, 10 * c * h * w).is_err());
        let perm: Vec<u32> = (0..n as u32).rev().collect();
        let tperm = Tensor::from_u32(g, "perm", &[n], &perm).unwrap();
        let labels: Vec<u32> = d.labels.iter().map(|&l| u32::from(l)).collect();
        for augment in [false, true] {
            let batch = 5;
            let p = gd.params(batch, 9, augment, 1234);
            let out = out(g, batch * c * h * w);
            let lab = Tensor::empty(g, "lab", &[batch], DType::U32).unwrap();
            lab.poison(g, POISON);
            gd.gather(g, &p, &tperm, &out, &lab).unwrap().run(g);
            let (want, want_lab) = reference::data::gather_batch(&p, &perm, &d.images, &labels);
            let what = format!("gather {kind:?} {c}x{h}x{w} augment={augment}");
            let got = out.to_f32(g).unwrap();
            assert_close(&what, &got, &want, Tol::STRICT);
            assert_eq!(lab.to_u32(g).unwrap(), want_lab, "{what}: labels");
            // the per-pixel kernel (gather_batch; the one above is gather_batch4 where planes
            // are whole words): the same bits
            let out1 = self::out(g, batch * c * h * w);
            let lab1 = Tensor::empty(g, "lab", &[batch], DType::U32).unwrap();
            lab1.poison(g, POISON);
            gd.gather_per_pixel(g, &p, &tperm, &out1, &lab1)
                .unwrap()
                .run(g);
            assert_exact_f32(
                &format!("{what}: per pixel"),
                &out1.to_f32(g).unwrap(),
                &got,
            );
            assert_eq!(
                lab1.to_u32(g).unwrap(),
                want_lab,
                "{what}: per-pixel labels"
            );
        }
    }
}

/// bn_pool_tex (batch norm's apply fused with the 2x2 max pooling after it) against the unfused
/// path, bn_apply_tex then the pooling twin, exactly (values and argmax, outputs poisoned), and
/// against the f64 twins of both within Tol::BALANCED; training and eval statistics; LeNet's two
/// shapes (row widths 28 and 10: pairs inside and across texels), batch 1, an odd height, an odd
/// number of windows per row, and no ReLU.
#[test]
fn bn_pool_tex_matches_the_unfused_path() {
    let Some(g) = gpu() else { return };
    let cases = [
        (64, 6, 28, 28, true, true),
        (64, 16, 10, 10, true, true),
        (1, 1, 2, 2, true, true),
        (3, 5, 7, 12, true, true),
        (5, 7, 4, 6, true, false),
        (2, 3, 6, 2, false, true),
    ];
    for (t, &(n, c, h, w, relu, train)) in cases.iter().enumerate() {
        let s = BnShape {
            n,
            c,
            hw: h * w,
            relu,
        };
        if !norm::pool_ok(g, &s, w) {
            eprintln!("bn_pool_tex: not selected on this adapter (not CPU-backed)");
            return;
        }
        let ps = PoolShape { n, c, h, w };
        let (oh, ow) = ps.max_out();
        let m = n * c * oh * ow;
        let mut rng = Rng::new(90 + t as u64);
        let x: Vec<f32> = (0..s.len()).map(|_| rng.normal() * 2.0 + 0.5).collect();
        let gamma = rng.vec(c, 0.5, 1.5);
        let beta = rng.vec(c, -0.5, 0.5);
        let running = [rng.vec(c, -0.1, 0.1), rng.vec(c, 0.9, 1.1)].concat();
        let (tx, tg, tb) = (up(g, &x), up(g, &gamma), up(g, &beta));
        let run = |o: norm::BnOut<'_>, st: &Tensor| {
            let tr = up(g, &running);
            let (f, _) =
                norm::forward_tex(g, &s, train, &tx.buf, &st.buf, &tr.buf, &tg.buf, &tb.buf, o)
                    .unwrap();
            f.run(g);
            tr.to_f32(g).unwrap()
        };
        let (st1, ty) = (out(g, 2 * c), out(g, s.len()));
        let run1 = run(norm::BnOut::Y(&ty.buf), &st1);
        let (st2, tpy) = (out(g, 2 * c), out(g, m));
        let targ = Tensor::empty(g, "arg", &[m], DType::U32).unwrap();
        targ.poison(g, POISON);
        let pooled = norm::BnOut::MaxPool2 {
            w,
            y: &tpy.buf,
            arg: Some(&targ.buf),
        };
        let run2 = run(pooled, &st2);
        let what = format!("bn_pool_tex {s:?} w {w} train {train}");
        let st = st1.to_f32(g).unwrap();
        common::assert_exact_f32(&what, &st2.to_f32(g).unwrap(), &st);
        common::assert_exact_f32(&what, &run2, &run1);
        let (py_ref, arg_ref) = reference::pool::max_fwd(&ps, &ty.to_f32(g).unwrap());
        let py = tpy.to_f32(g).unwrap();
        common::assert_exact_f32(&what, &py, &py_ref);
        assert_eq!(targ.to_u32(g).unwrap(), arg_ref, "{what} argmax");
        let st_twin = match train {
            true => reference::norm::stats(&s, &x, &running).0,
            false => reference::norm::eval_stats(&s, &running),
        };
        let y_twin = reference::norm::apply(&s, &x, &st_twin, &gamma, &beta);
        let py_twin = reference::pool::max_fwd(&ps, &y_twin).0;
        assert_close(&what, &py, &py_twin, Tol::BALANCED);
    }
    // an odd width cannot be pooled by pairs of floats: an error, not a wrong result
    let s = BnShape {
        n: 1,
        c: 1,
        hw: 12,
        relu: true,
    };
    let (x, st, tr) = (up(g, &[1.0; 12]), out(g, 2), up(g, &[0.0, 1.0]));
    let (one, py, arg) = (up(g, &[1.0]), out(g, 4), out(g, 4));
    let bad = norm::BnOut::MaxPool2 {
        w: 3,
        y: &py.buf,
        arg: Some(&arg.buf),
    };
    let r = norm::forward_tex(
        g, &s, true, &x.buf, &st.buf, &tr.buf, &one.buf, &one.buf, bad,
    );
    assert!(r.is_err(), "bn_pool_tex accepted rows of 3");
}

/// The batch-norm texture ops and the max-pooling ops refuse buffers and textures too small for
/// the shape, naming them (wgpu's bounds checks would clamp the accesses: a wrong result, not an
/// error).
#[test]
fn batch_norm_and_pooling_refuse_short_buffers_and_textures() {
    let Some(g) = gpu() else { return };
    // (tensors are padded to a multiple of 4 floats, so the short ones are shorter by 4)
    let s = BnShape {
        n: 2,
        c: 5,
        hw: 16,
        relu: true,
    };
    let err = |r: incq::Result<incq::ops::Op>| match r {
        Ok(_) => String::from("accepted"),
        Err(e) => e.to_string(),
    };
    if norm::tex_ok(g, &s) {
        let (x, st, run) = (out(g, s.len()), out(g, 2 * s.c), out(g, 2 * s.c));
        let (gamma, short) = (out(g, s.c), out(g, s.c - 1));
        let y = out(g, s.len());
        let f = |gm: &Tensor, st: &Tensor| {
            norm::forward_tex(
                g,
                &s,
                true,
                &x.buf,
                &st.buf,
                &run.buf,
                &gm.buf,
                &gamma.buf,
                norm::BnOut::Y(&y.buf),
            )
            .map(|(op, _)| op)
        };
        assert!(
            err(f(&short, &st)).contains("gamma"),
            "{}",
            err(f(&short, &st))
        );
        assert!(
            err(f(&gamma, &gamma)).contains("stats"),
            "{}",
            err(f(&gamma, &gamma))
        );
        let (_, xv) = norm::forward_tex(
            g,
            &s,
            true,
            &x.buf,
            &st.buf,
            &run.buf,
            &gamma.buf,
            &gamma.buf,
            norm::BnOut::Y(&y.buf),
        )
        .unwrap();
        // beta, dbeta and the outputs reuse gamma's and y's buffers: only the checks run
        let bwd = |x, y, dgamma| bn_bwd((x, &gamma, y, &st, &gamma), y, dgamma, &gamma);
        let b = |dgamma| bwd(&x, &y, dgamma);
        let e = err(norm::backward_tex(g, &s, &b(&short), &xv));
        assert!(e.contains("dgamma"), "{e}");
        assert_eq!(err(norm::backward_tex(g, &s, &b(&gamma), &xv)), "accepted");
        // the view of a texture of one 2048-texel row, for a shape of 2560 texels
        let big = BnShape { hw: 1024, ..s };
        let small = BnShape { n: 1, ..big };
        let (x1, xb, yb) = (out(g, small.len()), out(g, big.len()), out(g, big.len()));
        let (_, xv1) = norm::forward_tex(
            g,
            &small,
            true,
            &x1.buf,
            &st.buf,
            &run.buf,
            &gamma.buf,
            &gamma.buf,
            norm::BnOut::Y(&x1.buf),
        )
        .unwrap();
        let e = err(norm::backward_tex(g, &big, &bwd(&xb, &yb, &gamma), &xv1));
        assert!(e.contains("x texture"), "{e}");
    }
    let ps = PoolShape {
        n: 2,
        c: 3,
        h: 6,
        w: 8,
    };
    let (x, y, arg) = (out(g, 2 * 3 * 48), out(g, 2 * 3 * 12), out(g, 2 * 3 * 12));
    let short = out(g, 2 * 3 * 12 - 4);
    let r = |d: incq::Result<incq::ops::Dispatch>| match d {
        Ok(_) => String::from("accepted"),
        Err(e) => e.to_string(),
    };
    assert_eq!(
        r(pool::max_fwd(g, &ps, &x.buf, &y.buf, &arg.buf)),
        "accepted"
    );
    assert!(r(pool::max_fwd(g, &ps, &x.buf, &short.buf, &arg.buf)).contains("y holds"));
    assert!(r(pool::max_bwd(g, &ps, &y.buf, &short.buf, &x.buf)).contains("argmax holds"));
    assert!(r(pool::max_bwd(g, &ps, &y.buf, &arg.buf, &y.buf)).contains("dx holds"));
}

/// The buffers of a batch norm's backward pass: (x, beta, dy, stats, gamma) and the outputs.
fn bn_bwd<'a>(
    (x, beta, dy, st, gamma): (&'a Tensor, &'a Tensor, &'a Tensor, &'a Tensor, &'a Tensor),
    dx: &'a Tensor,
    dg: &'a Tensor,
    db: &'a Tensor,
) -> BnBwd<'a> {
    BnBwd {
        x: &x.buf,
        beta: &beta.buf,
        dy: &dy.buf,
        stats: &st.buf,
        gamma: &gamma.buf,
        dgamma: &dg.buf,
        dbeta: &db.buf,
        dx: &dx.buf,
    }
}

/// NCHW values as rows of ceil(w/4) texels (pack_act's layout), zeros past each row.
fn to_rows(v: &[f32], rows: usize, w: usize) -> Vec<f32> {
    let w4 = w.div_ceil(4);
    let mut out = vec![0.0; rows * w4 * 4];
    for r in 0..rows {
        out[r * w4 * 4..r * w4 * 4 + w].copy_from_slice(&v[r * w..(r + 1) * w]);
    }
    out
}

/// bn_pool_rows_tex and bn_bwd_dx_rows_tex (the batch norm writing the next conv's input, or the
/// previous conv's dy, straight into a row texture) against bn_pool_tex and bn_bwd_dx_tex: the
/// same bits in pack_act's row layout, zeros past each row, the same argmax and dgamma/dbeta.
/// The textures and the argmax are poisoned first. Widths 28, 10 (pooled rows 14 and 5: both
/// texel parities of the second window row), 12, 6, 2 and 14; batch 1; eval statistics.
#[test]
fn bn_rows_kernels_match_the_buffer_paths() {
    let Some(g) = gpu() else { return };
    let cases = [
        (64, 6, 28, 28, true, true),
        (64, 16, 10, 10, true, true),
        (3, 5, 8, 12, true, true),
        (5, 7, 4, 6, true, false),
        (2, 3, 6, 2, false, true),
        (1, 1, 2, 14, true, true),
    ];
    for (t, &(n, c, h, w, relu, train)) in cases.iter().enumerate() {
        let s = BnShape {
            n,
            c,
            hw: h * w,
            relu,
        };
        if !norm::pool_ok(g, &s, w) {
            eprintln!("bn_pool_rows_tex: not selected on this adapter (not CPU-backed)");
            return;
        }
        let what = format!("{s:?} rows of {w} train {train}");
        let mut rng = Rng::new(300 + t as u64);
        let x: Vec<f32> = (0..s.len()).map(|_| rng.normal() * 2.0 + 0.5).collect();
        let gamma = rng.vec(c, 0.5, 1.5);
        let beta = rng.vec(c, -0.5, 0.5);
        let running = [rng.vec(c, -0.1, 0.1), rng.vec(c, 0.9, 1.1)].concat();
        let dy = rng.vec(s.len(), -1.0, 1.0);
        let (tx, tg, tb, tdy) = (up(g, &x), up(g, &gamma), up(g, &beta), up(g, &dy));
        let (oh, ow) = (h / 2, w / 2);
        let m = n * c * oh * ow;

        // forward: pooled values into a buffer, then into a row texture
        let (st1, tpy) = (out(g, 2 * c), out(g, m));
        let targ1 = Tensor::empty(g, "arg", &[m], DType::U32).unwrap();
        let targ2 = Tensor::empty(g, "arg", &[m], DType::U32).unwrap();
        targ2.poison(g, POISON);
        let (tr1, tr2) = (up(g, &running), up(g, &running));
        let (f1, xv1) = norm::forward_tex(
            g,
            &s,
            train,
            &tx.buf,
            &st1.buf,
            &tr1.buf,
            &tg.buf,
            &tb.buf,
            norm::BnOut::MaxPool2 {
                w,
                y: &tpy.buf,
                arg: Some(&targ1.buf),
            },
        )
        .unwrap();
        f1.run(g);
        let (ptex, pview) = conv::planes_texture(g, "pooled rows", n, c, oh, ow);
        write_rows_texture(g, &ptex, &[], POISON);
        let st2 = out(g, 2 * c);
        let (f2, xv2) = norm::forward_tex(
            g,
            &s,
            train,
            &tx.buf,
            &st2.buf,
            &tr2.buf,
            &tg.buf,
            &tb.buf,
            norm::BnOut::MaxPool2Rows {
                w,
                y: &pview,
                arg: Some(&targ2.buf),
            },
        )
        .unwrap();
        f2.run(g);
        let want = to_rows(&tpy.to_f32(g).unwrap(), n * c * oh, ow);
        let got = g.read_texture_rgba32f(&ptex).unwrap();
        common::assert_exact_f32(
            &format!("bn_pool_rows_tex {what}"),
            &got[..want.len()],
            &want,
        );
        assert_eq!(
            targ2.to_u32(g).unwrap(),
            targ1.to_u32(g).unwrap(),
            "bn_pool_rows_tex {what} argmax"
        );
        common::assert_exact_f32(&what, &st2.to_f32(g).unwrap(), &st1.to_f32(g).unwrap());

        // backward: dx into a buffer, then into a row texture of rows of w
        let (tdx, tdg1, tdb1) = (out(g, s.len()), out(g, c), out(g, c));
        let (tdg2, tdb2) = (out(g, c), out(g, c));
        let ins = (&tx, &tb, &tdy, &st1, &tg);
        norm::backward_tex(g, &s, &bn_bwd(ins, &tdx, &tdg1, &tdb1), &xv1)
            .unwrap()
            .run(g);
        let (dtex, dview) = conv::planes_texture(g, "dx rows", n, c, h, w);
        write_rows_texture(g, &dtex, &[], POISON);
        let unused = out(g, s.len());
        norm::backward_tex_rows(g, &s, &bn_bwd(ins, &unused, &tdg2, &tdb2), &xv2, w, &dview)
            .unwrap()
            .run(g);
        let want = to_rows(&tdx.to_f32(g).unwrap(), n * c * h, w);
        let got = g.read_texture_rgba32f(&dtex).unwrap();
        common::assert_exact_f32(
            &format!("bn_bwd_dx_rows_tex {what}"),
            &got[..want.len()],
            &want,
        );
        let dg = tdg1.to_f32(g).unwrap();
        common::assert_exact_f32(&what, &tdg2.to_f32(g).unwrap(), &dg);
        common::assert_exact_f32(&what, &tdb2.to_f32(g).unwrap(), &tdb1.to_f32(g).unwrap());
        // and against the f64 twin
        let st = st1.to_f32(g).unwrap();
        let y = reference::norm::apply(&s, &x, &st, &gamma, &beta);
        let (dx_ref, _, _) = reference::norm::backward(&s, &x, &y, &dy, &st, &gamma);
        assert_close(
            &format!("bn_bwd_dx_rows_tex {what} against the twin"),
            &got[..want.len()],
            &to_rows(&dx_ref, n * c * h, w),
            Tol::PERMISSIVE,
        );
    }
    // rows of an odd width, or of a width that does not divide H*W: errors
    let s = BnShape {
        n: 1,
        c: 1,
        hw: 12,
        relu: true,
    };
    assert!(!norm::dx_rows_ok(g, &s, 3));
    assert!(!norm::dx_rows_ok(g, &s, 8));
    let t = up(g, &[0.0; 12]);
    let (x_tex, xv) = conv::planes_texture(g, "x", 1, 1, 3, 4);
    write_rows_texture(g, &x_tex, &[0.0; 12], 0);
    let b = BnBwd {
        x: &t.buf,
        beta: &t.buf,
        dy: &t.buf,
        stats: &t.buf,
        gamma: &t.buf,
        dgamma: &t.buf,
        dbeta: &t.buf,
        dx: &t.buf,
    };
    let e = norm::backward_tex_rows(g, &s, &b, &xv, 3, &xv).err();
    assert!(e.is_some(), "bn_bwd_dx_rows_tex accepted rows of 3");
}

/// The batch norm's backward pass with the 2x2 max pooling's folded in (bn_pool_bwd_*_tex, from
/// the pooled dy, the argmax recomputed from x) against the unfused path (the forward's stored
/// argmax, maxpool2_bwd, bn_bwd_*_tex) and the f64 twins (reference max_bwd, then the norm's
/// backward): dx, dgamma and dbeta to 1e-4 and 1e-3; and dx and dgamma against central finite
/// differences of maxpool(bn(x)) without ReLU, on inputs whose window values are 0.25 apart (so a
/// step of 1e-2 never moves an argmax). The forward without argmax stores (ARG = false) pools the
/// same bits, and so does dx written into a conv's row texture (bn_pool_bwd_dx_rows_tex). Widths
/// that are not a multiple of 4 run bn_pool_bwd_reduce2_tex and bn_pool_bwd_dx_rows2_tex (dx only
/// into a row texture, zeros past each row). Given the pooled dy in a texture (as the linear layer
/// after the pooling stores it), nothing is copied and the same bits come out.
#[test]
fn bn_pool_backward_matches_pooling_then_bn_backward() {
    let Some(g) = gpu() else { return };
    let cases = [
        (64, 6, 28, 28, true),
        (1, 1, 2, 4, true),
        (3, 5, 6, 12, false),
        (2, 7, 4, 8, true),
        (5, 3, 10, 20, true),
        (4, 9, 16, 64, true),
        (2, 3, 4, 8, false),
        // widths that are not a multiple of 4: dx only into a row texture
        (64, 16, 10, 10, true),
        (3, 2, 6, 6, false),
        (2, 3, 4, 14, true),
        (1, 1, 2, 2, false),
    ];
    for (t, &(n, c, h, w, relu)) in cases.iter().enumerate() {
        let s = BnShape {
            n,
            c,
            hw: h * w,
            relu,
        };
        if !norm::pool_bwd_rows_ok(g, &s, w) {
            eprintln!("bn_pool_bwd_*_tex: not selected on this adapter (not CPU-backed)");
            return;
        }
        let what = format!("{s:?} rows of {w}");
        let mut rng = Rng::new(500 + t as u64);
        let ps = PoolShape { n, c, h, w };
        let (oh, ow) = ps.max_out();
        let m = n * c * oh * ow;
        // each window's values are a shuffle of 0, 0.25, 0.5, 0.75 on a random base
        let mut x = vec![0.0f32; s.len()];
        for win in 0..m {
            let (nc, r, j) = (win / (oh * ow), (win / ow) % oh, win % ow);
            let base = rng.normal();
            let mut offs = [0.0f32, 0.25, 0.5, 0.75];
            for k in (1..4).rev() {
                offs.swap(k, rng.below(k as u64 + 1) as usize);
            }
            for (k, o) in offs.iter().enumerate() {
                let i = nc * h * w + (2 * r + k / 2) * w + 2 * j + k % 2;
                x[i] = base + o + rng.uniform(-0.02, 0.02);
            }
        }
        let gamma = rng.vec(c, 0.5, 1.5);
        let beta = rng.vec(c, -0.5, 0.5);
        let running = [rng.vec(c, -0.1, 0.1), rng.vec(c, 0.9, 1.1)].concat();
        let pdy = rng.vec(m, -1.0, 1.0);
        let (tx, tg, tb, tpdy) = (up(g, &x), up(g, &gamma), up(g, &beta), up(g, &pdy));
        let (st, tpy1, tpy2) = (out(g, 2 * c), out(g, m), out(g, m));
        let targ = Tensor::empty(g, "arg", &[m], DType::U32).unwrap();
        let (tr1, tr2) = (up(g, &running), up(g, &running));
        let fwd = |tr: &Tensor, py: &Tensor, arg: Option<&wgpu::Buffer>| {
            let out = norm::BnOut::MaxPool2 { w, y: &py.buf, arg };
            norm::forward_tex(
                g, &s, true, &tx.buf, &st.buf, &tr.buf, &tg.buf, &tb.buf, out,
            )
            .unwrap()
        };
        let (f1, xv) = fwd(&tr1, &tpy1, Some(&targ.buf));
        f1.run(g);
        let (f2, _) = fwd(&tr2, &tpy2, None);
        f2.run(g);
        let py = tpy1.to_f32(g).unwrap();
        common::assert_exact_f32(
            &format!("{what} pooled without argmax"),
            &tpy2.to_f32(g).unwrap(),
            &py,
        );

        let bwd = |dy: &Tensor, dx: &Tensor, dg: &Tensor, db: &Tensor| {
            let b = bn_bwd((&tx, &tb, dy, &st, &tg), dx, dg, db);
            norm::backward_tex_pooled(g, &s, &b, &xv, w)
        };
        // unfused: the pooling's backward into a full-size dy, then the norm's
        let (tdy, tdx1, tdg1, tdb1) = (out(g, s.len()), out(g, s.len()), out(g, c), out(g, c));
        pool::max_bwd(g, &ps, &tpdy.buf, &targ.buf, &tdy.buf)
            .unwrap()
            .run(g);
        let b1 = bn_bwd((&tx, &tb, &tdy, &st, &tg), &tdx1, &tdg1, &tdb1);
        norm::backward_tex(g, &s, &b1, &xv).unwrap().run(g);
        // dx into the row texture of the conv before (any even width), and for a width that is a
        // multiple of 4 also into a buffer: the same bits
        let (dtex, dview) = conv::planes_texture(g, "dx rows", n, c, h, w);
        write_rows_texture(g, &dtex, &[], POISON);
        let (unused, tdg3, tdb3) = (out(g, s.len()), out(g, c), out(g, c));
        let b3 = bn_bwd((&tx, &tb, &tpdy, &st, &tg), &unused, &tdg3, &tdb3);
        norm::backward_tex_pooled_rows(g, &s, &b3, &xv, w, &dview)
            .unwrap()
            .run(g);
        let rows = g.read_texture_rgba32f(&dtex).unwrap();
        // the same with the pooled dy given in a texture of its values in order (as the linear
        // layer after stores it): the dy buffer holds poison, the same bits must come out
        if m.is_multiple_of(4) {
            let pdy_rows = incq::ops::linear::rows_tex_unfilled(g, "pooled dy", 1, m).unwrap();
            write_rows_texture(g, &pdy_rows.texture, &pdy, POISON);
            let (dtex4, dview4) = conv::planes_texture(g, "dx rows", n, c, h, w);
            write_rows_texture(g, &dtex4, &[], POISON);
            let (bad_dy, tdg4, tdb4) = (out(g, m), out(g, c), out(g, c));
            let b4 = bn_bwd((&tx, &tb, &bad_dy, &st, &tg), &unused, &tdg4, &tdb4);
            let io = norm::PooledIo {
                dx_rows: Some(&dview4),
                dy: Some(&pdy_rows.view),
            };
            let op = norm::backward_tex_pooled_with(g, &s, &b4, &xv, w, io).unwrap();
            assert_eq!(op.steps.len(), 2, "{what}: no copy of the given pooled dy");
            op.run(g);
            let f32s = |t: &Tensor| t.to_f32(g).unwrap();
            common::assert_exact_f32(
                &format!("{what} dx rows from the given pooled dy"),
                &g.read_texture_rgba32f(&dtex4).unwrap(),
                &rows,
            );
            common::assert_exact_f32(
                &format!("{what} dgamma from the given pooled dy"),
                &f32s(&tdg4),
                &f32s(&tdg3),
            );
            common::assert_exact_f32(
                &format!("{what} dbeta from the given pooled dy"),
                &f32s(&tdb4),
                &f32s(&tdb3),
            );
        }
        let w4 = w.div_ceil(4) * 4;
        let rows = &rows[..n * c * h * w4];
        for (r, row) in rows.chunks(w4).enumerate() {
            assert!(
                row[w..].iter().all(|&v| v == 0.0),
                "{what}: dx row {r} is not zero past the width"
            );
        }
        let dx: Vec<f32> = rows.chunks(w4).flat_map(|row| row[..w].to_vec()).collect();
        let (dg, db) = (tdg3.to_f32(g).unwrap(), tdb3.to_f32(g).unwrap());
        if norm::pool_bwd_ok(g, &s, w) {
            let (tdx2, tdg2, tdb2) = (out(g, s.len()), out(g, c), out(g, c));
            bwd(&tpdy, &tdx2, &tdg2, &tdb2).unwrap().run(g);
            common::assert_exact_f32(&format!("{what} dx rows"), &dx, &tdx2.to_f32(g).unwrap());
            common::assert_exact_f32(
                &format!("{what} dgamma rows"),
                &dg,
                &tdg2.to_f32(g).unwrap(),
            );
        } else {
            assert!(
                bwd(&tpdy, &unused, &tdg3, &tdb3).is_err(),
                "{what}: dx into a buffer"
            );
        }
        let pairs = [
            ("dx", &dx, tdx1.to_f32(g).unwrap()),
            ("dgamma", &dg, tdg1.to_f32(g).unwrap()),
            ("dbeta", &db, tdb1.to_f32(g).unwrap()),
        ];
        for (name, got, want) in pairs {
            assert_close(
                &format!("{what} {name} vs unfused"),
                got,
                &want,
                Tol::BALANCED,
            );
        }
        // the f64 twins
        let stv = st.to_f32(g).unwrap();
        let y = reference::norm::apply(&s, &x, &stv, &gamma, &beta);
        let (py_ref, arg_ref) = reference::pool::max_fwd(&ps, &y);
        assert_close(
            &format!("{what} pooled vs twin"),
            &py,
            &py_ref,
            Tol::BALANCED,
        );
        assert_eq!(targ.to_u32(g).unwrap(), arg_ref, "{what} argmax vs twin");
        let dy_full = reference::pool::max_bwd(&ps, &pdy, &arg_ref);
        let (dx_ref, dg_ref, db_ref) =
            reference::norm::backward(&s, &x, &y, &dy_full, &stv, &gamma);
        assert_close(&format!("{what} dx vs twin"), &dx, &dx_ref, Tol::PERMISSIVE);
        assert_close(
            &format!("{what} dgamma vs twin"),
            &dg,
            &dg_ref,
            Tol::PERMISSIVE,
        );
        assert_close(
            &format!("{what} dbeta vs twin"),
            &db,
            &db_ref,
            Tol::PERMISSIVE,
        );
        if !relu {
            let loss = |xv: &[f32], gv: &[f32]| {
                let (st, _) = reference::norm::stats(&s, xv, &running);
                let y = reference::norm::apply(&s, xv, &st, gv, &beta);
                dot(&reference::pool::max_fwd(&ps, &y).0, &pdy)
            };
            fd_check(&format!("bn_pool_bwd_dx_tex {what}"), &x, &dx, &|xv| {
                loss(xv, &gamma)
            });
            fd_check(
                &format!("bn_pool_bwd_reduce_tex {what} dgamma"),
                &gamma,
                &dg,
                &|gv| loss(&x, gv),
            );
        }
    }
    // a width that is not a multiple of 4, or an odd number of rows: an error
    let s = BnShape {
        n: 1,
        c: 1,
        hw: 24,
        relu: true,
    };
    assert!(!norm::pool_bwd_ok(g, &s, 6));
    assert!(norm::pool_bwd_rows_ok(g, &s, 6));
    assert!(!norm::pool_bwd_ok(g, &s, 8));
    assert!(!norm::pool_bwd_rows_ok(g, &s, 8));
    let t = up(g, &[0.0; 24]);
    let (_, xv) = conv::planes_texture(g, "x", 1, 1, 4, 6);
    let b = BnBwd {
        x: &t.buf,
        beta: &t.buf,
        dy: &t.buf,
        stats: &t.buf,
        gamma: &t.buf,
        dgamma: &t.buf,
        dbeta: &t.buf,
        dx: &t.buf,
    };
    let e = norm::backward_tex_pooled(g, &s, &b, &xv, 6).err();
    assert!(e.is_some(), "bn_pool_bwd_*_tex accepted rows of 6");
}

/// conv::fwd_rows and conv::bwd with dy in a row texture (what the batch norms above write)
/// against the packed path: the same bits for y, dw and dx.
#[test]
fn conv_rows_io_matches_the_packed_path() {
    let Some(g) = gpu() else { return };
    let v = ConvVariant::Tex { co: 8 };
    let shapes = [
        ConvShape {
            n: 3,
            cin: 6,
            h: 14,
            w: 14,
            cout: 16,
            k: 5,
            stride: 1,
            pad: 0,
        },
        ConvShape {
            n: 1,
            cin: 3,
            h: 7,
            w: 10,
            cout: 5,
            k: 3,
            stride: 1,
            pad: 1,
        },
    ];
    for (t, s) in shapes.iter().enumerate() {
        if !conv::rows_io_ok(g, v, s) {
            eprintln!("conv rows io: not selected on this adapter (not CPU-backed)");
            return;
        }
        let mut rng = Rng::new(400 + t as u64);
        let x = rng.vec(s.x_len(), -1.0, 1.0);
        let w = rng.vec(s.w_len(), -1.0, 1.0);
        let dy = rng.vec(s.y_len(), -1.0, 1.0);
        let (tx, tw, tdy) = (up(g, &x), up(g, &w), up(g, &dy));
        let (y1, dw1, dx1) = (out(g, s.y_len()), out(g, s.w_len()), out(g, s.x_len()));
        let (f, x_rows) = conv::fwd_keep_input(g, v, s, &tx.buf, &tw.buf, &y1.buf).unwrap();
        f.run(g);
        conv::bwd(
            g,
            v,
            s,
            &tdy.buf,
            &tx.buf,
            x_rows.as_ref(),
            &tw.buf,
            &dw1.buf,
            Some((&dx1.buf, false)),
            None,
        )
        .unwrap()
        .run(g);
        let (oh, ow) = s.out_hw();
        let (xt, xv) = conv::planes_texture(g, "x rows", s.n, s.cin, s.h, s.w);
        write_rows_texture(g, &xt, &to_rows(&x, s.n * s.cin * s.h, s.w), 0);
        let (dyt, dyv) = conv::planes_texture(g, "dy rows", s.n, s.cout, oh, ow);
        write_rows_texture(g, &dyt, &to_rows(&dy, s.n * s.cout * oh, ow), 0);
        let (y2, dw2, dx2) = (out(g, s.y_len()), out(g, s.w_len()), out(g, s.x_len()));
        conv::fwd_rows(g, v, s, &xv, &tw.buf, &y2.buf)
            .unwrap()
            .run(g);
        // x and dy buffers the rows path must not read: zeros
        let (zx, zdy) = (up(g, &vec![0.0; s.x_len()]), up(g, &vec![0.0; s.y_len()]));
        conv::bwd(
            g,
            v,
            s,
            &zdy.buf,
            &zx.buf,
            Some(&xv),
            &tw.buf,
            &dw2.buf,
            Some((&dx2.buf, false)),
            Some(&dyv),
        )
        .unwrap()
        .run(g);
        let what = format!("{s:?}");
        common::assert_exact_f32(
            &format!("fwd_rows {what}"),
            &y2.to_f32(g).unwrap(),
            &y1.to_f32(g).unwrap(),
        );
        common::assert_exact_f32(
            &format!("bwd dw, dy rows {what}"),
            &dw2.to_f32(g).unwrap(),
            &dw1.to_f32(g).unwrap(),
        );
        common::assert_exact_f32(
            &format!("bwd dx, dy rows {what}"),
            &dx2.to_f32(g).unwrap(),
            &dx1.to_f32(g).unwrap(),
        );
    }
    // a shape the row textures do not serve (stride 2) is an error, not a wrong result
    let s2 = ConvShape {
        stride: 2,
        ..shapes[0]
    };
    let (_, xv) = conv::planes_texture(g, "x rows", s2.n, s2.cin, s2.h, s2.w);
    let t = up(g, &vec![0.0; s2.x_len()]);
    assert!(conv::fwd_rows(g, v, &s2, &xv, &t.buf, &t.buf).is_err());
}
