//! `incq export`: a quantized checkpoint as integer codes. For every INQ layer the export holds
//! `{name}.codes` (int8, the weight's shape: 0 for zero, sign · (k − n2 + 1) for ±2^k) and
//! `{name}.n1`, `{name}.n2` (int32, one value each); every other tensor (BN, biases, float layers,
//! running stats) stays f32 under its own name, so the file is a complete model that `incq eval`
//! loads exactly. A JSON summary sits beside it. Host-only: it reads and writes files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::io::checkpoint::write_atomic;
use crate::schedule::inq::{pow2_code, pow2_decode};

/// One exported layer.
#[derive(Clone, Debug, Serialize)]
pub struct ExportLayer {
    pub name: String,
    pub shape: Vec<usize>,
    pub n1: i32,
    pub n2: i32,
    pub bits: u32,
    pub distinct_values: usize,
    pub zero_share: f64,
}

/// What `incq export` wrote.
#[derive(Clone, Debug, Serialize)]
pub struct ExportSummary {
    pub source: PathBuf,
    pub model: String,
    pub method: String,
    pub code_format: String,
    pub layers: Vec<ExportLayer>,
    pub float_tensors: Vec<String>,
    pub bytes_codes: usize,
    pub bytes_float: usize,
}

fn bad(path: &Path, msg: String) -> Error {
    Error::File {
        path: path.to_path_buf(),
        msg,
    }
}

/// Reads `ckpt` (a finished INQ checkpoint) and writes `out/model.safetensors` and
/// `out/export.json`.
pub fn export(ckpt: &Path, out: &Path) -> Result<ExportSummary> {
    let bytes = std::fs::read(ckpt).map_err(|e| Error::io(ckpt, e))?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| bad(ckpt, format!("not a safetensors file: {e}")))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| bad(ckpt, format!("not a safetensors file: {e}")))?;
    if meta.get("method").map(String::as_str) != Some("inq") {
        return Err(bad(
            ckpt,
            "is not an INQ checkpoint (metadata 'method' is not 'inq'); export needs `incq train --method inq`".into(),
        ));
    }
    if meta.get("inq.final").map(String::as_str) != Some("1") {
        return Err(bad(
            ckpt,
            "is an INQ checkpoint from before the last phase; not every weight is quantized yet (finish or --resume the run)".into(),
        ));
    }
    let bits: u32 = meta
        .get("inq.bits")
        .and_then(|b| b.parse().ok())
        .ok_or_else(|| bad(ckpt, "has no 'inq.bits' metadata".into()))?;
    let qnames: Vec<String> = meta
        .get("inq.layers")
        .map(|l| {
            l.split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    std::fs::create_dir_all(out).map_err(|e| bad(out, format!("--out: cannot create: {e}")))?;

    let mut data: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut layers = Vec::new();
    let mut float_tensors = Vec::new();
    let (mut bytes_codes, mut bytes_float) = (0, 0);
    let mut names: Vec<String> = st.names().into_iter().cloned().collect();
    names.sort();
    for name in names {
        if name.starts_with("optim.") || name.starts_with("mask.") {
            continue;
        }
        let v = st
            .tensor(&name)
            .map_err(|e| bad(ckpt, format!("{name}: {e}")))?;
        if v.dtype() != Dtype::F32 {
            return Err(bad(
                ckpt,
                format!("tensor '{name}' is {:?}, expected f32", v.dtype()),
            ));
        }
        let w: Vec<f32> = bytemuck::pod_collect_to_vec(v.data());
        if !qnames.contains(&name) {
            bytes_float += v.data().len();
            float_tensors.push(name.clone());
            data.push((name, Dtype::F32, v.shape().to_vec(), v.data().to_vec()));
            continue;
        }
        let get = |k: &str| -> Result<i32> {
            meta.get(&format!("inq.{name}.{k}"))
                .and_then(|x| x.parse().ok())
                .ok_or_else(|| bad(ckpt, format!("has no 'inq.{name}.{k}' metadata")))
        };
        let (n1, n2) = (get("n1")?, get("n2")?);
        let mut codes = Vec::with_capacity(w.len());
        for (i, &x) in w.iter().enumerate() {
            codes.push(pow2_code(x, n1, n2).ok_or_else(|| {
                bad(
                    ckpt,
                    format!(
                        "{name}[{i}] = {x:e} is not in the layer's set {{0, ±2^{n2}..±2^{n1}}}"
                    ),
                )
            })?);
        }
        let distinct: std::collections::BTreeSet<i8> = codes.iter().copied().collect();
        let zeros = codes.iter().filter(|&&c| c == 0).count();
        layers.push(ExportLayer {
            name: name.clone(),
            shape: v.shape().to_vec(),
            n1,
            n2,
            bits,
            distinct_values: distinct.len(),
            zero_share: zeros as f64 / codes.len().max(1) as f64,
        });
        bytes_codes += codes.len();
        data.push((
            format!("{name}.codes"),
            Dtype::I8,
            v.shape().to_vec(),
            bytemuck::cast_slice(&codes).to_vec(),
        ));
        for (k, x) in [("n1", n1), ("n2", n2)] {
            data.push((
                format!("{name}.{k}"),
                Dtype::I32,
                vec![1],
                x.to_le_bytes().to_vec(),
            ));
        }
    }
    if layers.len() != qnames.len() {
        return Err(bad(
            ckpt,
            format!("lists INQ layers {qnames:?} that it does not hold"),
        ));
    }
    let mut m: HashMap<String, String> = HashMap::new();
    for k in ["model", "data", "method", "inq.bits", "test_accuracy"] {
        if let Some(v) = meta.get(k) {
            m.insert(k.to_string(), v.clone());
        }
    }
    m.insert("format".into(), "incq-export-v1".into());
    let views: Vec<(String, TensorView<'_>)> = data
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                TensorView::new(*d, s.clone(), b).expect("shape matches data"),
            )
        })
        .collect();
    let path = out.join("model.safetensors");
    let ser = safetensors::serialize(views, &Some(m))
        .map_err(|e| bad(&path, format!("safetensors serialisation failed: {e}")))?;
    write_atomic(&path, &ser)?;
    let summary = ExportSummary {
        source: ckpt.to_path_buf(),
        model: meta.get("model").cloned().unwrap_or_default(),
        method: "inq".into(),
        code_format: "int8 c: 0 -> 0, else sign(c) * 2^(n2 + |c| - 1)".into(),
        layers,
        float_tensors,
        bytes_codes,
        bytes_float,
    };
    let json = serde_json::to_vec_pretty(&summary).unwrap_or_default();
    write_atomic(&out.join("export.json"), &json)?;
    Ok(summary)
}

/// Rebuilds the f32 weights of `name` (n values) from its codes in an export.
pub fn decode(st: &SafeTensors<'_>, name: &str, n: usize, path: &Path) -> Result<Vec<f32>> {
    let t = |k: String| {
        st.tensor(&k)
            .map_err(|_| bad(path, format!("has no tensor '{k}'")))
    };
    let codes = t(format!("{name}.codes"))?;
    let n2 = t(format!("{name}.n2"))?;
    let n1 = t(format!("{name}.n1"))?;
    if codes.dtype() != Dtype::I8 || codes.data().len() != n {
        return Err(bad(
            path,
            format!(
                "'{name}.codes' must be int8 with {n} values, found {:?} {:?}",
                codes.dtype(),
                codes.shape()
            ),
        ));
    }
    let int = |v: &TensorView<'_>, k: &str| -> Result<i32> {
        let b: [u8; 4] = v
            .data()
            .try_into()
            .ok()
            .filter(|_| v.dtype() == Dtype::I32)
            .ok_or_else(|| bad(path, format!("'{name}.{k}' must be one int32")))?;
        Ok(i32::from_le_bytes(b))
    };
    let (n1, n2) = (int(&n1, "n1")?, int(&n2, "n2")?);
    let top = n1 - n2 + 1;
    codes
        .data()
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            let c = b as i8;
            if i32::from(c.unsigned_abs()) > top {
                Err(bad(
                    path,
                    format!("'{name}.codes'[{i}] = {c} is outside ±{top} for n1 {n1}, n2 {n2}"),
                ))
            } else {
                Ok(pow2_decode(c, n2))
            }
        })
        .collect()
}
