//! Golden tests: OWL-ViT and OWLv2 detection checkpoints from transformers (random
//! weights, transformers' names and config.json) converted by the real `wgvision convert
//! --from hf` and run by the real `wgvision run` on pixel_values + int64 input_ids +
//! attention_mask, against transformers' float64 logits, pred_boxes and objectness.
//! f32: relative L2 <= 1e-4 on each; padding queries must be exactly float32's minimum.
mod common;
use common::*;

#[test]
fn owl_f32_matches_transformers() {
    let text = std::fs::read_to_string(fixtures().join("owl/cases.json")).unwrap();
    let index: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = index["cases"].as_array().unwrap();
    assert!(cases.iter().any(|c| c["outputs"].as_array().unwrap().len() == 3), "an OWLv2 case with objectness");
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let fx = fixtures().join("owl");
        let dir = temp_dir(&format!("golden_owl_{name}"));
        let (model, out) = (dir.join("model.safetensors"), dir.join("out.safetensors"));
        let (cfg, ckpt, io) = (fx.join(format!("{name}.config.json")), fx.join(format!("{name}.checkpoint.safetensors")), fx.join(format!("{name}.io.safetensors")));
        let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
        wgvision_ok(&["convert", "--from", "hf", "--config", &s(&cfg), &s(&ckpt), "-o", &s(&model)]);
        wgvision_ok(&["run", &s(&model), "--input", &s(&io), "-o", &s(&out)]);
        for output in c["outputs"].as_array().unwrap() {
            let output = output.as_str().unwrap();
            let (shape, got) = read_tensor(&out, output);
            let (want_shape, want) = read_tensor(&io, output);
            assert_eq!(shape, want_shape, "{name}: {output} shape");
            // transformers masks padding queries with float64's minimum, which its float32
            // cast turns into -inf; in float32 it is float32's minimum.
            let masked: Vec<bool> = want.iter().map(|w| *w < -1e30).collect();
            let mut n_masked = 0;
            for (g, _) in got.iter().zip(&masked).filter(|(_, m)| **m) {
                assert_eq!(*g, f32::MIN as f64, "{name}: a padding query's logit");
                n_masked += 1;
            }
            let keep = |v: &[f64]| v.iter().zip(&masked).filter(|(_, m)| !**m).map(|(x, _)| *x).collect::<Vec<_>>();
            let e = rel_l2(&keep(&got), &keep(&want));
            eprintln!("{name:<36} {output:<18} rel-L2 {e:.2e} ({n_masked} padding-query logits)");
            assert!(e <= 1e-4, "{name}: {output} relative L2 {e:e} > 1e-4");
        }
    }
}

/// `run MODEL --image ... --query ... --json --draw`: the tokenizer stored at conversion
/// turns the queries into the ids transformers' tokenizer gave the fixture, detections
/// come back as JSON with labels among the queries, scores above the threshold and boxes
/// inside the image, and the drawn PNG is written at the image's size.
#[test]
fn owl_detect_cli_end_to_end() {
    let fx = fixtures().join("owl");
    let dir = temp_dir("owl_e2e");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let name = "owlvit_clip_vocab_e2e";
    let (cfg, ckpt, io) = (fx.join(format!("{name}.config.json")), fx.join(format!("{name}.checkpoint.safetensors")), fx.join(format!("{name}.io.safetensors")));
    let tok_json = fixtures().join("clip_tokenizer/tokenizer.json");
    let (model, bare) = (dir.join("model.safetensors"), dir.join("bare.safetensors"));
    wgvision_ok(&["convert", "--from", "hf", "--config", &s(&cfg), &s(&ckpt), "-o", &s(&model), "--tokenizer", &s(&tok_json)]);
    wgvision_ok(&["convert", "--from", "hf", "--config", &s(&cfg), &s(&ckpt), "-o", &s(&bare)]);
    // The stored tokenizer gives the ids the fixture was computed from.
    let tok = wgvision::tokenizer::ClipTokenizer::load(&tok_json).unwrap();
    let (_, want_ids) = read_tensor_any(&io, "input_ids");
    let queries = ["a photo of a cat", "a remote control", "hello, world!"];
    let ids: Vec<f64> = queries.iter().flat_map(|q| tok.encode_padded(q, 16).0).map(|v| v as f64).collect();
    assert_eq!(ids, want_ids);
    // An image that is not square and not the model's size.
    let img_path = dir.join("photo.png");
    let img = image::RgbImage::from_fn(80, 60, |x, y| image::Rgb([(x * 3) as u8, (y * 4) as u8, ((x + y) * 2) as u8]));
    img.save(&img_path).unwrap();
    let drawn = dir.join("drawn.png");
    let mut args = vec!["run".to_string(), s(&model), "--image".into(), s(&img_path), "--json".into(), "--draw".into(), s(&drawn), "--threshold".into(), "0.2".into()];
    for q in queries {
        args.extend(["--query".to_string(), q.to_string()]);
    }
    let out = wgvision_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json prints one JSON object");
    let dets = v["detections"].as_array().unwrap();
    assert!(!dets.is_empty(), "random weights still give boxes above 0.2: {v}");
    for d in dets {
        let label = d["label"].as_str().unwrap();
        assert!(queries.contains(&label));
        assert_eq!(queries[d["query"].as_u64().unwrap() as usize], label);
        let score = d["score"].as_f64().unwrap();
        assert!((0.2..=1.0).contains(&score), "{d}");
        let b: Vec<f64> = d["box"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        assert!(b[0] < b[2] && b[1] < b[3], "{d}");
        assert!(b[0] > -80.0 && b[2] < 160.0 && b[1] > -60.0 && b[3] < 120.0, "box near the image: {d}");
    }
    let png = image::open(&drawn).unwrap().to_rgb8();
    assert_eq!(png.dimensions(), (80, 60));
    assert_ne!(png, img, "boxes were drawn");
    // Without a stored or given tokenizer: a clear error, no image written.
    let drawn2 = dir.join("drawn2.png");
    let out = wgvision(&["run", &s(&bare), "--image", &s(&img_path), "--query", "a cat", "--draw", &s(&drawn2)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tokenizer"));
    assert!(!drawn2.exists());
}

/// The text tower run alone and the image tower on its embeddings give the whole
/// detector's outputs; a Detector embeds a query set once and reuses it across images.
#[test]
fn owl_text_tower_split_and_cached() {
    let fx = fixtures().join("owl");
    let dir = temp_dir("owl_split");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let name = "owlv2_patch16_batch2_pad_query";
    let model_path = dir.join("model.safetensors");
    let (cfg, ckpt, io) = (fx.join(format!("{name}.config.json")), fx.join(format!("{name}.checkpoint.safetensors")), fx.join(format!("{name}.io.safetensors")));
    wgvision_ok(&["convert", "--from", "hf", "--config", &s(&cfg), &s(&ckpt), "-o", &s(&model_path)]);
    let gpu = wgvision::Gpu::new(None).unwrap();
    let m = wgvision::Model::load(&model_path, gpu).unwrap();
    let f32s = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
    let (ps, pixels) = read_tensor(&io, "pixel_values");
    let (is, ids) = read_tensor_any(&io, "input_ids");
    let (_, mask) = read_tensor_any(&io, "attention_mask");
    let (pixels, ids, mask) = (f32s(pixels), f32s(ids), f32s(mask));
    let full = m.run_inputs(&[("pixel_values", &pixels, &ps), ("input_ids", &ids, &is), ("attention_mask", &mask, &is)]).unwrap();
    let text = m.run_inputs(&[("input_ids", &ids, &is), ("attention_mask", &mask, &is)]).unwrap();
    let q = text.iter().find(|t| t.name == "query_embeds").unwrap();
    let image = m.run_inputs(&[("pixel_values", &pixels, &ps), ("input_ids", &ids, &is), ("query_embeds", &q.data, &q.shape)]).unwrap();
    for t in &full {
        let split = image.iter().find(|x| x.name == t.name).unwrap_or_else(|| panic!("split graph lacks {}", t.name));
        assert_eq!(split.shape, t.shape);
        assert_eq!(split.data, t.data, "{}: split graphs compute the same kernels on the same values", t.name);
    }
    // Token ids beyond this model's 300-token vocabulary are refused before running.
    let tok = wgvision::tokenizer::ClipTokenizer::load(&fixtures().join("clip_tokenizer/tokenizer.json")).unwrap();
    let det = wgvision::detect::Detector::new(&m, Some(&tok)).unwrap();
    let img = image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8 * 5, y as u8 * 7, 90]));
    let opts = wgvision::detect::DetectOptions { threshold: 0.0, nms_iou: 0.3 };
    let err = det.detect(&img, &["a cat".to_string()], &opts).expect_err("ids beyond the vocabulary");
    assert!(err.to_string().contains("outside the vocabulary"), "{err}");
    assert_eq!(det.text_runs(), 0);
    // A model with the tokenizer's vocabulary: two images, one query set -> one text-tower
    // run; another query set -> a second.
    let e2e = "owlvit_clip_vocab_e2e";
    let path = dir.join("e2e.safetensors");
    let (cfg, ckpt) = (fx.join(format!("{e2e}.config.json")), fx.join(format!("{e2e}.checkpoint.safetensors")));
    wgvision_ok(&["convert", "--from", "hf", "--config", &s(&cfg), &s(&ckpt), "-o", &s(&path)]);
    let m = wgvision::Model::load(&path, m.gpu().clone()).unwrap();
    let det = wgvision::detect::Detector::new(&m, Some(&tok)).unwrap();
    let qs = vec!["a photo of a cat".to_string(), "a remote control".to_string()];
    let img2 = image::RgbImage::from_fn(50, 70, |x, y| image::Rgb([y as u8 * 3, 20, x as u8 * 4]));
    let d1 = det.detect(&img, &qs, &opts).unwrap();
    let d2 = det.detect(&img2, &qs, &opts).unwrap();
    assert_eq!(det.text_runs(), 1, "the query set is embedded once");
    assert!(!d1.is_empty() && !d2.is_empty());
    det.detect(&img, &qs[..1], &opts).unwrap();
    assert_eq!(det.text_runs(), 2);
}

/// Image-guided (one-shot) detection: the query embedding chosen from the query image's
/// boxes and the target image's logits and boxes match transformers'
/// `image_guided_detection`.
#[test]
fn owl_image_guided_matches_transformers() {
    let fx = fixtures().join("owl");
    let dir = temp_dir("owl_image_guided");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let name = "owlvit_image_guided";
    let model_path = dir.join("model.safetensors");
    let (cfg, ckpt, io) = (fx.join(format!("{name}.config.json")), fx.join(format!("{name}.checkpoint.safetensors")), fx.join(format!("{name}.io.safetensors")));
    wgvision_ok(&["convert", "--from", "hf", "--config", &s(&cfg), &s(&ckpt), "-o", &s(&model_path)]);
    let m = wgvision::Model::load(&model_path, wgvision::Gpu::new(None).unwrap()).unwrap();
    let det = wgvision::detect::Detector::new(&m, None).unwrap();
    let f32s = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
    let pixels = f32s(read_tensor(&io, "pixel_values").1);
    let query = f32s(read_tensor(&io, "query_pixel_values").1);
    let q = det.image_query_embedding(&query).unwrap();
    let mut ids = vec![0.0; 16];
    ids[0] = 1.0;
    let out = det.run_image(&pixels, &ids, &q).unwrap();
    for (ours, theirs) in [("logits", "logits"), ("pred_boxes", "target_pred_boxes")] {
        let got: Vec<f64> = out.iter().find(|t| t.name == ours).unwrap().data.iter().map(|&v| v as f64).collect();
        let (_, want) = read_tensor(&io, theirs);
        let e = rel_l2(&got, &want);
        eprintln!("{name:<36} {ours:<18} rel-L2 {e:.2e}");
        assert!(e <= 1e-4, "{ours}: relative L2 {e:e} > 1e-4");
    }
    // Text queries without a tokenizer are a clear error.
    let img = image::RgbImage::new(8, 8);
    let opts = wgvision::detect::DetectOptions { threshold: 0.1, nms_iou: 0.3 };
    let err = det.detect(&img, &["a cat".to_string()], &opts).err().unwrap();
    assert!(err.to_string().contains("tokenizer"), "{err}");
}

/// OWL-ViT preprocessing against transformers' OwlViTImageProcessor on a non-square
/// image. The resize filters differ (PIL bicubic vs Catmull-Rom), so the bound is loose:
/// measured relative L2 6.3e-3, largest difference 0.029 (about 2 gray levels).
#[test]
fn owl_vit_preprocessing_matches_transformers_processor() {
    let fx = fixtures().join("owl");
    let cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fx.join("owlvit_patch16_batch2_pad_query.config.json")).unwrap()).unwrap();
    let config = wgvision::graphs::ModelConfig::Owl(wgvision::weights::owl::hf_config(&cfg).unwrap());
    let img = wgvision::detect::open_rgb(&fx.join("preprocess_input.png")).unwrap();
    let got: Vec<f64> = wgvision::detect::owl_pixels(&img, &config).unwrap().iter().map(|&v| v as f64).collect();
    let (shape, want) = read_tensor(&fx.join("preprocess_owlvit.safetensors"), "pixel_values");
    assert_eq!(shape, [1, 3, 64, 64]);
    let e = rel_l2(&got, &want);
    let max = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    eprintln!("OWL-ViT preprocessing: rel-L2 {e:.2e}, max |diff| {max:.3}");
    assert!(e <= 1e-2 && max <= 0.05, "rel-L2 {e:e}, max {max}");
}

/// OWLv2 preprocessing against transformers' Owlv2ImageProcessor: pad to a square with
/// gray, Gaussian anti-aliasing, bilinear zoom, clip, on a non-square image.
#[test]
fn owlv2_preprocessing_matches_transformers_processor() {
    let fx = fixtures().join("owl");
    let cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fx.join("owlv2_patch16_batch2_pad_query.config.json")).unwrap()).unwrap();
    let config = wgvision::graphs::ModelConfig::Owl(wgvision::weights::owl::hf_config(&cfg).unwrap());
    let img = wgvision::detect::open_rgb(&fx.join("preprocess_input.png")).unwrap();
    let got: Vec<f64> = wgvision::detect::owl_pixels(&img, &config).unwrap().iter().map(|&v| v as f64).collect();
    let (shape, want) = read_tensor(&fx.join("preprocess_owlv2.safetensors"), "pixel_values");
    assert_eq!(shape, [1, 3, 64, 64]);
    let e = rel_l2(&got, &want);
    let max = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    eprintln!("OWLv2 preprocessing: rel-L2 {e:.2e}, max |diff| {max:.2e}");
    assert!(e <= 1e-4, "rel-L2 {e:e}, max {max}");
}
