//! Shared test helpers: the one GPU accessor, a seeded RNG, named tolerances, comparisons that
//! print the index, the GPU value, the reference value and the worst error on failure, and
//! scratch directories that clean up after themselves.
#![allow(dead_code)]

use std::sync::OnceLock;

use incq::gpu::device::{DeviceOptions, Gpu};

/// The test device, opened once per test binary. Under `CI=true` a missing adapter fails the
/// test; elsewhere the helper prints loudly that it skipped and returns `None`.
pub fn gpu() -> Option<&'static Gpu> {
    static GPU: OnceLock<Result<Gpu, String>> = OnceLock::new();
    let r = GPU.get_or_init(|| {
        if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
            // Silences Mesa's harmless warning on headless machines.
            std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
        }
        Gpu::open(&DeviceOptions::default()).map_err(|e| e.to_string())
    });
    match r {
        Ok(g) => Some(g),
        Err(e) => {
            if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
                panic!("CI=true and no GPU adapter is available: {e}");
            }
            // A direct write, not eprintln!, so the test harness cannot capture and hide it.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "\n!!!!! SKIPPED: no GPU adapter ({e}). Set CI=true to make this a failure. !!!!!\n"
            );
            None
        }
    }
}

/// SplitMix64: small, seeded and reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = self.unit().max(1e-7);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A named tolerance: |gpu - ref| <= abs + rel * |ref|.
#[derive(Copy, Clone, Debug)]
pub struct Tol {
    pub abs: f64,
    pub rel: f64,
}

impl Tol {
    /// Bit-for-bit-ish: single f32 roundings.
    pub const STRICT: Tol = Tol {
        abs: 1e-6,
        rel: 1e-6,
    };
    /// f32 accumulation over up to a few thousand terms against an f64 reference.
    pub const BALANCED: Tol = Tol {
        abs: 1e-4,
        rel: 1e-4,
    };
    /// Long f32 reductions.
    pub const PERMISSIVE: Tol = Tol {
        abs: 1e-3,
        rel: 1e-3,
    };
}

/// Asserts `got` matches `want` within `tol`; NaN never matches (poisoned outputs fail).
pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: Tol) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: length {} vs reference {}",
        got.len(),
        want.len()
    );
    let mut worst = (0usize, 0.0f64);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (f64::from(g) - f64::from(w)).abs();
        let bound = tol.abs + tol.rel * f64::from(w).abs();
        if err.is_nan() || err > bound {
            panic!(
                "{what}: element {i} of {}: GPU {g:e}, reference {w:e}, error {err:e} > {bound:e} ({tol:?})",
                got.len()
            );
        }
        if err > worst.1 {
            worst = (i, err);
        }
    }
    eprintln!(
        "{what}: {} values ok, max error {:e} at {}",
        got.len(),
        worst.1,
        worst.0
    );
}

/// Asserts bitwise equality of f32 values (quantizers, codes and conversions).
pub fn assert_exact_f32(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length mismatch");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits(),
            "{what}: element {i}: GPU {g:e} ({:#010x}), reference {w:e} ({:#010x})",
            g.to_bits(),
            w.to_bits()
        );
    }
}

/// The poison pattern written into outputs before a kernel runs (a NaN as f32).
pub const POISON: u32 = u32::MAX;

/// A scratch directory under the system's temp dir, emptied when created and removed when the
/// test ends (kept when it fails, for a look).
pub struct TmpDir(std::path::PathBuf);

impl TmpDir {
    /// `{temp}/{prefix}-{pid}-{name}`.
    pub fn new(prefix: &str, name: &str) -> TmpDir {
        let d = std::env::temp_dir().join(format!("{prefix}-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TmpDir(d)
    }
}

impl std::ops::Deref for TmpDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Fills an rgba32float texture (one array layer) with `texels` texels of `data` (4 floats each,
/// texel t at x = t % 2048, row t / 2048) and `fill` bits everywhere else.
pub fn write_rows_texture(g: &Gpu, tex: &wgpu::Texture, data: &[f32], fill: u32) {
    assert_eq!(
        tex.depth_or_array_layers(),
        1,
        "test textures hold one layer"
    );
    let (w, h) = (tex.width() as usize, tex.height() as usize);
    let mut all = vec![f32::from_bits(fill); w * h * 4];
    all[..data.len()].copy_from_slice(data);
    g.queue.write_texture(
        tex.as_image_copy(),
        bytemuck::cast_slice(&all),
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some((w * 16) as u32),
            rows_per_image: Some(h as u32),
        },
        tex.size(),
    );
}
