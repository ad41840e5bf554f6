//! Kernel benchmarks on the default adapter: matmul at ViT shapes (FLOP/s) and fused
//! attention at ViT-B/16 (FLOP/s of QK^T and PV), window / grid attention against dense
//! attention on the same tokens. Run: cargo bench --bench ops
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::borrow::Cow;
use wgvision::engine::ops::{self, Variant};
use wgvision::engine::{Activation, Compiled, DType, Graph, GpuWeights, Op, WeightData, WindowGeometry};
use wgvision::Gpu;

fn single(op: Op, x: &[usize], ws: &[Vec<usize>]) -> Graph {
    let mut b = Graph::builder();
    let mut ids = vec![b.input("x", x).unwrap()];
    for (i, s) in ws.iter().enumerate() {
        ids.push(b.weight(&format!("w{i}"), s).unwrap());
    }
    let y = b.node("op", op, &ids).unwrap();
    b.output(y, "y").unwrap();
    b.finish()
}

fn bench(c: &mut Criterion) {
    let gpu = Gpu::new(None).expect("adapter");
    let mut group = c.benchmark_group(format!("ops/{}", gpu.info.name));
    group.sample_size(10);
    // WGVISION_MATMUL_VARIANTS=tex,vec4,...: each named variant (`MatmulVariant`) instead of
    // the adapter's choice.
    let variants: Vec<Option<&'static str>> = match std::env::var("WGVISION_MATMUL_VARIANTS") {
        Ok(v) => v
            .split(',')
            .map(|s| ops::matmul::MatmulVariant::from_name(s).map(|v| v.name()).unwrap_or_else(|| panic!("unknown matmul variant {s}")))
            .map(Some)
            .collect(),
        Err(_) => vec![None],
    };
    let shapes = [(1024usize, 1024usize, 1024usize, "1024^3"), (197, 768, 2304, "vitb_qkv"), (197, 768, 3072, "vitb_fc1"), (197, 3072, 768, "vitb_fc2")];
    for (m, k, n, name) in shapes {
        for dtype in [DType::F32, DType::F16] {
            for &variant in &variants {
                let g = single(Op::MatMul(ops::MatMul { act: Activation::None, bias: false, residual: false }), &[m, k], &[vec![k, n]]);
                let w: Vec<u8> = match dtype {
                    DType::F32 => (0..k * n).flat_map(|i| ((i % 13) as f32 * 0.01).to_le_bytes()).collect(),
                    DType::F16 => (0..k * n).flat_map(|i| half::f16::from_f32((i % 13) as f32 * 0.01).to_le_bytes()).collect(),
                };
                let weights = GpuWeights::upload(&gpu, &g, |_| Some(WeightData { dtype, shape: vec![k, n], bytes: Cow::Borrowed(&w) })).unwrap();
                let cmp = Compiled::with_variant(gpu.clone(), &g, &weights, variant).unwrap();
                let x = vec![0.5f32; m * k];
                group.throughput(Throughput::Elements((2 * m * n * k) as u64));
                let label = format!("matmul_{name}_{dtype:?}_{}", variant.unwrap_or("auto"));
                group.bench_function(label, |b| b.iter(|| cmp.run(&[("x", &x)]).unwrap()));
                // GPU time alone (timestamps, or submit-to-idle per node on CPU adapters),
                // the input upload and readback left out; the lowering's texture copy counts.
                group.bench_function(format!("matmul_{name}_{dtype:?}_{}_gpu_time", variant.unwrap_or("auto")), |b| {
                    b.iter_custom(|iters| {
                        let mut total = std::time::Duration::ZERO;
                        for _ in 0..iters {
                            let (_, times) = cmp.run_profiled(&[("x", &x)]).unwrap();
                            total += std::time::Duration::from_secs_f64(times.iter().map(|t| t.ms).sum::<f64>() / 1e3);
                        }
                        total
                    })
                });
            }
        }
    }
    let (bsz, t, h, hd) = (1usize, 197usize, 12usize, 64usize);
    let g = single(Op::Attention(ops::Attention { heads: h, scale: 0.125, causal: false, key_mask: false }), &[bsz, t, 3 * h * hd], &[]);
    let weights = GpuWeights::upload(&gpu, &g, |_| None).unwrap();
    let cmp = Compiled::new(gpu.clone(), &g, &weights).unwrap();
    let x = vec![0.1f32; bsz * t * 3 * h * hd];
    group.throughput(Throughput::Elements((4 * bsz * t * t * h * hd) as u64));
    group.bench_function("attention_vitb_197x12x64", |b| b.iter(|| cmp.run(&[("x", &x)]).unwrap()));

    // Swin-T stage 1: a 56x56 map, 3 heads of 32, 7x7 windows (64 windows of 49 tokens),
    // shifted; MaxViT-T stage 1: the same map, 2 heads of 32, the dilated 7x7 grid. Each
    // against dense attention over the same 64 x 49 tokens as a batch.
    let swin = WindowGeometry { map: [56, 56], window: [7, 7], shift: [3, 3], pad_first: false, grid: false };
    window_vs_dense(&mut group, &gpu, "window_attention_swint_56x56_w7_shifted", swin, 3);
    let maxvit = WindowGeometry { map: [56, 56], window: [7, 7], shift: [0, 0], pad_first: false, grid: true };
    window_vs_dense(&mut group, &gpu, "grid_attention_maxvitt_56x56_g7", maxvit, 2);
    group.finish();
}

/// Window (or grid) attention over `layout`, then dense attention over the same windows
/// as a batch of independent sequences.
fn window_vs_dense(group: &mut criterion::BenchmarkGroup<criterion::measurement::WallTime>, gpu: &std::sync::Arc<Gpu>, name: &str, layout: WindowGeometry, heads: usize) {
    let hd = 32;
    let [h, w] = layout.map;
    let n = layout.tokens();
    let windows = h * w / n;
    let g = single(Op::WindowAttention(ops::WindowAttention { heads, layout, pad_bias: false, scale: 0.17 }), &[1, h * w, 3 * heads * hd], &[vec![heads, n, n]]);
    let rel: Vec<u8> = (0..heads * n * n).flat_map(|i| ((i % 7) as f32 * 0.1).to_le_bytes()).collect();
    let weights = GpuWeights::upload(gpu, &g, |_| Some(WeightData { dtype: DType::F32, shape: vec![heads, n, n], bytes: Cow::Borrowed(&rel) })).unwrap();
    let cmp = Compiled::new(gpu.clone(), &g, &weights).unwrap();
    let x = vec![0.1f32; h * w * 3 * heads * hd];
    group.throughput(Throughput::Elements((4 * h * w * n * heads * hd) as u64));
    group.bench_function(name, |b| b.iter(|| cmp.run(&[("x", &x)]).unwrap()));
    let g = single(Op::Attention(ops::Attention { heads, scale: 0.17, causal: false, key_mask: false }), &[windows, n, 3 * heads * hd], &[]);
    let weights = GpuWeights::upload(gpu, &g, |_| None).unwrap();
    let cmp = Compiled::new(gpu.clone(), &g, &weights).unwrap();
    group.bench_function(format!("{name}_vs_dense_{windows}x{n}"), |b| b.iter(|| cmp.run(&[("x", &x)]).unwrap()));
}

criterion_group!(benches, bench);
criterion_main!(benches);
