//! Per-kernel GPU time of one engine matmul (timestamp queries), to separate kernel time
//! from upload / readback: cargo run --release -p wgvision-engine --example mmprof
use wgvision_engine::ops;
use std::borrow::Cow;
use wgvision_engine::{Activation, Compiled, DType, Gpu, GpuWeights, Graph, Op, WeightData};

fn main() {
    let (m, k, n) = (1024usize, 1024usize, 1024usize);
    let gpu = Gpu::new(None).unwrap();
    let mut b = Graph::builder();
    let x = b.input("x", &[m, k]).unwrap();
    let w = b.weight("w", &[k, n]).unwrap();
    let y = b.node("mm", Op::MatMul(ops::MatMul { act: Activation::None, bias: false, residual: false }), &[x, w]).unwrap();
    b.output(y, "y").unwrap();
    let g = b.finish();
    let wd: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 * 0.1).collect();
    let weights = GpuWeights::upload(&gpu, &g, |_| Some(WeightData { dtype: DType::F32, shape: vec![k, n], bytes: Cow::Owned(bytemuck::cast_slice(&wd).to_vec()) })).unwrap();
    let variant = std::env::var("VARIANT").ok().map(|v| &*Box::leak(v.into_boxed_str()));
    let c = Compiled::with_variant(gpu.clone(), &g, &weights, variant).unwrap();
    let xd: Vec<f32> = (0..m * k).map(|i| (i % 5) as f32 * 0.1).collect();
    for _ in 0..4 {
        let t = std::time::Instant::now();
        let (_, prof) = c.run_profiled(&[("x", &xd)]).unwrap();
        let wall = t.elapsed().as_secs_f64() * 1e3;
        let ms: f64 = prof.iter().map(|p| p.ms).sum();
        let parts: Vec<String> = prof.iter().map(|p| format!("{} {:.1} ms", p.op, p.ms)).collect();
        println!("{parts:?}: total {ms:.1} ms = {:.2} GFLOP/s (wall {wall:.1} ms)", 2.0 * (m * n * k) as f64 / (ms / 1e3) / 1e9);
    }
}
