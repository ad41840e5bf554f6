//! Autotune: measure the kernel variants that can run a node on this adapter and keep the
//! fastest, cached on disk per adapter, driver and shape class (as burn/cubecl do). A
//! compile uses a cached choice when there is one and the op's rules otherwise; `bench
//! --autotune` or WGVISION_AUTOTUNE=1 measures again (once per shape class and process)
//! and rewrites the cache. The cache is
//! $WGVISION_CACHE_DIR/autotune.json, else $XDG_CACHE_HOME/wgvision/autotune.json,
//! else ~/.cache/wgvision/autotune.json.
use super::compile::{CompileOptions, Compiled};
use super::weights::{GpuWeights, WeightData};
use crate::device::Gpu;
use crate::error::Result;
use crate::graph::{DType, Graph, Node, TensorKind};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Whether compiles use measured variant choices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Autotune {
    /// Use the cache where it has an entry (the default).
    #[default]
    Cached,
    /// Measure every shape class met (once per process) and update the cache.
    Refresh,
    /// The op's rules only.
    Off,
}

impl Autotune {
    /// WGVISION_AUTOTUNE=1 refreshes, =0 turns measured choices off; unset: cached.
    pub fn from_env() -> Autotune {
        match std::env::var("WGVISION_AUTOTUNE").as_deref() {
            Ok("1") | Ok("refresh") => Autotune::Refresh,
            Ok("0") | Ok("off") => Autotune::Off,
            _ => Autotune::Cached,
        }
    }
}

/// One measured shape class.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    pub variant: String,
    /// Median-free minimum over the timed runs, per candidate (ms).
    pub ms: BTreeMap<String, f64>,
}

#[derive(Default, Serialize, Deserialize)]
struct CacheFile {
    /// adapter key -> shape-class key -> entry
    adapters: BTreeMap<String, BTreeMap<String, Entry>>,
}

struct State {
    file: CacheFile,
    loaded: bool,
    /// Shape classes measured by this process (a refresh measures each once).
    fresh: BTreeSet<String>,
}

static STATE: Mutex<State> = Mutex::new(State { file: CacheFile { adapters: BTreeMap::new() }, loaded: false, fresh: BTreeSet::new() });

/// Where the cache lives, if anywhere.
pub fn cache_path() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(d) = var("WGVISION_CACHE_DIR") {
        return Some(d.join("autotune.json"));
    }
    let base = var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|h| h.join(".cache")))?;
    Some(base.join("wgvision").join("autotune.json"))
}

fn adapter_key(gpu: &Gpu) -> String {
    let i = &gpu.info;
    format!("{} | {:?} | {} | {} | {:04x}:{:04x}", i.name, i.backend, i.driver, i.driver_info, i.vendor, i.device)
}

/// The shape class of a node: its op with params, its inputs' dtypes, and every
/// dimension rounded up to a power of two (197 and 256 tokens tune alike).
fn shape_key(graph: &Graph, weights: &GpuWeights, node: &Node) -> String {
    let op = serde_json::to_string(&node.op).unwrap_or_else(|_| node.op.name().to_string());
    let ins: Vec<String> = node
        .inputs
        .iter()
        .map(|&t| {
            let d = &graph.tensors[t];
            let dtype = if d.kind == TensorKind::Weight { weights.dtype(&d.name).unwrap_or(DType::F32) } else { DType::F32 };
            let dims: Vec<String> = d.shape.iter().map(|n| n.next_power_of_two().to_string()).collect();
            format!("{dtype:?}[{}]", dims.join(","))
        })
        .collect();
    format!("{op} {}", ins.join(" "))
}

fn load(state: &mut State) {
    if state.loaded {
        return;
    }
    state.loaded = true;
    if let Some(text) = cache_path().and_then(|p| std::fs::read_to_string(p).ok()) {
        // A cache this version cannot read is ignored (and rewritten by the next refresh).
        if let Ok(f) = serde_json::from_str::<CacheFile>(&text) {
            state.file = f;
        }
    }
}

fn save(file: &CacheFile) {
    let Some(path) = cache_path() else { return };
    let Ok(text) = serde_json::to_string_pretty(file) else { return };
    // Written beside and renamed, so a reader never sees half a file; a cache that
    // cannot be written only costs a re-measure next time.
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
    if std::fs::write(&tmp, text).is_ok() && std::fs::rename(&tmp, &path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// The measured choice for `node` among `cands` (None: use the rules).
pub(crate) fn choose(gpu: &Arc<Gpu>, graph: &Graph, weights: &GpuWeights, node: &Node, cands: &[&'static str], mode: Autotune) -> Result<Option<&'static str>> {
    if mode == Autotune::Off {
        return Ok(None);
    }
    let (akey, skey) = (adapter_key(gpu), shape_key(graph, weights, node));
    let full = format!("{akey} / {skey}");
    let cached = |state: &State| -> Option<&'static str> {
        let e = state.file.adapters.get(&akey)?.get(&skey)?;
        cands.iter().copied().find(|c| *c == e.variant)
    };
    {
        let mut state = STATE.lock().map_err(|_| crate::error::EngineError::Gpu("autotune cache lock poisoned".into()))?;
        load(&mut state);
        if mode == Autotune::Cached || state.fresh.contains(&full) {
            return Ok(cached(&state));
        }
    }
    // Measure outside the lock: compiling a candidate compiles with autotune off.
    let trial = Trial::new(gpu, graph, weights, node)?;
    let mut ms = BTreeMap::new();
    for &v in cands {
        // A candidate that cannot compile or run here (a loop limit, say) is not timed.
        if let Ok(t) = trial.time(gpu, v) {
            ms.insert(v.to_string(), t);
        }
    }
    let best = ms.iter().min_by(|a, b| a.1.total_cmp(b.1)).map(|(v, _)| v.clone());
    let mut state = STATE.lock().map_err(|_| crate::error::EngineError::Gpu("autotune cache lock poisoned".into()))?;
    state.fresh.insert(full);
    if let Some(variant) = best {
        state.file.adapters.entry(akey.clone()).or_default().insert(skey.clone(), Entry { variant, ms });
        save(&state.file);
    }
    Ok(cached(&state))
}

/// `node` alone as a graph, on inputs of its shapes and weights of its dtypes, uploaded
/// once for all the candidates timed on it.
struct Trial {
    graph: Graph,
    weights: GpuWeights,
    inputs: Vec<(String, Vec<f32>)>,
}

impl Trial {
    fn new(gpu: &Gpu, graph: &Graph, weights: &GpuWeights, node: &Node) -> Result<Trial> {
        let mut b = Graph::builder();
        let mut ids = Vec::new();
        let mut inputs: Vec<(String, Vec<f32>)> = Vec::new();
        let mut dtypes = Vec::new();
        // Deterministic values in [-1, 1), nonzero (a key mask of them keeps every key).
        let pattern = |n: usize| (0..n).map(|i| ((i * 7919 % 1999) as f32 + 1.0) / 1000.0 - 1.0).collect::<Vec<f32>>();
        for (i, &t) in node.inputs.iter().enumerate() {
            let d = &graph.tensors[t];
            if d.kind == TensorKind::Weight {
                ids.push(b.weight(&format!("w{i}"), &d.shape)?);
                dtypes.push(weights.dtype(&d.name).unwrap_or(DType::F32));
            } else {
                ids.push(b.input(&format!("x{i}"), &d.shape)?);
                inputs.push((format!("x{i}"), pattern(d.numel())));
                dtypes.push(DType::F32);
            }
        }
        let out = b.node(&node.name, node.op.clone(), &ids)?;
        b.output(out, "y")?;
        let g = b.finish();
        let w = GpuWeights::upload(gpu, &g, |name| {
            let i: usize = name.strip_prefix('w')?.parse().ok()?;
            let shape = g.shape(g.find(name)?).to_vec();
            let vals = pattern(shape.iter().product());
            let bytes: Vec<u8> = match dtypes[i] {
                DType::F16 => vals.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect(),
                DType::F32 => bytemuck::cast_slice(&vals).to_vec(),
            };
            Some(WeightData { dtype: dtypes[i], shape, bytes: std::borrow::Cow::Owned(bytes) })
        })?;
        Ok(Trial { graph: g, weights: w, inputs })
    }

    /// GPU time in variant `v` (its lowering steps included): the best of three runs after
    /// a warm-up.
    fn time(&self, gpu: &Arc<Gpu>, v: &str) -> Result<f64> {
        let c = Compiled::with_options(gpu.clone(), &self.graph, &self.weights, &CompileOptions { variant: Some(v.to_string()), autotune: Autotune::Off, fuse_textures: true })?;
        let feed: Vec<(&str, &[f32])> = self.inputs.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
        let mut best = f64::INFINITY;
        for rep in 0..4 {
            let (_, times) = c.run_profiled(&feed)?;
            if rep > 0 {
                best = best.min(times.iter().map(|t| t.ms).sum());
            }
        }
        Ok(best)
    }
}
