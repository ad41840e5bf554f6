//! `wgvision bench`: latency, throughput and achieved GFLOP/s of a model file or a preset.
use super::{open_gpu, CliResult};
use std::path::Path;
use std::time::Instant;
use wgvision::engine::DType;
use wgvision::weights;
use wgvision::{Model, Task};

#[allow(clippy::too_many_arguments)]
pub fn bench(model: &str, batch: usize, iters: usize, warmup: usize, f16: bool, per_op: bool, json: bool, backend: Option<String>) -> CliResult {
    if batch == 0 || iters == 0 {
        return Err("--batch and --iters must be at least 1".into());
    }
    const MAX_BATCH: usize = 4096;
    const MAX_ITERS: usize = 1_000_000;
    if batch > MAX_BATCH {
        return Err(format!("--batch {batch}: at most {MAX_BATCH}").into());
    }
    if iters > MAX_ITERS || warmup > MAX_ITERS {
        return Err(format!("--iters / --warmup: at most {MAX_ITERS}").into());
    }
    if let Some(spec) = super::bench_op::parse(model) {
        let (op, dims) = spec?;
        return super::bench_op::bench_op(open_gpu(backend.as_deref())?, op, &dims, iters, warmup, f16, json);
    }
    let path = Path::new(model);
    let preset = if path.exists() {
        None
    } else if model.ends_with(".safetensors") {
        return Err(format!("{model}: no such file").into());
    } else {
        Some(weights::preset_config(model)?)
    };
    if f16 && preset.is_none() {
        return Err("--dtype applies to presets; a model file keeps the weights it was converted with (convert --dtype f16)".into());
    }
    let weights_label = match (preset.is_none(), f16) {
        (true, _) => "the file's",
        (false, true) => "f16",
        (false, false) => "f32",
    };
    let gpu = open_gpu(backend.as_deref())?;
    // Cold start: load or synthesize, compile (pipelines, uploads) and the first run.
    let cold = Instant::now();
    let m = match preset {
        None => Model::load(path, gpu.clone())?,
        Some(config) => Model::synthetic(gpu.clone(), config, if f16 { DType::F16 } else { DType::F32 })?,
    };
    let (name, shape) = m.config.image_input(batch);
    let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or("--batch: the input size overflows")?;
    weights::st::check_host_bytes(&format!("the input pixels {shape:?}"), (n as u64).checked_mul(4))?;
    let pixels: Vec<f32> = (0..n).map(|i| ((i * 7919) % 255) as f32 / 127.5 - 1.0).collect();
    let mut named: Vec<(String, Vec<usize>, Vec<f32>)> = vec![(name.clone(), shape.clone(), pixels)];
    // Detectors: the image tower and heads on one precomputed query per image; the text
    // tower is timed separately, per query.
    // Zero-shot models: the image tower and logits against 8 cached text embeddings.
    const QUERIES: usize = 8;
    let queries = match m.config.task() {
        Task::Detector(q) => {
            let l = q.max_len;
            let ids: Vec<f32> = (0..batch * l).map(|i| if i % l == 0 { 1.0 } else { 0.0 }).collect();
            named.push(("input_ids".into(), vec![batch, l], ids));
            named.push(("query_embeds".into(), vec![batch, q.embed_dim], vec![0.05; batch * q.embed_dim]));
            Some(q)
        }
        Task::ZeroShot(q) => {
            named.push(("text_embeds".into(), vec![QUERIES, q.embed_dim], vec![0.05; QUERIES * q.embed_dim]));
            Some(q)
        }
        Task::Classifier => None,
    };
    let compiled = m.compiled_for_inputs(named.iter().map(|(n, s, _)| (n.clone(), s.clone())).collect())?;
    let inputs: Vec<(&str, &[f32])> = named.iter().map(|(n, _, d)| (n.as_str(), d.as_slice())).collect();
    compiled.run(&inputs)?;
    let cold_ms = cold.elapsed().as_secs_f64() * 1e3;
    let times = time_runs(&compiled, &inputs, warmup, iters)?;
    let (text_ms_per_query, text_bytes) = match &queries {
        Some(q) => {
            let l = q.max_len;
            let ids: Vec<f32> = (0..QUERIES * l).map(|i| [1.0, 2.0, 3.0, q.vocab_size.saturating_sub(1) as f32].get(i % l).copied().unwrap_or(0.0)).collect();
            let mask: Vec<f32> = (0..QUERIES * l).map(|i| if i % l < 4 { 1.0 } else { 0.0 }).collect();
            let mut shapes = vec![("input_ids".to_string(), vec![QUERIES, l])];
            let mut ins: Vec<(&str, &[f32])> = vec![("input_ids", &ids)];
            if q.attention_mask {
                shapes.push(("attention_mask".to_string(), vec![QUERIES, l]));
                ins.push(("attention_mask", &mask));
            }
            let text = m.compiled_for_inputs(shapes)?;
            let t = time_runs(&text, &ins, warmup, iters)?;
            (Some(t[t.len() / 2] / QUERIES as f64), text.memory.device_bytes)
        }
        None => (None, 0),
    };
    // Everything resident at once: the weights and both compiled graphs' buffers.
    let device_bytes = m.weight_bytes() + compiled.memory.device_bytes + text_bytes;
    let median = times[times.len() / 2];
    let min = times[0];
    let flops = compiled.flops as f64;
    let ips = batch as f64 / (median / 1e3);
    let gflops = flops / (median / 1e3) / 1e9;
    let profile = if per_op { Some(compiled.run_profiled(&inputs)?.1) } else { None };
    // Which kernel variant each op ran, counted over the nodes (the lowering's copies too).
    let mut variants: std::collections::BTreeMap<&str, std::collections::BTreeMap<&str, usize>> = Default::default();
    for n in compiled.nodes() {
        *variants.entry(n.op).or_default().entry(n.variant).or_default() += 1;
    }
    let autotune = wgvision::engine::Autotune::from_env();
    if json {
        let mut v = serde_json::json!({
            "model": m.config.name(),
            "batch": batch,
            "adapter": gpu.info.name,
            "driver": gpu.driver(),
            "backend": gpu.backend_name(),
            "device_type": format!("{:?}", gpu.info.device_type),
            "limits": {
                "max_storage_buffer_binding_size": gpu.limits.max_storage_buffer_binding_size,
                "max_buffer_size": gpu.limits.max_buffer_size,
                "max_compute_workgroups_per_dimension": gpu.limits.max_compute_workgroups_per_dimension,
                "max_compute_workgroup_storage_size": gpu.limits.max_compute_workgroup_storage_size,
                "max_texture_dimension_2d": gpu.limits.max_texture_dimension_2d,
            },
            "weights": weights_label,
            "iters": iters,
            "median_ms": median,
            "min_ms": min,
            "images_per_s": ips,
            "gflops": gflops,
            "flops_per_batch": compiled.flops,
            "memory": compiled.memory,
            "weight_bytes": m.weight_bytes(),
            "cold_ms": cold_ms,
            "peak_device_bytes": device_bytes,
            "dispatches": compiled.dispatches(),
            "variants": variants,
            "nodes": compiled.nodes(),
            "autotune": format!("{autotune:?}").to_lowercase(),
            "autotune_cache": wgvision::engine::executor::autotune::cache_path().map(|p| p.display().to_string()),
        });
        if let Some(t) = text_ms_per_query {
            v["text_ms_per_query"] = t.into();
        }
        if let Some(p) = &profile {
            v["per_op"] = serde_json::to_value(p)?;
            if let Some((moe, routing)) = moe_split(p) {
                v["moe_ms"] = moe.into();
                v["moe_routing_ms"] = routing.into();
            }
        }
        out!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    out!("model    {}  batch {batch}  ({weights_label} weights)", m.config.name());
    out!("adapter  {} ({:?}, {}), driver {}", gpu.info.name, gpu.info.device_type, gpu.backend_name(), gpu.driver());
    out!("latency  median {median:.2} ms  min {min:.2} ms  over {iters} runs; cold start {cold_ms:.0} ms (load, compile, first run)");
    if let Some(t) = text_ms_per_query {
        out!("text     {t:.2} ms per query (text tower, 8 queries per run; embedded once per query set)");
    }
    out!("through  {ips:.2} images/s   {gflops:.2} GFLOP/s ({:.2} GFLOP per batch)", flops / 1e9);
    let summary: Vec<String> = variants
        .iter()
        .map(|(op, vs)| format!("{op} {}", vs.iter().map(|(v, n)| format!("{v} x{n}")).collect::<Vec<_>>().join(", ")))
        .collect();
    out!("kernels  {} dispatches, autotune {}: {}", compiled.dispatches(), format!("{autotune:?}").to_lowercase(), summary.join("; "));
    let mem = &compiled.memory;
    out!(
        "memory   activations {:.2} MB planned in {} buffers (naive {:.2} MB), weights {:.2} MB, {:.2} MB on the device in all",
        mem.planned_bytes as f64 / 1e6,
        mem.shared_buffers,
        mem.naive_bytes as f64 / 1e6,
        m.weight_bytes() as f64 / 1e6,
        device_bytes as f64 / 1e6
    );
    if let Some(p) = profile {
        if let Some((moe, routing)) = moe_split(&p) {
            out!(
                "moe      MoE layers {moe:.2} ms GPU time: routing (gate, route, dispatch, combine) {routing:.2} ms = {:.1}%, expert matmuls {:.1}%",
                100.0 * routing / moe.max(1e-12),
                100.0 * (moe - routing) / moe.max(1e-12)
            );
        }
        let total: f64 = p.iter().map(|t| t.ms).sum();
        // Aggregate by op kind, then list nodes.
        let mut by_kernel: Vec<(&str, f64, usize)> = Vec::new();
        for t in &p {
            let kind = t.op;
            match by_kernel.iter_mut().find(|(k, _, _)| *k == kind) {
                Some(e) => {
                    e.1 += t.ms;
                    e.2 += 1
                }
                None => by_kernel.push((kind, t.ms, 1)),
            }
        }
        by_kernel.sort_by(|a, b| b.1.total_cmp(&a.1));
        out!("per-op GPU time (sum {total:.2} ms):");
        for (k, ms, n) in &by_kernel {
            out!("  {k:<14} {ms:>9.3} ms  {:>5.1}%  ({n} nodes)", 100.0 * ms / total.max(1e-12));
        }
        out!("per node:");
        for t in &p {
            out!("  {:<28} {:>9.3} ms  {:<8} {}", t.node, t.ms, t.variant, t.kernel);
        }
    }
    Ok(())
}


/// GPU time of the MoE layers' nodes and, of that, everything but the expert matmuls.
fn moe_split(p: &[wgvision::engine::NodeTime]) -> Option<(f64, f64)> {
    let moe: Vec<_> = p.iter().filter(|t| t.node.contains(".moe.")).collect();
    if moe.is_empty() {
        return None;
    }
    let total: f64 = moe.iter().map(|t| t.ms).sum();
    // The expert matmuls include writing their inputs into textures (CPU adapters).
    let experts: f64 = moe.iter().filter(|t| t.op == "expert_matmul" || t.op == "to_texture").map(|t| t.ms).sum();
    Some((total, total - experts))
}

/// Wall-clock milliseconds of `iters` runs after `warmup`, sorted.
fn time_runs(c: &wgvision::Compiled, inputs: &[(&str, &[f32])], warmup: usize, iters: usize) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    for _ in 0..warmup {
        c.run(inputs)?;
    }
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        c.run(inputs)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(times)
}
