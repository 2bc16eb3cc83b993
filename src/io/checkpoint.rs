//! Checkpoints in safetensors: every parameter and BN running-stat buffer of a [`Net`], by name,
//! as f32 with its shape. Files are written to a temporary name and renamed, so a crash never
//! leaves a half-written checkpoint.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{Error, Result};
use crate::gpu::device::Gpu;
use crate::gpu::Tensor;
use crate::graph::plan::{Net, WeightMode};

/// Writes `bytes` to `path` atomically (temporary file in the same directory, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Reads every tensor of `net` back and saves it with `metadata` (strings) and a schedule's
/// `extra` tensors (name, shape, tensor) to `path`. A parameter with its own `w_eff` is saved
/// twice: the trained float weights under its name, and what forward reads as `eff.{name}`.
pub fn save(
    gpu: &Gpu,
    net: &Net,
    path: &Path,
    metadata: HashMap<String, String>,
    extra: &[(String, Vec<usize>, &Tensor)],
) -> Result<()> {
    let mut data: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for p in &net.params {
        data.push((
            p.name.clone(),
            p.shape.clone(),
            bytemuck::cast_slice(&p.w.to_f32(gpu)?).to_vec(),
        ));
        if let (WeightMode::Derived, Some(e)) = (p.mode, &p.eff) {
            data.push((
                format!("eff.{}", p.name),
                p.shape.clone(),
                bytemuck::cast_slice(&e.to_f32(gpu)?).to_vec(),
            ));
        }
    }
    for (name, shape, t) in extra {
        data.push((
            name.clone(),
            shape.clone(),
            bytemuck::cast_slice(&t.to_f32(gpu)?).to_vec(),
        ));
    }
    for (name, t) in &net.buffers {
        data.push((
            name.clone(),
            t.shape.clone(),
            bytemuck::cast_slice(&t.to_f32(gpu)?).to_vec(),
        ));
    }
    // INQ masks (only where some weight is frozen), so that --resume keeps the partition.
    for p in &net.params {
        let m = p.mask.to_f32(gpu)?;
        if m.contains(&0.0) {
            data.push((
                format!("mask.{}", p.name),
                p.shape.clone(),
                bytemuck::cast_slice(&m).to_vec(),
            ));
        }
    }
    // Optimizer state, so that --resume continues exactly.
    for p in &net.params {
        let m = p.momentum.to_f32(gpu)?;
        data.push((
            format!("optim.{}.momentum", p.name),
            p.shape.clone(),
            bytemuck::cast_slice(&m).to_vec(),
        ));
    }
    let views: Vec<(String, TensorView<'_>)> = data
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).expect("shape matches data"),
            )
        })
        .collect();
    let bytes = safetensors::serialize(views, &Some(metadata)).map_err(|e| Error::File {
        path: path.to_path_buf(),
        msg: format!("safetensors serialisation failed: {e}"),
    })?;
    write_atomic(path, &bytes)
}

/// Loads a checkpoint into `net` (names and shapes must match), with its optimizer state and
/// masks, to continue training it; returns its metadata.
pub fn load(gpu: &Gpu, net: &Net, path: &Path) -> Result<HashMap<String, String>> {
    load_impl(gpu, net, path, true, false)
}

/// Loads only the parameters and BN running stats of a checkpoint or an export (`--init`: the
/// optimizer state and masks start fresh).
pub fn load_weights(gpu: &Gpu, net: &Net, path: &Path) -> Result<HashMap<String, String>> {
    load_impl(gpu, net, path, false, false)
}

/// Loads what a checkpoint's forward pass reads (`eff.{name}` where a schedule saved one) into a
/// float `net`, for evaluation.
pub fn load_for_eval(gpu: &Gpu, net: &Net, path: &Path) -> Result<HashMap<String, String>> {
    load_impl(gpu, net, path, false, true)
}

fn load_impl(
    gpu: &Gpu,
    net: &Net,
    path: &Path,
    state: bool,
    eff: bool,
) -> Result<HashMap<String, String>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |msg: String| Error::File {
        path: path.to_path_buf(),
        msg,
    };
    let (_, meta) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let put = |name: &str, t: &crate::gpu::Tensor| -> Result<()> {
        let v = st.tensor(name).map_err(|_| {
            bad(format!(
                "has no tensor '{name}' (is it a checkpoint of this model?)"
            ))
        })?;
        if v.dtype() != Dtype::F32 || v.data().len() != t.len() * 4 {
            return Err(bad(format!(
                "tensor '{name}' is {:?} {:?}, the model needs f32 with {} values",
                v.dtype(),
                v.shape(),
                t.len()
            )));
        }
        let vals: Vec<f32> = bytemuck::pod_collect_to_vec(v.data());
        t.write_f32(gpu, &vals)
    };
    let has = |key: &str| st.names().iter().any(|n| *n == key);
    for p in &net.params {
        let e = format!("eff.{}", p.name);
        if eff && has(&e) {
            put(&e, &p.w)?;
        } else if !has(&p.name) && has(&format!("{}.codes", p.name)) {
            p.w.write_f32(
                gpu,
                &crate::io::export::decode(&st, &p.name, p.len(), path)?,
            )?;
        } else {
            put(&p.name, &p.w)?;
        }
    }
    for (name, t) in &net.buffers {
        put(name, t)?;
    }
    if !state {
        return Ok(meta.metadata().clone().unwrap_or_default());
    }
    for p in &net.params {
        for (key, t) in [
            (format!("optim.{}.momentum", p.name), &p.momentum),
            (format!("optim.{}.second", p.name), &p.second),
            (format!("mask.{}", p.name), &p.mask),
        ] {
            if has(&key) {
                put(&key, t)?;
            }
        }
    }
    Ok(meta.metadata().clone().unwrap_or_default())
}

/// The string metadata of a checkpoint (model, data, epoch...), without loading its tensors.
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| Error::File {
        path: path.to_path_buf(),
        msg: format!("not a safetensors file: {e}"),
    })?;
    Ok(meta.metadata().clone().unwrap_or_default())
}
