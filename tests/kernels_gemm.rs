//! GEMM kernels (gemm_reg8x2, gemm_tiled, gemm_tex and its pack_rgba, and linear_tex's three forms
//! and epilogues) against the CPU twins, on
//! awkward shapes: 1x1x1, odd sizes that are not multiples of any tile, batches, all three
//! transposes, alpha/beta accumulation and one large case. Outputs are poisoned with NaN first.
//! Tolerance: Tol::BALANCED (f32 accumulation over K <= 800 against an f64 reference).

mod common;
use common::{assert_close, assert_exact_f32, gpu, write_rows_texture, Rng, Tol, POISON};
use incq::gpu::Tensor;
use incq::ops::gemm::{gemm, pack, GemmDesc, GemmVariant, PackParams};
use incq::ops::linear::{self, Epilogue, Form};
use incq::ops::Op;
use incq::reference;

fn run_case(variant: GemmVariant, d: GemmDesc, seed: u64) {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(seed);
    let a = rng.vec(d.batch * d.m * d.k, -1.0, 1.0);
    let b = rng.vec(d.batch * d.k * d.n, -1.0, 1.0);
    let c0 = rng.vec(d.batch * d.m * d.n, -1.0, 1.0);
    let ta = Tensor::from_f32(gpu, "A", &[a.len()], &a).unwrap();
    let tb = Tensor::from_f32(gpu, "B", &[b.len()], &b).unwrap();
    let tc = Tensor::from_f32(gpu, "C", &[c0.len()], &c0).unwrap();
    if d.beta == 0.0 {
        tc.poison(gpu, POISON);
    }
    gemm(gpu, variant, &d, &ta.buf, &tb.buf, &tc.buf)
        .unwrap()
        .run(gpu);
    let got = tc.to_f32(gpu).unwrap();
    let mut want = c0.clone();
    reference::gemm::gemm(&d, &a, &b, &mut want);
    assert_close(
        &format!("{} {d:?}", variant.name()),
        &got,
        &want,
        Tol::BALANCED,
    );
}

fn shapes() -> Vec<GemmDesc> {
    let mut v = Vec::new();
    for &(m, n, k) in &[
        (1, 1, 1),
        (3, 7, 5),
        (67, 45, 33),
        (67, 44, 33), // vec4 stores, a ragged last column block
        (64, 64, 64),
        (9, 130, 1),
        (65, 33, 257),
        (2, 300, 17),
    ] {
        for (ta, tb) in [(false, false), (true, false), (false, true)] {
            v.push(GemmDesc {
                trans_a: ta,
                trans_b: tb,
                ..GemmDesc::new(m, n, k)
            });
        }
    }
    v.push(GemmDesc {
        batch: 3,
        ..GemmDesc::new(13, 21, 11)
    });
    v.push(GemmDesc {
        batch: 2,
        trans_b: true,
        alpha: 0.5,
        beta: -1.25,
        ..GemmDesc::new(70, 19, 29)
    });
    v.push(GemmDesc {
        alpha: 2.0,
        beta: 1.0,
        trans_a: true,
        ..GemmDesc::new(33, 66, 99)
    });
    v
}

fn all_shapes(variant: GemmVariant) {
    for (i, d) in shapes().into_iter().enumerate() {
        run_case(variant, d, 100 + i as u64);
    }
}

#[test]
fn gemm_tex_matches_twin() {
    let Some(g) = gpu() else { return };
    if !GemmVariant::tex_supported(g) {
        eprintln!(
            "gemm_tex: this adapter has no 8-wide subgroups; the variant is never selected here"
        );
        return;
    }
    all_shapes(GemmVariant::Tex);
    run_case(GemmVariant::Tex, GemmDesc::new(301, 257, 800), 7);
}

#[test]
fn gemm_reg8x2_matches_twin() {
    all_shapes(GemmVariant::Reg {
        wg: 64,
        tm: 8,
        tn: 2,
    });
    all_shapes(GemmVariant::Reg {
        wg: 32,
        tm: 8,
        tn: 2,
    });
    run_case(
        GemmVariant::Reg {
            wg: 64,
            tm: 8,
            tn: 2,
        },
        GemmDesc::new(301, 257, 300),
        8,
    );
}

#[test]
fn gemm_tiled_matches_twin() {
    all_shapes(GemmVariant::Tiled {
        wx: 16,
        wy: 16,
        bk: 16,
    });
    all_shapes(GemmVariant::Tiled {
        wx: 8,
        wy: 8,
        bk: 32,
    });
    run_case(
        GemmVariant::Tiled {
            wx: 16,
            wy: 16,
            bk: 16,
        },
        GemmDesc::new(301, 257, 300),
        9,
    );
}

#[test]
fn pack_rgba_matches_twin() {
    let Some(g) = gpu() else { return };
    if !g.features.contains(wgpu::Features::SUBGROUP) {
        return;
    }
    let mut rng = Rng::new(3);
    // A 13 x 10 transposed view over a 10 x 13 buffer, 2 batches, packed into 5 x 17 texels.
    let src = rng.vec(2 * 130 + 3, -1.0, 1.0);
    let pp = PackParams {
        rows: 13,
        cols: 10,
        off: 3,
        rs: 1,
        cs: 13,
        bs: 130,
        ..Default::default()
    };
    let t = Tensor::from_f32(g, "src", &[src.len()], &src).unwrap();
    let (op, tex) = pack(g, &pp, &t.buf, 5, 17, 2).unwrap();
    op.run(g);
    let got = g.read_texture_rgba32f(&tex).unwrap();
    let want = reference::gemm::pack_rgba(&pp, &src, 5, 17, 2);
    common::assert_exact_f32("pack_rgba", &got, &want);
}

#[test]
fn gemm_rejects_buffers_that_are_too_small() {
    let Some(g) = gpu() else { return };
    let t = Tensor::from_f32(g, "small", &[10], &[0.0; 10]).unwrap();
    let err = gemm(
        g,
        GemmVariant::default_for(g),
        &GemmDesc::new(4, 4, 4),
        &t.buf,
        &t.buf,
        &t.buf,
    )
    .err()
    .expect("a 10-float buffer cannot hold a 4x4x4 GEMM");
    assert!(err.to_string().contains("gemm"), "{err}");
}

/// One linear_tex case: random A and B stored as `form` reads them, C poisoned, every epilogue
/// the form is used with.
fn linear_case(form: Form, (m, n, k): (usize, usize, usize), epi: u8, seed: u64) {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::new(seed);
    // stored shapes: Nt A [m][k], B [n][k]; Nn A [m][k], B [k][n]; Tn A [k][m], B [k][n]
    let (ar, ac, br, bc) = match form {
        Form::Nt => (m, k, n, k),
        Form::Nn => (m, k, k, n),
        Form::Tn => (k, m, k, n),
    };
    let a = rng.vec(ar * ac, -1.0, 1.0);
    let b = rng.vec(br * bc, -1.0, 1.0);
    let bias = rng.vec(n, -1.0, 1.0);
    // a ReLU output as mask source: zeros (and a negative zero) among positives
    let mut mask = rng.vec(m * n, -1.0, 1.0);
    mask.iter_mut().for_each(|v| *v = v.max(0.0));
    mask[0] = -0.0;
    let ta = Tensor::from_f32(g, "A", &[a.len()], &a).unwrap();
    let tb = Tensor::from_f32(g, "B", &[b.len()], &b).unwrap();
    let tbias = Tensor::from_f32(g, "bias", &[n], &bias).unwrap();
    let tmask = Tensor::from_f32(g, "mask", &[m * n], &mask).unwrap();
    let tc = Tensor::from_f32(g, "C", &[m * n], &vec![0.0; m * n]).unwrap();
    tc.poison(g, POISON);
    let (sa, ra) = linear::rows_tex(g, "A", ar, ac, &ta.buf).unwrap();
    let (sb, rb) = linear::rows_tex(g, "B", br, bc, &tb.buf).unwrap();
    let (e, want_bias, want_mask) = match epi {
        0 => (Epilogue::None, None, None),
        1 => (
            Epilogue::Bias {
                bias: &tbias.buf,
                relu: false,
            },
            Some((&bias[..], false)),
            None,
        ),
        2 => (
            Epilogue::Bias {
                bias: &tbias.buf,
                relu: true,
            },
            Some((&bias[..], true)),
            None,
        ),
        _ => (Epilogue::Mask(&tmask.buf), None, Some(&mask[..])),
    };
    // the Tn form also sums A's columns (the bias gradient): poisoned, then compared
    let tsum = Tensor::from_f32(g, "colsum", &[m], &vec![0.0; m]).unwrap();
    tsum.poison(g, POISON);
    let colsum = (form == Form::Tn).then_some(&tsum.buf);
    // rows of whole texels (linear_tex4): C also into a poisoned row texture (ROWS = 1)
    let rows = n.is_multiple_of(4).then(|| {
        let r = linear::rows_tex_unfilled(g, "C rows", m, n).unwrap();
        write_rows_texture(g, &r.texture, &[], POISON);
        r
    });
    let d = linear::gemm(g, form, &ra, &rb, &tc.buf, e, colsum, rows.as_ref()).unwrap();
    let op = Op {
        steps: vec![sa, sb, d.into()],
        textures: Vec::new(),
    };
    op.run(g);
    if let Some(r) = &rows {
        let tex = g.read_texture_rgba32f(&r.texture).unwrap();
        assert_exact_f32(
            &format!("linear_tex4 {form:?} {m}x{n}x{k} epilogue {epi}: C rows texture"),
            &tex[..m * n],
            &tc.to_f32(g).unwrap(),
        );
    }
    if form == Form::Tn {
        let want: Vec<f32> = (0..m)
            .map(|i| (0..k).map(|l| f64::from(a[l * m + i])).sum::<f64>() as f32)
            .collect();
        assert_close(
            &format!("linear_tex colsum {m}x{k}"),
            &tsum.to_f32(g).unwrap(),
            &want,
            Tol::BALANCED,
        );
    }
    let got = tc.to_f32(g).unwrap();
    let want = reference::gemm::linear_tex(form, (m, n, k), &a, &b, want_bias, want_mask);
    assert_close(
        &format!("linear_tex {form:?} {m}x{n}x{k} epilogue {epi}"),
        &got,
        &want,
        Tol::BALANCED,
    );
}

#[test]
fn linear_tex_matches_twin() {
    let Some(g) = gpu() else { return };
    if !GemmVariant::tex_supported(g) {
        eprintln!("linear_tex: this adapter has no 8-wide subgroups; the plan never uses it here");
        return;
    }
    // LeNet's layers at batch 64 and 1, odd and ragged sizes (rows packed where not a multiple of
    // 4), more than one workgroup along both axes, several texture rows (k = 3000); n a multiple
    // of 4 runs linear_tex4
    let shapes = [
        (64, 120, 400),
        (64, 10, 84),
        (1, 1, 1),
        (3, 7, 5),
        (67, 45, 33),
        (67, 44, 33), // vec4 stores, a ragged last column block
        (130, 9, 66),
        (5, 300, 17),
        (1, 84, 120),
        (70, 261, 3000),
    ];
    for (i, &(m, n, k)) in shapes.iter().enumerate() {
        let s = 500 + 10 * i as u64;
        linear_case(Form::Nt, (m, n, k), 2, s);
        linear_case(Form::Nt, (m, n, k), 1, s + 1);
        linear_case(Form::Nn, (m, n, k), 3, s + 2);
        linear_case(Form::Nn, (m, n, k), 0, s + 3);
        linear_case(Form::Tn, (m, n, k), 0, s + 4);
    }
}

#[test]
fn linear_tex_rejects_operands_that_do_not_chain() {
    let Some(g) = gpu() else { return };
    if !GemmVariant::tex_supported(g) {
        return;
    }
    let t = Tensor::from_f32(g, "x", &[64], &[0.0; 64]).unwrap();
    let (_, a) = linear::rows_tex(g, "A", 4, 8, &t.buf).unwrap();
    let (_, b) = linear::rows_tex(g, "B", 4, 6, &t.buf).unwrap();
    let err = linear::gemm(g, Form::Nt, &a, &b, &t.buf, Epilogue::None, None, None)
        .err()
        .expect("A 4 x 8 and B 4 x 6 have different k");
    assert!(err.to_string().contains("do not chain"), "{err}");
    // a row texture for C must have C's shape
    let (_, b8) = linear::rows_tex(g, "B", 4, 8, &t.buf).unwrap();
    let wrong = linear::rows_tex_unfilled(g, "C rows", 4, 8).unwrap();
    let err = linear::gemm(
        g,
        Form::Nt,
        &a,
        &b8,
        &t.buf,
        Epilogue::None,
        None,
        Some(&wrong),
    )
    .err()
    .expect("C is 4 x 4, the texture 4 x 8");
    assert!(err.to_string().contains("C rows"), "{err}");
    let err = linear::rows_tex(g, "big", 9, 8, &t.buf)
        .err()
        .expect("a 64-float buffer cannot hold 9 x 8");
    assert!(err.to_string().contains("holds 64"), "{err}");
}

/// linear_bwd_tex4 (a layer's backward-weight, bias gradient and backward-data in one dispatch)
/// against the two linear_tex dispatches, bit for bit, with poisoned outputs: LeNet's three layers
/// at batch 64 and 1, a ragged batch over several row blocks, both workgroup sizes, with and
/// without the ReLU mask; and the refusal of rows that are not whole vec4s.
#[test]
fn linear_bwd_fused_matches_the_two_gemms_bit_for_bit() {
    let Some(g) = gpu() else { return };
    if !GemmVariant::tex_supported(g) {
        eprintln!(
            "linear_bwd_tex4: this adapter has no 8-wide subgroups; the plan never uses it here"
        );
        return;
    }
    // (batch, fin, fout)
    let shapes = [
        (64, 400, 120),
        (64, 120, 84),
        (64, 84, 10),
        (1, 84, 10),
        (130, 44, 67),
        (3, 4, 1),
        (5, 7, 3),
    ];
    let f32s = |t: &Tensor| t.to_f32(g).unwrap();
    for (i, &(batch, fin, fout)) in shapes.iter().enumerate() {
        for masked in [false, true] {
            let mut rng = Rng::new(900 + i as u64);
            let dz = rng.vec(batch * fout, -1.0, 1.0);
            let x = rng.vec(batch * fin, -1.0, 1.0);
            let w = rng.vec(fout * fin, -1.0, 1.0);
            let mut src = rng.vec(batch * fin, -1.0, 1.0);
            src.iter_mut().for_each(|v| *v = v.max(0.0));
            let up = |label: &str, v: &[f32]| Tensor::from_f32(g, label, &[v.len()], v).unwrap();
            let (tdz, tx, tw, tsrc) = (up("dz", &dz), up("x", &x), up("w", &w), up("src", &src));
            let outs = || {
                let t: Vec<Tensor> = [fout * fin, fout, batch * fin]
                    .iter()
                    .map(|&n| up("out", &vec![0.0; n]))
                    .collect();
                t.iter().for_each(|o| o.poison(g, POISON));
                t
            };
            let (sz, rz) = linear::rows_tex(g, "dz", batch, fout, &tdz.buf).unwrap();
            let (sx, rx) = linear::rows_tex(g, "x", batch, fin, &tx.buf).unwrap();
            let (sw, rw) = linear::rows_tex(g, "w", fout, fin, &tw.buf).unwrap();
            Op {
                steps: vec![sz, sx, sw],
                textures: Vec::new(),
            }
            .run(g);
            let mask = masked.then_some(&tsrc.buf);
            let epi = mask.map_or(Epilogue::None, Epilogue::Mask);
            let two = outs();
            linear::gemm(
                g,
                Form::Tn,
                &rz,
                &rx,
                &two[0].buf,
                Epilogue::None,
                Some(&two[1].buf),
                None,
            )
            .unwrap()
            .run(g);
            linear::gemm(g, Form::Nn, &rz, &rw, &two[2].buf, epi, None, None)
                .unwrap()
                .run(g);
            let one = outs();
            // dW and dx also into poisoned row textures (DW_ROWS, DX_ROWS), in the masked case
            // (either alone in the other)
            let tex_out = |rows: usize| {
                let r = linear::rows_tex_unfilled(g, "rows out", rows, fin).unwrap();
                write_rows_texture(g, &r.texture, &[], POISON);
                r
            };
            let (dw_rows, dx_rows) = match linear::bwd_fused_ok(fin) {
                true => (
                    (masked || i % 2 == 0).then(|| tex_out(fout)),
                    (masked || i % 2 == 1).then(|| tex_out(batch)),
                ),
                false => (None, None),
            };
            let d = linear::gemm_bwd(
                g,
                &rz,
                &rx,
                &rw,
                &one[0].buf,
                &one[1].buf,
                &one[2].buf,
                mask,
                linear::BwdRows {
                    dw: dw_rows.as_ref(),
                    dx: dx_rows.as_ref(),
                },
            );
            if !linear::bwd_fused_ok(fin) {
                let e = d
                    .err()
                    .expect("rows of fin floats that are not whole vec4s");
                assert!(e.to_string().contains("multiples of 4"), "{e}");
                continue;
            }
            d.unwrap().run(g);
            let case = format!("batch {batch}, {fin} -> {fout}, mask {masked}");
            assert_exact_f32(&format!("dW, {case}"), &f32s(&one[0]), &f32s(&two[0]));
            assert_exact_f32(
                &format!("bias gradient, {case}"),
                &f32s(&one[1]),
                &f32s(&two[1]),
            );
            assert_exact_f32(&format!("dx, {case}"), &f32s(&one[2]), &f32s(&two[2]));
            for (what, r, want) in [("dW", &dw_rows, &two[0]), ("dx", &dx_rows, &two[2])] {
                if let Some(r) = r {
                    let tex = g.read_texture_rgba32f(&r.texture).unwrap();
                    let want = f32s(want);
                    assert_exact_f32(
                        &format!("{what} rows texture, {case}"),
                        &tex[..want.len()],
                        &want,
                    );
                }
            }
            // and the products themselves, against the f64 twin
            let want = reference::gemm::linear_tex(
                Form::Nn,
                (batch, fin, fout),
                &dz,
                &w,
                None,
                masked.then_some(&src[..]),
            );
            assert_close(
                &format!("dx, {case}"),
                &one[2].to_f32(g).unwrap(),
                &want,
                Tol::BALANCED,
            );
        }
    }
}
