//! Kernel registry: the embedded .wgsl files, a small preprocessor (#include, #ifdef,
//! value defines for array sizes), and a pipeline cache keyed by (shader, entry point,
//! defines, override constants).
use crate::device::Gpu;
use crate::error::{EngineError, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

include!(concat!(env!("OUT_DIR"), "/shaders.rs"));

/// Source text of an embedded shader file, e.g. "matmul.wgsl" or "common/act.wgsl".
pub fn shader_source(name: &str) -> Option<&'static str> {
    SHADER_FILES.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// The text a shader compiles from: the embedded file, or, when `WGVISION_SHADER_DIR` is
/// set (kernel development: edit a .wgsl and rerun without rebuilding), that folder's copy
/// of it. A file missing from the folder falls back to the embedded one.
fn load_source(name: &str) -> Option<std::borrow::Cow<'static, str>> {
    if let Some(dir) = std::env::var_os("WGVISION_SHADER_DIR").filter(|d| !d.is_empty()) {
        if let Ok(s) = std::fs::read_to_string(std::path::Path::new(&dir).join(name)) {
            return Some(s.into());
        }
    }
    shader_source(name).map(Into::into)
}

/// Names of the top-level (op) shaders, not the shared `common/` snippets.
pub fn op_shaders() -> impl Iterator<Item = &'static str> {
    SHADER_FILES.iter().map(|(n, _)| *n).filter(|n| !n.starts_with("common/"))
}

/// A preprocessor define: a flag (`#ifdef NAME`) or a value emitted as `const NAME: u32`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Define {
    Flag(&'static str),
    Value(&'static str, u32),
}

/// Expand `#include "file"`, `#ifdef`/`#ifndef`/`#else`/`#endif` for one shader variant.
pub fn preprocess(name: &str, defines: &[Define]) -> Result<String> {
    let err = |message: String| EngineError::Shader { shader: name.to_string(), message };
    let src = load_source(name).ok_or_else(|| err("no such shader file".into()))?;
    let mut out = String::new();
    for d in defines {
        if let Define::Value(n, v) = d {
            out.push_str(&format!("const {n}: u32 = {v}u;\n"));
        }
    }
    let flags: Vec<&str> = defines
        .iter()
        .filter_map(|d| if let Define::Flag(f) = d { Some(*f) } else { None })
        .collect();
    let mut body = String::new();
    expand(name, &src, &flags, &mut body, 0)?;
    // WGSL wants `enable` directives before any declaration, the value defines included.
    let (enables, rest): (Vec<&str>, Vec<&str>) = body.lines().partition(|l| l.trim_start().starts_with("enable "));
    let mut text = enables.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    text.push_str(&out);
    for l in rest {
        text.push_str(l);
        text.push('\n');
    }
    Ok(text)
}

fn expand(name: &str, src: &str, flags: &[&str], out: &mut String, depth: usize) -> Result<()> {
    let err = |message: String| EngineError::Shader { shader: name.to_string(), message };
    if depth > 8 {
        return Err(err("#include nested too deeply".into()));
    }
    // Stack of (this branch active, any enclosing branch inactive).
    let mut stack: Vec<(bool, bool)> = Vec::new();
    let active = |stack: &Vec<(bool, bool)>| stack.iter().all(|(a, _)| *a);
    for (lineno, line) in src.lines().enumerate() {
        let t = line.trim();
        let directive = |d: &str| t.strip_prefix(d).map(str::trim);
        if let Some(flag) = directive("#ifdef") {
            stack.push((flags.contains(&flag), false));
        } else if let Some(flag) = directive("#ifndef") {
            stack.push((!flags.contains(&flag), false));
        } else if t == "#else" {
            let top = stack.last_mut().ok_or_else(|| err(format!("line {}: #else without #ifdef", lineno + 1)))?;
            top.0 = !top.0;
        } else if t == "#endif" {
            stack.pop().ok_or_else(|| err(format!("line {}: #endif without #ifdef", lineno + 1)))?;
        } else if let Some(inc) = directive("#include") {
            if active(&stack) {
                let inc = inc.trim_matches('"');
                let inc_src = load_source(inc).ok_or_else(|| err(format!("#include of unknown file {inc}")))?;
                expand(inc, &inc_src, flags, out, depth + 1)?;
            }
        } else if t.starts_with('#') {
            return Err(err(format!("line {}: unknown directive {t}", lineno + 1)));
        } else if active(&stack) {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !stack.is_empty() {
        return Err(err("unterminated #ifdef".into()));
    }
    Ok(())
}

/// Everything that identifies one compiled pipeline.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KernelKey {
    pub shader: &'static str,
    pub entry: &'static str,
    pub defines: Vec<Define>,
    /// Override constants (name, value); values are integers in all our shaders.
    pub constants: Vec<(&'static str, u32)>,
}

impl KernelKey {
    /// Pipeline label, e.g. `matmul.main_rows+W_F16+BIAS,TM=4,WG=64`.
    pub fn label(&self) -> String {
        let mut s = format!("{}.{}", self.shader.trim_end_matches(".wgsl"), self.entry);
        for d in &self.defines {
            match d {
                Define::Flag(f) => s.push_str(&format!("+{f}")),
                Define::Value(n, v) => s.push_str(&format!(",{n}={v}")),
            }
        }
        for (n, v) in &self.constants {
            s.push_str(&format!(",{n}={v}"));
        }
        s
    }
}

/// Compiled pipelines shared by every model on a device.
#[derive(Default)]
pub struct PipelineCache {
    map: Mutex<HashMap<KernelKey, Arc<wgpu::ComputePipeline>>>,
}

impl PipelineCache {
    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Gpu {
    /// The pipeline for `key`, compiled on first use; shader errors come back as errors.
    pub fn pipeline(&self, key: &KernelKey) -> Result<Arc<wgpu::ComputePipeline>> {
        if let Some(p) = self.pipelines.map.lock().ok().and_then(|m| m.get(key).cloned()) {
            return Ok(p);
        }
        let label = key.label();
        let source = preprocess(key.shader, &key.defines)?;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let desc = wgpu::ShaderModuleDescriptor { label: Some(&label), source: wgpu::ShaderSource::Wgsl(source.into()) };
        let module = self.device.create_shader_module(desc);
        let constants: Vec<(&str, f64)> = key.constants.iter().map(|(n, v)| (*n, *v as f64)).collect();
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: None,
            module: &module,
            entry_point: Some(key.entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(EngineError::Shader { shader: label, message: e.to_string() });
        }
        let pipeline = Arc::new(pipeline);
        if let Ok(mut m) = self.pipelines.map.lock() {
            m.insert(key.clone(), pipeline.clone());
        }
        Ok(pipeline)
    }
}

/// Split a linear workgroup count into (x, y) within the 65535-per-dimension limit;
/// shaders recover the linear index with `linear_workgroup` and bounds-check it.
pub fn split_dispatch(count: u64, max_dim: u32) -> Result<(u32, u32)> {
    let max_dim = max_dim.max(1) as u64;
    if count <= max_dim {
        return Ok((count.max(1) as u32, 1));
    }
    let y = count.div_ceil(max_dim);
    if y > max_dim {
        return Err(EngineError::LimitExceeded {
            limit: "max_compute_workgroups_per_dimension",
            what: "a dispatch".into(),
            needed: count,
            available: max_dim * max_dim,
        });
    }
    Ok((max_dim as u32, y as u32))
}
