//! `wgvision bench matmul:MxNxK` and `bench attention:BxNxHxD`: one engine kernel on
//! synthetic data, so one command gives a kernel's GFLOP/s on this adapter: GPU time
//! (timestamps, or submit-to-idle on CPU adapters; the lowering's texture copy counts)
//! and wall time (upload and readback included).
use super::CliResult;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;
use wgvision::engine::ops::{self, Op};
use wgvision::engine::{Activation, Compiled, DType, GpuWeights, Graph, WeightData};
use wgvision::Gpu;

/// The op preset a bench argument names, if it names one: (op, dims).
pub fn parse(spec: &str) -> Option<Result<(&'static str, Vec<usize>), String>> {
    let (kind, dims) = spec.split_once(':')?;
    let (name, n) = match kind {
        "matmul" => ("matmul", 3),
        "attention" => ("attention", 4),
        _ => return None,
    };
    let form = if n == 3 { "matmul:MxNxK" } else { "attention:BxNxHxD" };
    let parsed: Result<Vec<usize>, _> = dims.split('x').map(str::parse::<usize>).collect();
    Some(match parsed {
        Ok(d) if d.len() == n && d.iter().all(|&x| (1..=1 << 20).contains(&x)) => Ok((name, d)),
        _ => Err(format!("{spec}: expected {form} with each size from 1 to 2^20")),
    })
}

pub fn bench_op(gpu: Arc<Gpu>, op: &str, dims: &[usize], iters: usize, warmup: usize, f16: bool, json: bool) -> CliResult {
    let mut b = Graph::builder();
    let (x_shape, w_shape, node): (Vec<usize>, Option<Vec<usize>>, Op) = match (op, dims) {
        ("matmul", &[m, n, k]) => (vec![m, k], Some(vec![k, n]), Op::MatMul(ops::MatMul { act: Activation::None, bias: false, residual: false })),
        ("attention", &[bsz, n, h, d]) => {
            let scale = 1.0 / (d as f32).sqrt();
            (vec![bsz, n, 3 * h * d], None, Op::Attention(ops::Attention { heads: h, scale, causal: false, key_mask: false }))
        }
        _ => return Err(format!("unknown op preset {op}").into()),
    };
    if f16 && w_shape.is_none() {
        return Err("--dtype f16 applies to matmul weights; attention has none".into());
    }
    let elems = |s: &[usize]| s.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64)).ok_or("the sizes overflow");
    let host = elems(&x_shape)?.saturating_add(w_shape.as_deref().map_or(Ok(0), elems)?).saturating_mul(4);
    wgvision::weights::st::check_host_bytes("the op preset's data", Some(host))?;
    let x = b.input("x", &x_shape)?;
    let mut ins = vec![x];
    if let Some(ws) = &w_shape {
        ins.push(b.weight("w", ws)?);
    }
    let y = b.node(op, node, &ins)?;
    b.output(y, "y")?;
    let g = b.finish();
    let dtype = if f16 { DType::F16 } else { DType::F32 };
    let pattern = |n: usize| (0..n).map(|i| ((i * 7919) % 255) as f32 / 1275.0 - 0.1).collect::<Vec<f32>>();
    let weights = GpuWeights::upload(&gpu, &g, |_| {
        let ws = w_shape.clone()?;
        let vals = pattern(ws.iter().product());
        let bytes: Vec<u8> = match dtype {
            DType::F16 => vals.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect(),
            DType::F32 => bytemuck::cast_slice(&vals).to_vec(),
        };
        Some(WeightData { dtype, shape: ws, bytes: Cow::Owned(bytes) })
    })?;
    let cold = Instant::now();
    let c = Compiled::new(gpu.clone(), &g, &weights)?;
    let xd = pattern(x_shape.iter().product());
    let inputs = [("x", xd.as_slice())];
    c.run(&inputs)?;
    let cold_ms = cold.elapsed().as_secs_f64() * 1e3;
    for _ in 0..warmup {
        c.run(&inputs)?;
    }
    let mut wall = Vec::with_capacity(iters);
    let mut gpu_ms = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        c.run(&inputs)?;
        wall.push(t.elapsed().as_secs_f64() * 1e3);
        let (_, times) = c.run_profiled(&inputs)?;
        gpu_ms.push(times.iter().map(|t| t.ms).sum::<f64>());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (wall_med, gpu_med) = (median(&mut wall), median(&mut gpu_ms));
    let gflop = c.flops as f64 / 1e9;
    let variants: Vec<String> = c.nodes().iter().map(|n| format!("{}:{}", n.op, n.variant)).collect();
    if json {
        let v = serde_json::json!({
            "op": op,
            "dims": dims,
            "adapter": gpu.info.name,
            "driver": gpu.driver(),
            "backend": gpu.backend_name(),
            "weights": if f16 { "f16" } else { "f32" },
            "iters": iters,
            "flops": c.flops,
            "gpu_ms": gpu_med,
            "gpu_min_ms": gpu_ms[0],
            "median_ms": wall_med,
            "min_ms": wall[0],
            "cold_ms": cold_ms,
            "gflops": gflop / (gpu_med / 1e3),
            "gflops_wall": gflop / (wall_med / 1e3),
            "dispatches": c.dispatches(),
            "nodes": c.nodes(),
            "device_bytes": weights.bytes + weights.extra_bytes() + c.memory.device_bytes,
        });
        out!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    out!("op       {op} {dims:?} ({} weights)", if f16 { "f16" } else { "f32" });
    out!("adapter  {} ({:?}, {}), driver {}", gpu.info.name, gpu.info.device_type, gpu.backend_name(), gpu.driver());
    out!("kernels  {} dispatches: {}", c.dispatches(), variants.join(", "));
    out!("gpu      median {gpu_med:.3} ms  min {:.3} ms  {:.2} GFLOP/s ({gflop:.3} GFLOP)", gpu_ms[0], gflop / (gpu_med / 1e3));
    out!("wall     median {wall_med:.3} ms  min {:.3} ms  {:.2} GFLOP/s (upload and readback included)", wall[0], gflop / (wall_med / 1e3));
    out!("cold     {cold_ms:.1} ms (compile, pipelines, first run)");
    Ok(())
}
