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

/// `bench --autotune` measures the variants of every shape class on this adapter and
/// writes the cache; a later bench (no flag) runs every node in the cached variant.
#[test]
fn bench_autotune_writes_the_cache_and_later_runs_use_it() {
    let (dir, model) = converted("cli_autotune");
    let m = model.to_str().unwrap();
    let cache = dir.join("cache");
    let env = [("WGVISION_CACHE_DIR", cache.to_str().unwrap())];
    let out = wgvision_env_ok(&["bench", m, "--iters", "1", "--warmup", "0", "--json", "--autotune"], &env);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["autotune"], "refresh");
    assert!(v["dispatches"].as_u64().unwrap() > 0);
    let file = cache.join("autotune.json");
    let mut c: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let adapters = c["adapters"].as_object_mut().unwrap();
    assert_eq!(adapters.len(), 1, "one adapter measured");
    let entries = adapters.values_mut().next().unwrap().as_object_mut().unwrap();
    let matmuls: Vec<&String> = entries.keys().filter(|k| k.contains("\"mat_mul\"")).collect();
    assert!(!matmuls.is_empty(), "matmul shape classes measured: {entries:?}");
    for e in entries.values() {
        assert!(e["ms"].as_object().unwrap().len() >= 2, "every candidate timed: {e}");
    }
    // Make `rows` (never the rules' choice for these shapes) the cached winner of every
    // matmul class: a plain bench must then run all matmuls in it.
    for (k, e) in entries.iter_mut() {
        if k.contains("\"mat_mul\"") {
            e["variant"] = "rows".into();
        }
    }
    std::fs::write(&file, serde_json::to_string(&c).unwrap()).unwrap();
    let out = wgvision_env_ok(&["bench", m, "--iters", "1", "--warmup", "0", "--json"], &env);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["autotune"], "cached");
    assert_eq!(v["variants"]["matmul"], serde_json::json!({ "rows": v["variants"]["matmul"]["rows"].as_u64().unwrap() }), "{}", v["variants"]);
    let nodes = v["nodes"].as_array().unwrap();
    assert!(nodes.iter().filter(|n| n["op"] == "matmul").all(|n| n["variant"] == "rows"));
    // Without a cache the rules choose (not `rows`).
    let out = wgvision_env_ok(&["bench", m, "--iters", "1", "--warmup", "0", "--json"], &[("WGVISION_CACHE_DIR", dir.join("empty").to_str().unwrap())]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["variants"]["matmul"].get("rows").is_none(), "{}", v["variants"]);
}

/// `run --dump-nodes DIR` writes every node's output named by node, and nodes.json in
/// execution order; the last node's dump is the model's output.
#[test]
fn run_dump_nodes_writes_every_node() {
    let (dir, model) = converted("cli_dump");
    let input = dir.join("in.safetensors");
    let pixels: Vec<u8> = (0..2 * 3 * 32 * 32).flat_map(|i| ((i % 17) as f32 / 8.0 - 1.0).to_le_bytes()).collect();
    write_safetensors(&input, &[("pixel_values".into(), safetensors::Dtype::F32, vec![2, 3, 32, 32], pixels)]);
    let (out, dump) = (dir.join("out.safetensors"), dir.join("nodes"));
    wgvision_ok(&["run", model.to_str().unwrap(), "--input", input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--dump-nodes", dump.to_str().unwrap()]);
    let index: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dump.join("nodes.json")).unwrap()).unwrap();
    let nodes = index["nodes"].as_array().unwrap();
    let names: Vec<&str> = nodes.iter().map(|n| n["node"].as_str().unwrap()).collect();
    for want in ["patchify", "blocks.0.norm1", "blocks.0.attn.qkv", "blocks.0.attn", "blocks.1.mlp.fc2"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(!names.iter().any(|n| n.ends_with(".to_texture")), "texture copies are not dumped");
    for n in nodes {
        let (shape, data) = read_tensor(&dump.join(n["file"].as_str().unwrap()), n["node"].as_str().unwrap());
        assert_eq!(serde_json::json!(shape), n["shape"]);
        assert!(data.iter().all(|v| v.is_finite()));
    }
    let last = nodes.last().unwrap();
    let (_, dumped) = read_tensor(&dump.join(last["file"].as_str().unwrap()), last["node"].as_str().unwrap());
    let (shape, logits) = read_tensor(&out, "logits");
    assert_eq!(shape, [2, 10]);
    assert_eq!(dumped, logits, "the last node is the output");
    // Not a directory: refused before any work.
    let bad = wgvision(&["run", model.to_str().unwrap(), "--input", input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--dump-nodes", input.to_str().unwrap()]);
    assert!(!bad.status.success());
}

/// `bench matmul:MxNxK` / `attention:BxNxHxD`: one kernel on synthetic data, its FLOPs,
/// GPU and wall GFLOP/s, variants; bad specs are refused with the expected form.
#[test]
fn bench_op_presets_report_one_kernel() {
    let out = wgvision_ok(&["bench", "matmul:37x20x48", "--iters", "2", "--warmup", "0", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["flops"], 2 * 37 * 20 * 48);
    assert!(v["gflops"].as_f64().unwrap() > 0.0 && v["gpu_ms"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["cold_ms"].as_f64().unwrap() >= v["min_ms"].as_f64().unwrap());
    assert!(v["nodes"].as_array().unwrap().iter().any(|n| n["op"] == "matmul" && n["variant"].is_string()));
    let out = wgvision_ok(&["bench", "attention:2x33x3x16", "--iters", "1", "--warmup", "0", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["flops"], 4 * 2 * 33 * 33 * 3 * 16);
    for bad in ["matmul:0x3x3", "matmul:3x3", "attention:1x2x3xq", "matmul:9999999x2x2"] {
        let out = wgvision(&["bench", bad, "--iters", "1"]);
        assert!(!out.status.success(), "{bad} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("expected matmul:MxNxK") || err.contains("expected attention:BxNxHxD"), "{bad}: {err}");
    }
}

/// Class names: transformers' id2label travels in the model file; a 1000-class model
/// without names gets ImageNet-1k's (as timm's ImageNetInfo lists them); `--json` prints
/// the ranked classes with their labels.
#[test]
fn run_image_prints_class_names() {
    let dir = temp_dir("cli_labels");
    let png = dir.join("img.png");
    image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 3) as u8, (y * 5) as u8, 90])).save(&png).unwrap();
    let json_top = |model: &std::path::Path| -> serde_json::Value {
        let out = wgvision_ok(&["run", model.to_str().unwrap(), "--image", png.to_str().unwrap(), "--json"]);
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // transformers Swin with real names in id2label.
    let fx = fixtures().join("swin");
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fx.join("hf_classifier_image_and_map_padding.config.json")).unwrap()).unwrap();
    let names = ["cat", "dog", "tabby, tabby cat", "fox", "owl"];
    cfg["id2label"] = serde_json::json!(names.iter().enumerate().map(|(i, n)| (i.to_string(), serde_json::Value::from(*n))).collect::<serde_json::Map<String, serde_json::Value>>());
    let cfg_path = dir.join("config.json");
    std::fs::write(&cfg_path, serde_json::to_string(&cfg).unwrap()).unwrap();
    let swin = dir.join("swin.safetensors");
    let ckpt = fx.join("hf_classifier_image_and_map_padding.checkpoint.safetensors");
    wgvision_ok(&["convert", "--from", "hf", "--config", cfg_path.to_str().unwrap(), ckpt.to_str().unwrap(), "-o", swin.to_str().unwrap()]);
    let v = json_top(&swin);
    assert_eq!(v["classes"], 5);
    for t in v["top"].as_array().unwrap() {
        assert_eq!(t["label"], names[t["index"].as_u64().unwrap() as usize], "{v}");
    }
    let text = String::from_utf8_lossy(&wgvision_ok(&["run", swin.to_str().unwrap(), "--image", png.to_str().unwrap()]).stdout).into_owned();
    let first = text.lines().find(|l| l.starts_with(" 1.")).unwrap();
    let idx: usize = first.split("class").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert!(first.ends_with(names[idx]), "{text}");

    // A 1000-class timm ViT (the fixture's checkpoint with a 1000-way head) has no names
    // of its own: ImageNet-1k's.
    let base = fixtures().join("vit/base_token.checkpoint.safetensors");
    let bytes = std::fs::read(&base).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, t) in st.tensors() {
        let (shape, data) = match name.as_str() {
            "head.weight" => (vec![1000, t.shape()[1]], (0..1000 * t.shape()[1]).flat_map(|i| (((i * 7919) % 1000) as f32 / 5000.0 - 0.1).to_le_bytes()).collect()),
            "head.bias" => (vec![1000], (0..1000).flat_map(|i| ((i % 13) as f32 / 100.0).to_le_bytes()).collect()),
            _ => (t.shape().to_vec(), t.data().to_vec()),
        };
        tensors.push((name, t.dtype(), shape, data));
    }
    let ckpt1000 = dir.join("vit1000.checkpoint.safetensors");
    write_safetensors(&ckpt1000, &tensors);
    let vit = dir.join("vit1000.safetensors");
    wgvision_ok(&[
        "convert", "--from", "timm", "--model", "vit_base_patch16_224", "--set", "depth=2", "--set", "num_classes=1000",
        "--set", "img_size=32", "--set", "patch_size=8", "--set", "embed_dim=48", "--set", "num_heads=3",
        ckpt1000.to_str().unwrap(), "-o", vit.to_str().unwrap(),
    ]);
    let v = json_top(&vit);
    assert_eq!(v["classes"], 1000);
    let imagenet: Vec<&str> = include_str!("../weights-tools/data/imagenet1k_labels.txt").lines().collect();
    let top = v["top"].as_array().unwrap();
    assert_eq!(top.len(), 5);
    for t in top {
        assert_eq!(t["label"], imagenet[t["index"].as_u64().unwrap() as usize], "{v}");
    }
    assert!(top.windows(2).all(|w| w[0]["prob"].as_f64() >= w[1]["prob"].as_f64()));
    // No names for other class counts: the label is null.
    let (_, model10) = converted("cli_labels10");
    let v = json_top(&model10);
    assert!(v["top"].as_array().unwrap().iter().all(|t| t["label"].is_null()), "{v}");
}

fn split_checkpoint(ckpt: &std::path::Path, dir: &std::path::Path) {
    // Two shards and the index transformers writes for sharded checkpoints.
    let bytes = std::fs::read(ckpt).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().cloned().collect();
    names.sort();
    let mut map = serde_json::Map::new();
    for (i, part) in names.chunks(names.len().div_ceil(2)).enumerate() {
        let file = format!("model-{:05}-of-00002.safetensors", i + 1);
        let tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = part
            .iter()
            .map(|n| {
                let t = st.tensor(n).unwrap();
                (n.clone(), t.dtype(), t.shape().to_vec(), t.data().to_vec())
            })
            .collect();
        write_safetensors(&dir.join(&file), &tensors);
        for n in part {
            map.insert(n.clone(), file.clone().into());
        }
    }
    let index = serde_json::json!({ "metadata": { "total_size": bytes.len() }, "weight_map": map });
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
}

/// `convert DIR -o OUT` on hub snapshot folders laid out as the hub's are: a transformers
/// folder (config.json, sharded weights with their index, preprocessor_config.json) and a
/// timm folder (config.json with architecture, num_classes, model_args, pretrained_cfg,
/// label_names; model.safetensors). No other flags.
#[test]
fn convert_hub_snapshot_folders() {
    let dir = temp_dir("cli_hub");
    let rel = |out: &std::path::Path, io: &std::path::Path| {
        let (_, got) = read_tensor(out, "logits");
        let (_, want) = read_tensor(io, "logits");
        rel_l2(&got, &want)
    };
    // transformers ViTForImageClassification, sharded.
    let fx = fixtures().join("hf_vit");
    let hf = dir.join("vit-hf");
    std::fs::create_dir_all(&hf).unwrap();
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fx.join("classifier_two_layers.config.json")).unwrap()).unwrap();
    cfg["id2label"] = serde_json::json!({"0": "apple", "1": "banana", "2": "cherry", "3": "date", "4": "elderberry"});
    std::fs::write(hf.join("config.json"), cfg.to_string()).unwrap();
    split_checkpoint(&fx.join("classifier_two_layers.checkpoint.safetensors"), &hf);
    let pre = serde_json::json!({"do_normalize": true, "do_resize": true, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
        "resample": 2, "rescale_factor": 0.00392156862745098, "size": {"height": 32, "width": 32}, "image_processor_type": "ViTImageProcessor"});
    std::fs::write(hf.join("preprocessor_config.json"), pre.to_string()).unwrap();
    let model = dir.join("vit-hf.safetensors");
    // The progress bar may draw at once (WGVISION_PROGRESS_AFTER=0); stderr is a pipe.
    let conv = std::process::Command::new(env!("CARGO_BIN_EXE_wgvision"))
        .args(["convert", hf.to_str().unwrap(), "-o", model.to_str().unwrap()])
        .env("WGVISION_PROGRESS_AFTER", "0")
        .output()
        .unwrap();
    assert!(conv.status.success(), "{}", String::from_utf8_lossy(&conv.stderr));
    // The summary: parameters and the bytes written.
    let summary = String::from_utf8_lossy(&conv.stderr).into_owned();
    // No progress bar on a pipe (no carriage returns, no bar cells).
    assert!(!summary.contains('\r') && !summary.contains("[#"), "{summary:?}");
    let mb = std::fs::metadata(&model).unwrap().len() as f64 / 1e6;
    assert!(summary.contains("M parameters") && summary.contains(&format!("{mb:.1} MB written")), "{summary}");
    let io = fx.join("classifier_two_layers.io.safetensors");
    let out = dir.join("hf-out.safetensors");
    wgvision_ok(&["run", model.to_str().unwrap(), "--input", io.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let e = rel(&out, &io);
    assert!(e < 1e-4, "sharded transformers folder: rel-L2 {e}");
    let png = dir.join("img.png");
    image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([(x * 6) as u8, (y * 8) as u8, 50])).save(&png).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&wgvision_ok(&["run", model.to_str().unwrap(), "--image", png.to_str().unwrap(), "--json"]).stdout).unwrap();
    let names = ["apple", "banana", "cherry", "date", "elderberry"];
    assert!(v["top"].as_array().unwrap().iter().all(|t| t["label"] == names[t["index"].as_u64().unwrap() as usize]), "{v}");
    // A shard missing from the folder is an error naming it.
    let broken = dir.join("vit-hf-broken");
    std::fs::create_dir_all(&broken).unwrap();
    for f in ["config.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors"] {
        std::fs::copy(hf.join(f), broken.join(f)).unwrap();
    }
    let bad = wgvision(&["convert", broken.to_str().unwrap(), "-o", dir.join("broken.safetensors").to_str().unwrap()]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("model-00002-of-00002.safetensors"));
    assert!(!dir.join("broken.safetensors").exists());

    // timm folder: architecture + model_args + pretrained_cfg + label_names.
    let tm = dir.join("vit-timm");
    std::fs::create_dir_all(&tm).unwrap();
    std::fs::copy(fixtures().join("vit/base_token.checkpoint.safetensors"), tm.join("model.safetensors")).unwrap();
    let labels: Vec<String> = (0..10).map(|i| format!("class-{i}")).collect();
    let cfg = serde_json::json!({
        "architecture": "vit_base_patch16_224", "num_classes": 10, "num_features": 48,
        "model_args": {"depth": 2, "img_size": 32, "patch_size": 8, "embed_dim": 48, "num_heads": 3},
        "pretrained_cfg": {"tag": "augreg2_in21k_ft_in1k", "input_size": [3, 32, 32], "interpolation": "bilinear", "crop_pct": 0.9,
            "crop_mode": "center", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "num_classes": 10},
        "label_names": labels,
    });
    std::fs::write(tm.join("config.json"), cfg.to_string()).unwrap();
    let model = dir.join("vit-timm.safetensors");
    wgvision_ok(&["convert", tm.to_str().unwrap(), "-o", model.to_str().unwrap()]);
    let io = fixtures().join("vit/base_token.io.safetensors");
    let out = dir.join("timm-out.safetensors");
    wgvision_ok(&["run", model.to_str().unwrap(), "--input", io.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let e = rel(&out, &io);
    assert!(e < 1e-4, "timm folder: rel-L2 {e}");
    let info: serde_json::Value = serde_json::from_slice(&wgvision_ok(&["inspect", model.to_str().unwrap(), "--json"]).stdout).unwrap();
    let text = info.to_string();
    assert!(text.contains("\"interpolation\":\"bilinear\"") && text.contains("0.9"), "pretrained_cfg's preprocessing: {text}");
    let v: serde_json::Value = serde_json::from_slice(&wgvision_ok(&["run", model.to_str().unwrap(), "--image", png.to_str().unwrap(), "--json"]).stdout).unwrap();
    assert!(v["top"].as_array().unwrap().iter().all(|t| t["label"] == format!("class-{}", t["index"])), "{v}");
    // A folder without config.json is refused.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let bad = wgvision(&["convert", empty.to_str().unwrap(), "-o", dir.join("e.safetensors").to_str().unwrap()]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("config.json"));
}

/// `run --image a b ...` and `--image DIR` classify in batches (`--batch`): one result per
/// image, in order, the same as one image at a time; with --json one line per image.
#[test]
fn run_images_in_batches() {
    let (dir, model) = converted("cli_batch");
    let imgs = dir.join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    let mut paths = Vec::new();
    for i in 0..5u32 {
        let p = imgs.join(format!("img{i}.png"));
        image::RgbImage::from_fn(40 + i * 3, 30 + i, |x, y| image::Rgb([(x * (i + 2)) as u8, (y * 7) as u8, (40 * i) as u8])).save(&p).unwrap();
        paths.push(p);
    }
    std::fs::write(imgs.join("notes.txt"), "not an image").unwrap();
    let lines = |args: &[&str]| -> Vec<serde_json::Value> {
        let out = wgvision_ok(args);
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let m = model.to_str().unwrap();
    let mut args = vec!["run", m, "--json", "--batch", "2", "--image"];
    let ps: Vec<&str> = paths.iter().map(|p| p.to_str().unwrap()).collect();
    args.extend(&ps);
    let batched = lines(&args);
    assert_eq!(batched.len(), 5);
    let folder = lines(&["run", m, "--json", "--batch", "3", "--image", imgs.to_str().unwrap()]);
    assert_eq!(folder.len(), 5, "the folder's five images, not notes.txt");
    for (i, p) in ps.iter().enumerate() {
        let single = lines(&["run", m, "--json", "--image", p]);
        assert_eq!(single.len(), 1);
        assert_eq!(batched[i]["image"], *p);
        assert_eq!(folder[i]["image"], *p);
        for v in [&batched[i], &folder[i]] {
            let (a, b) = (&v["top"][0], &single[0]["top"][0]);
            assert_eq!(a["index"], b["index"]);
            assert!((a["logit"].as_f64().unwrap() - b["logit"].as_f64().unwrap()).abs() < 1e-4, "{a} vs {b}");
        }
    }
    // Bad batch sizes and several images with -o are refused.
    assert!(!wgvision(&["run", m, "--batch", "0", "--image", ps[0]]).status.success());
    let o = dir.join("o.safetensors");
    assert!(!wgvision(&["run", m, "-o", o.to_str().unwrap(), "--image", ps[0], ps[1]]).status.success());
}

/// On a terminal (a pty from `script`, where the machine has it) the same conversion
/// draws the progress bar on stderr.
#[test]
fn convert_draws_a_progress_bar_on_a_terminal() {
    if std::process::Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` to make a pty");
        return;
    }
    let fx = fixtures().join("hf_vit");
    let dir = temp_dir("cli_progress_tty");
    let model = dir.join("m.safetensors");
    let cmd = format!(
        "{} convert --from hf --config {} {} -o {}",
        env!("CARGO_BIN_EXE_wgvision"),
        fx.join("classifier_two_layers.config.json").display(),
        fx.join("classifier_two_layers.checkpoint.safetensors").display(),
        model.display()
    );
    let out = std::process::Command::new("script").args(["-qec", &cmd, "/dev/null"]).env("WGVISION_PROGRESS_AFTER", "0").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && model.exists(), "{text}");
    assert!(text.contains("writing") && text.contains("[###") && text.contains("100%"), "no bar on a terminal: {text:?}");
}
