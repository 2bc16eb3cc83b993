//! Quantization schedules the executor runs on top of training: which one a run uses
//! ([`Method`]) and each schedule's GPU state: INQ in [`inq`], BinaryRelax and STE in [`relax`].

pub mod inq;
pub mod relax;

use crate::error::{Error, Result};
use crate::graph::plan::Net;

/// The training method of a run.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Method {
    /// Plain float training.
    Float,
    /// Incremental network quantization to powers of two.
    Inq,
    /// BinaryRelax: relaxed weights with a growing λ, then hard quantization.
    BinaryRelax,
    /// Straight-through estimator: the hard projection from the first step.
    Ste,
}

impl Method {
    pub fn parse(s: &str) -> Result<Method> {
        match s {
            "float" => Ok(Method::Float),
            "inq" => Ok(Method::Inq),
            "binary-relax" => Ok(Method::BinaryRelax),
            "ste" => Ok(Method::Ste),
            other => Err(Error::BadArg {
                flag: "--method".into(),
                msg: format!("'{other}' is not float, inq, binary-relax or ste"),
            }),
        }
    }
}

/// The parameters a schedule quantizes: every conv and linear weight (rank 2 or more), or all but
/// the first and the last of them with `float_first_last`. BN parameters and biases stay float.
pub fn quantized_params(net: &Net, float_first_last: bool) -> Vec<usize> {
    let mut weights: Vec<usize> = (0..net.params.len())
        .filter(|&i| net.params[i].shape.len() >= 2)
        .collect();
    if float_first_last && weights.len() >= 2 {
        weights.remove(0);
        weights.pop();
    }
    weights
}
