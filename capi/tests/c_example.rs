//! The C examples and the C-level contract checks, compiled with the system C compiler
//! (`$CC`, else `cc`) against the library cargo built for this test, run on fixture
//! models converted from the golden checkpoints, and compared with the Rust API on the
//! same inputs.
//!
//! Cargo builds this package's library (cdylib, staticlib and rlib in one rustc run)
//! before its integration tests, into the directory above the test executable
//! (target/<profile>/deps/c_example-HASH), which is where the C programs link from.
#![cfg(unix)]
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use wgvision::weights::{self, format, labels::LABELS_FILE};

const CLASS_NAMES: [&str; 10] = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];
const QUERIES: [&str; 3] = ["a photo of a cat", "a remote control", "hello, world!"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn fixtures() -> PathBuf {
    repo().join("tests/fixtures")
}

/// The models, images and binaries, made once for all tests of this file.
struct Setup {
    dir: PathBuf,
    vit: PathBuf,
    owl: PathBuf,
    /// 80 x 60, not square and not the models' size.
    png: PathBuf,
    /// The same image's pixels, 8-bit RGB rows.
    rgb: PathBuf,
    /// A second image for batches (the generator's preprocessing input).
    png2: PathBuf,
}

fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("capi_c_example");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (vit, owl) = (dir.join("vit.safetensors"), dir.join("owl.safetensors"));
        convert_vit(&vit);
        convert_owl(&owl);
        let img = image::RgbImage::from_fn(80, 60, |x, y| image::Rgb([(x * 3) as u8, (y * 4) as u8, ((x + y) * 2) as u8]));
        let (png, rgb) = (dir.join("photo.png"), dir.join("photo.rgb"));
        img.save(&png).unwrap();
        std::fs::write(&rgb, img.as_raw()).unwrap();
        Setup { dir, vit, owl, png, rgb, png2: fixtures().join("owl/preprocess_input.png") }
    })
}

/// tests/fixtures/vit base_token (timm vit_base_patch16_224 cut to depth 2, 10 classes)
/// through the timm converter, with class names stored as `convert` stores id2label.
fn convert_vit(out: &Path) {
    let index: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixtures().join("vit/cases.json")).unwrap()).unwrap();
    let case = index["cases"].as_array().unwrap().iter().find(|c| c["name"] == "base_token").expect("base_token case");
    let sets: Vec<(String, serde_json::Value)> = case["sets"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let config = weights::timm_config(case["model"].as_str().unwrap(), &sets).unwrap();
    let (_, tensors) = weights::st::load(&fixtures().join("vit/base_token.checkpoint.safetensors")).unwrap();
    let converted = weights::convert(config, tensors).unwrap();
    let names: Vec<String> = CLASS_NAMES.iter().map(|n| format!("class {n}")).collect();
    format::write_model_with_files(out, &converted.config, converted.tensors, false, &[(LABELS_FILE.to_string(), names.join("\n"))]).unwrap();
}

/// tests/fixtures/owl owlvit_clip_vocab_e2e (transformers OWL-ViT, the reduced CLIP
/// vocabulary) through the hf converter, with its tokenizer stored.
fn convert_owl(out: &Path) {
    let name = "owlvit_clip_vocab_e2e";
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixtures().join(format!("owl/{name}.config.json"))).unwrap()).unwrap();
    let config = wgvision::ModelConfig::Owl(weights::owl::hf_config(&json).unwrap());
    let (_, tensors) = weights::st::load(&fixtures().join(format!("owl/{name}.checkpoint.safetensors"))).unwrap();
    let converted = weights::convert_hf(config, tensors).unwrap();
    let files = wgvision::tokenizer::ClipTokenizer::read_files(&fixtures().join("clip_tokenizer/tokenizer.json")).unwrap();
    format::write_model_with_files(out, &converted.config, converted.tensors, false, &files).unwrap();
}

/// Where cargo put this package's library for this test build.
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap().to_path_buf();
    let so = format!("{}wgvision_capi{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    for d in [deps.clone(), deps.parent().unwrap().to_path_buf()] {
        if d.join(&so).is_file() && d.join("libwgvision_capi.a").is_file() {
            return d;
        }
    }
    panic!("{so} and libwgvision_capi.a are not beside {} or in its parent: was the capi library built?", exe.display());
}

#[derive(Clone, Copy)]
enum Link {
    Shared,
    Static,
}

/// Compile a C program against include/wgvision.h and the library, warnings as errors.
fn compile(src: &Path, name: &str, link: Link) -> PathBuf {
    let cc = std::env::var("CC").ok().filter(|s| !s.trim().is_empty()).unwrap_or_else(|| "cc".into());
    let mut words = cc.split_whitespace();
    let mut cmd = Command::new(words.next().unwrap());
    cmd.args(words);
    let out = setup().dir.join(name);
    let lib = lib_dir();
    cmd.args(["-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-O1", "-I"]).arg(repo().join("capi/include")).arg(src).arg("-o").arg(&out);
    match link {
        Link::Shared => {
            cmd.arg(lib.join(format!("{}wgvision_capi{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX)));
            cmd.arg(format!("-Wl,-rpath,{}", lib.display()));
        }
        // What `rustc --print native-static-libs` lists for this library on Linux.
        Link::Static => {
            cmd.arg(lib.join("libwgvision_capi.a")).args(["-lpthread", "-ldl", "-lm", "-lrt", "-lutil", "-lgcc_s", "-lc"]);
        }
    }
    cmd.arg("-lm");
    let r = cmd.output().unwrap_or_else(|e| panic!("run the C compiler {cc:?} (set CC to another): {e}"));
    assert!(r.status.success(), "compiling {}:\n{}", src.display(), String::from_utf8_lossy(&r.stderr));
    out
}

/// Run a compiled program; its stdout on success.
fn run(exe: &Path, args: &[&Path]) -> String {
    let r = Command::new(exe).args(args).env("XDG_RUNTIME_DIR", std::env::var("XDG_RUNTIME_DIR").unwrap_or("/tmp".into())).output().unwrap();
    let (out, err) = (String::from_utf8_lossy(&r.stdout).into_owned(), String::from_utf8_lossy(&r.stderr).into_owned());
    assert!(r.status.success(), "{} failed ({}):\nstdout:\n{out}\nstderr:\n{err}", exe.display(), r.status);
    out
}

/// `key value` pairs of a line like "image 0 rank 1 class 3 score 1.5 name class three".
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let words: Vec<&str> = line.split(' ').collect();
    let i = words.iter().position(|w| *w == key).unwrap_or_else(|| panic!("no '{key}' in {line:?}"));
    words[i + 1]
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-5 * (1.0 + b.abs())
}

fn gpu() -> Arc<wgvision::Gpu> {
    wgvision::Gpu::new(None).unwrap()
}

/// examples/classify.c on a batch of two image files prints each image's top-5 classes,
/// scores and names as the Rust API computes them (same preprocessing, same model).
#[test]
fn classify_example_matches_rust_api() {
    let s = setup();
    let exe = compile(&repo().join("capi/examples/classify.c"), "classify", Link::Shared);
    let stdout = run(&exe, &[&s.vit, &s.png, &s.png2]);

    let model = wgvision::Model::load(&s.vit, gpu()).unwrap();
    let pre = model.config.preprocess().clone();
    let mut pixels = wgvision::image_input::load_image(&s.png, &pre).unwrap();
    pixels.extend(wgvision::image_input::load_image(&s.png2, &pre).unwrap());
    let [c, h, w] = pre.input_size;
    let out = model.run(&pixels, &[2, c, h, w]).unwrap();
    let logits = out.iter().find(|t| t.name == "logits").unwrap();
    assert_eq!(logits.shape, [2, 10]);
    let names = model.class_names().unwrap();

    assert!(stdout.contains(&format!("input {c}x{h}x{w} classes 10 output logits")), "{stdout}");
    let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with("image ")).collect();
    assert_eq!(lines.len(), 10, "two images, five classes each:\n{stdout}");
    for (i, row) in logits.data.chunks(10).enumerate() {
        let want = wgvision::top_k(row, 5);
        for (r, &(class, score)) in want.iter().enumerate() {
            let line = lines[i * 5 + r];
            assert_eq!(field(line, "image"), i.to_string(), "{line}");
            assert_eq!(field(line, "rank"), r.to_string(), "{line}");
            let (got_class, got_score): (usize, f32) = (field(line, "class").parse().unwrap(), field(line, "score").parse().unwrap());
            assert!(close(got_score, score), "image {i} rank {r}: C score {got_score}, Rust {score}");
            // Ranks may swap only between equal scores.
            assert!(got_class == class || close(row[got_class], score), "image {i} rank {r}: C class {got_class}, Rust {class}");
            assert!(line.ends_with(&format!("name {}", names[got_class])), "{line}");
        }
    }
    // The two images differ, so their results do.
    assert_ne!(logits.data[..10], logits.data[10..]);
}

/// examples/detect.c with text queries gives the Rust Detector's detections (same
/// stored tokenizer, same default options).
#[test]
fn detect_example_matches_rust_api() {
    let s = setup();
    let exe = compile(&repo().join("capi/examples/detect.c"), "detect", Link::Shared);
    let args: Vec<PathBuf> = [s.owl.clone(), s.png.clone()].into_iter().chain(QUERIES.iter().map(PathBuf::from)).collect();
    let stdout = run(&exe, &args.iter().map(PathBuf::as_path).collect::<Vec<_>>());

    let model = wgvision::Model::load(&s.owl, gpu()).unwrap();
    let tok = wgvision::tokenizer::ClipTokenizer::load(&fixtures().join("clip_tokenizer/tokenizer.json")).unwrap();
    let det = wgvision::detect::Detector::new(&model, Some(&tok)).unwrap();
    let img = wgvision::detect::open_rgb(&s.png).unwrap();
    let queries: Vec<String> = QUERIES.iter().map(|q| q.to_string()).collect();
    let want = det.detect(&img, &queries, &wgvision::detect::DetectOptions { threshold: 0.1, nms_iou: 0.3 }).unwrap();
    assert!(!want.is_empty(), "random weights give boxes above 0.1");

    let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with("det ")).collect();
    assert!(stdout.starts_with(&format!("{} detections above 0.1", want.len())), "{stdout}");
    assert_eq!(lines.len(), want.len(), "{stdout}");
    for (line, d) in lines.iter().zip(&want) {
        assert_eq!(field(line, "query").parse::<usize>().unwrap(), d.query, "{line}");
        assert!(line.ends_with(&format!("label {}", d.label)), "{line}");
        assert!(close(field(line, "score").parse().unwrap(), d.score), "{line} vs {d:?}");
        let i = line.find(" box ").unwrap() + 5;
        let b: Vec<f32> = line[i..].split(' ').take(4).map(|v| v.parse().unwrap()).collect();
        assert_eq!(b.len(), 4, "{line}");
        for (got, want) in b.iter().zip(d.bbox) {
            assert!((got - want).abs() <= 1e-4 * (1.0 + want.abs()), "{line} vs {d:?}");
        }
    }
}

/// tests/c/checks.c: every error path (null pointers, missing files, files that are no
/// model, bad sizes, too-small buffers, bad UTF-8, the wrong kind of model) returns its
/// status and a message from C, and detection from memory equals detection from the
/// file. Linked statically, so the .a is checked too.
#[test]
fn c_contract_checks() {
    let s = setup();
    let exe = compile(&repo().join("capi/tests/c/checks.c"), "checks", Link::Static);
    let (w, h) = (PathBuf::from("80"), PathBuf::from("60"));
    let stdout = run(&exe, &[&s.vit, &s.owl, &s.png, &s.rgb, &w, &h]);
    assert!(stdout.trim_start().starts_with("all ") && stdout.trim_end().ends_with("checks ok"), "{stdout}");
}

/// The header also compiles as C++ (cbindgen's extern "C" guard), where a C++ compiler
/// is installed.
#[test]
fn header_compiles_as_cpp() {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    if Command::new(&cxx).arg("--version").output().is_err() {
        eprintln!("no C++ compiler ({cxx}): skipped");
        return;
    }
    let r = Command::new(&cxx)
        .args(["-std=c++11", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", "-x", "c++"])
        .arg(repo().join("capi/include/wgvision.h"))
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
}

/// A zero-shot model (CLIPModel) is refused at load with WGV_STATUS_MODEL and a message
/// that says so, rather than loading into calls that cannot run it.
#[test]
fn zero_shot_models_are_refused_at_load() {
    let dir = std::env::temp_dir().join(format!("wgv_capi_zero_shot_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("clip.safetensors");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixtures().join("clip/clip_model.config.json")).unwrap()).unwrap();
    let config = weights::hf_config(&json, None).unwrap();
    let (_, tensors) = weights::st::load(&fixtures().join("clip/clip_model.checkpoint.safetensors")).unwrap();
    let converted = weights::convert_hf(config, tensors).unwrap();
    format::write_model_with_files(&model, &converted.config, converted.tensors, false, &[]).unwrap();
    unsafe {
        let mut gpu = std::ptr::null_mut();
        assert_eq!(wgvision_capi::wgv_gpu_create(std::ptr::null(), &mut gpu), wgvision_capi::WgvStatus::Ok);
        let path = std::ffi::CString::new(model.to_str().unwrap()).unwrap();
        let mut m = std::ptr::null_mut();
        assert_eq!(wgvision_capi::wgv_model_load(gpu, path.as_ptr(), &mut m), wgvision_capi::WgvStatus::Model);
        assert!(m.is_null());
        let msg = std::ffi::CStr::from_ptr(wgvision_capi::wgv_last_error()).to_string_lossy().into_owned();
        assert!(msg.contains("zero-shot"), "{msg}");
        wgvision_capi::wgv_gpu_free(gpu);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
