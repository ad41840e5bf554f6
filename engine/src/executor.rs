//! Compile a graph for one device (memory plan, kernel choice, pipelines, bind groups and
//! all uniform params in one buffer), then run it: upload inputs, one command encoder,
//! one compute pass, one submit, read outputs. Nothing is created on the run path.
use crate::device::Gpu;
use crate::error::{EngineError, Result};
use crate::graph::{DType, Graph, TensorKind};
use crate::kernels::split_dispatch;
use crate::ops::{Arg, Op, PlanCtx};
use crate::planner::{plan_memory, MemoryPlan};
use std::collections::HashMap;
use std::sync::Arc;
use wgpu::util::DeviceExt;

/// A weight as read from a model file.
pub struct WeightData<'a> {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub bytes: std::borrow::Cow<'a, [u8]>,
}

/// Weights resident on the device, shared by every compiled batch size of a model.
pub struct GpuWeights {
    buffers: HashMap<String, (wgpu::Buffer, DType)>,
    /// CPU adapters: f32 matmul weights [K, N] (N a multiple of 4) also as rgba32float
    /// textures [N/4 x K], for the texture matmul kernel.
    textures: HashMap<String, wgpu::TextureView>,
    pub bytes: u64,
}

fn f16_to_f32_bytes(b: &[u8]) -> Vec<u8> {
    b.chunks_exact(2)
        .flat_map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32().to_le_bytes())
        .collect()
}

impl GpuWeights {
    /// Upload every weight the graph names. Matmul weight matrices keep their file dtype
    /// (f16 stays packed f16); small vectors are widened to f32.
    pub fn upload<'a>(gpu: &Gpu, graph: &Graph, mut lookup: impl FnMut(&str) -> Option<WeightData<'a>>) -> Result<Self> {
        let packed: Vec<usize> = graph
            .nodes
            .iter()
            .filter(|n| matches!(n.op, Op::MatMul { .. }))
            .map(|n| n.inputs[1])
            .collect();
        let experts: Vec<usize> = graph.nodes.iter().filter(|n| matches!(n.op, Op::ExpertMatMul { .. })).map(|n| n.inputs[1]).collect();
        let mut buffers = HashMap::new();
        let mut textures = HashMap::new();
        let mut total = 0;
        for (id, t) in graph.tensors.iter().enumerate() {
            if t.kind != TensorKind::Weight {
                continue;
            }
            let w = lookup(&t.name).ok_or_else(|| EngineError::MissingWeight(t.name.clone()))?;
            if w.shape != t.shape {
                return Err(EngineError::ShapeMismatch { tensor: t.name.clone(), expected: t.shape.clone(), got: w.shape });
            }
            let (dtype, mut bytes) = match (w.dtype, packed.contains(&id)) {
                (DType::F16, false) => (DType::F32, f16_to_f32_bytes(&w.bytes)),
                (d, _) => (d, w.bytes.into_owned()),
            };
            bytes.resize(bytes.len().div_ceil(4).max(1) * 4, 0);
            // Bindings (a weight bound whole, a residual bound by row ranges) are checked
            // when the graph is compiled.
            gpu.check_buffer(&format!("weight {}", t.name), bytes.len() as u64, false)?;
            let buf = gpu.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(&t.name),
                contents: &bytes,
                usage: wgpu::BufferUsages::STORAGE,
            });
            total += bytes.len() as u64;
            let max_tex = gpu.limits.max_texture_dimension_2d as usize;
            // Expert weights [E, K, N] become one tall texture: expert e's rows from e*K.
            let rows_cols = match t.shape.as_slice() {
                [k, n] if packed.contains(&id) => Some((*k, *n)),
                [e, k, n] if experts.contains(&id) => Some((e * k, *n)),
                _ => None,
            };
            if let (true, Some((k, n))) = (gpu.caps.cpu, rows_cols) {
                let (k, n) = (&k, n);
                if n % 4 == 0 && n / 4 <= max_tex && *k <= max_tex {
                    // f16 weights stay f16 in an rgba16float texture (texel loads widen them).
                    let (format, elem) = match dtype {
                        DType::F16 => (wgpu::TextureFormat::Rgba16Float, 2),
                        DType::F32 => (wgpu::TextureFormat::Rgba32Float, 4),
                    };
                    let tex = gpu.device.create_texture_with_data(
                        &gpu.queue,
                        &wgpu::TextureDescriptor {
                            label: Some(&t.name),
                            size: wgpu::Extent3d { width: (n / 4) as u32, height: *k as u32, depth_or_array_layers: 1 },
                            mip_level_count: 1,
                            sample_count: 1,
                            dimension: wgpu::TextureDimension::D2,
                            format,
                            usage: wgpu::TextureUsages::TEXTURE_BINDING,
                            view_formats: &[],
                        },
                        wgpu::util::TextureDataOrder::LayerMajor,
                        &bytes[..k * n * elem],
                    );
                    total += (k * n * elem) as u64;
                    textures.insert(t.name.clone(), tex.create_view(&Default::default()));
                }
            }
            buffers.insert(t.name.clone(), (buf, dtype));
        }
        gpu.take_uncaptured()?;
        Ok(GpuWeights { buffers, textures, bytes: total })
    }
}

struct Step {
    node: String,
    op: &'static str,
    label: String,
    pipeline: Arc<wgpu::ComputePipeline>,
    bind_group: wgpu::BindGroup,
    dispatch: (u32, u32),
    output: usize,
}

struct Io {
    name: String,
    shape: Vec<usize>,
    buffer: wgpu::Buffer,
}

/// Bytes the executor holds besides the weights, and what the planner saved.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MemoryReport {
    pub planned_bytes: u64,
    pub naive_bytes: u64,
    pub io_bytes: u64,
    pub shared_buffers: usize,
}

/// One GPU time measurement per node, from timestamp queries.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NodeTime {
    pub node: String,
    /// The op's short name (`Op::name`).
    pub op: &'static str,
    pub kernel: String,
    pub ms: f64,
}

/// An output tensor read back to the host.
#[derive(Clone, Debug)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A graph compiled for one device and one set of shapes.
pub struct Compiled {
    gpu: Arc<Gpu>,
    steps: Vec<Step>,
    inputs: Vec<Io>,
    outputs: Vec<(Io, wgpu::Buffer)>,
    tensor_buffers: Vec<Option<wgpu::Buffer>>,
    shapes: Vec<Vec<usize>>,
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
    /// The shared activation texture of this [K/4, M] size.
    ActTexture(u32, u32),
}

/// One dispatch, planned before anything is allocated.
struct StepPlan {
    node: String,
    op: &'static str,
    key: crate::kernels::KernelKey,
    params: Vec<u8>,
    bindings: Vec<(u32, Bind)>,
    workgroups: u64,
    output: usize,
}

/// Bytes a tensor's binding covers (f16 matmul weights stay packed).
fn tensor_bytes(graph: &Graph, weights: &GpuWeights, t: usize) -> u64 {
    let d = &graph.tensors[t];
    match weights.buffers.get(&d.name) {
        Some((b, _)) if d.kind == TensorKind::Weight => b.size(),
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

/// Plan every dispatch of the graph: the CPU adapters' to_texture steps, kernel plans, and
/// nodes whose buffers exceed max_storage_buffer_binding_size run as ranges of rows.
fn plan_steps(gpu: &Gpu, graph: &Graph, weights: &GpuWeights, variant: Option<&'static str>) -> Result<Vec<StepPlan>> {
    let limit = gpu.limits.max_storage_buffer_binding_size;
    let align = gpu.limits.min_storage_buffer_offset_alignment.max(4) as u64;
    let too_big = |what: String, needed: u64| EngineError::LimitExceeded { limit: "max_storage_buffer_binding_size", what, needed, available: limit };
    let mut out = Vec::new();
    for node in &graph.nodes {
        let shapes: Vec<&[usize]> = node.inputs.iter().map(|&i| graph.shape(i)).collect();
        let dtypes: Vec<DType> = node
            .inputs
            .iter()
            .map(|&i| weights.buffers.get(&graph.tensors[i].name).filter(|_| graph.tensors[i].kind == TensorKind::Weight).map_or(DType::F32, |b| b.1))
            .collect();
        let w_texture = matches!(node.op, Op::MatMul { .. } | Op::ExpertMatMul { .. })
            && node.inputs.get(1).is_some_and(|&w| weights.textures.contains_key(&graph.tensors[w].name));
        let ctx = PlanCtx { caps: gpu.caps, input_dtypes: dtypes, variant, w_texture, max_texture_dim: gpu.limits.max_texture_dimension_2d };
        let kp = node.op.plan(&shapes, graph.shape(node.output), &ctx).map_err(|message| EngineError::InvalidOp { node: node.name.clone(), message })?;
        let tensor_of = |arg: &Arg| match arg {
            Arg::Input(i) | Arg::InputTexture(i) => node.inputs[*i],
            Arg::Output => node.output,
        };
        // Activations read through a texture are written into it first, in row ranges
        // that each fit one storage binding.
        let mut bindings_tex = HashMap::new();
        for (_, arg) in &kp.bindings {
            let Arg::InputTexture(i) = arg else { continue };
            let t = node.inputs[*i];
            let desc = &graph.tensors[t];
            if weights.textures.contains_key(&desc.name) {
                bindings_tex.insert(*i, Bind::WeightTexture(desc.name.clone()));
                continue;
            }
            let k = *desc.shape.last().unwrap_or(&0);
            let m = desc.numel() / k.max(1);
            let (width, height) = ((k / 4) as u32, m as u32);
            let per = rows_per_range(&[4 * k as u64], limit, align).max(1) as usize;
            for r0 in (0..m).step_by(per) {
                let len = per.min(m - r0);
                let p = crate::ops::to_texture::ToTextureParams { rows: len as u32, k4: width, row0: r0 as u32, ..Default::default() };
                out.push(StepPlan {
                    node: format!("{}.to_texture", node.name),
                    op: "to_texture",
                    key: crate::ops::to_texture::key(),
                    params: bytemuck::bytes_of(&p).to_vec(),
                    bindings: vec![
                        (1, Bind::Tensor { tensor: t, offset: (r0 * k * 4) as u64, size: (len * k * 4) as u64 }),
                        (2, Bind::ActTexture(width, height)),
                    ],
                    workgroups: (len * (k / 4)).div_ceil(64) as u64,
                    output: t,
                });
            }
            bindings_tex.insert(*i, Bind::ActTexture(width, height));
        }
        let whole = |slot: u32, arg: &Arg| -> (u32, Bind) {
            match arg {
                Arg::InputTexture(i) => (slot, match &bindings_tex[i] {
                    Bind::WeightTexture(n) => Bind::WeightTexture(n.clone()),
                    Bind::ActTexture(w, h) => Bind::ActTexture(*w, *h),
                    Bind::Tensor { .. } => unreachable!(),
                }),
                a => {
                    let t = tensor_of(a);
                    (slot, Bind::Tensor { tensor: t, offset: 0, size: tensor_bytes(graph, weights, t) })
                }
            }
        };
        let oversized: Vec<(u32, usize)> = kp
            .bindings
            .iter()
            .filter(|(_, a)| !matches!(a, Arg::InputTexture(_)))
            .map(|(slot, a)| (*slot, tensor_of(a)))
            .filter(|&(_, t)| tensor_bytes(graph, weights, t) > limit)
            .collect();
        if oversized.is_empty() {
            out.push(StepPlan {
                node: node.name.clone(),
                op: node.op.name(),
                key: kp.key.clone(),
                params: kp.params.clone(),
                bindings: kp.bindings.iter().map(|(s, a)| whole(*s, a)).collect(),
                workgroups: kp.workgroups,
                output: node.output,
            });
            continue;
        }
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
            out.push(StepPlan { node: node.name.clone(), op: node.op.name(), key: kp.key.clone(), params, bindings, workgroups, output: node.output });
        }
    }
    // A binding that still exceeds the limit (a whole input of a chunked node) is an error.
    for sp in &out {
        for (_, b) in &sp.bindings {
            if let Bind::Tensor { tensor, size, .. } = b {
                if *size > limit {
                    let d = &graph.tensors[*tensor];
                    return Err(too_big(format!("node {}: tensor {} {:?}", sp.node, d.name, d.shape), *size));
                }
            }
        }
    }
    Ok(out)
}

impl Compiled {
    pub fn new(gpu: Arc<Gpu>, graph: &Graph, weights: &GpuWeights) -> Result<Self> {
        Self::with_variant(gpu, graph, weights, None)
    }

    /// Compile, optionally forcing a kernel variant (op tests cover every variant).
    /// Everything is planned and checked against the adapter's limits first, so a graph
    /// that cannot fit fails naming the tensor, its size and the limit before any
    /// allocation; then buffers, params, pipelines and bind groups are made.
    pub fn with_variant(gpu: Arc<Gpu>, graph: &Graph, weights: &GpuWeights, variant: Option<&'static str>) -> Result<Self> {
        let plan: MemoryPlan = plan_memory(graph, 4);
        let steps_plan = plan_steps(&gpu, graph, weights, variant)?;
        for (t, d) in graph.tensors.iter().enumerate() {
            if d.kind != TensorKind::Weight && (plan.slot_of[t].is_some() || graph.inputs.contains(&t) || graph.outputs.contains(&t)) {
                gpu.check_buffer(&format!("tensor {} {:?}", d.name, d.shape), tensor_bytes(graph, weights, t), false)?;
            }
        }
        let usage_act = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
        let slots: Vec<Arc<wgpu::Buffer>> = plan
            .slot_bytes
            .iter()
            .enumerate()
            .map(|(i, &b)| storage(&gpu, &format!("activations#{i}"), b, usage_act).map(Arc::new))
            .collect::<Result<_>>()?;
        let mut inputs = Vec::new();
        let mut outputs = Vec::new();
        let mut io_bytes = 0;
        // Per tensor: the buffer that holds it (weights live in `weights`).
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
            let d = &graph.tensors[t];
            match d.kind {
                TensorKind::Weight => weights.buffers.get(&d.name).map(|(b, _)| b.clone()).ok_or_else(|| EngineError::MissingWeight(d.name.clone())),
                _ => match (own.get(&t), plan.slot_of[t]) {
                    (Some(b), _) => Ok(b.clone()),
                    (None, Some(s)) => Ok((*slots[s]).clone()),
                    (None, None) => Err(EngineError::InvalidGraph(format!("tensor {} is never computed", d.name))),
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
            contents: &params,
            usage: wgpu::BufferUsages::UNIFORM,
        });
        // Activation textures, shared by every node with the same [K/4, M] shape (each is
        // filled right before its node runs).
        let mut act_textures: HashMap<(u32, u32), wgpu::TextureView> = HashMap::new();
        let mut steps = Vec::new();
        for (sp, &offset) in steps_plan.iter().zip(&offsets) {
            let pipeline = gpu.pipeline(&sp.key)?;
            let mut buffers = Vec::new();
            let mut views = Vec::new();
            for (_, b) in &sp.bindings {
                match b {
                    Bind::Tensor { tensor, .. } => buffers.push(buffer_of(*tensor)?),
                    Bind::WeightTexture(name) => views.push(weights.textures[name].clone()),
                    Bind::ActTexture(width, height) => views.push(
                        act_textures
                            .entry((*width, *height))
                            .or_insert_with(|| {
                                gpu.device
                                    .create_texture(&wgpu::TextureDescriptor {
                                        label: Some("activation texture"),
                                        size: wgpu::Extent3d { width: *width, height: *height, depth_or_array_layers: 1 },
                                        mip_level_count: 1,
                                        sample_count: 1,
                                        dimension: wgpu::TextureDimension::D2,
                                        format: wgpu::TextureFormat::Rgba32Float,
                                        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::STORAGE_BINDING,
                                        view_formats: &[],
                                    })
                                    .create_view(&Default::default())
                            })
                            .clone(),
                    ),
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
                label: Some(&sp.node),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            });
            let dispatch = split_dispatch(sp.workgroups, gpu.limits.max_compute_workgroups_per_dimension)?;
            steps.push(Step { node: sp.node.clone(), op: sp.op, label: sp.key.label(), pipeline, bind_group, dispatch, output: sp.output });
        }
        gpu.take_uncaptured()?;
        let mut tensor_buffers = vec![None; graph.tensors.len()];
        for (t, b) in tensor_buffers.iter_mut().enumerate() {
            if graph.tensors[t].kind == TensorKind::Activation {
                *b = buffer_of(t).ok();
            }
        }
        Ok(Compiled {
            gpu,
            steps,
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
            },
            flops: graph.flops(),
        })
    }

    /// Names and shapes of the inputs this compiled graph takes.
    pub fn input_specs(&self) -> Vec<(String, Vec<usize>)> {
        self.inputs.iter().map(|i| (i.name.clone(), i.shape.clone())).collect()
    }

    fn upload(&self, inputs: &[(&str, &[f32])]) -> Result<()> {
        let expected: Vec<String> = self.inputs.iter().map(|i| i.name.clone()).collect();
        for io in &self.inputs {
            let data = inputs
                .iter()
                .find(|(n, _)| *n == io.name)
                .map(|(_, d)| *d)
                .ok_or_else(|| EngineError::MissingInput { name: io.name.clone(), expected: expected.clone() })?;
            let numel: usize = io.shape.iter().product();
            if data.len() != numel {
                return Err(EngineError::ShapeMismatch {
                    tensor: io.name.clone(),
                    expected: io.shape.clone(),
                    got: vec![data.len()],
                });
            }
            self.gpu.queue.write_buffer(&io.buffer, 0, bytemuck::cast_slice(data));
        }
        Ok(())
    }

    fn read(&self, buf: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        let slice = buf.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.gpu.wait_idle()?;
        rx.recv()
            .map_err(|e| EngineError::Gpu(e.to_string()))?
            .map_err(|e| EngineError::Gpu(e.to_string()))?;
        let view = slice.get_mapped_range().map_err(|e| EngineError::Gpu(e.to_string()))?;
        let data = bytemuck::cast_slice::<u8, f32>(&view)[..len].to_vec();
        drop(view);
        buf.unmap();
        Ok(data)
    }

    fn read_outputs(&self) -> Result<Vec<Tensor>> {
        let mut out = Vec::new();
        for (io, staging) in &self.outputs {
            let len = io.shape.iter().product();
            out.push(Tensor { name: io.name.clone(), shape: io.shape.clone(), data: self.read(staging, len)? });
        }
        self.gpu.take_uncaptured()?;
        Ok(out)
    }

    fn copy_outputs(&self, enc: &mut wgpu::CommandEncoder) {
        for (io, staging) in &self.outputs {
            enc.copy_buffer_to_buffer(&io.buffer, 0, staging, 0, io.buffer.size());
        }
    }

    /// Run once: upload, one compute pass, one submit, read the outputs back.
    pub fn run(&self, inputs: &[(&str, &[f32])]) -> Result<Vec<Tensor>> {
        self.upload(inputs)?;
        let mut enc = self.gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for s in &self.steps {
                pass.set_pipeline(&s.pipeline);
                pass.set_bind_group(0, &s.bind_group, &[]);
                pass.dispatch_workgroups(s.dispatch.0, s.dispatch.1, 1);
            }
        }
        self.copy_outputs(&mut enc);
        self.gpu.queue.submit([enc.finish()]);
        self.read_outputs()
    }

    /// CPU adapters: wall time per node, one submit and wait per node. (lavapipe's pass
    /// timestamps stopped matching the work once kernels read textures.)
    fn run_timed_steps(&self, inputs: &[(&str, &[f32])]) -> Result<(Vec<Tensor>, Vec<NodeTime>)> {
        self.upload(inputs)?;
        self.gpu.wait_idle()?;
        let mut times = Vec::with_capacity(self.steps.len());
        for s in &self.steps {
            let t = std::time::Instant::now();
            let mut enc = self.gpu.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&s.pipeline);
                pass.set_bind_group(0, &s.bind_group, &[]);
                pass.dispatch_workgroups(s.dispatch.0, s.dispatch.1, 1);
            }
            self.gpu.queue.submit([enc.finish()]);
            self.gpu.wait_idle()?;
            times.push(NodeTime { node: s.node.clone(), op: s.op, kernel: s.label.clone(), ms: t.elapsed().as_secs_f64() * 1e3 });
        }
        let mut enc = self.gpu.device.create_command_encoder(&Default::default());
        self.copy_outputs(&mut enc);
        self.gpu.queue.submit([enc.finish()]);
        Ok((self.read_outputs()?, times))
    }

    /// Run with a timestamp pair around every node (one pass per node): GPU time per op.
    pub fn run_profiled(&self, inputs: &[(&str, &[f32])]) -> Result<(Vec<Tensor>, Vec<NodeTime>)> {
        if self.gpu.caps.cpu {
            return self.run_timed_steps(inputs);
        }
        if !self.gpu.caps.timestamp {
            return Err(EngineError::Gpu(format!("adapter {} has no TIMESTAMP_QUERY: per-op timing is unavailable", self.gpu.info.name)));
        }
        self.upload(inputs)?;
        const PER_SET: usize = 2048;
        let dev = &self.gpu.device;
        let mut enc = dev.create_command_encoder(&Default::default());
        let mut reads = Vec::new();
        for chunk in self.steps.chunks(PER_SET) {
            let count = 2 * chunk.len() as u32;
            let qs = dev.create_query_set(&wgpu::QuerySetDescriptor { label: Some("timestamps"), ty: wgpu::QueryType::Timestamp, count });
            for (i, s) in chunk.iter().enumerate() {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(&s.node),
                    timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                        query_set: &qs,
                        beginning_of_pass_write_index: Some(2 * i as u32),
                        end_of_pass_write_index: Some(2 * i as u32 + 1),
                    }),
                });
                pass.set_pipeline(&s.pipeline);
                pass.set_bind_group(0, &s.bind_group, &[]);
                pass.dispatch_workgroups(s.dispatch.0, s.dispatch.1, 1);
            }
            let size = count as u64 * 8;
            let resolve = dev.create_buffer(&wgpu::BufferDescriptor {
                label: Some("resolve"),
                size,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let read = dev.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamps"),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            enc.resolve_query_set(&qs, 0..count, &resolve, 0);
            enc.copy_buffer_to_buffer(&resolve, 0, &read, 0, size);
            reads.push(read);
        }
        self.copy_outputs(&mut enc);
        self.gpu.queue.submit([enc.finish()]);
        let outputs = self.read_outputs()?;
        let period = self.gpu.queue.get_timestamp_period() as f64;
        let mut times = Vec::new();
        for (chunk, read) in self.steps.chunks(PER_SET).zip(&reads) {
            let raw = self.read(read, 4 * chunk.len())?;
            let ticks: &[u64] = bytemuck::cast_slice(&raw);
            for (i, s) in chunk.iter().enumerate() {
                let dt = ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * period / 1e6;
                times.push(NodeTime { node: s.node.clone(), op: s.op, kernel: s.label.clone(), ms: dt });
            }
        }
        Ok((outputs, times))
    }

    /// Debug mode: run node by node and read every node's output back.
    pub fn run_debug(&self, inputs: &[(&str, &[f32])]) -> Result<Vec<Tensor>> {
        self.upload(inputs)?;
        let mut out = Vec::new();
        for s in &self.steps {
            let buf = self.tensor_buffers[s.output].as_ref().ok_or_else(|| EngineError::InvalidGraph(s.node.clone()))?;
            let len: usize = self.shapes[s.output].iter().product();
            let staging = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("debug"),
                size: (len.max(1) * 4) as u64,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut enc = self.gpu.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&s.pipeline);
                pass.set_bind_group(0, &s.bind_group, &[]);
                pass.dispatch_workgroups(s.dispatch.0, s.dispatch.1, 1);
            }
            enc.copy_buffer_to_buffer(buf, 0, &staging, 0, (len * 4) as u64);
            self.gpu.queue.submit([enc.finish()]);
            out.push(Tensor { name: s.node.clone(), shape: self.shapes[s.output].clone(), data: self.read(&staging, len)? });
        }
        self.gpu.take_uncaptured()?;
        Ok(out)
    }

    /// Kernel label of every step, in order (for inspection and profiles).
    pub fn kernels(&self) -> Vec<(String, String)> {
        self.steps.iter().map(|s| (s.node.clone(), s.label.clone())).collect()
    }

    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }
}
