//! The autotuner: its choices are candidates that pass the CPU check, they are cached on disk per
//! adapter and batch bucket (a second tuner reads them back without measuring), and a disabled
//! tuner returns the device defaults. The cache goes to a temporary XDG_CACHE_HOME.

mod common;
use incq::ops::conv::{ConvShape, ConvVariant};
use incq::ops::gemm::{GemmDesc, GemmVariant};
use incq::tune::Tuner;

#[test]
fn tuner_measures_caches_and_can_be_disabled() {
    let Some(g) = common::gpu() else { return };
    let dir = std::env::temp_dir().join(format!("incq-tune-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::env::set_var("XDG_CACHE_HOME", &dir);

    let off = Tuner::new(g, false);
    let d = GemmDesc {
        trans_b: true,
        ..GemmDesc::new(64, 120, 400)
    };
    assert_eq!(off.gemm(g, &d).unwrap(), GemmVariant::default_for(g));
    assert!(off.entries().is_empty());

    let t = Tuner::new(g, true);
    let v = t.gemm(g, &d).unwrap();
    assert!(GemmVariant::candidates(g).contains(&v));
    let s = ConvShape {
        n: 16,
        cin: 6,
        h: 14,
        w: 14,
        cout: 16,
        k: 5,
        stride: 1,
        pad: 0,
    };
    let cv = t.conv(g, &s).unwrap();
    assert!(ConvVariant::candidates(g).contains(&cv));
    // the batch is part of the bucket: 13 shares 16's entry, 4 gets its own
    let before = t.entries().len();
    t.conv(g, &ConvShape { n: 13, ..s }).unwrap();
    assert_eq!(t.entries().len(), before, "{:?}", t.entries());
    let small = t.conv(g, &ConvShape { n: 4, ..s }).unwrap();
    assert!(ConvVariant::candidates(g).contains(&small));
    assert_eq!(t.entries().len(), before + 1, "{:?}", t.entries());
    let path = Tuner::cache_path(g).unwrap();
    assert!(
        path.starts_with(&dir) && path.is_file(),
        "{}",
        path.display()
    );
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(saved.as_object().unwrap().len(), t.entries().len());

    // A new tuner reads the cache back: the same choices, no new entries.
    let again = Tuner::new(g, true);
    assert_eq!(again.entries(), t.entries());
    assert_eq!(again.gemm(g, &d).unwrap(), v);
    assert_eq!(again.conv(g, &s).unwrap(), cv);
    assert_eq!(again.entries().len(), t.entries().len());
    eprintln!("tuned: {:?}", again.entries());
}
