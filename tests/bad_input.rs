//! Bad input through the real CLI: a clear message naming the file / tensor / shape,
//! exit status 1 (not a panic's 101), and no output file left behind.
mod common;
use common::*;
use safetensors::{serialize, tensor::TensorView, Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn expect_failure(args: &[&str], needles: &[&str], no_file: Option<&Path>) {
    let out = wgvision(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "wgvision {args:?} should fail cleanly; stderr:\n{err}");
    assert!(!err.contains("panicked"), "panic for {args:?}:\n{err}");
    for n in needles {
        assert!(err.contains(n), "stderr of {args:?} should mention {n:?}:\n{err}");
    }
    if let Some(p) = no_file {
        assert!(!p.exists(), "{} was left behind", p.display());
        let dir = p.parent().unwrap();
        let stray: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().contains(".tmp")).collect();
        assert!(stray.is_empty(), "temp files left in {}", dir.display());
    }
}

/// Copy a safetensors file, editing its tensors with `f` (name -> (dtype, shape, bytes)).
fn rewrite(src: &Path, dst: &Path, f: impl FnOnce(&mut HashMap<String, (Dtype, Vec<usize>, Vec<u8>)>)) {
    let bytes = std::fs::read(src).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut map: HashMap<String, (Dtype, Vec<usize>, Vec<u8>)> =
        st.tensors().into_iter().map(|(n, v)| (n, (v.dtype(), v.shape().to_vec(), v.data().to_vec()))).collect();
    f(&mut map);
    let views: Vec<(String, TensorView)> =
        map.iter().map(|(n, (d, s, b))| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    std::fs::write(dst, serialize(views, &None).unwrap()).unwrap();
}

struct Setup {
    dir: PathBuf,
    ckpt: PathBuf,
    model: PathBuf,
    io: PathBuf,
}

const MODEL: &str = "vit_base_patch16_224";
const SETS: [&str; 12] = [
    "--set", "depth=2", "--set", "num_classes=10", "--set", "img_size=32", "--set", "patch_size=8", "--set", "embed_dim=48", "--set", "num_heads=3",
];

fn setup(name: &str) -> Setup {
    let dir = temp_dir(name);
    let ckpt = fixtures().join("vit/base_token.checkpoint.safetensors");
    let io = fixtures().join("vit/base_token.io.safetensors");
    let model = dir.join("model.safetensors");
    let mut args = vec!["convert", "--from", "timm", "--model", MODEL];
    args.extend(SETS);
    args.extend([ckpt.to_str().unwrap(), "-o", model.to_str().unwrap()]);
    wgvision_ok(&args);
    Setup { dir, ckpt, model, io }
}

fn convert_args<'a>(ckpt: &'a str, out: &'a str) -> Vec<&'a str> {
    let mut a = vec!["convert", "--from", "timm", "--model", MODEL];
    a.extend(SETS);
    a.extend([ckpt, "-o", out]);
    a
}

#[test]
fn truncated_and_foreign_files() {
    let s = setup("bad_files");
    let out = s.dir.join("out.safetensors");
    let bytes = std::fs::read(&s.model).unwrap();
    let truncated = s.dir.join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let (t, o, io) = (truncated.to_str().unwrap(), out.to_str().unwrap(), s.io.to_str().unwrap());
    expect_failure(&["run", t, "--input", io, "-o", o], &["truncated.safetensors"], Some(&out));
    let text = s.dir.join("notes.safetensors");
    std::fs::write(&text, "this is not a safetensors file").unwrap();
    let tx = text.to_str().unwrap();
    expect_failure(&["run", tx, "--input", io, "-o", o], &["notes.safetensors", "not a valid safetensors"], Some(&out));
    expect_failure(&convert_args(tx, o), &["notes.safetensors"], Some(&out));
    // A checkpoint is not a model file.
    expect_failure(&["run", s.ckpt.to_str().unwrap(), "--input", io, "-o", o], &["not a wgvision model file"], Some(&out));
    expect_failure(&["run", "/nonexistent/model.safetensors", "--input", io, "-o", o], &["/nonexistent/model.safetensors"], Some(&out));
    expect_failure(&["inspect", t], &["truncated.safetensors"], None);
    expect_failure(&["bench", t], &["truncated.safetensors"], None);
}

#[test]
fn checkpoint_with_wrong_missing_or_extra_tensor() {
    let s = setup("bad_ckpt");
    let out = s.dir.join("converted.safetensors");
    let o = out.to_str().unwrap();
    let bad = s.dir.join("bad.safetensors");
    let b = bad.to_str().unwrap();

    rewrite(&s.ckpt, &bad, |m| {
        let e = m.get_mut("blocks.1.mlp.fc1.weight").unwrap();
        e.1 = vec![e.1[0] / 2, e.1[1] * 2];
    });
    expect_failure(&convert_args(b, o), &["blocks.1.mlp.fc1.weight", "[192, 48]", "[96, 96]"], Some(&out));

    rewrite(&s.ckpt, &bad, |m| {
        m.remove("blocks.0.attn.qkv.bias");
    });
    expect_failure(&convert_args(b, o), &["missing tensor 'blocks.0.attn.qkv.bias'"], Some(&out));

    rewrite(&s.ckpt, &bad, |m| {
        m.insert("blocks.9.extra".into(), (Dtype::F32, vec![2], vec![0; 8]));
    });
    expect_failure(&convert_args(b, o), &["unexpected tensor 'blocks.9.extra'"], Some(&out));

    rewrite(&s.ckpt, &bad, |m| {
        m.get_mut("pos_embed").unwrap().0 = Dtype::I8;
        let e = m.get_mut("pos_embed").unwrap();
        e.2.truncate(e.1.iter().product());
    });
    expect_failure(&convert_args(b, o), &["pos_embed", "dtype I8"], Some(&out));
    // A BF16 tensor in a model file: the message says what model files hold, without
    // listing BF16 among the dtypes it refuses.
    let bf16_model = s.dir.join("bf16_model.safetensors");
    let bytes = std::fs::read(&s.model).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut views: Vec<(String, TensorView)> = st.tensors();
    let head = views.iter().position(|(n, _)| n == "head.bias").unwrap();
    let data = views[head].1.data()[..views[head].1.data().len() / 2].to_vec();
    let shape = views[head].1.shape().to_vec();
    views[head].1 = TensorView::new(Dtype::BF16, shape, &data).unwrap();
    std::fs::write(&bf16_model, serialize(views, meta.metadata()).unwrap()).unwrap();
    let io = s.io.to_str().unwrap();
    expect_failure(&["run", bf16_model.to_str().unwrap(), "--input", io, "-o", o], &["head.bias", "BF16", "model files hold F32 or F16"], Some(&out));

    // The right checkpoint for another head size names the fix.
    let mut args = vec!["convert", "--from", "timm", "--model", MODEL];
    args.extend(&SETS[..2]);
    args.extend(&SETS[4..]);
    args.extend(["--set", "num_classes=11", s.ckpt.to_str().unwrap(), "-o", o]);
    expect_failure(&args, &["head.weight", "num_classes=10"], Some(&out));
}

#[test]
fn input_with_wrong_shape_dtype_or_name() {
    let s = setup("bad_inputs");
    let out = s.dir.join("out.safetensors");
    let (m, o) = (s.model.to_str().unwrap(), out.to_str().unwrap());
    let bad = s.dir.join("input.safetensors");
    let b = bad.to_str().unwrap();

    rewrite(&s.io, &bad, |t| {
        let e = t.get_mut("pixel_values").unwrap();
        e.1 = vec![2, 3, 16, 64];
    });
    expect_failure(&["run", m, "--input", b, "-o", o], &["pixel_values", "[B, 3, 32, 32]", "[2, 3, 16, 64]"], Some(&out));

    rewrite(&s.io, &bad, |t| {
        let (_, shape, data) = t.remove("pixel_values").unwrap();
        let wide: Vec<u8> = data.chunks_exact(4).flat_map(|c| (f32::from_le_bytes(c.try_into().unwrap()) as f64).to_le_bytes()).collect();
        t.insert("pixel_values".into(), (Dtype::F64, shape, wide));
    });
    expect_failure(&["run", m, "--input", b, "-o", o], &["pixel_values", "F64", "F32"], Some(&out));

    rewrite(&s.io, &bad, |t| {
        let e = t.remove("pixel_values").unwrap();
        t.insert("images".into(), e);
    });
    expect_failure(&["run", m, "--input", b, "-o", o], &["no tensor 'pixel_values'"], Some(&out));
    expect_failure(&["run", m, "--image", "/nonexistent.png"], &["/nonexistent.png"], None);
    let not_image = s.dir.join("fake.png");
    std::fs::write(&not_image, "not a png").unwrap();
    expect_failure(&["run", m, "--image", not_image.to_str().unwrap()], &["fake.png"], None);
}

#[test]
fn unknown_model_and_bad_options() {
    let dir = temp_dir("bad_options");
    let out = dir.join("m.safetensors");
    let o = out.to_str().unwrap();
    let ckpt = fixtures().join("vit/base_token.checkpoint.safetensors");
    let c = ckpt.to_str().unwrap();
    expect_failure(&["convert", "--from", "timm", "--model", "vit_enormous_patch3_224", c, "-o", o], &["unknown timm model 'vit_enormous_patch3_224'"], Some(&out));
    expect_failure(&["convert", "--from", "timm", "--model", "vit_base_patch16_siglip_224", c, "-o", o], &["global_pool 'map'"], Some(&out));
    expect_failure(&["convert", "--from", "timm", "--model", MODEL, "--set", "depth=two", c, "-o", o], &["--set depth=two", "not JSON"], Some(&out));
    expect_failure(&["convert", "--from", "timm", "--model", MODEL, "--set", "depthh=2", c, "-o", o], &["depthh"], Some(&out));
    expect_failure(&["convert", "--from", "timm", "--model", MODEL, "--set", "act_layer=\"mish\"", c, "-o", o], &["act_layer 'mish'"], Some(&out));
    expect_failure(&["bench", "vit_enormous_patch3_224"], &["unknown timm model"], None);
    expect_failure(&["bench", "vit_tiny_patch16_224", "--backend", "directx9"], &["unknown backend 'directx9'"], None);
    // No adapter for a backend this OS lacks: the message says how to get a software one.
    #[cfg(target_os = "linux")]
    expect_failure(&["bench", "vit_tiny_patch16_224", "--backend", "metal"], &["no GPU adapter found for backend Metal", "mesa-vulkan-drivers"], None);
}

#[test]
fn swin_checkpoint_and_config_errors() {
    let dir = temp_dir("bad_swin");
    let out = dir.join("model.safetensors");
    let out_s = out.to_str().unwrap();
    let fx = fixtures().join("swin");
    // timm: a relative-position table for another window size names the tensor and the fix.
    let ckpt = fx.join("timm_shift_then_unshifted_stage.checkpoint.safetensors");
    let bad = dir.join("bad_table.safetensors");
    rewrite(&ckpt, &bad, |m| {
        let t = m.get_mut("layers.0.blocks.1.attn.relative_position_bias_table").unwrap();
        t.1 = vec![t.1[0] - 1, t.1[1]];
        t.2.truncate(t.1[0] * t.1[1] * 4);
    });
    let sets = ["--set", "img_size=56", "--set", "embed_dim=16", "--set", "depths=[2,2]", "--set", "num_heads=[1,2]", "--set", "num_classes=10"];
    let mut args = vec!["convert", "--from", "timm", "--model", "swin_tiny_patch4_window7_224"];
    args.extend(sets);
    args.extend([bad.to_str().unwrap(), "-o", out_s]);
    expect_failure(&args, &["layers.0.blocks.1.attn.relative_position_bias_table", "window_size"], Some(&out));
    // timm: depths and num_heads of different lengths.
    let mut args = vec!["convert", "--from", "timm", "--model", "swin_tiny_patch4_window7_224", "--set", "depths=[2,2,2]"];
    args.extend([ckpt.to_str().unwrap(), "-o", out_s]);
    expect_failure(&args, &["depths", "num_heads"], Some(&out));
    // transformers: a config of another model type, and a map smaller than the window.
    let cfg_path = dir.join("config.json");
    let hf_ckpt = fx.join("hf_model_features.checkpoint.safetensors");
    let hf_args = ["convert", "--from", "hf", "--config", cfg_path.to_str().unwrap(), hf_ckpt.to_str().unwrap(), "-o", out_s];
    std::fs::write(&cfg_path, r#"{"model_type": "beit"}"#).unwrap();
    expect_failure(&hf_args, &["model_type 'beit'"], Some(&out));
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fx.join("hf_model_features.config.json")).unwrap()).unwrap();
    cfg["image_size"] = serde_json::json!(40);
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    expect_failure(&hf_args, &["smaller than window_size 7"], Some(&out));
    // --from hf without --config.
    expect_failure(&["convert", "--from", "hf", hf_ckpt.to_str().unwrap(), "-o", out_s], &["--config"], Some(&out));
}

#[test]
fn maxvit_checkpoint_and_config_errors() {
    let dir = temp_dir("bad_maxvit");
    let out = dir.join("model.safetensors");
    let out_s = out.to_str().unwrap();
    let ckpt = fixtures().join("maxvit/rw_symmetric_relposbias.checkpoint.safetensors");
    let sets = [
        "--set", "img_size=96", "--set", "embed_dim=[16,24]", "--set", "depths=[1,2]", "--set", "stem_width=[8,16]",
        "--set", "num_classes=5", "--set", "transformer_dim_head=8",
    ];
    let run = |extra: &[&str], ckpt: &std::path::Path, needles: &[&str]| {
        let mut args = vec!["convert", "--from", "timm", "--model", "maxvit_nano_rw_256"];
        args.extend(sets);
        args.extend(extra);
        args.extend([ckpt.to_str().unwrap(), "-o", out_s]);
        expect_failure(&args, needles, Some(&out));
    };
    // A relative-position table for another window names the tensor and the fix.
    let bad = dir.join("bad_table.safetensors");
    rewrite(&ckpt, &bad, |m| {
        let t = m.get_mut("stages.0.blocks.0.attn_grid.attn.rel_pos.relative_position_bias_table").unwrap();
        t.1 = vec![t.1[0] - 1, t.1[1]];
        t.2.truncate(t.1[0] * t.1[1] * 4);
    });
    run(&[], &bad, &["stages.0.blocks.0.attn_grid.attn.rel_pos.relative_position_bias_table", "img_size"]);
    // A BatchNorm without its running statistics.
    let bad = dir.join("no_running_var.safetensors");
    rewrite(&ckpt, &bad, |m| {
        m.remove("stages.1.blocks.1.conv.norm2.running_var");
    });
    run(&[], &bad, &["stages.1.blocks.1.conv.norm2.running_var"]);
    // A size whose stage map is not a multiple of the window (timm asserts too).
    run(&["--set", "img_size=100"], &ckpt, &["not a multiple of the window"]);
    // A field that is not in timm's config dataclasses.
    run(&["--set", "transformer_no_such_field=1"], &ckpt, &["transformer_no_such_field"]);
    // A block type wgvision does not build.
    expect_failure(&["convert", "--from", "timm", "--model", "maxvit_tiny_pm_256", ckpt.to_str().unwrap(), "-o", out_s], &["maxvit_tiny_pm_256"], Some(&out));
}

#[test]
fn vmoe_checkpoint_and_config_errors() {
    let dir = temp_dir("bad_vmoe");
    let out = dir.join("model.safetensors");
    let out_s = out.to_str().unwrap();
    let fx = fixtures().join("vmoe");
    let name = "k1_gap_groups_span_images_drops";
    let ckpt = fx.join(format!("{name}.checkpoint.safetensors"));
    let cfg_path = dir.join("config.json");
    let cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fx.join(format!("{name}.config.json"))).unwrap()).unwrap();
    let convert = |ckpt: &Path, needles: &[&str]| {
        let args = ["convert", "--from", "vmoe", "--config", cfg_path.to_str().unwrap(), ckpt.to_str().unwrap(), "-o", out_s];
        expect_failure(&args, needles, Some(&out));
    };
    // The config lists an MoE layer the checkpoint has as a dense MLP.
    let mut c = cfg.clone();
    c["encoder"]["moe"]["layers"] = serde_json::json!([0, 1]);
    std::fs::write(&cfg_path, c.to_string()).unwrap();
    convert(&ckpt, &["Encoder/encoderblock_0/Moe/Router/dense/kernel"]);
    // An expert kernel of the wrong shape names the tensor.
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let bad = dir.join("bad_expert.safetensors");
    rewrite(&ckpt, &bad, |m| {
        let t = m.get_mut("Encoder/encoderblock_1/Moe/Mlp/Dense_0/kernel").unwrap();
        t.1[0] -= 1;
        let n: usize = t.1.iter().product();
        t.2.truncate(n * 4);
    });
    convert(&bad, &["Encoder/encoderblock_1/Moe/Mlp/Dense_0/kernel"]);
    // A missing required key.
    let mut c = cfg.clone();
    c["encoder"].as_object_mut().unwrap().remove("num_heads");
    std::fs::write(&cfg_path, c.to_string()).unwrap();
    convert(&ckpt, &["num_heads"]);
    // A batch whose tokens do not fill whole routing groups (16 tokens per image, groups of 32).
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    wgvision_ok(&["convert", "--from", "vmoe", "--config", cfg_path.to_str().unwrap(), ckpt.to_str().unwrap(), "-o", out_s]);
    let input = dir.join("in.safetensors");
    let pixels = vec![0.5f32; 3 * 3 * 32 * 32];
    let bytes: Vec<u8> = bytemuck::cast_slice(&pixels).to_vec();
    let view = TensorView::new(Dtype::F32, vec![3, 3, 32, 32], &bytes).unwrap();
    std::fs::write(&input, serialize([("pixel_values", view)], &None).unwrap()).unwrap();
    let res = dir.join("out.safetensors");
    expect_failure(&["run", out_s, "--input", input.to_str().unwrap(), "-o", res.to_str().unwrap()], &["group_size 32"], Some(&res));
}

#[test]
fn owl_input_and_option_errors() {
    let dir = temp_dir("bad_owl");
    let fx = fixtures().join("owl");
    let name = "owlvit_patch16_batch2_pad_query";
    let model = dir.join("model.safetensors");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let (cfg, ckpt, io) = (fx.join(format!("{name}.config.json")), fx.join(format!("{name}.checkpoint.safetensors")), fx.join(format!("{name}.io.safetensors")));
    // An OWLv2 checkpoint under an OWL-ViT config: the objectness head is left over.
    let v2 = fx.join("owlv2_patch16_batch2_pad_query.checkpoint.safetensors");
    let out = dir.join("wrong.safetensors");
    expect_failure(&["convert", "--from", "hf", "--config", &s(&cfg), &s(&v2), "-o", &s(&out)], &["owlv2"], Some(&out));
    // --tokenizer on a model that is not a detector.
    let swin = fixtures().join("swin");
    let tok = fixtures().join("clip_tokenizer/tokenizer.json");
    let swin_cfg = swin.join("hf_model_features.config.json");
    let swin_ckpt = swin.join("hf_model_features.checkpoint.safetensors");
    expect_failure(&["convert", "--from", "hf", "--config", &s(&swin_cfg), &s(&swin_ckpt), "-o", &s(&out), "--tokenizer", &s(&tok)], &["--tokenizer"], Some(&out));
    wgvision_ok(&["convert", "--from", "hf", "--config", &s(&cfg), &s(&ckpt), "-o", &s(&model)]);
    // Token ids beyond the vocabulary, and a missing input_ids.
    let bad = dir.join("bad_ids.safetensors");
    rewrite(&io, &bad, |m| {
        let t = m.get_mut("input_ids").unwrap();
        t.2[0..8].copy_from_slice(&100_000i64.to_le_bytes());
    });
    let res = dir.join("out.safetensors");
    expect_failure(&["run", &s(&model), "--input", &s(&bad), "-o", &s(&res)], &["input_ids", "vocabulary"], Some(&res));
    rewrite(&io, &bad, |m| {
        m.remove("input_ids");
    });
    expect_failure(&["run", &s(&model), "--input", &s(&bad), "-o", &s(&res)], &["input_ids"], Some(&res));
    // --query on an image classifier.
    let vit_model = dir.join("swin.safetensors");
    wgvision_ok(&["convert", "--from", "hf", "--config", &s(&swin_cfg), &s(&swin_ckpt), "-o", &s(&vit_model)]);
    let img = dir.join("img.png");
    image::RgbImage::new(16, 16).save(&img).unwrap();
    expect_failure(&["run", &s(&vit_model), "--image", &s(&img), "--query", "a cat"], &["--query"], None);
}

/// Issue 10 gauntlet: huge counts, files that must not be destroyed, unbounded reads.
#[test]
fn sizes_and_counts_are_bounded() {
    let max = u64::MAX.to_string();
    expect_failure(&["bench", "vit_tiny_patch16_224", "--batch", &max], &["--batch", "at most 4096"], None);
    expect_failure(&["bench", "vit_tiny_patch16_224", "--iters", &max], &["--iters", "at most"], None);
    expect_failure(&["bench", "vit_tiny_patch16_224", "--batch", "100000"], &["at most 4096"], None);
    expect_failure(&["bench", "vit_tiny_patch16_224", "--iters", "100000000000"], &["at most"], None);
    let s = setup("bad_sizes");
    let o = s.dir.join("out.safetensors");
    let (m, os) = (s.model.to_str().unwrap(), o.to_str().unwrap());
    expect_failure(&["run", m, "--input", "/dev/zero", "-o", os], &["/dev/zero", "not a regular file"], Some(&o));
    expect_failure(&["bench", m, "--dtype", "f16"], &["--dtype applies to presets"], None);
}

#[test]
fn outputs_never_replace_inputs_links_or_devices() {
    let s = setup("bad_outputs");
    let io_copy = s.dir.join("in.safetensors");
    std::fs::copy(&s.io, &io_copy).unwrap();
    let (m, i) = (s.model.to_str().unwrap(), io_copy.to_str().unwrap());
    let before_model = std::fs::read(&s.model).unwrap();
    let before_in = std::fs::read(&io_copy).unwrap();
    expect_failure(&["run", m, "--input", i, "-o", m], &["is the input"], None);
    expect_failure(&["run", m, "--input", i, "-o", i], &["is the input"], None);
    // The same file under another spelling.
    let other = format!("{}/./in.safetensors", s.dir.display());
    expect_failure(&["run", m, "--input", i, "-o", &other], &["is the input"], None);
    let ckpt_copy = s.dir.join("ckpt.safetensors");
    std::fs::copy(&s.ckpt, &ckpt_copy).unwrap();
    let before_ckpt = std::fs::read(&ckpt_copy).unwrap();
    let c = ckpt_copy.to_str().unwrap();
    expect_failure(&convert_args(c, c), &["is the input"], None);
    assert_eq!(std::fs::read(&s.model).unwrap(), before_model, "model file changed");
    assert_eq!(std::fs::read(&io_copy).unwrap(), before_in, "input changed");
    assert_eq!(std::fs::read(&ckpt_copy).unwrap(), before_ckpt, "checkpoint changed");
    // A symlink target and a device are refused, and stay what they were.
    let target = s.dir.join("target.txt");
    std::fs::write(&target, b"keep").unwrap();
    let link = s.dir.join("link.safetensors");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    expect_failure(&["run", m, "--input", i, "-o", link.to_str().unwrap()], &["symbolic link"], None);
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    expect_failure(&["run", m, "--input", i, "-o", "/dev/null"], &["not a regular file"], None);
    // A missing output directory is reported before any work.
    expect_failure(&["run", m, "--input", i, "-o", "/nonexistent-dir/out.safetensors"], &["/nonexistent-dir", "does not exist"], None);
}

#[test]
fn images_truncated_huge_or_thin() {
    let s = setup("bad_images");
    let m = s.model.to_str().unwrap();
    // A 1 x 60000 PNG: the resize keeps only the rows under the crop (bounded memory).
    let thin = s.dir.join("thin.png");
    image::RgbImage::from_fn(1, 60000, |_, y| image::Rgb([(y % 251) as u8, 9, 200])).save(&thin).unwrap();
    let t = std::time::Instant::now();
    let out = wgvision_ok(&["run", m, "--image", thin.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("top-5"));
    assert!(t.elapsed().as_secs() < 20, "thin image took {:?}", t.elapsed());
    // Larger than the decoder accepts: refused from the header, before decoding.
    let huge = s.dir.join("huge.png");
    image::GrayImage::new(70000, 1).save(&huge).unwrap();
    expect_failure(&["run", m, "--image", huge.to_str().unwrap()], &["70000x1", "larger than wgvision decodes"], None);
    // A JPEG cut in half decodes to grey rows in `image`; PIL refuses it, and so do we.
    let jpg = s.dir.join("photo.jpg");
    image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([(x * 4) as u8, (y * 4) as u8, 77])).save(&jpg).unwrap();
    let bytes = std::fs::read(&jpg).unwrap();
    let cut = s.dir.join("cut.jpg");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    wgvision_ok(&["run", m, "--image", jpg.to_str().unwrap()]);
    expect_failure(&["run", m, "--image", cut.to_str().unwrap()], &["cut.jpg", "truncated"], None);
}

#[test]
fn run_options_and_inputs() {
    let s = setup("bad_run_opts");
    let m = s.model.to_str().unwrap();
    expect_failure(&["run", m, "--image", "x.png", "--threshold", "NaN"], &["--threshold NaN"], None);
    expect_failure(&["run", m, "--image", "x.png", "--nms-iou", "2"], &["--nms-iou 2"], None);
    // --image with -o writes the outputs there.
    let png = s.dir.join("img.png");
    image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8 * 5, y as u8 * 7, 3])).save(&png).unwrap();
    let o = s.dir.join("img_out.safetensors");
    wgvision_ok(&["run", m, "--image", png.to_str().unwrap(), "-o", o.to_str().unwrap()]);
    let (shape, _) = read_tensor(&o, "logits");
    assert_eq!(shape, vec![1, 10]);
    // Extra tensors of dtypes no input has (U8, BOOL) are ignored, not fatal.
    let extra = s.dir.join("extra.safetensors");
    rewrite(&s.io, &extra, |t| {
        t.insert("thumbnail".into(), (Dtype::U8, vec![2, 3], vec![1, 2, 3, 4, 5, 6]));
        t.insert("flags".into(), (Dtype::BOOL, vec![2], vec![1, 0]));
    });
    let o2 = s.dir.join("extra_out.safetensors");
    wgvision_ok(&["run", m, "--input", extra.to_str().unwrap(), "-o", o2.to_str().unwrap()]);
    // safetensors' own error names are translated.
    let big = s.dir.join("bigheader.safetensors");
    std::fs::write(&big, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, b'{', b'}']).unwrap();
    expect_failure(&["run", big.to_str().unwrap(), "--input", extra.to_str().unwrap(), "-o", o2.to_str().unwrap()], &["header length"], None);
    let out = wgvision(&["run", big.to_str().unwrap(), "--input", extra.to_str().unwrap(), "-o", o2.to_str().unwrap()]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("HeaderTooLarge"));
}

/// A copy of a model file with its config metadata edited by `f`.
fn edit_config(model: &Path, out: &Path, f: &dyn Fn(&mut serde_json::Value)) -> PathBuf {
    let bytes = std::fs::read(model).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = meta.metadata().clone().unwrap();
    let mut cfg: serde_json::Value = serde_json::from_str(&meta["wgvision.config"]).unwrap();
    f(&mut cfg);
    meta.insert("wgvision.config".into(), cfg.to_string());
    std::fs::write(out, serialize(st.tensors(), &Some(meta)).unwrap()).unwrap();
    out.to_path_buf()
}

/// The model file's config must match its tensors, and unknown config keys are refused.
#[test]
fn model_file_config_must_match_its_tensors() {
    let s = setup("bad_config_vs_file");
    let o = s.dir.join("out.safetensors");
    let edit = |name: &str, f: &dyn Fn(&mut serde_json::Value)| edit_config(&s.model, &s.dir.join(name), f);
    let shallow = edit("shallow.safetensors", &|c| c["depth"] = 1.into());
    let (io, os) = (s.io.to_str().unwrap(), o.to_str().unwrap());
    expect_failure(&["run", shallow.to_str().unwrap(), "--input", io, "-o", os], &["does not use", "blocks.1."], Some(&o));
    let unknown = edit("unknown.safetensors", &|c| c["qk_norm"] = true.into());
    expect_failure(&["run", unknown.to_str().unwrap(), "--input", io, "-o", os], &["qk_norm"], Some(&o));
    expect_failure(&["bench", unknown.to_str().unwrap()], &["qk_norm"], None);
}

/// Geometry no device can hold is refused at conversion, and an edited model file whose
/// input is too large is refused before the image is resized (it aborted in `resize`).
#[test]
fn huge_geometry_is_refused_before_allocation() {
    let s = setup("bad_geometry");
    let out = s.dir.join("swin_big.safetensors");
    let ckpt = fixtures().join("swin/timm_shift_then_unshifted_stage.checkpoint.safetensors");
    let args = [
        "convert", "--from", "timm", "--model", "swin_tiny_patch4_window7_224", "--set", "img_size=100000", "--set", "embed_dim=16",
        "--set", "depths=[2,2]", "--set", "num_heads=[1,2]", "--set", "num_classes=10", ckpt.to_str().unwrap(), "-o", out.to_str().unwrap(),
    ];
    expect_failure(&args, &["pixel_values", "[1, 3, 100000, 100000]", "2^32 elements"], Some(&out));
    // A ratio that would saturate a width to usize::MAX is refused as the option it is.
    let ratio = ["convert", "--from", "timm", "--model", MODEL, "--set", "mlp_ratio=1e30", s.ckpt.to_str().unwrap(), "-o", out.to_str().unwrap()];
    expect_failure(&ratio, &["option mlp_ratio", "(0, 64]"], Some(&out));
    let err = String::from_utf8_lossy(&wgvision(&ratio).stderr).into_owned();
    assert!(!err.contains("18446744073709551615"), "{err}");
    let big = edit_config(&s.model, &s.dir.join("big_input.safetensors"), &|c| {
        c["img_size"] = serde_json::json!([100000, 100000]);
        c["preprocess"]["input_size"] = serde_json::json!([3, 100000, 100000]);
    });
    let png = s.dir.join("small.png");
    image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8, y as u8, 9])).save(&png).unwrap();
    expect_failure(&["run", big.to_str().unwrap(), "--image", png.to_str().unwrap()], &["GB"], None);
}
