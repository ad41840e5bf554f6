//! Weights resident on the device. Each op says how it wants its weight inputs stored
//! (`OpDef::input_form`): matrices keep their file dtype (f16 stays packed), everything
//! else is widened to f32; on CPU adapters matrices also get an rgba texture, read by the
//! texture kernels (a texel load is one vector load there).
use crate::device::Gpu;
use crate::error::{EngineError, Result};
use crate::graph::{DType, Graph, TensorKind};
use crate::ops::InputForm;
use std::collections::HashMap;
use wgpu::util::DeviceExt;

/// A weight as read from a model file.
pub struct WeightData<'a> {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub bytes: std::borrow::Cow<'a, [u8]>,
}

/// Weights resident on the device, shared by every compiled batch size of a model.
pub struct GpuWeights {
    pub(crate) buffers: HashMap<String, (wgpu::Buffer, DType)>,
    /// Matrices [K, N] (N a multiple of 4) as rgba textures [N/4 x K], and stacked
    /// matrices [E, K, N] as one tall texture [N/4 x E*K] (matrix e's rows from e*K).
    pub(crate) textures: HashMap<String, wgpu::TextureView>,
    pub bytes: u64,
}

fn f16_to_f32_bytes(b: &[u8]) -> Vec<u8> {
    b.chunks_exact(2)
        .flat_map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32().to_le_bytes())
        .collect()
}

/// How each weight of the graph is used: the most demanding form any node asks for.
pub(crate) fn weight_forms(graph: &Graph) -> HashMap<usize, InputForm> {
    let mut forms = HashMap::new();
    for n in &graph.nodes {
        for (i, &t) in n.inputs.iter().enumerate() {
            let f = n.op.input_form(i);
            if f != InputForm::Plain && graph.tensors[t].kind == TensorKind::Weight {
                forms.insert(t, f);
            }
        }
    }
    forms
}

impl GpuWeights {
    /// Upload every weight the graph names.
    pub fn upload<'a>(gpu: &Gpu, graph: &Graph, mut lookup: impl FnMut(&str) -> Option<WeightData<'a>>) -> Result<Self> {
        let forms = weight_forms(graph);
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
            let form = forms.get(&id).copied().unwrap_or(InputForm::Plain);
            let (dtype, mut bytes) = match (w.dtype, form) {
                (DType::F16, InputForm::Matrix) => (DType::F16, w.bytes.into_owned()),
                (DType::F16, _) => (DType::F32, f16_to_f32_bytes(&w.bytes)),
                (d, _) => (d, w.bytes.into_owned()),
            };
            bytes.resize(bytes.len().div_ceil(4).max(1) * 4, 0);
            // Bindings (a weight bound whole, a residual bound by row ranges) are checked
            // when the graph is compiled.
            gpu.check_buffer(&format!("weight {}", t.name), bytes.len() as u64, false)?;
            let buf = gpu.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(&t.name),
                contents: &bytes,
                // COPY_SRC: debug runs read back a node whose output aliases a weight.
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            });
            total += bytes.len() as u64;
            let rows_cols = match (form, t.shape.as_slice()) {
                (InputForm::Matrix, [k, n]) => Some((*k, *n)),
                (InputForm::StackedMatrices, [e, k, n]) => Some((e * k, *n)),
                _ => None,
            };
            let max_tex = gpu.limits.max_texture_dimension_2d as usize;
            if let (true, Some((k, n))) = (gpu.caps.cpu, rows_cols) {
                if n % 4 == 0 && n / 4 <= max_tex && k <= max_tex {
                    // f16 weights stay f16 in an rgba16float texture (texel loads widen them).
                    let (format, elem) = match dtype {
                        DType::F16 => (wgpu::TextureFormat::Rgba16Float, 2),
                        DType::F32 => (wgpu::TextureFormat::Rgba32Float, 4),
                    };
                    let tex = gpu.device.create_texture_with_data(
                        &gpu.queue,
                        &wgpu::TextureDescriptor {
                            label: Some(&t.name),
                            size: wgpu::Extent3d { width: (n / 4) as u32, height: k as u32, depth_or_array_layers: 1 },
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

    /// The dtype a weight is stored in on the device.
    pub fn dtype(&self, name: &str) -> Option<DType> {
        self.buffers.get(name).map(|b| b.1)
    }

    pub fn has_texture(&self, name: &str) -> bool {
        self.textures.contains_key(name)
    }
}
