// Batch gather from the GPU-resident data set: pixels stay u8 (4 per u32 word) on the GPU, and
// each step this kernel writes one normalised f32 batch, picking images through the epoch's
// shuffled index. Optional augmentation (CIFAR): a random crop with `pad` zero pixels of padding
// and a random horizontal flip, both drawn from a hash of (seed, position in the epoch), so a run
// is reproducible from its seed.
//
// Data sets larger than one storage binding are split in two at an image boundary: images
// [0, split) live in img0 and the rest in img1.
//
// gather_batch4 does the same where every plane is whole words (H*W % 4 == 0, so no word holds
// two channels and every image starts at a word): one invocation per word (x) and image (y), no
// integer division per pixel (llvmpipe divides lane by lane), one word load and one vec4 store
// for 4 pixels. With augmentation it falls back to gather_batch's per-pixel path for its 4
// pixels. Both compute each pixel with the same operations, so they give the same bits.

struct GatherParams {
    batch: u32,
    c: u32,
    h: u32,
    w: u32,
    start: u32,     // position of this batch in the epoch's permutation
    split: u32,     // first image stored in img1
    pad: u32,       // random-crop padding, 0 = no crop
    flip: u32,      // 1 = random horizontal flip
    seed: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    mean: vec4<f32>,
    inv_std: vec4<f32>,
}

@group(0) @binding(0) var<uniform> p: GatherParams;
// The params, copied into private registers at the start of every entry point (llvmpipe otherwise
// reloads the uniform buffer inside loops).
var<private> prm: GatherParams;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> out_labels: array<u32>;
@group(0) @binding(3) var<storage, read> perm: array<u32>;
@group(0) @binding(4) var<storage, read> img0: array<u32>;
@group(0) @binding(5) var<storage, read> img1: array<u32>;
@group(0) @binding(6) var<storage, read> labels: array<u32>;

override WG: u32 = 256;

fn hash(x: u32) -> u32 {
    var h = x * 747796405u + 2891336453u;
    h = ((h >> ((h >> 28u) + 4u)) ^ h) * 277803737u;
    return (h >> 22u) ^ h;
}

fn pixel(img: u32, off: u32) -> f32 {
    let len = prm.c * prm.h * prm.w;
    var byte = 0u;
    var word = 0u;
    if (img < prm.split) {
        byte = img * len + off;
        word = img0[byte / 4u];
    } else {
        byte = (img - prm.split) * len + off;
        word = img1[byte / 4u];
    }
    return f32((word >> (8u * (byte % 4u))) & 255u);
}

// Pixel r (channel-major) of batch image b, normalised, with the batch's augmentation.
fn gathered(b: u32, r: u32) -> f32 {
    let c = r / (prm.h * prm.w);
    let y = (r / prm.w) % prm.h;
    let x = r % prm.w;
    let pos = prm.start + b;
    let img = perm[pos];
    var sy = i32(y);
    var sx = i32(x);
    if (prm.pad > 0u || prm.flip != 0u) {
        let hsh = hash(prm.seed ^ hash(pos));
        let span = 2u * prm.pad + 1u;
        if (prm.pad > 0u) {
            sy = sy + i32(hsh % span) - i32(prm.pad);
            sx = sx + i32((hsh / span) % span) - i32(prm.pad);
        }
        if (prm.flip != 0u && ((hsh >> 16u) & 1u) == 1u) {
            sx = i32(prm.w) - 1 - sx;
        }
    }
    var v = 0.0;
    if (sy >= 0 && sy < i32(prm.h) && sx >= 0 && sx < i32(prm.w)) {
        v = pixel(img, (c * prm.h + u32(sy)) * prm.w + u32(sx));
    }
    return (v / 255.0 - prm.mean[c]) * prm.inv_std[c];
}

@compute @workgroup_size(WG)
fn gather_batch(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    prm = p;
    let i = gid.x + gid.y * nwg.x * WG;
    let per = prm.c * prm.h * prm.w;
    if (i >= prm.batch * per) { return; }
    let b = i / per;
    let r = i % per;
    out[i] = gathered(b, r);
    if (r == 0u) {
        out_labels[b] = labels[perm[prm.start + b]];
    }
}

@group(0) @binding(1) var<storage, read_write> out4: array<vec4<f32>>;

// x: word k of an image (4 pixels), y: batch image b. The host checks H*W % 4 == 0.
@compute @workgroup_size(WG)
fn gather_batch4(@builtin(global_invocation_id) gid: vec3<u32>) {
    prm = p;
    let per4 = prm.c * prm.h * prm.w / 4u;
    let k = gid.x;
    let b = gid.y;
    if (k >= per4 || b >= prm.batch) { return; }
    let img = perm[prm.start + b];
    if (prm.pad > 0u || prm.flip != 0u) {
        let r = 4u * k;
        out4[b * per4 + k] = vec4<f32>(gathered(b, r), gathered(b, r + 1u), gathered(b, r + 2u),
                                       gathered(b, r + 3u));
    } else {
        var word = 0u;
        if (img < prm.split) {
            word = img0[img * per4 + k];
        } else {
            word = img1[(img - prm.split) * per4 + k];
        }
        let c = (4u * k) / (prm.h * prm.w);
        let v = vec4<f32>(f32(word & 255u), f32((word >> 8u) & 255u), f32((word >> 16u) & 255u),
                          f32(word >> 24u));
        out4[b * per4 + k] = (v / 255.0 - prm.mean[c]) * prm.inv_std[c];
    }
    if (k == 0u) {
        out_labels[b] = labels[img];
    }
}
