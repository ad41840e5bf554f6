//! The CLI's happy paths beyond run --input: --image top-5, inspect, bench --json keys.
mod common;
use common::*;

fn converted(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = temp_dir(name);
    let model = dir.join("model.safetensors");
    let ckpt = fixtures().join("vit/base_token.checkpoint.safetensors");
    wgvision_ok(&[
        "convert", "--from", "timm", "--model", "vit_base_patch16_224", "--set", "depth=2", "--set", "num_classes=10",
        "--set", "img_size=32", "--set", "patch_size=8", "--set", "embed_dim=48", "--set", "num_heads=3",
        ckpt.to_str().unwrap(), "-o", model.to_str().unwrap(),
    ]);
    (dir, model)
}

#[test]
fn run_image_prints_top5() {
    let (dir, model) = converted("cli_image");
    let png = dir.join("gradient.png");
    let img = image::RgbImage::from_fn(50, 40, |x, y| image::Rgb([(x * 5) as u8, (y * 6) as u8, 128]));
    img.save(&png).unwrap();
    let out = wgvision_ok(&["run", model.to_str().unwrap(), "--image", png.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("top-5 of 10 outputs"), "{text}");
    let ranks: Vec<&str> = text.lines().filter(|l| l.contains("class") && l.contains("p=")).collect();
    assert_eq!(ranks.len(), 5, "{text}");
    // Probabilities are sorted descending.
    let p: Vec<f32> = ranks.iter().map(|l| l.split("p=").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap()).collect();
    assert!(p.windows(2).all(|w| w[0] >= w[1]), "{p:?}");
}

#[test]
fn inspect_reports_parameters_and_flops() {
    let (_, model) = converted("cli_inspect");
    let out = wgvision_ok(&["inspect", model.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // ViT with D=48, depth 2, mlp 192, 16 patches of 3*8*8, 10 classes (timm's parameter count).
    let d = 48;
    let per_block = 2 * 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d);
    let expected = (192 * d + d) + d + 17 * d + 2 * per_block + 2 * d + (d * 10 + 10);
    assert_eq!(v["parameters"].as_u64().unwrap() as usize, expected);
    let tokens = 17u64;
    let matmul: u64 = 2 * (16 * 192 * 48) + 2 * 2 * tokens * (48 * 144 + 48 * 48 + 48 * 192 + 192 * 48) + 2 * 48 * 10;
    let attn = 2 * 4 * tokens * tokens * 48;
    assert_eq!(v["flops_per_image"].as_u64().unwrap(), matmul + attn);
    let graph = wgvision_ok(&["inspect", model.to_str().unwrap(), "--graph"]);
    let g: serde_json::Value = serde_json::from_slice(&graph.stdout).unwrap();
    assert!(g["nodes"].as_array().unwrap().iter().any(|n| n["op"] == "attention"));
}

#[test]
fn bench_json_has_the_contract_keys() {
    let (_, model) = converted("cli_bench");
    let out = wgvision_ok(&["bench", model.to_str().unwrap(), "--batch", "2", "--iters", "2", "--warmup", "1", "--json", "--per-op"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in ["model", "batch", "adapter", "backend", "median_ms", "min_ms", "images_per_s", "gflops"] {
        assert!(!v[k].is_null(), "missing {k} in {v}");
    }
    assert_eq!(v["batch"], 2);
    assert!(v["median_ms"].as_f64().unwrap() >= v["min_ms"].as_f64().unwrap());
    let ops = v["per_op"].as_array().unwrap();
    assert!(ops.iter().any(|o| o["node"] == "blocks.1.attn"), "per-op rows name the nodes");
}

/// WGVISION_LIMITS=webgpu opens the device with WebGPU's default limits (bench --json
/// reports them); any other value is refused.
#[test]
fn webgpu_limits_from_the_environment() {
    let (_, model) = converted("cli_limits");
    let m = model.to_str().unwrap();
    let out = wgvision_env_ok(&["bench", m, "--iters", "1", "--warmup", "0", "--json"], &[("WGVISION_LIMITS", "webgpu")]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let l = &v["limits"];
    assert!(l["max_storage_buffer_binding_size"].as_u64().unwrap() <= 128 << 20, "{l}");
    assert!(l["max_buffer_size"].as_u64().unwrap() <= 256 << 20, "{l}");
    assert!(l["max_texture_dimension_2d"].as_u64().unwrap() <= 8192, "{l}");
    assert!(l["max_compute_workgroups_per_dimension"].as_u64().unwrap() <= 65535, "{l}");
    assert!(l["max_compute_workgroup_storage_size"].as_u64().unwrap() <= 16384, "{l}");
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_wgvision")).args(["bench", m, "--iters", "1"]).env("WGVISION_LIMITS", "huge").output().unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("WGVISION_LIMITS=huge"));
}
