//! Golden tests: transformers CLIP and SigLIP checkpoints (random weights, the peer's own
//! tensor names and config.json, released image geometries: B/32 at 224, L/14 at 336,
//! SigLIP B/16 at 224 and 384) converted by the real `wgvision convert --from hf` and run
//! by the real `wgvision run`, every output against transformers' float64 result (f32
//! relative L2 <= 1e-4). Then the processors' preprocessing and zero-shot classification
//! from the CLI against CLIPProcessor + CLIPModel.
mod common;
use common::*;

#[derive(serde::Deserialize)]
struct Index {
    cases: Vec<Case>,
    zero_shot: Vec<ZeroShotCase>,
}

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    outputs: Vec<String>,
}

#[derive(serde::Deserialize)]
struct ZeroShotCase {
    name: String,
    labels: Vec<String>,
    logits_per_image: Vec<f64>,
    probs: Vec<f64>,
    /// Under tests/fixtures.
    tokenizer: String,
}

fn index() -> Index {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("clip/cases.json")).unwrap()).unwrap()
}

fn convert(dir: &std::path::Path, name: &str, dtype: &str, extra: &[&str]) -> std::path::PathBuf {
    let fx = fixtures().join("clip");
    let model = dir.join(format!("{name}.{dtype}.safetensors"));
    let (cfg, ckpt) = (fx.join(format!("{name}.config.json")), fx.join(format!("{name}.checkpoint.safetensors")));
    let mut args = vec!["convert", "--from", "hf", "--config", cfg.to_str().unwrap(), ckpt.to_str().unwrap(), "-o", model.to_str().unwrap(), "--dtype", dtype];
    args.extend(extra);
    wgvision_ok(&args);
    model
}

fn check_case(c: &Case, dtype: &str, bound: f64) {
    let dir = temp_dir(&format!("golden_clip_{}_{dtype}", c.name));
    let model = convert(&dir, &c.name, dtype, &[]);
    let io = fixtures().join(format!("clip/{}.io.safetensors", c.name));
    let out = dir.join("out.safetensors");
    wgvision_ok(&["run", model.to_str().unwrap(), "--input", io.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    for name in &c.outputs {
        let (got_shape, got) = read_tensor(&out, name);
        let (want_shape, want) = read_tensor(&io, name);
        assert_eq!(got_shape, want_shape, "{} {name}", c.name);
        let e = rel_l2(&got, &want);
        eprintln!("{:<26} {dtype} {name:<18} rel-L2 {e:.2e}", c.name);
        assert!(e <= bound, "{} {name}: {e:e} > {bound:e}", c.name);
    }
}

#[test]
fn clip_and_siglip_f32_match_transformers() {
    for c in index().cases {
        check_case(&c, "f32", 1e-4);
    }
}

#[test]
fn clip_and_siglip_f16_weights_match_transformers() {
    for c in index().cases.iter().filter(|c| c.name.ends_with("_model")) {
        check_case(c, "f16", 2e-2);
    }
}

/// Our preprocessing against CLIPImageProcessor (shortest edge, bicubic, center crop) and
/// SiglipImageProcessor (squash to the square) on one non-square picture. PIL and the
/// image crate round differently, so single pixels differ by a few 1/255 steps; the mean
/// difference must stay small.
#[test]
fn preprocessing_matches_the_transformers_processors() {
    let fx = fixtures().join("clip");
    let dir = temp_dir("golden_clip_preprocess");
    for (name, tensor) in [("clip_model", "clip_pixels"), ("siglip_model", "siglip_pixels")] {
        let model = convert(&dir, name, "f32", &[]);
        let file = wgvision::ModelFile::open(&model).unwrap();
        let got = wgvision::image_input::load_image(&fx.join("picture.png"), file.config.preprocess()).unwrap();
        let (shape, want) = read_tensor(&fx.join("picture.processed.safetensors"), tensor);
        assert_eq!(shape, [1, 3, 224, 224]);
        let diffs: Vec<f64> = got.iter().zip(&want).map(|(&a, &b)| (a as f64 - b).abs()).collect();
        let mean = diffs.iter().sum::<f64>() / diffs.len() as f64;
        let max = diffs.iter().cloned().fold(0.0, f64::max);
        eprintln!("{tensor}: mean |diff| {mean:.4}, max {max:.4} (normalised units)");
        assert!(mean < 0.01 && max < 0.25, "{tensor}: mean {mean}, max {max}");
    }
    // Hub folders with DeiTImageProcessor's config (both sides to 256, crop 224) and
    // DINOv2's BitImageProcessor config (shortest edge 256, crop 224): the processor config
    // read from the folder, then the same picture.
    for (case, proc, tensor) in [("deit_teacher_heads_averaged", "deit", "deit_pixels"), ("dinov2_518_run_224", "bit", "bit_pixels")] {
        let folder = dir.join(format!("{case}-hub"));
        std::fs::create_dir_all(&folder).unwrap();
        let hv = fixtures().join("hf_vit");
        std::fs::copy(hv.join(format!("{case}.config.json")), folder.join("config.json")).unwrap();
        std::fs::copy(hv.join(format!("{case}.checkpoint.safetensors")), folder.join("model.safetensors")).unwrap();
        std::fs::copy(fx.join(format!("{proc}_preprocessor_config.json")), folder.join("preprocessor_config.json")).unwrap();
        let model = dir.join(format!("{case}.safetensors"));
        wgvision_ok(&["convert", folder.to_str().unwrap(), "-o", model.to_str().unwrap()]);
        let file = wgvision::ModelFile::open(&model).unwrap();
        let mut pre = file.config.preprocess().clone();
        let mode = if proc == "deit" { "squash" } else { "center" };
        assert_eq!((pre.crop_mode.as_str(), pre.crop_pct, pre.interpolation.as_str()), (mode, 0.875, "bicubic"), "{case}");
        let pj: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fx.join(format!("{proc}_preprocessor_config.json"))).unwrap()).unwrap();
        let mean: Vec<f32> = pj["image_mean"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        assert_eq!(pre.mean.to_vec(), mean, "{case}: the processor's mean");
        // The DeiT fixture runs at 32 px; its processor's crop is 224.
        pre.input_size = [3, 224, 224];
        let got = wgvision::image_input::load_image(&fx.join("picture.png"), &pre).unwrap();
        let (_, want) = read_tensor(&fx.join("picture.processed.safetensors"), tensor);
        let diffs: Vec<f64> = got.iter().zip(&want).map(|(&a, &b)| (a as f64 - b).abs()).collect();
        let mean = diffs.iter().sum::<f64>() / diffs.len() as f64;
        let max = diffs.iter().cloned().fold(0.0, f64::max);
        eprintln!("{tensor}: mean |diff| {mean:.4}, max {max:.4} (normalised units)");
        assert!(mean < 0.01 && max < 0.25, "{tensor}: mean {mean}, max {max}");
    }
}

/// `run --image --label ... --json`: CLIPProcessor's pixels and tokens through CLIPModel
/// give these logits and softmax (SiglipProcessor + SiglipModel: sigmoid); the CLI must
/// rank the labels the same, with the same numbers (its own preprocessing and tokenizer).
#[test]
fn zero_shot_labels_from_the_cli_match_clip_and_siglip() {
    let fx = fixtures().join("clip");
    let dir = temp_dir("golden_clip_zero_shot");
    for z in index().zero_shot {
        let tok = fixtures().join(&z.tokenizer);
        let model = convert(&dir, &z.name, "f32", &["--tokenizer", tok.to_str().unwrap()]);
        let picture = fx.join("picture.png");
        let mut args = vec!["run", model.to_str().unwrap(), "--image", picture.to_str().unwrap(), "--json"];
        for l in &z.labels {
            args.extend(["--label", l.as_str()]);
        }
        let out = wgvision_ok(&args);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let line: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
        let ranked = line["labels"].as_array().unwrap();
        assert_eq!(ranked.len(), z.labels.len());
        let mut want: Vec<usize> = (0..z.labels.len()).collect();
        want.sort_by(|&a, &b| z.logits_per_image[b].partial_cmp(&z.logits_per_image[a]).unwrap());
        for (r, &i) in ranked.iter().zip(&want) {
            assert_eq!(r["label"], z.labels[i].as_str(), "{}: ranking", z.name);
            let (p, l) = (r["score"].as_f64().unwrap(), r["logit"].as_f64().unwrap());
            eprintln!("{}: {:<28} p {p:.5} (transformers {:.5}) logit {l:.4} ({:.4})", z.name, z.labels[i], z.probs[i], z.logits_per_image[i]);
            // Preprocessing rounding moves the logits slightly (see above).
            assert!((p - z.probs[i]).abs() < 1e-3 && (l - z.logits_per_image[i]).abs() < 5e-3, "{}: {}", z.name, z.labels[i]);
        }
    }
}

/// Zero-shot input mistakes: a clear message and a non-zero exit.
#[test]
fn zero_shot_bad_input_is_refused() {
    let fx = fixtures().join("clip");
    let dir = temp_dir("golden_clip_zero_shot_bad");
    let tok = fixtures().join("clip_tokenizer");
    let with_tok = convert(&dir, "clip_zero_shot", "f32", &["--tokenizer", tok.to_str().unwrap()]);
    let without = convert(&dir, "clip_model", "f32", &[]);
    let vision = convert(&dir, "clip_vision_b32_224", "f32", &[]);
    let picture = fx.join("picture.png");
    let (m, p) = (with_tok.to_str().unwrap(), picture.to_str().unwrap());
    for (args, needle) in [
        (vec!["run", m, "--image", p], "at least one --label"),
        (vec!["run", m, "--image", p, "--label", " "], "empty"),
        (vec!["run", without.to_str().unwrap(), "--image", p, "--label", "a cat"], "no tokenizer"),
        (vec!["run", vision.to_str().unwrap(), "--image", p, "--label", "a cat"], "--label applies to CLIPModel"),
        (vec!["run", m, "--image", p, "--label", "a cat", "-o", dir.join("x.safetensors").to_str().unwrap()], "-o applies to --input"),
    ] {
        let out = wgvision(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(needle) && !err.contains("panicked"), "{args:?}: {err}");
    }
    // --tokenizer given to a vision-only model at conversion.
    let out = wgvision(&["convert", "--from", "hf", "--config", fx.join("clip_vision_b32_224.config.json").to_str().unwrap(), fx.join("clip_vision_b32_224.checkpoint.safetensors").to_str().unwrap(), "--tokenizer", tok.to_str().unwrap(), "-o", dir.join("y.safetensors").to_str().unwrap()]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--tokenizer applies"));
}

/// Hub snapshot folders (config.json, model.safetensors, preprocessor_config.json and the
/// tokenizer files, as `snapshot_download` leaves them) convert with no flags, then
/// classify zero-shot exactly as the file conversions do.
#[test]
fn hub_folders_of_clip_and_siglip_convert_with_their_tokenizer() {
    let fx = fixtures().join("clip");
    let dir = temp_dir("golden_clip_hub");
    for z in index().zero_shot {
        let folder = dir.join(format!("{}-hub", z.name));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::copy(fx.join(format!("{}.config.json", z.name)), folder.join("config.json")).unwrap();
        std::fs::copy(fx.join(format!("{}.checkpoint.safetensors", z.name)), folder.join("model.safetensors")).unwrap();
        let siglip = z.name.starts_with("siglip");
        let pre = if siglip { "siglip_preprocessor_config.json" } else { "clip_preprocessor_config.json" };
        std::fs::copy(fx.join(pre), folder.join("preprocessor_config.json")).unwrap();
        let tok = fixtures().join(&z.tokenizer);
        let files: &[&str] = if siglip { &["spiece.model"] } else { &["vocab.json", "merges.txt"] };
        for f in files {
            let src = if tok.is_dir() { tok.join(f) } else { tok.clone() };
            std::fs::copy(src, folder.join(f)).unwrap();
        }
        let model = dir.join(format!("{}.safetensors", z.name));
        wgvision_ok(&["convert", folder.to_str().unwrap(), "-o", model.to_str().unwrap()]);
        let picture = fx.join("picture.png");
        let mut args = vec!["run", model.to_str().unwrap(), "--image", picture.to_str().unwrap(), "--json"];
        for l in &z.labels {
            args.extend(["--label", l.as_str()]);
        }
        let out = wgvision_ok(&args);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let line: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
        for r in line["labels"].as_array().unwrap() {
            let i = z.labels.iter().position(|l| l == r["label"].as_str().unwrap()).unwrap();
            let p = r["score"].as_f64().unwrap();
            assert!((p - z.probs[i]).abs() < 1e-3, "{} hub folder: {} p {p} vs {}", z.name, z.labels[i], z.probs[i]);
        }
    }
}

/// The library's zero-shot classifier embeds a label set once and reuses it: the text
/// tower runs once for two batches with the same labels, again for a new set; the split
/// graphs (text tower, then image tower + logits) give the whole CLIPModel's logits.
#[test]
fn zero_shot_text_embeddings_are_cached_per_label_set() {
    let fx = fixtures().join("clip");
    let dir = temp_dir("golden_clip_cache");
    let model = convert(&dir, "clip_model", "f32", &[]);
    let m = wgvision::Model::load(&model, wgvision::Gpu::new(None).unwrap()).unwrap();
    // clip_model's vocabulary is 300 ids: a stand-in tokenizer over it.
    struct Ids;
    impl wgvision::tokenizer::TextTokenizer for Ids {
        fn encode(&self, text: &str) -> Vec<u32> {
            let mut v: Vec<u32> = text.bytes().map(|b| 1 + b as u32 % 297).collect();
            v.push(299);
            v
        }
        fn encode_padded(&self, text: &str, max_len: usize) -> (Vec<u32>, Vec<u32>) {
            let mut ids = self.encode(text);
            ids.truncate(max_len);
            let mut mask = vec![1; ids.len()];
            ids.resize(max_len, 0);
            mask.resize(max_len, 0);
            (ids, mask)
        }
        fn pad_id(&self) -> u32 {
            0
        }
    }
    let zs = wgvision::zero_shot::ZeroShot::new(&m, &Ids).unwrap();
    let io = fx.join("clip_model.io.safetensors");
    let (ps, pixels) = read_tensor(&io, "pixel_values");
    let pixels: Vec<f32> = pixels.into_iter().map(|x| x as f32).collect();
    let labels: Vec<String> = ["a cat", "a dog", "a diagram"].map(String::from).to_vec();
    let a = zs.logits(&pixels, ps[0], &labels).unwrap();
    let b = zs.logits(&pixels, ps[0], &labels).unwrap();
    assert_eq!(a, b);
    assert_eq!(zs.text_runs(), 1, "the same label set is embedded once");
    zs.logits(&pixels, ps[0], &labels[..2]).unwrap();
    assert_eq!(zs.text_runs(), 2);
    // The whole model on the same ids gives the same logits.
    let l = 20;
    let (mut ids, mut mask) = (Vec::new(), Vec::new());
    for t in &labels {
        let (i, k) = wgvision::tokenizer::TextTokenizer::encode_padded(&Ids, t, l);
        ids.extend(i.iter().map(|&v| v as f32));
        mask.extend(k.iter().map(|&v| v as f32));
    }
    let full = m.run_inputs(&[("pixel_values", &pixels, &ps), ("input_ids", &ids, &[3, l]), ("attention_mask", &mask, &[3, l])]).unwrap();
    let want = &full.iter().find(|t| t.name == "logits_per_image").unwrap().data;
    let e = a.iter().zip(want).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(e < 1e-5, "split vs whole model: {e}");
    // Ranked results: best first, CLIP's softmax sums to one.
    let ranked = zs.classify(&pixels, ps[0], &labels).unwrap();
    assert_eq!(ranked.len(), ps[0]);
    for r in &ranked {
        assert!(r.windows(2).all(|w| w[0].logit >= w[1].logit));
        assert!((r.iter().map(|x| x.score).sum::<f32>() - 1.0).abs() < 1e-5);
    }
}
