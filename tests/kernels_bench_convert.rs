//! The roofline microkernels (fma_peak, copy_vec4) and f32_to_f16 against their CPU twins.
//! fma_peak: Tol::STRICT per step compounds, so the bound is rel 1e-4 after 64 iterations.
//! copy_vec4 and f32_to_f16 are compared exactly, the latter on 0, -0, ±max, ±inf, NaN,
//! subnormals, overflow and round-to-even ties.

mod common;
use common::{assert_close, assert_exact_f32, gpu, Rng, Tol, POISON};
use incq::gpu::{DType, Tensor};
use incq::ops;
use incq::reference;

#[test]
fn fma_peak_matches_twin() {
    let Some(g) = gpu() else { return };
    let inv = 1000; // not a multiple of the workgroup size
    let out = Tensor::empty(g, "out", &[inv * 4], DType::F32).unwrap();
    out.poison(g, POISON);
    ops::bench::fma_peak(g, inv, 64, 0.25, &out.buf)
        .unwrap()
        .run(g);
    let got = out.to_f32(g).unwrap();
    let want: Vec<f32> = (0..inv)
        .flat_map(|i| [reference::bench::fma_peak(i as u32, 64, 0.25); 4])
        .collect();
    assert_close(
        "fma_peak",
        &got,
        &want,
        Tol {
            abs: 1e-4,
            rel: 1e-4,
        },
    );
}

#[test]
fn copy_vec4_matches_twin() {
    let Some(g) = gpu() else { return };
    let n4 = 1237;
    let src = Rng::new(5).vec(n4 * 4, -9.0, 9.0);
    let ts = Tensor::from_f32(g, "src", &[n4 * 4], &src).unwrap();
    let td = Tensor::empty(g, "dst", &[n4 * 4], DType::F32).unwrap();
    td.poison(g, POISON);
    ops::bench::copy_vec4(g, n4, &ts.buf, &td.buf)
        .unwrap()
        .run(g);
    assert_exact_f32(
        "copy_vec4",
        &td.to_f32(g).unwrap(),
        &reference::bench::copy_vec4(&src),
    );
}

#[test]
fn f32_to_f16_matches_twin_exactly() {
    let Some(g) = gpu() else { return };
    if !g.has_f16() {
        eprintln!("f32_to_f16: adapter has no SHADER_F16; f16 storage is unavailable here");
        return;
    }
    let mut x = vec![
        0.0f32,
        -0.0,
        65504.0,
        -65504.0,
        65520.0,            // rounds to inf
        1e-8,               // below the smallest subnormal
        6.0e-8,             // subnormal
        -3.0e-5,            // subnormal
        1.0 + 1.0 / 2048.0, // tie between two halves: rounds to even (1.0)
        1.0 + 3.0 / 2048.0, // tie: rounds to even (1.0 + 2/1024)
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
    ];
    let mut rng = Rng::new(11);
    x.extend((0..1001).map(|_| rng.normal() * 100.0));
    let ts = Tensor::from_f32(g, "src", &[x.len()], &x).unwrap();
    let td = Tensor::empty(g, "dst", &[x.len()], DType::F16).unwrap();
    td.poison(g, POISON);
    ops::convert::f32_to_f16(g, &ts, &td).unwrap().run(g);
    let got = td.to_f16(g).unwrap();
    let want = reference::convert::f32_to_f16(&x);
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            a.to_bits(),
            b.to_bits(),
            "f32_to_f16 element {i} ({}): GPU {a} CPU {b}",
            x[i]
        );
    }
    // NaN stays NaN (payloads may differ between implementations).
    let tn = Tensor::from_f32(g, "nan", &[1], &[f32::NAN]).unwrap();
    let tn16 = Tensor::empty(g, "nan16", &[1], DType::F16).unwrap();
    ops::convert::f32_to_f16(g, &tn, &tn16).unwrap().run(g);
    assert!(tn16.to_f16(g).unwrap()[0].is_nan());
}
