//! No GPU needed: every shaders/*.wgsl file parses and validates with naga, is registered in the
//! ShaderId table, and every params struct matches its WGSL mirror in size and field offsets.

use incq::gpu::kernels::ShaderId;
use incq::ops::GpuParams;

fn module(id: ShaderId) -> (naga::Module, naga::valid::ModuleInfo) {
    let m = naga::front::wgsl::parse_str(id.source())
        .unwrap_or_else(|e| panic!("{}.wgsl: {}", id.name(), e.emit_to_string(id.source())));
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&m)
    .unwrap_or_else(|e| panic!("{}.wgsl: {}", id.name(), e.emit_to_string(id.source())));
    (m, info)
}

#[test]
fn every_shader_file_validates() {
    for &id in ShaderId::ALL {
        let (m, _) = module(id);
        assert!(
            !m.entry_points.is_empty(),
            "{}.wgsl has no entry point",
            id.name()
        );
    }
}

#[test]
fn every_shader_file_is_registered() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().and_then(|s| s.to_str()) == Some("wgsl") {
            let stem = p.file_stem().unwrap().to_str().unwrap().to_string();
            let id = ShaderId::ALL.iter().find(|i| i.name() == stem);
            let id = id.unwrap_or_else(|| panic!("{} is not in ShaderId::ALL", p.display()));
            assert_eq!(
                std::fs::read_to_string(&p).unwrap(),
                id.source(),
                "{stem}: stale include_str!"
            );
        }
    }
}

#[test]
fn shaders_without_special_features_validate_without_them() {
    for &id in ShaderId::ALL {
        if id.needs_f16() || id.needs_subgroups() {
            continue;
        }
        let m = naga::front::wgsl::parse_str(id.source()).unwrap();
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        )
        .validate(&m)
        .unwrap_or_else(|e| {
            panic!(
                "{}.wgsl needs a capability it does not declare: {e}",
                id.name()
            )
        });
    }
}

fn check_layout<P: GpuParams>() {
    let (m, _) = module(P::SHADER);
    let mut layouter = naga::proc::Layouter::default();
    layouter.update(m.to_ctx()).unwrap();
    let (handle, ty) = m
        .types
        .iter()
        .find(|(_, t)| t.name.as_deref() == Some(P::WGSL_STRUCT))
        .unwrap_or_else(|| {
            panic!(
                "struct {} not found in {}.wgsl",
                P::WGSL_STRUCT,
                P::SHADER.name()
            )
        });
    let naga::TypeInner::Struct { members, span } = &ty.inner else {
        panic!("{} is not a struct", P::WGSL_STRUCT)
    };
    let rust = P::fields();
    assert_eq!(
        *span as usize,
        std::mem::size_of::<P>(),
        "{}: WGSL size {} vs Rust size {}",
        P::WGSL_STRUCT,
        span,
        std::mem::size_of::<P>()
    );
    assert_eq!(layouter[handle].size, *span);
    assert_eq!(
        members.len(),
        rust.len(),
        "{}: field count differs",
        P::WGSL_STRUCT
    );
    for (mem, (name, off)) in members.iter().zip(rust) {
        assert_eq!(
            mem.name.as_deref(),
            Some(name),
            "{}: field order differs",
            P::WGSL_STRUCT
        );
        assert_eq!(
            mem.offset as usize,
            off,
            "{}.{name}: WGSL offset {} vs Rust {off}",
            P::WGSL_STRUCT,
            mem.offset
        );
    }
}

#[test]
fn params_structs_match_their_wgsl_mirrors() {
    check_layout::<incq::ops::gemm::GemmParams>();
    check_layout::<incq::ops::gemm::PackParams>();
    check_layout::<incq::ops::elementwise::EwParams>();
    check_layout::<incq::ops::reduce::ReduceParams>();
    check_layout::<incq::ops::bench::BenchParams>();
    check_layout::<incq::ops::convert::ConvertParams>();
    check_layout::<incq::ops::conv::ConvParams>();
    check_layout::<incq::ops::norm::BnParams>();
    check_layout::<incq::ops::pool::PoolParams>();
    check_layout::<incq::ops::loss::LossParams>();
    check_layout::<incq::ops::optim::SgdParams>();
    check_layout::<incq::ops::optim::SgdMultiParams>();
    check_layout::<incq::ops::optim::AdamParams>();
    check_layout::<incq::ops::data::GatherParams>();
    check_layout::<incq::ops::quant::QuantParams>();
}

#[test]
fn gemm_tex_params_equal_gemm_params() {
    // gemm_tex.wgsl declares its own copy of GemmParams; it must stay identical.
    let a = module(ShaderId::Gemm).0;
    let b = module(ShaderId::GemmTex).0;
    let find = |m: &naga::Module| {
        let (_, t) = m
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some("GemmParams"))
            .unwrap();
        match &t.inner {
            naga::TypeInner::Struct { members, span } => (
                members
                    .iter()
                    .map(|x| (x.name.clone(), x.offset))
                    .collect::<Vec<_>>(),
                *span,
            ),
            _ => unreachable!(),
        }
    };
    assert_eq!(find(&a), find(&b));
}
