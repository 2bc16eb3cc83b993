//! The kernel cache: one pipeline per (shader, entry point, override constants), and a pipeline
//! that fails to build comes back as an error naming the shader and entry point (it is created
//! inside a validation error scope), not as a panic.

mod common;
use std::sync::Arc;

use incq::gpu::kernels::{Binding, KernelSpec, ShaderId};

const B: &[Binding] = &[Binding::Uniform, Binding::ReadWrite];

#[test]
fn pipelines_are_cached_by_shader_entry_and_overrides() {
    let Some(g) = common::gpu() else { return };
    let a = g
        .kernel(&KernelSpec::new(ShaderId::Elementwise, "fill", B).with("WG", 64.0))
        .unwrap();
    let b = g
        .kernel(&KernelSpec::new(ShaderId::Elementwise, "fill", B).with("WG", 64.0))
        .unwrap();
    let c = g
        .kernel(&KernelSpec::new(ShaderId::Elementwise, "fill", B).with("WG", 128.0))
        .unwrap();
    assert!(Arc::ptr_eq(&a, &b), "same key, same pipeline");
    assert!(
        !Arc::ptr_eq(&a, &c),
        "another override value is another pipeline"
    );
}

#[test]
fn a_pipeline_that_cannot_build_is_an_error_naming_the_shader() {
    let Some(g) = common::gpu() else { return };
    let err = g
        .kernel(&KernelSpec::new(ShaderId::Elementwise, "no_such_entry", B))
        .err()
        .expect("a missing entry point must not build");
    let msg = err.to_string();
    assert!(
        msg.contains("elementwise") && msg.contains("no_such_entry"),
        "{msg}"
    );
    // A layout that does not match the shader's bindings is also caught, not a panic.
    let err = g
        .kernel(&KernelSpec::new(
            ShaderId::Elementwise,
            "add",
            &[Binding::Uniform, Binding::Read],
        ))
        .err()
        .expect("a mismatched layout must not build");
    assert!(err.to_string().contains("add"), "{err}");
    // An override the shader does not declare is rejected too.
    let err = g
        .kernel(&KernelSpec::new(ShaderId::Elementwise, "fill", B).with("NOT_AN_OVERRIDE", 1.0))
        .err()
        .expect("an unknown override must not build");
    assert!(err.to_string().contains("elementwise"), "{err}");
}

/// `set_source` (and so `INCQ_SHADER_DIR`) replaces a file's WGSL for the kernels built after
/// it: here a copy of elementwise.wgsl whose `fill` is renamed.
#[test]
fn set_source_replaces_the_embedded_wgsl() {
    let Some(_) = common::gpu() else { return };
    let g = incq::Gpu::open(&Default::default()).unwrap();
    let wgsl = ShaderId::Elementwise
        .source()
        .replace("fn fill(", "fn fill_edited(");
    g.kernels.set_source(ShaderId::Elementwise, wgsl);
    assert!(g
        .kernel(&KernelSpec::new(ShaderId::Elementwise, "fill_edited", B))
        .is_ok());
    assert!(g
        .kernel(&KernelSpec::new(ShaderId::Elementwise, "fill", B))
        .is_err());
}
