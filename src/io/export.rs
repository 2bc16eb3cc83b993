//! `incq export`: a quantized checkpoint as integer codes. Every quantized layer becomes
//! `{name}.codes` (int8, the weight's shape) plus either
//!  - power-of-two sets (INQ, and BinaryRelax/STE with pow2:K): `{name}.n1`, `{name}.n2` (int32,
//!    one per row); code 0 is 0 and c is sign(c) · 2^(n2 + |c| − 1);
//!  - scaled sets (binary, ternary, uniform): `{name}.scale` (f32, one per row); the weight is
//!    scale[row] · c.
//!
//! A row is an output channel with per-channel scales, else the whole layer. Every other tensor
//! (BN, biases, float layers, running stats) stays f32 under its own name, so the file is a complete
//! model that `incq eval` loads exactly. A JSON summary sits beside it. Host-only: it reads and
//! writes files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::io::checkpoint::write_atomic;
use crate::ops::relax::Proj;
use crate::schedule::inq::{pow2_code, pow2_decode};

/// One exported layer.
#[derive(Clone, Debug, Serialize)]
pub struct ExportLayer {
    pub name: String,
    pub shape: Vec<usize>,
    /// Rows sharing a scale or an exponent range (1: the whole layer).
    pub rows: usize,
    /// Power-of-two sets: per row n1 and n2.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub n1: Vec<i32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub n2: Vec<i32>,
    /// Scaled sets: per row scale.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scale: Vec<f32>,
    pub distinct_values: usize,
    pub zero_share: f64,
}

/// What `incq export` wrote.
#[derive(Clone, Debug, Serialize)]
pub struct ExportSummary {
    pub source: PathBuf,
    pub model: String,
    pub method: String,
    pub quant: String,
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

const POW2_FORMAT: &str = "int8 c per weight: 0 -> 0, else sign(c) * 2^(n2[row] + |c| - 1)";
const SCALE_FORMAT: &str = "int8 c per weight: scale[row] * c";

fn f32s(st: &SafeTensors<'_>, name: &str, path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let v = st
        .tensor(name)
        .map_err(|_| bad(path, format!("has no tensor '{name}'")))?;
    if v.dtype() != Dtype::F32 {
        return Err(bad(
            path,
            format!("tensor '{name}' is {:?}, expected f32", v.dtype()),
        ));
    }
    Ok((v.shape().to_vec(), bytemuck::pod_collect_to_vec(v.data())))
}

/// Reads `ckpt` (a finished INQ, BinaryRelax phase-II or STE checkpoint) and writes
/// `out/model.safetensors` and `out/export.json`.
pub fn export(ckpt: &Path, out: &Path) -> Result<ExportSummary> {
    let bytes = std::fs::read(ckpt).map_err(|e| Error::io(ckpt, e))?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| bad(ckpt, format!("not a safetensors file: {e}")))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| bad(ckpt, format!("not a safetensors file: {e}")))?;
    let method = meta.get("method").cloned().unwrap_or_default();
    let list = |key: &str| -> Vec<String> {
        meta.get(key)
            .map(|l| {
                l.split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    let (qnames, quant) = match method.as_str() {
        "inq" => {
            if meta.get("inq.final").map(String::as_str) != Some("1") {
                return Err(bad(
                    ckpt,
                    "is an INQ checkpoint from before the last phase; not every weight is quantized yet (finish or --resume the run)".into(),
                ));
            }
            let bits = meta
                .get("inq.bits")
                .ok_or_else(|| bad(ckpt, "has no 'inq.bits' metadata".into()))?;
            (list("inq.layers"), format!("pow2:{bits}"))
        }
        "binary-relax" | "ste" => {
            if meta.get("relax.hard").map(String::as_str) != Some("1") {
                return Err(bad(
                    ckpt,
                    "is a BinaryRelax checkpoint from phase I (relaxed weights are not quantized); export one from phase II (--hard-from-epoch)".into(),
                ));
            }
            let q = meta
                .get("relax.quant")
                .ok_or_else(|| bad(ckpt, "has no 'relax.quant' metadata".into()))?;
            (list("relax.layers"), q.clone())
        }
        _ => {
            return Err(bad(
                ckpt,
                format!("is not a quantized checkpoint (method '{method}'); export needs `incq train --method inq|binary-relax|ste`"),
            ))
        }
    };
    let proj = Proj::parse(&quant)?;
    let pow2 = matches!(proj, Proj::Pow2 { .. });
    std::fs::create_dir_all(out).map_err(|e| bad(out, format!("--out: cannot create: {e}")))?;

    let mut data: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut layers = Vec::new();
    let mut float_tensors = Vec::new();
    let (mut bytes_codes, mut bytes_float) = (0, 0);
    let mut names: Vec<String> = st.names().into_iter().cloned().collect();
    names.sort();
    for name in names {
        let aux = ["optim.", "mask.", "eff.", "relax."];
        if aux.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        if !qnames.contains(&name) {
            let (shape, v) = f32s(&st, &name, ckpt)?;
            bytes_float += v.len() * 4;
            float_tensors.push(name.clone());
            data.push((name, Dtype::F32, shape, bytemuck::cast_slice(&v).to_vec()));
            continue;
        }
        // What forward reads: INQ stores it as the weights, BinaryRelax/STE as eff.{name}.
        let (shape, w) = if method == "inq" {
            f32s(&st, &name, ckpt)?
        } else {
            f32s(&st, &format!("eff.{name}"), ckpt)?
        };
        let (rows, stats) = if method == "inq" {
            // one value per row (a per-layer set, or per output channel), comma separated
            let get = |k: &str| -> Result<Vec<i32>> {
                meta.get(&format!("inq.{name}.{k}"))
                    .and_then(|x| x.split(',').map(|v| v.parse().ok()).collect())
                    .ok_or_else(|| bad(ckpt, format!("has no 'inq.{name}.{k}' metadata")))
            };
            let (n1, n2) = (get("n1")?, get("n2")?);
            if n1.len() != n2.len() || n1.is_empty() || !w.len().is_multiple_of(n1.len()) {
                return Err(bad(
                    ckpt,
                    format!(
                        "'inq.{name}' has {} n1 and {} n2 values for {} weights",
                        n1.len(),
                        n2.len(),
                        w.len()
                    ),
                ));
            }
            let stats: Vec<(f32, f32)> = n1
                .iter()
                .zip(&n2)
                .map(|(&a, &b)| (f32::from_bits(a as u32), f32::from_bits(b as u32)))
                .collect();
            (n1.len(), stats)
        } else {
            let (s, v) = f32s(&st, &format!("relax.{name}.stats"), ckpt)?;
            let rows = s.first().copied().unwrap_or(0);
            if rows == 0 || v.len() != 2 * rows || !w.len().is_multiple_of(rows) {
                return Err(bad(ckpt, format!("'relax.{name}.stats' has shape {s:?}")));
            }
            (rows, v.chunks(2).map(|c| (c[0], c[1])).collect())
        };
        let row_len = w.len() / rows;
        let mut codes = Vec::with_capacity(w.len());
        for (i, &x) in w.iter().enumerate() {
            let (a, b) = stats[i / row_len];
            let c = if pow2 {
                let (n1, n2) = (a.to_bits() as i32, b.to_bits() as i32);
                pow2_code(x, n1, n2).ok_or_else(|| {
                    bad(
                        ckpt,
                        format!("{name}[{i}] = {x:e} is not in its set {{0, ±2^{n2}..±2^{n1}}}"),
                    )
                })?
            } else {
                scaled_code(x, a).ok_or_else(|| {
                    bad(
                        ckpt,
                        format!("{name}[{i}] = {x:e} is not an integer multiple (|c| <= 127) of its row's scale {a:e}"),
                    )
                })?
            };
            codes.push(c);
        }
        let distinct: std::collections::BTreeSet<i8> = codes.iter().copied().collect();
        let zeros = codes.iter().filter(|&&c| c == 0).count();
        let ints = |k: usize| -> Vec<i32> {
            stats
                .iter()
                .map(|s| [s.0, s.1][k].to_bits() as i32)
                .collect()
        };
        layers.push(ExportLayer {
            name: name.clone(),
            shape: shape.clone(),
            rows,
            n1: if pow2 { ints(0) } else { vec![] },
            n2: if pow2 { ints(1) } else { vec![] },
            scale: if pow2 {
                vec![]
            } else {
                stats.iter().map(|s| s.0).collect()
            },
            distinct_values: distinct.len(),
            zero_share: zeros as f64 / codes.len().max(1) as f64,
        });
        bytes_codes += codes.len();
        data.push((
            format!("{name}.codes"),
            Dtype::I8,
            shape,
            bytemuck::cast_slice(&codes).to_vec(),
        ));
        if pow2 {
            for (k, key) in ["n1", "n2"].iter().enumerate() {
                let v = ints(k);
                data.push((
                    format!("{name}.{key}"),
                    Dtype::I32,
                    vec![rows],
                    bytemuck::cast_slice(&v).to_vec(),
                ));
            }
        } else {
            let v: Vec<f32> = stats.iter().map(|s| s.0).collect();
            data.push((
                format!("{name}.scale"),
                Dtype::F32,
                vec![rows],
                bytemuck::cast_slice(&v).to_vec(),
            ));
        }
    }
    if layers.len() != qnames.len() {
        return Err(bad(
            ckpt,
            format!("lists quantized layers {qnames:?} that it does not hold"),
        ));
    }
    let mut m: HashMap<String, String> = HashMap::new();
    for k in ["model", "data", "method", "test_accuracy"] {
        if let Some(v) = meta.get(k) {
            m.insert(k.to_string(), v.clone());
        }
    }
    m.insert("quant".into(), quant.clone());
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
        method,
        quant,
        code_format: if pow2 { POW2_FORMAT } else { SCALE_FORMAT }.into(),
        layers,
        float_tensors,
        bytes_codes,
        bytes_float,
    };
    let json = serde_json::to_vec_pretty(&summary).unwrap_or_default();
    write_atomic(&out.join("export.json"), &json)?;
    Ok(summary)
}

/// The code c with scale · c == x exactly (0 when the scale is 0 and x is 0).
fn scaled_code(x: f32, scale: f32) -> Option<i8> {
    if x == 0.0 {
        return Some(0);
    }
    if scale == 0.0 || !scale.is_finite() {
        return None;
    }
    let c = (x / scale).round();
    if c.abs() > 127.0 {
        return None;
    }
    let c = c as i8;
    (scale * f32::from(c) == x).then_some(c)
}

/// Rebuilds the f32 weights of `name` (n values) from its codes in an export.
pub fn decode(st: &SafeTensors<'_>, name: &str, n: usize, path: &Path) -> Result<Vec<f32>> {
    let t = |k: String| {
        st.tensor(&k)
            .map_err(|_| bad(path, format!("has no tensor '{k}'")))
    };
    let codes = t(format!("{name}.codes"))?;
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
    let codes: Vec<i8> = codes.data().iter().map(|&b| b as i8).collect();
    let rows_of = |v: &TensorView<'_>, dt: Dtype, k: &str| -> Result<usize> {
        let rows = v.data().len() / 4;
        if v.dtype() != dt || rows == 0 || !n.is_multiple_of(rows) {
            return Err(bad(
                path,
                format!("'{name}.{k}' must be {dt:?} with one value per row of {n} weights"),
            ));
        }
        Ok(rows)
    };
    if let Ok(scale) = st.tensor(&format!("{name}.scale")) {
        let rows = rows_of(&scale, Dtype::F32, "scale")?;
        let s: Vec<f32> = bytemuck::pod_collect_to_vec(scale.data());
        let len = n / rows;
        return Ok(codes
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                if c == 0 {
                    0.0
                } else {
                    s[i / len] * f32::from(c)
                }
            })
            .collect());
    }
    let (v1, v2) = (t(format!("{name}.n1"))?, t(format!("{name}.n2"))?);
    let rows = rows_of(&v2, Dtype::I32, "n2")?;
    if rows_of(&v1, Dtype::I32, "n1")? != rows {
        return Err(bad(
            path,
            format!("'{name}.n1' and '{name}.n2' differ in length"),
        ));
    }
    let n1: Vec<i32> = bytemuck::pod_collect_to_vec(v1.data());
    let n2: Vec<i32> = bytemuck::pod_collect_to_vec(v2.data());
    let len = n / rows;
    codes
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let r = i / len;
            let top = n1[r] - n2[r] + 1;
            if i32::from(c.unsigned_abs()) > top {
                Err(bad(
                    path,
                    format!(
                        "'{name}.codes'[{i}] = {c} is outside ±{top} for n1 {}, n2 {}",
                        n1[r], n2[r]
                    ),
                ))
            } else {
                Ok(pow2_decode(c, n2[r]))
            }
        })
        .collect()
}
