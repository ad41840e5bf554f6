//! `wgvision inspect`: config, tensors, parameter count, FLOPs per image, graph IR.
use super::CliResult;
use std::path::PathBuf;
use wgvision::ModelFile;

pub fn inspect(model: PathBuf, graph: bool, json: bool) -> CliResult {
    let file = ModelFile::open(&model)?;
    let g = file.config.build(file.config.min_batch())?;
    if graph {
        out!("{}", serde_json::to_string_pretty(&g)?);
        return Ok(());
    }
    let flops = g.flops() / file.config.min_batch() as u64;
    let params = file.parameter_count();
    if json {
        let tensors: Vec<_> = file
            .tensor_list()
            .into_iter()
            .map(|(n, d, s)| serde_json::json!({"name": n, "dtype": d, "shape": s}))
            .collect();
        let v = serde_json::json!({
            "config": serde_json::from_str::<serde_json::Value>(&file.config.to_json())?,
            "parameters": params,
            "flops_per_image": flops,
            "nodes": g.nodes.len(),
            "tensors": tensors,
        });
        out!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    out!("model:      {}", file.config.name());
    out!("config:     {}", file.config.to_json());
    out!("parameters: {params} ({:.2}M)", params as f64 / 1e6);
    out!("FLOPs/img:  {flops} ({:.2} GFLOP)", flops as f64 / 1e9);
    out!("graph:      {} nodes", g.nodes.len());
    out!("file:       {} bytes", file.file_bytes());
    out!("tensors:");
    for (n, d, s) in file.tensor_list() {
        out!("  {n:<40} {d:?} {s:?}");
    }
    Ok(())
}
