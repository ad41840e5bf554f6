//! Shader checks that need no GPU: every variant any kernel plan can produce parses and
//! validates with naga, and every Rust uniform struct matches its WGSL mirror.
use wgvision_engine::kernels::{op_shaders, preprocess, KernelKey};
use wgvision_engine::ops::{all_variants, uniform_layouts};

fn module(key: &KernelKey) -> naga::Module {
    let src = preprocess(key.shader, &key.defines).unwrap();
    naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| panic!("{}: {}", key.label(), e.emit_to_string(&src)))
}

#[test]
fn every_shader_variant_validates() {
    let variants = all_variants();
    for key in &variants {
        let m = module(key);
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
            .validate(&m)
            .unwrap_or_else(|e| panic!("{}: {e:?}", key.label()));
        assert!(m.entry_points.iter().any(|e| e.name == key.entry), "{}: no entry point {}", key.label(), key.entry);
        for (name, _) in &key.constants {
            assert!(
                m.overrides.iter().any(|(_, o)| o.name.as_deref() == Some(name)),
                "{}: override {name} not declared",
                key.label()
            );
        }
    }
    // Every op shader file is reachable from some variant.
    for s in op_shaders() {
        assert!(variants.iter().any(|k| k.shader == s), "{s} is not covered by any variant");
    }
}

/// Every registered op has a params struct mirrored in its own shader (one name
/// everywhere: op `softmax`, `softmax.wgsl`); only an alias op (no kernel) has none.
#[test]
fn uniform_structs_match_wgsl() {
    let layouts = uniform_layouts();
    assert_eq!(layouts.len(), wgvision_engine::Op::NAMES.len(), "one layout per registered op");
    for (op, alias, (shader, name, size, fields)) in layouts {
        assert_eq!(shader.is_empty(), alias, "op {op}: only an alias op (no kernel) goes without a uniform layout");
        if alias {
            continue;
        }
        assert_eq!(shader, format!("{op}.wgsl"), "op {op}: its params belong to its own shader");
        let key = all_variants().into_iter().find(|k| k.shader == shader).unwrap();
        let m = module(&key);
        let (_, ty) = m.types.iter().find(|(_, t)| t.name.as_deref() == Some(name)).unwrap_or_else(|| panic!("{shader}: no struct {name}"));
        let naga::TypeInner::Struct { members, span } = &ty.inner else { panic!("{name} is not a struct") };
        assert_eq!(*span as usize, size, "{name}: WGSL size {span} vs Rust {size}");
        assert_eq!(members.len(), fields.len(), "{name}: member count");
        for (m, (f, off)) in members.iter().zip(&fields) {
            assert_eq!(m.name.as_deref(), Some(*f), "{name}: member order");
            assert_eq!(m.offset as usize, *off, "{name}.{f}: WGSL offset {} vs Rust {off}", m.offset);
        }
    }
}

#[test]
fn preprocessor_selects_bindings_and_emits_value_defines() {
    use wgvision_engine::kernels::Define;
    let with = preprocess("matmul.wgsl", &[Define::Value("TM", 4), Define::Flag("BIAS")]).unwrap();
    assert!(with.starts_with("const TM: u32 = 4u;"));
    assert!(with.contains("var<storage, read> bias"));
    assert!(with.contains("fn erf_approx"), "#include expanded");
    let without = preprocess("matmul.wgsl", &[Define::Value("TM", 4)]).unwrap();
    assert!(!without.contains("var<storage, read> bias"));
    assert!(without.contains("var<storage, read> w: array<f32>"));
    let f16 = preprocess("matmul.wgsl", &[Define::Value("TM", 4), Define::Flag("W_F16")]).unwrap();
    assert!(f16.contains("var<storage, read> w: array<u32>") && f16.contains("unpack2x16float"));
    assert!(preprocess("no_such.wgsl", &[]).is_err());
}

/// Every variant fits WebGPU's default maxComputeWorkgroupStorageSize (16 KiB), which
/// browsers and many drivers give (naga's layouter sizes the workgroup variables).
#[test]
fn workgroup_storage_within_webgpu_default() {
    for key in all_variants() {
        let m = module(&key);
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(m.to_ctx()).unwrap();
        let bytes: u32 = m
            .global_variables
            .iter()
            .filter(|(_, v)| v.space == naga::AddressSpace::WorkGroup)
            .map(|(_, v)| layouter[v.ty].size)
            .sum();
        assert!(bytes <= 16384, "{}: {bytes} bytes of workgroup storage > 16 KiB", key.label());
    }
}

/// The engine knows no model family: no source, test or shader under engine/ or shaders/
/// names one (graphs/ passes every family-specific rule in as op parameters).
#[test]
fn engine_and_shaders_name_no_model_family() {
    // Spelled in pieces, so this test does not find itself.
    const FAMILIES: [&str; 8] = [
        concat!("o", "wl"), concat!("vm", "oe"), concat!("v-m", "oe"), concat!("ti", "mm"),
        concat!("sw", "in"), concat!("max", "vit"), concat!("cl", "ip"), concat!("dino", "v2"),
    ];
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut stack = vec![root.join("src"), root.join("tests"), root.join("build.rs"), root.join("Cargo.toml"), root.join("../shaders")];
    let mut seen = 0;
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap().to_lowercase();
        seen += 1;
        for (i, line) in text.lines().enumerate() {
            for f in FAMILIES {
                assert!(!line.contains(f), "{}:{}: names the model family {f:?}: {line}", p.display(), i + 1);
            }
        }
    }
    assert!(seen > 40, "scanned {seen} files");
}
