//! Elementwise kernels (fill, scale, axpy, bias_add, relu_fwd, add, relu_bwd) against their CPU twins on
//! lengths 1, 7, 255, 256, 257, 1000 and 70001, plus one length past the 1-D workgroup grid limit
//! (65535 x 256) so the 2-D grid path runs. Outputs are poisoned unless the op reads them.
//! The texture-fed forms (`elementwise_op`) run the same cases. Tolerance: Tol::STRICT (each
//! output is one or two f32 roundings).

mod common;
use common::{assert_close, gpu, Rng, Tol, POISON};
use incq::gpu::Tensor;
use incq::ops::elementwise::{elementwise, elementwise_op, EwOp};
use incq::reference;

fn case(op: EwOp, n: usize, seed: u64) {
    case_with(op, n, seed, false);
}

/// As `case`, through `elementwise_op` (`ew_tex` on CPU-backed adapters for n a multiple of 4).
fn case_with(op: EwOp, n: usize, seed: u64, as_op: bool) {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::new(seed);
    let mut x = rng.vec(n, -2.0, 2.0);
    // exact zeros exercise ReLU's boundary
    for i in (0..n).step_by(5) {
        x[i] = 0.0;
    }
    let y = rng.vec(n, -2.0, 2.0);
    let out0 = rng.vec(n, -2.0, 2.0);
    let alpha = 0.75;
    let x = if op == EwOp::BiasAdd {
        x[..n.min(7)].to_vec()
    } else {
        x
    };
    let tx = Tensor::from_f32(g, "x", &[x.len()], &x).unwrap();
    let ty = Tensor::from_f32(g, "y", &[n], &y).unwrap();
    let to = Tensor::from_f32(g, "out", &[n], &out0).unwrap();
    if !matches!(op, EwOp::Scale | EwOp::Axpy | EwOp::BiasAdd) {
        to.poison(g, POISON);
    }
    let inputs: Vec<&Tensor> = [&tx, &ty][..op.inputs()].to_vec();
    if as_op {
        elementwise_op(g, op, alpha, &to, &inputs).unwrap().run(g);
    } else {
        elementwise(g, op, alpha, &to, &inputs).unwrap().run(g);
    }
    let got = to.to_f32(g).unwrap();
    let mut want = out0.clone();
    reference::elementwise::elementwise(op, alpha, &mut want, &x, &y);
    assert_close(&format!("{} n={n}", op.entry()), &got, &want, Tol::STRICT);
}

fn sizes(op: EwOp) {
    let lens: &[usize] = if op == EwOp::BiasAdd {
        &[1, 7, 259, 7007]
    } else {
        &[1, 7, 255, 256, 257, 1000, 70001]
    };
    for (i, &n) in lens.iter().enumerate() {
        case(op, n, i as u64);
    }
}

#[test]
fn fill_matches_twin() {
    sizes(EwOp::Fill);
}
#[test]
fn scale_matches_twin() {
    sizes(EwOp::Scale);
}
#[test]
fn axpy_matches_twin() {
    sizes(EwOp::Axpy);
}
#[test]
fn relu_fwd_matches_twin() {
    sizes(EwOp::ReluFwd);
}
#[test]
fn bias_add_matches_twin() {
    sizes(EwOp::BiasAdd);
}
#[test]
fn add_matches_twin() {
    sizes(EwOp::Add);
}
#[test]
fn relu_bwd_matches_twin() {
    sizes(EwOp::ReluBwd);
}
/// add_relu: the residual add and its ReLU in one pass.
#[test]
fn add_relu_matches_twin() {
    sizes(EwOp::AddRelu);
}

/// ew_tex (inputs copied into textures) for the streaming ops, on lengths that are multiples of
/// 4 (several texture rows, one partial) and on ones that fall back to the plain kernels.
#[test]
fn texture_fed_elementwise_ops_match_twins() {
    for op in [
        EwOp::AddRelu,
        EwOp::ReluBwd,
        EwOp::Axpy,
        EwOp::Add,
        EwOp::ReluFwd,
    ] {
        for (i, n) in [4usize, 8, 1000, 70004, 16_777_220, 7, 1001]
            .into_iter()
            .enumerate()
        {
            case_with(op, n, 50 + i as u64, true);
        }
    }
}

#[test]
fn relu_fwd_past_the_1d_grid_limit() {
    case(EwOp::ReluFwd, 65535 * 256 + 4099, 99);
}

#[test]
fn elementwise_rejects_wrong_arity_and_lengths() {
    let Some(g) = gpu() else { return };
    let a = Tensor::from_f32(g, "a", &[4], &[0.0; 4]).unwrap();
    let b = Tensor::from_f32(g, "b", &[5], &[0.0; 5]).unwrap();
    assert!(elementwise(g, EwOp::Add, 1.0, &a, &[&a]).is_err());
    assert!(elementwise(g, EwOp::ReluFwd, 1.0, &a, &[&b]).is_err());
}
