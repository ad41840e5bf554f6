//! Compile a graph for one device: a kernel variant per node (forced, cached autotune
//! result, or the op's rules), the lowering pass, then every dispatch planned and checked
//! against the adapter's limits before anything is allocated; then the memory plan,
//! buffers, all uniform params in one buffer, pipelines and bind groups.
use super::autotune::{self, Autotune};
use super::lower::{lower, Lowered};
use super::weights::GpuWeights;
use crate::device::Gpu;
use crate::error::{EngineError, Result};
use crate::graph::{DType, Graph, TensorKind};
use crate::kernels::{split_dispatch, KernelKey};
use crate::ops::{Arg, PlanCtx};
use crate::planner::{plan_memory, MemoryPlan};
use std::collections::HashMap;
use std::sync::Arc;
use wgpu::util::DeviceExt;

/// How to compile.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// Run every node in this variant where it can (op tests cover every variant).
    pub variant: Option<String>,
    /// Whether measured variant choices are used, or measured now.
    pub autotune: Autotune,
    /// Let a node write its output straight into the texture the next node reads (CPU
    /// adapters' texture kernels) instead of a to_texture copy. Off, every node's output
    /// stays in a buffer that `run_debug` reads back.
    pub fuse_textures: bool,
}

impl Default for CompileOptions {
    /// No forced variant; autotune as WGVISION_AUTOTUNE says (cached choices by default).
    fn default() -> Self {
        CompileOptions { variant: None, autotune: Autotune::from_env(), fuse_textures: true }
    }
}

pub(crate) struct Step {
    /// Index into `Compiled::nodes`.
    pub node: usize,
    pub pipeline: Arc<wgpu::ComputePipeline>,
    pub bind_group: wgpu::BindGroup,
    pub dispatch: (u32, u32),
}

/// One node of the lowered graph as compiled.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NodeInfo {
    pub name: String,
    /// The op's short name (`Op::name`).
    pub op: &'static str,
    /// The kernel variant it runs.
    pub variant: &'static str,
    /// Pipeline label (the kernel key); empty for a node without a kernel (an alias).
    pub kernel: String,
    #[serde(skip)]
    pub(crate) output: usize,
    #[serde(skip)]
    pub(crate) steps: std::ops::Range<usize>,
}

pub(crate) struct Io {
    pub name: String,
    pub shape: Vec<usize>,
    pub buffer: wgpu::Buffer,
}

/// Bytes the executor holds besides the weights, and what the planner saved.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MemoryReport {
    pub planned_bytes: u64,
    pub naive_bytes: u64,
    pub io_bytes: u64,
    pub shared_buffers: usize,
    /// Everything this compiled graph allocated on the device besides the weights: the
    /// shared activation buffers, inputs, outputs and their staging copies, the params
    /// buffer and the activation textures.
    pub device_bytes: u64,
}

/// A graph compiled for one device and one set of shapes.
pub struct Compiled {
    pub(crate) gpu: Arc<Gpu>,
    pub(crate) steps: Vec<Step>,
    pub(crate) nodes: Vec<NodeInfo>,
    pub(crate) inputs: Vec<Io>,
    pub(crate) outputs: Vec<(Io, wgpu::Buffer)>,
    /// Per tensor of the lowered graph: the buffer that holds it (None for textures).
    pub(crate) tensor_buffers: Vec<Option<wgpu::Buffer>>,
    pub(crate) shapes: Vec<Vec<usize>>,
    _params: wgpu::Buffer,
    pub memory: MemoryReport,
    pub flops: u64,
}

fn storage(gpu: &Gpu, label: &str, bytes: u64, usage: wgpu::BufferUsages) -> Result<wgpu::Buffer> {
    let size = bytes.div_ceil(4).max(1) * 4;
    // Bindings are checked per range in plan_steps; a buffer may be larger than one.
    gpu.check_buffer(label, size, false)?;
    Ok(gpu.device.create_buffer(&wgpu::BufferDescriptor { label: Some(label), size, usage, mapped_at_creation: false }))
}

/// What one binding of a step reads or writes.
enum Bind {
    /// Bytes [offset, offset + size) of a tensor's buffer.
    Tensor { tensor: usize, offset: u64, size: u64 },
    WeightTexture(String),
    /// A texture tensor of the lowered graph.
    Texture(usize),
}

/// One dispatch, planned before anything is allocated.
struct StepPlan {
    node: usize,
    key: KernelKey,
    params: Vec<u8>,
    bindings: Vec<(u32, Bind)>,
    workgroups: u64,
}

/// Bytes a tensor's binding covers (f16 matrices stay packed).
fn tensor_bytes(graph: &Graph, weights: &GpuWeights, t: usize) -> u64 {
    let d = &graph.tensors[t];
    match weights.buffer_bytes(&d.name) {
        Some(b) if d.kind == TensorKind::Weight => b,
        _ => (d.numel() as u64 * 4).max(4),
    }
}

/// Rows per dispatch so that every row-aligned binding stays within `limit` and every
/// range starts at an offset the adapter accepts (min_storage_buffer_offset_alignment).
fn rows_per_range(row_bytes: &[u64], limit: u64, align: u64) -> u64 {
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    let step = row_bytes.iter().fold(1u64, |acc, &rb| {
        let need = align / gcd(rb.max(1), align);
        acc / gcd(acc, need) * need
    });
    let widest = row_bytes.iter().copied().max().unwrap_or(1).max(1);
    (limit / widest) / step * step
}

/// What the kernels of `node` need to know about the adapter and its inputs.
pub(crate) fn plan_ctx(gpu: &Gpu, graph: &Graph, weights: &GpuWeights, node: &crate::graph::Node) -> PlanCtx {
    let input_dtypes: Vec<DType> = node
        .inputs
        .iter()
        .map(|&i| match graph.tensors[i].kind {
            TensorKind::Weight => weights.dtype(&graph.tensors[i].name).unwrap_or(DType::F32),
            _ => DType::F32,
        })
        .collect();
    let w_texture = node.inputs.get(1).is_some_and(|&w| graph.tensors[w].kind == TensorKind::Weight && weights.has_texture(&graph.tensors[w].name));
    let out_texture = graph.tensors[node.output].kind == TensorKind::Texture;
    PlanCtx { caps: gpu.caps, input_dtypes, w_texture, max_texture_dim: gpu.limits.max_texture_dimension_2d, out_texture }
}

/// The variant of every node: forced where it can run, else the autotune cache's (or a
/// fresh measurement's) choice, else the op's rules.
fn choose_variants(gpu: &Arc<Gpu>, graph: &Graph, weights: &GpuWeights, opts: &CompileOptions) -> Result<Vec<&'static str>> {
    if let Some(v) = &opts.variant {
        if !crate::ops::all_variant_names().contains(&v.as_str()) {
            return Err(EngineError::InvalidGraph(format!("unknown kernel variant {v:?} (known: {:?})", crate::ops::all_variant_names())));
        }
    }
    let mut out = Vec::with_capacity(graph.nodes.len());
    for node in &graph.nodes {
        let shapes: Vec<&[usize]> = node.inputs.iter().map(|&i| graph.shape(i)).collect();
        let ctx = plan_ctx(gpu, graph, weights, node);
        let cands = node.op.candidates(&shapes, &ctx);
        let first = *cands.first().ok_or_else(|| EngineError::InvalidOp { node: node.name.clone(), message: "no kernel variant can run it".into() })?;
        let forced = opts.variant.as_deref().and_then(|v| cands.iter().copied().find(|c| *c == v));
        let chosen = match forced {
            Some(v) => v,
            None if opts.variant.is_none() && cands.len() > 1 => autotune::choose(gpu, graph, weights, node, &cands, opts.autotune)?.unwrap_or(first),
            None => first,
        };
        out.push(chosen);
    }
    Ok(out)
}

/// Plan every dispatch of the lowered graph; nodes whose buffers exceed
/// max_storage_buffer_binding_size run as ranges of rows where their op allows.
fn plan_steps(gpu: &Gpu, low: &Lowered, weights: &GpuWeights, nodes: &mut Vec<NodeInfo>) -> Result<Vec<StepPlan>> {
    let graph = &low.graph;
    let limit = gpu.limits.max_storage_buffer_binding_size;
    let align = gpu.limits.min_storage_buffer_offset_alignment.max(4) as u64;
    let too_big = |what: String, needed: u64| EngineError::LimitExceeded { limit: "max_storage_buffer_binding_size", what, needed, available: limit };
    let mut out = Vec::new();
    for (ni, (node, &variant)) in graph.nodes.iter().zip(&low.variants).enumerate() {
        let first_step = out.len();
        let mut info = NodeInfo { name: node.name.clone(), op: node.op.name(), variant, kernel: String::new(), output: node.output, steps: first_step..first_step };
        if node.op.is_alias() {
            nodes.push(info);
            continue;
        }
        let shapes: Vec<&[usize]> = node.inputs.iter().map(|&i| graph.shape(i)).collect();
        let ctx = plan_ctx(gpu, graph, weights, node);
        let (kp, _) = node.op.plan(&shapes, graph.shape(node.output), &ctx, Some(variant)).map_err(|message| EngineError::InvalidOp { node: node.name.clone(), message })?;
        info.kernel = kp.key.label();
        let tensor_of = |arg: &Arg| match arg {
            Arg::Input(i) | Arg::InputTexture(i) => node.inputs[*i],
            Arg::Output | Arg::OutputTexture => node.output,
        };
        let is_texture = |arg: &Arg| matches!(arg, Arg::InputTexture(_) | Arg::OutputTexture);
        let whole = |slot: u32, arg: &Arg| -> (u32, Bind) {
            let t = tensor_of(arg);
            let d = &graph.tensors[t];
            let b = match (is_texture(arg), d.kind) {
                (true, TensorKind::Weight) => Bind::WeightTexture(d.name.clone()),
                (true, _) => Bind::Texture(t),
                (false, _) => Bind::Tensor { tensor: t, offset: 0, size: tensor_bytes(graph, weights, t) },
            };
            (slot, b)
        };
        let oversized: Vec<(u32, usize)> = kp
            .bindings
            .iter()
            .filter(|(_, a)| !is_texture(a))
            .map(|(slot, a)| (*slot, tensor_of(a)))
            .filter(|&(_, t)| tensor_bytes(graph, weights, t) > limit)
            .collect();
        if oversized.is_empty() {
            out.push(StepPlan { node: ni, key: kp.key.clone(), params: kp.params.clone(), bindings: kp.bindings.iter().map(|(s, a)| whole(*s, a)).collect(), workgroups: kp.workgroups });
        } else {
            // Too large for one binding: run the node as ranges of rows, if its op can.
            let name = |t: usize| format!("node {}: tensor {} {:?}", node.name, graph.tensors[t].name, graph.tensors[t].shape);
            let chunks = match &kp.chunks {
                Some(c) if oversized.iter().all(|(slot, _)| c.row_bytes.iter().any(|(s, _)| s == slot)) => c,
                _ => {
                    let (_, t) = oversized[0];
                    return Err(too_big(name(t), tensor_bytes(graph, weights, t)));
                }
            };
            let rbs: Vec<u64> = chunks.row_bytes.iter().map(|(_, b)| *b).collect();
            let per = rows_per_range(&rbs, limit, align) as usize;
            if per == 0 {
                let (_, t) = oversized[0];
                return Err(too_big(format!("{} (one row range)", name(t)), tensor_bytes(graph, weights, t)));
            }
            for r0 in (0..chunks.rows).step_by(per) {
                let len = per.min(chunks.rows - r0);
                let (params, workgroups) = (chunks.plan)(r0, len).map_err(|message| EngineError::InvalidOp { node: node.name.clone(), message })?;
                let bindings = kp
                    .bindings
                    .iter()
                    .map(|(slot, a)| match chunks.row_bytes.iter().find(|(s, _)| s == slot) {
                        Some((_, rb)) => (*slot, Bind::Tensor { tensor: tensor_of(a), offset: r0 as u64 * rb, size: len as u64 * rb }),
                        None => whole(*slot, a),
                    })
                    .collect();
                out.push(StepPlan { node: ni, key: kp.key.clone(), params, bindings, workgroups });
            }
        }
        info.steps = first_step..out.len();
        nodes.push(info);
    }
    // A binding that still exceeds the limit (a whole input of a chunked node) is an error.
    for sp in &out {
        for (_, b) in &sp.bindings {
            if let Bind::Tensor { tensor, size, .. } = b {
                if *size > limit {
                    let d = &graph.tensors[*tensor];
                    return Err(too_big(format!("node {}: tensor {} {:?}", graph.nodes[sp.node].name, d.name, d.shape), *size));
                }
            }
        }
    }
    Ok(out)
}

impl Compiled {
    pub fn new(gpu: Arc<Gpu>, graph: &Graph, weights: &GpuWeights) -> Result<Self> {
        Self::with_options(gpu, graph, weights, &CompileOptions::default())
    }

    /// Compile, running every node in `variant` where it can.
    pub fn with_variant(gpu: Arc<Gpu>, graph: &Graph, weights: &GpuWeights, variant: Option<&str>) -> Result<Self> {
        Self::with_options(gpu, graph, weights, &CompileOptions { variant: variant.map(str::to_string), ..Default::default() })
    }

    /// Everything is planned and checked against the adapter's limits first, so a graph
    /// that cannot fit fails naming the tensor, its size and the limit before any
    /// allocation; then buffers, params, pipelines and bind groups are made.
    pub fn with_options(gpu: Arc<Gpu>, graph: &Graph, weights: &GpuWeights, opts: &CompileOptions) -> Result<Self> {
        let variants = choose_variants(&gpu, graph, weights, opts)?;
        let low = lower(graph, &variants, weights, opts.fuse_textures)?;
        let mut nodes = Vec::new();
        let steps_plan = plan_steps(&gpu, &low, weights, &mut nodes)?;
        let graph = &low.graph;
        let plan: MemoryPlan = plan_memory(graph, 4);
        for (t, d) in graph.tensors.iter().enumerate() {
            if d.kind != TensorKind::Weight && d.kind != TensorKind::Texture && (plan.slot_of[t].is_some() || graph.inputs.contains(&t) || graph.outputs.contains(&t)) {
                gpu.check_buffer(&format!("tensor {} {:?}", d.name, d.shape), tensor_bytes(graph, weights, t), false)?;
            }
        }
        let usage_act = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
        let slots: Vec<wgpu::Buffer> = plan
            .slot_bytes
            .iter()
            .enumerate()
            .map(|(i, &b)| storage(&gpu, &format!("activations#{i}"), b, usage_act))
            .collect::<Result<_>>()?;
        let mut inputs = Vec::new();
        let mut outputs = Vec::new();
        let mut io_bytes = 0;
        // Per pinned tensor: its own buffer (weights live in `weights`).
        let mut own: HashMap<usize, wgpu::Buffer> = HashMap::new();
        for &t in &graph.inputs {
            let d = &graph.tensors[t];
            let bytes = d.numel() as u64 * 4;
            io_bytes += bytes;
            let buf = storage(&gpu, &d.name, bytes, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC)?;
            inputs.push(Io { name: d.name.clone(), shape: d.shape.clone(), buffer: buf.clone() });
            own.insert(t, buf);
        }
        for &t in &graph.outputs {
            let d = &graph.tensors[t];
            let bytes = d.numel() as u64 * 4;
            io_bytes += 2 * bytes;
            let buf = storage(&gpu, &d.name, bytes, usage_act)?;
            let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("staging"),
                size: buf.size(),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            outputs.push((Io { name: d.name.clone(), shape: d.shape.clone(), buffer: buf.clone() }, staging));
            own.insert(t, buf);
        }
        let buffer_of = |t: usize| -> Result<wgpu::Buffer> {
            let r = plan.root[t];
            let d = &graph.tensors[r];
            match d.kind {
                TensorKind::Weight => weights.buffer(&gpu, &d.name),
                _ => match (own.get(&r), plan.slot_of[r]) {
                    (Some(b), _) => Ok(b.clone()),
                    (None, Some(s)) => Ok(slots[s].clone()),
                    (None, None) => Err(EngineError::InvalidGraph(format!("tensor {} is never computed", graph.tensors[t].name))),
                },
            }
        };

        // All uniform params in one buffer.
        let align = gpu.limits.min_uniform_buffer_offset_alignment.max(16) as usize;
        let mut params = Vec::new();
        let mut offsets = Vec::new();
        for sp in &steps_plan {
            offsets.push(params.len());
            params.extend_from_slice(&sp.params);
            params.resize(params.len().div_ceil(align) * align, 0);
        }
        let params_buf = gpu.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("params"),
            contents: &params[..],
            usage: wgpu::BufferUsages::UNIFORM,
        });
        // Texture tensors, shared by size and consumer slot (each is written right before
        // the one node that reads it).
        let mut textures: HashMap<(u32, u32, usize), wgpu::TextureView> = HashMap::new();
        let mut texture_of = |t: usize| -> wgpu::TextureView {
            let shape = &graph.tensors[t].shape;
            let k = *shape.last().unwrap_or(&4);
            let (width, height) = ((k / 4) as u32, (shape.iter().product::<usize>() / k.max(1)) as u32);
            let slot = low.texture_slot.get(&t).copied().unwrap_or(0);
            textures
                .entry((width, height, slot))
                .or_insert_with(|| {
                    gpu.device
                        .create_texture(&wgpu::TextureDescriptor {
                            label: Some("activation texture"),
                            size: wgpu::Extent3d { width, height, depth_or_array_layers: 1 },
                            mip_level_count: 1,
                            sample_count: 1,
                            dimension: wgpu::TextureDimension::D2,
                            format: wgpu::TextureFormat::Rgba32Float,
                            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::STORAGE_BINDING,
                            view_formats: &[],
                        })
                        .create_view(&Default::default())
                })
                .clone()
        };
        let mut steps = Vec::new();
        for (sp, &offset) in steps_plan.iter().zip(&offsets) {
            let pipeline = gpu.pipeline(&sp.key)?;
            let mut buffers = Vec::new();
            let mut views = Vec::new();
            for (_, b) in &sp.bindings {
                match b {
                    Bind::Tensor { tensor, .. } => buffers.push(buffer_of(*tensor)?),
                    Bind::WeightTexture(name) => views.push(weights.textures[name].clone()),
                    Bind::Texture(t) => views.push(texture_of(*t)),
                }
            }
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &params_buf,
                    offset: offset as u64,
                    size: wgpu::BufferSize::new(sp.params.len() as u64),
                }),
            }];
            let (mut bi, mut vi) = (0, 0);
            for (binding, b) in &sp.bindings {
                let resource = match b {
                    Bind::Tensor { offset, size, .. } => {
                        bi += 1;
                        wgpu::BindingResource::Buffer(wgpu::BufferBinding { buffer: &buffers[bi - 1], offset: *offset, size: wgpu::BufferSize::new(*size) })
                    }
                    _ => {
                        vi += 1;
                        wgpu::BindingResource::TextureView(&views[vi - 1])
                    }
                };
                entries.push(wgpu::BindGroupEntry { binding: *binding, resource });
            }
            let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&nodes[sp.node].name),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            });
            let dispatch = split_dispatch(sp.workgroups, gpu.limits.max_compute_workgroups_per_dimension)?;
            steps.push(Step { node: sp.node, pipeline, bind_group, dispatch });
        }
        gpu.take_uncaptured()?;
        // rgba32float: 16 bytes a texel.
        let texture_bytes: u64 = textures.keys().map(|(w, h, _)| 16 * *w as u64 * *h as u64).sum();
        let device_bytes = plan.planned_bytes + io_bytes + params_buf.size() + texture_bytes;
        let tensor_buffers = (0..graph.tensors.len())
            .map(|t| match graph.tensors[t].kind {
                TensorKind::Texture => None,
                _ => {
                    // A weight kept only as a texture (or an alias of one) gets no buffer
                    // just for this table.
                    let root = &graph.tensors[plan.root[t]];
                    let texture_only = root.kind == TensorKind::Weight && weights.buffer_bytes(&root.name).is_some() && !weights.has_buffer(&root.name);
                    if texture_only { None } else { buffer_of(t).ok() }
                }
            })
            .collect();
        Ok(Compiled {
            gpu,
            steps,
            nodes,
            inputs,
            outputs,
            tensor_buffers,
            shapes: graph.tensors.iter().map(|t| t.shape.clone()).collect(),
            _params: params_buf,
            memory: MemoryReport {
                planned_bytes: plan.planned_bytes,
                naive_bytes: plan.naive_bytes,
                io_bytes,
                shared_buffers: plan.slot_bytes.len(),
                device_bytes,
            },
            flops: graph.flops(),
        })
    }

    /// Names and shapes of the inputs this compiled graph takes.
    pub fn input_specs(&self) -> Vec<(String, Vec<usize>)> {
        self.inputs.iter().map(|i| (i.name.clone(), i.shape.clone())).collect()
    }

    /// Every node as compiled (the lowered graph's, in order): op, variant, kernel.
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// Kernel label of every dispatch, in order (for inspection and profiles).
    pub fn kernels(&self) -> Vec<(String, String)> {
        self.steps.iter().map(|s| (self.nodes[s.node].name.clone(), self.nodes[s.node].kernel.clone())).collect()
    }

    /// Dispatches one run records.
    pub fn dispatches(&self) -> usize {
        self.steps.len()
    }

    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }
}
