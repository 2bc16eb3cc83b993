//! CPU twin of `f32_to_f16`: IEEE round-to-nearest-even through the `half` crate.

/// Converts every value to f16.
pub fn f32_to_f16(x: &[f32]) -> Vec<half::f16> {
    x.iter().map(|&v| half::f16::from_f32(v)).collect()
}
