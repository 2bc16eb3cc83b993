//! Quantization schedules the executor runs on top of training: which one a run uses
//! ([`Method`]) and each schedule's GPU state. INQ lives in [`inq`].

pub mod inq;

use crate::error::{Error, Result};

/// The training method of a run.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Method {
    /// Plain float training.
    Float,
    /// Incremental network quantization to powers of two.
    Inq,
}

impl Method {
    pub fn parse(s: &str) -> Result<Method> {
        match s {
            "float" => Ok(Method::Float),
            "inq" => Ok(Method::Inq),
            other => Err(Error::BadArg {
                flag: "--method".into(),
                msg: format!("'{other}' is not float or inq"),
            }),
        }
    }
}
