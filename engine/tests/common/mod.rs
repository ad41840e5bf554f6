//! Shared test helpers: one device per test binary, deterministic random data, and the
//! two error measures the project uses (per-element tolerance and relative L2).
#![allow(dead_code)]
use std::sync::{Arc, OnceLock};
use wgvision_engine::Gpu;

pub fn gpu() -> Arc<Gpu> {
    static GPU: OnceLock<Arc<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| Gpu::new(None).expect("a GPU or software adapter (install mesa-vulkan-drivers)")).clone()
}

/// Deterministic uniform values in [-1, 1) (xorshift), different per seed.
pub fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

pub fn rel_l2(got: &[f32], want: &[f64]) -> f64 {
    let num: f64 = got.iter().zip(want).map(|(g, w)| (*g as f64 - w).powi(2)).sum();
    let den: f64 = want.iter().map(|w| w * w).sum();
    (num / den.max(1e-300)).sqrt()
}

/// Assert |got - want| <= atol + rtol * |want| everywhere and rel-L2 <= l2.
pub fn assert_close(what: &str, got: &[f32], want: &[f64], atol: f64, rtol: f64, l2: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let g = *g as f64;
        assert!(
            (g - w).abs() <= atol + rtol * w.abs(),
            "{what}: element {i}: got {g}, want {w} (|diff| {})",
            (g - w).abs()
        );
    }
    let e = rel_l2(got, want);
    assert!(e <= l2, "{what}: relative L2 error {e:e} > {l2:e}");
}
