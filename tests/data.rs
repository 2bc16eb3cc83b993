//! Data readers, no GPU: the bundled MNIST matches its published statistics, and every kind of
//! bad file (truncated, wrong magic, out-of-range label, wrong CIFAR length) is a clear error that
//! names the file.

use std::io::Write;
use std::path::Path;

use incq::data::{cifar, idx, DataKind, Dataset};

mod common;
use common::TmpDir;

fn tmp(name: &str) -> TmpDir {
    TmpDir::new("incq-data", name)
}

fn gz(path: &Path, bytes: &[u8]) {
    let f = std::fs::File::create(path).unwrap();
    let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap();
}

fn idx_images(n: u32, rows: u32, cols: u32, magic: u32) -> Vec<u8> {
    let mut v = Vec::new();
    for w in [magic, n, rows, cols] {
        v.extend_from_slice(&w.to_be_bytes());
    }
    v.extend((0..n * rows * cols).map(|i| (i % 251) as u8));
    v
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for w in [2049u32, labels.len() as u32] {
        v.extend_from_slice(&w.to_be_bytes());
    }
    v.extend_from_slice(labels);
    v
}

#[test]
fn bundled_mnist_matches_published_statistics() {
    let d = Dataset::load(DataKind::Mnist, &DataKind::Mnist.default_dir(), true).unwrap();
    assert_eq!((d.n, d.c, d.h, d.w), (60000, 1, 28, 28));
    assert_eq!(&d.labels[..5], &[5, 0, 4, 1, 9]);
    let mean = d.images.iter().map(|&p| f64::from(p) / 255.0).sum::<f64>() / d.images.len() as f64;
    let var = d
        .images
        .iter()
        .map(|&p| (f64::from(p) / 255.0 - mean).powi(2))
        .sum::<f64>()
        / d.images.len() as f64;
    assert!((mean - 0.1307).abs() < 1e-4, "mean {mean}");
    assert!((var.sqrt() - 0.3081).abs() < 1e-4, "std {}", var.sqrt());
    let t = Dataset::load(DataKind::Mnist, &DataKind::Mnist.default_dir(), false).unwrap();
    assert_eq!(t.n, 10000);
}

#[test]
fn raw_and_gzipped_idx_read_the_same() {
    let d = tmp("rawgz");
    let bytes = idx_images(3, 4, 5, 2051);
    std::fs::write(d.join("raw"), &bytes).unwrap();
    gz(&d.join("z.gz"), &bytes);
    let a = idx::read_images(&d.join("raw")).unwrap();
    let b = idx::read_images(&d.join("z.gz")).unwrap();
    assert_eq!((a.n, a.rows, a.cols), (3, 4, 5));
    assert_eq!(a.pixels, b.pixels);
}

#[test]
fn truncated_idx_is_an_error_naming_the_file() {
    let d = tmp("trunc");
    let mut bytes = idx_images(3, 4, 5, 2051);
    bytes.truncate(bytes.len() - 7);
    let p = d.join("train-images-idx3-ubyte");
    std::fs::write(&p, &bytes).unwrap();
    let e = idx::read_images(&p).unwrap_err().to_string();
    assert!(
        e.contains("train-images-idx3-ubyte") && e.contains("truncated"),
        "{e}"
    );
    std::fs::write(&p, &bytes[..10]).unwrap();
    let e = idx::read_images(&p).unwrap_err().to_string();
    assert!(e.contains("truncated"), "{e}");
}

#[test]
fn wrong_magic_is_an_error() {
    let d = tmp("magic");
    let p = d.join("imgs");
    std::fs::write(&p, idx_images(2, 2, 2, 2049)).unwrap();
    let e = idx::read_images(&p).unwrap_err().to_string();
    assert!(
        e.contains("wrong magic number 2049") && e.contains("2051"),
        "{e}"
    );
}

#[test]
fn label_10_is_an_error() {
    let d = tmp("label");
    let p = d.join("labels");
    std::fs::write(&p, idx_labels(&[1, 2, 10, 3])).unwrap();
    let e = idx::read_labels(&p, 10).unwrap_err().to_string();
    assert!(e.contains("label 10 at index 2"), "{e}");
}

#[test]
fn corrupt_gzip_is_an_error() {
    let d = tmp("gzip");
    let p = d.join("bad.gz");
    std::fs::write(&p, [0x1f, 0x8b, 8, 0, 1, 2, 3]).unwrap();
    let e = idx::read_images(&p).unwrap_err().to_string();
    assert!(e.contains("gzip"), "{e}");
}

#[test]
fn cifar_roundtrip_and_wrong_length() {
    let d = tmp("cifar");
    let n = 7;
    let images: Vec<u8> = (0..n * 3072).map(|i| (i * 7 % 256) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    for i in 1..=5 {
        cifar::write(&d.join(format!("data_batch_{i}.bin")), &images, &labels).unwrap();
    }
    cifar::write(&d.join("test_batch.bin"), &images, &labels).unwrap();
    let ds = Dataset::load(DataKind::Cifar10, &d, true).unwrap();
    assert_eq!((ds.n, ds.c, ds.h, ds.w), (5 * n, 3, 32, 32));
    assert_eq!(&ds.images[..3072 * n], &images[..]);
    assert_eq!(&ds.labels[..n], &labels[..]);

    let p = d.join("test_batch.bin");
    let mut raw = std::fs::read(&p).unwrap();
    raw.pop();
    std::fs::write(&p, &raw).unwrap();
    let e = Dataset::load(DataKind::Cifar10, &d, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("test_batch.bin") && e.contains("3073"), "{e}");

    let mut raw = std::fs::read(d.join("data_batch_1.bin")).unwrap();
    raw[3073] = 12;
    std::fs::write(&p, &raw).unwrap();
    let e = Dataset::load(DataKind::Cifar10, &d, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("label 12"), "{e}");
}

#[test]
fn missing_files_name_the_directory() {
    let d = tmp("missing");
    let e = Dataset::load(DataKind::Mnist, &d, true)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("train-images-idx3-ubyte") && e.contains("not found"),
        "{e}"
    );
}
