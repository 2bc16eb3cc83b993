//! The CIFAR-10 binary format: records of 1 label byte followed by 3072 pixel bytes (the R, G and
//! B planes of a 32x32 image, row-major). Files data_batch_1..5.bin and test_batch.bin hold 10000
//! records each; any positive whole number of records is accepted, anything else is an error.

use std::path::Path;

use crate::error::{Error, Result};

/// Bytes per record.
pub const RECORD: usize = 1 + 3 * 32 * 32;

/// Reads one CIFAR-10 binary file into (NCHW u8 pixels, labels).
pub fn read(path: &Path) -> Result<(Vec<u8>, Vec<u8>)> {
    let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if data.is_empty() || data.len() % RECORD != 0 {
        return Err(Error::File {
            path: path.to_path_buf(),
            msg: format!(
                "{} bytes is not a whole number of CIFAR-10 records ({RECORD} bytes each; a standard file has 10000)",
                data.len()
            ),
        });
    }
    let n = data.len() / RECORD;
    let mut images = Vec::with_capacity(n * (RECORD - 1));
    let mut labels = Vec::with_capacity(n);
    for (i, rec) in data.chunks_exact(RECORD).enumerate() {
        if rec[0] > 9 {
            return Err(Error::File {
                path: path.to_path_buf(),
                msg: format!("record {i} has label {}; labels must be 0..9", rec[0]),
            });
        }
        labels.push(rec[0]);
        images.extend_from_slice(&rec[1..]);
    }
    Ok((images, labels))
}

/// Writes records in the same format (tests and synthetic data sets use this).
pub fn write(path: &Path, images: &[u8], labels: &[u8]) -> Result<()> {
    let mut out = Vec::with_capacity(labels.len() * RECORD);
    for (i, &l) in labels.iter().enumerate() {
        out.push(l);
        out.extend_from_slice(&images[i * (RECORD - 1)..(i + 1) * (RECORD - 1)]);
    }
    std::fs::write(path, out).map_err(|e| Error::io(path, e))
}
