//! Models as data: a [`Model`] is an input shape, a class count and a chain of [`Layer`]s, where
//! ResNet's BasicBlock is one composite layer (its two convs, batch norms, shortcut and residual
//! add are expanded by the planner). Builders: [`lenet_bn`] and [`resnet20`] exactly as W1 and W2
//! of shared/WORKLOADS.md, and [`vgg_small`] for CIFAR.

use crate::error::{Error, Result};

/// One layer of a chain.
#[derive(Clone, Debug, PartialEq)]
pub enum Layer {
    /// conv2d without bias.
    Conv {
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
    },
    /// BatchNorm2d, optionally followed by ReLU (fused).
    Bn { relu: bool },
    /// 2x2 max pooling, stride 2.
    MaxPool2,
    /// Global average pooling to C x 1 x 1.
    Gap,
    /// Linear with bias (the input is flattened in C, H, W order), optionally followed by ReLU.
    Linear { fout: usize, relu: bool },
    /// He et al.'s BasicBlock with option-B shortcut (1x1 conv + BN when the shape changes).
    BasicBlock { cout: usize, stride: usize },
}

/// A network: input shape, classes and layers.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub name: String,
    pub input: (usize, usize, usize),
    pub classes: usize,
    pub layers: Vec<Layer>,
}

impl Model {
    /// Parses `--model`.
    pub fn by_name(name: &str, input: (usize, usize, usize), classes: usize) -> Result<Model> {
        match name {
            "lenet-bn" | "lenet" => Ok(lenet_bn_for(input, classes)),
            "resnet20" => Ok(resnet20_for(input, classes)),
            "vgg-small" | "vgg" => Ok(vgg_small_for(input, classes)),
            other => Err(Error::BadArg {
                flag: "--model".into(),
                msg: format!("'{other}' is not one of lenet-bn, resnet20, vgg-small"),
            }),
        }
    }

    /// Shape after each layer, and the check that the chain is valid.
    pub fn shapes(&self) -> Result<Vec<(usize, usize, usize)>> {
        let mut s = self.input;
        let mut out = Vec::with_capacity(self.layers.len());
        for (i, l) in self.layers.iter().enumerate() {
            let (c, h, w) = s;
            s = match *l {
                Layer::Conv {
                    cout,
                    k,
                    stride,
                    pad,
                } => {
                    if h + 2 * pad < k || w + 2 * pad < k {
                        return Err(Error::Shape {
                            op: "model",
                            msg: format!("layer {i}: {k}x{k} conv on {h}x{w}"),
                        });
                    }
                    (
                        cout,
                        (h + 2 * pad - k) / stride + 1,
                        (w + 2 * pad - k) / stride + 1,
                    )
                }
                Layer::Bn { .. } => (c, h, w),
                Layer::MaxPool2 => {
                    if h < 2 || w < 2 {
                        return Err(Error::Shape {
                            op: "model",
                            msg: format!("layer {i}: max pool on {h}x{w}"),
                        });
                    }
                    (c, h / 2, w / 2)
                }
                Layer::Gap => (c, 1, 1),
                Layer::Linear { fout, .. } => (fout, 1, 1),
                Layer::BasicBlock { cout, stride } => {
                    (cout, (h - 1) / stride + 1, (w - 1) / stride + 1)
                }
            };
            out.push(s);
        }
        if s != (self.classes, 1, 1) {
            return Err(Error::Shape {
                op: "model",
                msg: format!("{} ends in {s:?}, not {} logits", self.name, self.classes),
            });
        }
        Ok(out)
    }
}

/// W1: LeNet with batch norm, for 1 x 28 x 28 inputs and 10 classes.
pub fn lenet_bn() -> Model {
    lenet_bn_for((1, 28, 28), 10)
}

fn lenet_bn_for(input: (usize, usize, usize), classes: usize) -> Model {
    Model {
        name: "lenet-bn".into(),
        input,
        classes,
        layers: vec![
            Layer::Conv {
                cout: 6,
                k: 5,
                stride: 1,
                pad: 2,
            },
            Layer::Bn { relu: true },
            Layer::MaxPool2,
            Layer::Conv {
                cout: 16,
                k: 5,
                stride: 1,
                pad: 0,
            },
            Layer::Bn { relu: true },
            Layer::MaxPool2,
            Layer::Linear {
                fout: 120,
                relu: true,
            },
            Layer::Linear {
                fout: 84,
                relu: true,
            },
            Layer::Linear {
                fout: classes,
                relu: false,
            },
        ],
    }
}

/// W2: ResNet-20 (n = 3) with option-B shortcuts, for 3 x 32 x 32 inputs and 10 classes.
pub fn resnet20() -> Model {
    resnet20_for((3, 32, 32), 10)
}

fn resnet20_for(input: (usize, usize, usize), classes: usize) -> Model {
    let mut layers = vec![
        Layer::Conv {
            cout: 16,
            k: 3,
            stride: 1,
            pad: 1,
        },
        Layer::Bn { relu: true },
    ];
    for (stage, c) in [16, 32, 64].into_iter().enumerate() {
        for b in 0..3 {
            let stride = if stage > 0 && b == 0 { 2 } else { 1 };
            layers.push(Layer::BasicBlock { cout: c, stride });
        }
    }
    layers.push(Layer::Gap);
    layers.push(Layer::Linear {
        fout: classes,
        relu: false,
    });
    Model {
        name: "resnet20".into(),
        input,
        classes,
        layers,
    }
}

/// A small VGG for CIFAR: [64, 64, M, 128, 128, M, 256, 256, M] convs with BN + ReLU, then GAP and
/// a linear classifier.
pub fn vgg_small() -> Model {
    vgg_small_for((3, 32, 32), 10)
}

fn vgg_small_for(input: (usize, usize, usize), classes: usize) -> Model {
    let mut layers = Vec::new();
    for c in [64, 128, 256] {
        for _ in 0..2 {
            layers.push(Layer::Conv {
                cout: c,
                k: 3,
                stride: 1,
                pad: 1,
            });
            layers.push(Layer::Bn { relu: true });
        }
        layers.push(Layer::MaxPool2);
    }
    layers.push(Layer::Gap);
    layers.push(Layer::Linear {
        fout: classes,
        relu: false,
    });
    Model {
        name: "vgg-small".into(),
        input,
        classes,
        layers,
    }
}
