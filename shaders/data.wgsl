// Batch gather from the GPU-resident data set: pixels stay u8 (4 per u32 word) on the GPU, and
// each step this kernel writes one normalised f32 batch, picking images through the epoch's
// shuffled index. Optional augmentation (CIFAR): a random crop with `pad` zero pixels of padding
// and a random horizontal flip, both drawn from a hash of (seed, position in the epoch), so a run
// is reproducible from its seed.
//
// Data sets larger than one storage binding are split in two at an image boundary: images
// [0, split) live in img0 and the rest in img1.

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

@compute @workgroup_size(WG)
fn gather_batch(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    prm = p;
    let i = gid.x + gid.y * nwg.x * WG;
    let per = prm.c * prm.h * prm.w;
    if (i >= prm.batch * per) { return; }
    let b = i / per;
    let r = i % per;
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
    out[i] = (v / 255.0 - prm.mean[c]) * prm.inv_std[c];
    if (r == 0u) {
        out_labels[b] = labels[img];
    }
}
