//! Data sets on the host: readers for IDX (MNIST, Fashion-MNIST; gzipped or raw) and the CIFAR-10
//! binary format, each checking magic numbers, counts, sizes and label ranges, and one
//! [`Dataset`] type (u8 pixels in NCHW order, u8 labels) that is uploaded to the GPU once.

pub mod cifar;
pub mod gpu;
pub mod idx;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The data sets incq knows.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DataKind {
    Mnist,
    FashionMnist,
    Cifar10,
}

impl DataKind {
    /// Parses `--data`.
    pub fn parse(s: &str) -> Result<DataKind> {
        match s {
            "mnist" => Ok(DataKind::Mnist),
            "fashion-mnist" | "fashion" => Ok(DataKind::FashionMnist),
            "cifar10" | "cifar-10" => Ok(DataKind::Cifar10),
            other => Err(Error::BadArg {
                flag: "--data".into(),
                msg: format!("'{other}' is not one of mnist, fashion-mnist, cifar10"),
            }),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DataKind::Mnist => "mnist",
            DataKind::FashionMnist => "fashion-mnist",
            DataKind::Cifar10 => "cifar10",
        }
    }

    /// Per-channel mean and std of the training pixels scaled to [0, 1] (the usual constants).
    pub fn norm(self) -> (Vec<f32>, Vec<f32>) {
        match self {
            DataKind::Mnist => (vec![0.1307], vec![0.3081]),
            DataKind::FashionMnist => (vec![0.2860], vec![0.3530]),
            DataKind::Cifar10 => (vec![0.4914, 0.4822, 0.4465], vec![0.2470, 0.2435, 0.2616]),
        }
    }

    /// Where the data lives when `--data-dir` is not given.
    pub fn default_dir(self) -> PathBuf {
        match self {
            DataKind::Mnist => Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/mnist"),
            DataKind::FashionMnist => PathBuf::from("/usr/share/datasets/fashion-mnist"),
            DataKind::Cifar10 => PathBuf::from("data/cifar-10-batches-bin"),
        }
    }
}

/// Images (u8, N x C x H x W) and labels (u8, N) of one split, with normalisation constants.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub kind: DataKind,
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Dataset {
    /// Pixels per image.
    pub fn image_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Loads the train (`train = true`) or test split of `kind` from `dir`.
    pub fn load(kind: DataKind, dir: &Path, train: bool) -> Result<Dataset> {
        let (mean, std) = kind.norm();
        match kind {
            DataKind::Mnist | DataKind::FashionMnist => {
                let prefix = if train { "train" } else { "t10k" };
                let imgs =
                    idx::read_images(&idx::find(dir, &format!("{prefix}-images-idx3-ubyte"))?)?;
                let labels =
                    idx::read_labels(&idx::find(dir, &format!("{prefix}-labels-idx1-ubyte"))?, 10)?;
                if imgs.n != labels.len() {
                    return Err(Error::File {
                        path: dir.to_path_buf(),
                        msg: format!("{} images but {} labels", imgs.n, labels.len()),
                    });
                }
                Ok(Dataset {
                    kind,
                    n: imgs.n,
                    c: 1,
                    h: imgs.rows,
                    w: imgs.cols,
                    images: imgs.pixels,
                    labels,
                    mean,
                    std,
                })
            }
            DataKind::Cifar10 => {
                let files: Vec<PathBuf> = if train {
                    (1..=5)
                        .map(|i| dir.join(format!("data_batch_{i}.bin")))
                        .collect()
                } else {
                    vec![dir.join("test_batch.bin")]
                };
                let mut images = Vec::new();
                let mut labels = Vec::new();
                for f in &files {
                    let (im, lb) = cifar::read(f)?;
                    images.extend(im);
                    labels.extend(lb);
                }
                Ok(Dataset {
                    kind,
                    n: labels.len(),
                    c: 3,
                    h: 32,
                    w: 32,
                    images,
                    labels,
                    mean,
                    std,
                })
            }
        }
    }
}
