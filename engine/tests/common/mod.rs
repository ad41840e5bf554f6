//! Shared test helpers: one device per test binary, deterministic random data, and the
//! two error measures the project uses (per-element tolerance and relative L2).
#![allow(dead_code)]
use std::sync::{Arc, OnceLock};
use std::borrow::Cow;
use wgvision_engine::{Compiled, DType, Gpu, Graph, GpuWeights, Op, WeightData};

pub fn gpu() -> Arc<Gpu> {
    static GPU: OnceLock<Arc<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| Gpu::new(None).expect("a GPU or software adapter (install mesa-vulkan-drivers)")).clone()
}

/// A device whose dispatches are split over x and y past 256 workgroups per dimension,
/// so every kernel's linear workgroup index is tested on ordinary shapes.
pub fn split_gpu() -> Arc<Gpu> {
    static GPU: OnceLock<Arc<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| {
        let mut cap = wgvision_engine::LimitsCap::webgpu_defaults();
        cap.max_compute_workgroups_per_dimension = 256;
        Gpu::open(None, Some(cap)).expect("a GPU or software adapter (install mesa-vulkan-drivers)")
    })
    .clone()
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

/// One node on `gpu` against its f64 reference: input 0 is a graph input, the rest are
/// weights (so f16 storage can be tested).
pub fn check_on(gpu: &Arc<Gpu>, op: Op, shapes: &[&[usize]], variant: Option<&'static str>, w_f16: bool, tol: (f64, f64, f64)) {
    let gpu = gpu.clone();
    let mut b = Graph::builder();
    let mut ids = vec![b.input("x0", shapes[0]).unwrap()];
    for (i, s) in shapes.iter().enumerate().skip(1) {
        ids.push(b.weight(&format!("w{i}"), s).unwrap());
    }
    let out = b.node("node", op.clone(), &ids).unwrap();
    b.output(out, "y").unwrap();
    let g = b.finish();
    let data: Vec<Vec<f32>> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| rand_vec(s.iter().product(), 7 + i as u64))
        .collect();
    // Values as the GPU sees them (f16-rounded where stored as f16) feed the reference.
    let f16_input = |i: usize| w_f16 && i == 1;
    let seen: Vec<Vec<f64>> = data
        .iter()
        .enumerate()
        .map(|(i, d)| d.iter().map(|&v| if f16_input(i) { half::f16::from_f32(v).to_f64() } else { v as f64 }).collect())
        .collect();
    let weights = GpuWeights::upload(&gpu, &g, |name| {
        let i: usize = name[1..].parse().ok()?;
        let bytes: Vec<u8> = if f16_input(i) {
            data[i].iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect()
        } else {
            bytemuck::cast_slice(&data[i]).to_vec()
        };
        Some(WeightData { dtype: if f16_input(i) { DType::F16 } else { DType::F32 }, shape: shapes[i].to_vec(), bytes: Cow::Owned(bytes) })
    })
    .unwrap();
    let c = Compiled::with_variant(gpu, &g, &weights, variant).unwrap();
    let got = c.run(&[("x0", &data[0])]).unwrap();
    let refs: Vec<&[f64]> = seen.iter().map(|v| v.as_slice()).collect();
    let want = op.reference(&refs, shapes, g.shape(out));
    assert_eq!(got[0].shape, g.shape(out));
    let what = format!("{op:?} {shapes:?} variant={variant:?} f16={w_f16}");
    assert_close(&what, &got[0].data, &want, tol.0, tol.1, tol.2);
}

