//! CPU twin of shaders/data.wgsl's gather_batch.

use crate::ops::data::GatherParams;

fn hash(x: u32) -> u32 {
    let mut h = x.wrapping_mul(747796405).wrapping_add(2891336453);
    h = ((h >> ((h >> 28) + 4)) ^ h).wrapping_mul(277803737);
    (h >> 22) ^ h
}

/// (normalised batch, labels) gathered from `pixels` (all images, u8) through `perm`.
pub fn gather_batch(
    p: &GatherParams,
    perm: &[u32],
    pixels: &[u8],
    labels: &[u32],
) -> (Vec<f32>, Vec<u32>) {
    let (c, h, w) = (p.c as usize, p.h as usize, p.w as usize);
    let per = c * h * w;
    let mut out = vec![0.0; p.batch as usize * per];
    let mut lab = vec![0; p.batch as usize];
    for b in 0..p.batch as usize {
        let pos = p.start + b as u32;
        let img = perm[pos as usize] as usize;
        lab[b] = labels[img];
        let hsh = hash(p.seed ^ hash(pos));
        let span = 2 * p.pad + 1;
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let (mut sy, mut sx) = (y as i64, x as i64);
                    if p.pad > 0 {
                        sy += i64::from(hsh % span) - i64::from(p.pad);
                        sx += i64::from((hsh / span) % span) - i64::from(p.pad);
                    }
                    if p.flip != 0 && (hsh >> 16) & 1 == 1 {
                        sx = w as i64 - 1 - sx;
                    }
                    let v = if sy >= 0 && sy < h as i64 && sx >= 0 && sx < w as i64 {
                        f32::from(pixels[img * per + (ch * h + sy as usize) * w + sx as usize])
                    } else {
                        0.0
                    };
                    out[b * per + (ch * h + y) * w + x] = (v / 255.0 - p.mean[ch]) * p.inv_std[ch];
                }
            }
        }
    }
    (out, lab)
}
