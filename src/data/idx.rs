//! IDX files (MNIST, Fashion-MNIST), gzipped or raw: a big-endian header (magic 2051 with 3
//! dimensions for images, 2049 with 1 for labels, then the counts) followed by raw u8 values.
//! Every check failure names the file and what was expected.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Decoded image file.
#[derive(Debug)]
pub struct Images {
    pub n: usize,
    pub rows: usize,
    pub cols: usize,
    pub pixels: Vec<u8>,
}

fn bad(path: &Path, msg: impl Into<String>) -> Error {
    Error::File {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// Finds `stem` or `stem.gz` in `dir`.
pub fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    for name in [format!("{stem}.gz"), stem.to_string()] {
        let p = dir.join(&name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(bad(
        &dir.join(stem),
        format!(
            "not found (looked for {stem} and {stem}.gz in {})",
            dir.display()
        ),
    ))
}

/// Reads a whole file, gunzipping it when it starts with the gzip magic bytes.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if raw.len() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| bad(path, format!("corrupt gzip data: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn header(path: &Path, data: &[u8], magic: u32, dims: usize) -> Result<Vec<usize>> {
    let need = 4 + 4 * dims;
    if data.len() < need {
        return Err(bad(
            path,
            format!(
                "truncated: {} bytes, the IDX header needs {need}",
                data.len()
            ),
        ));
    }
    let word = |i: usize| {
        u32::from_be_bytes([
            data[4 * i],
            data[4 * i + 1],
            data[4 * i + 2],
            data[4 * i + 3],
        ])
    };
    let m = word(0);
    if m != magic {
        return Err(bad(
            path,
            format!("wrong magic number {m} (0x{m:08x}); expected {magic} for this IDX file"),
        ));
    }
    Ok((1..=dims).map(|i| word(i) as usize).collect())
}

/// Reads an IDX image file (magic 2051).
pub fn read_images(path: &Path) -> Result<Images> {
    let data = read_maybe_gz(path)?;
    let d = header(path, &data, 2051, 3)?;
    let (n, rows, cols) = (d[0], d[1], d[2]);
    if rows == 0 || cols == 0 || n == 0 {
        return Err(bad(
            path,
            format!("empty image set: {n} images of {rows}x{cols}"),
        ));
    }
    let body = n
        .checked_mul(rows * cols)
        .ok_or_else(|| bad(path, "image count overflows"))?;
    if data.len() - 16 != body {
        return Err(bad(
            path,
            format!(
                "{} pixel bytes after the header, expected {n} x {rows} x {cols} = {body}{}",
                data.len() - 16,
                if data.len() - 16 < body {
                    " (truncated)"
                } else {
                    ""
                }
            ),
        ));
    }
    Ok(Images {
        n,
        rows,
        cols,
        pixels: data[16..].to_vec(),
    })
}

/// Reads an IDX label file (magic 2049) whose labels must be below `classes`.
pub fn read_labels(path: &Path, classes: u8) -> Result<Vec<u8>> {
    let data = read_maybe_gz(path)?;
    let d = header(path, &data, 2049, 1)?;
    let n = d[0];
    if data.len() - 8 != n {
        return Err(bad(
            path,
            format!(
                "{} label bytes after the header, expected {n}{}",
                data.len() - 8,
                if data.len() - 8 < n {
                    " (truncated)"
                } else {
                    ""
                }
            ),
        ));
    }
    let labels = data[8..].to_vec();
    if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l >= classes) {
        return Err(bad(
            path,
            format!("label {l} at index {i}; labels must be 0..{}", classes - 1),
        ));
    }
    Ok(labels)
}
