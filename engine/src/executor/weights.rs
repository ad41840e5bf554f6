//! Weights resident on the device. Each op says how it wants its weight inputs stored
//! (`OpDef::input_form`): matrices keep their file dtype (f16 stays packed), everything
//! else is widened to f32; on CPU adapters matrices also get an rgba texture, read by the
//! texture kernels (a texel load is one vector load there), and those matrices are kept
//! only as the texture: a node that reads one from a buffer after all (a buffer variant,
//! or a batch whose rows exceed the texture limit) gets a buffer copied from the texture
//! on the device when it is compiled.
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
    /// Matrices kept only as textures: their dtype, [rows, cols] and buffer size; and the
    /// buffers made from them on demand.
    texture_only: HashMap<String, (DType, [usize; 2], u64)>,
    from_texture: std::sync::Mutex<HashMap<String, wgpu::Buffer>>,
    pub(crate) texture_handles: HashMap<String, wgpu::Texture>,
    /// Matrices [K, N] (N a multiple of 4) as rgba textures [N/4 x K], and stacked
    /// matrices [E, K, N] as one tall texture [N/4 x E*K] (matrix e's rows from e*K).
    pub(crate) textures: HashMap<String, wgpu::TextureView>,
    /// Bytes uploaded (a matrix kept as a texture counts once); see also `extra_bytes`.
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
        let mut texture_handles = HashMap::new();
        let mut texture_only = HashMap::new();
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
            // Borrowed from the file where no conversion or padding is needed (no copy).
            let (dtype, bytes): (DType, std::borrow::Cow<[u8]>) = match (w.dtype, form) {
                (DType::F16, InputForm::Matrix) => (DType::F16, w.bytes),
                (DType::F16, _) => (DType::F32, f16_to_f32_bytes(&w.bytes).into()),
                (d, _) => (d, w.bytes),
            };
            let padded = bytes.len().div_ceil(4).max(1) * 4;
            let bytes = if padded == bytes.len() {
                bytes
            } else {
                let mut v = bytes.into_owned();
                v.resize(padded, 0);
                v.into()
            };
            // Bindings (a weight bound whole, a residual bound by row ranges) are checked
            // when the graph is compiled.
            gpu.check_buffer(&format!("weight {}", t.name), bytes.len() as u64, false)?;
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
                            // COPY_SRC: a buffer made from it on demand.
                            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_SRC,
                            view_formats: &[],
                        },
                        wgpu::util::TextureDataOrder::LayerMajor,
                        &bytes[..k * n * elem],
                    );
                    total += (k * n * elem) as u64;
                    textures.insert(t.name.clone(), tex.create_view(&Default::default()));
                    texture_handles.insert(t.name.clone(), tex);
                    texture_only.insert(t.name.clone(), (dtype, [k, n], bytes.len() as u64));
                    continue;
                }
            }
            let buf = gpu.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(&t.name),
                contents: &bytes,
                // COPY_SRC: debug runs read back a node whose output aliases a weight.
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            });
            total += bytes.len() as u64;
            buffers.insert(t.name.clone(), (buf, dtype));
        }
        gpu.take_uncaptured()?;
        Ok(GpuWeights { buffers, texture_only, from_texture: Default::default(), texture_handles, textures, bytes: total })
    }

    /// The dtype a weight is stored in on the device.
    pub fn dtype(&self, name: &str) -> Option<DType> {
        self.buffers.get(name).map(|b| b.1).or_else(|| self.texture_only.get(name).map(|t| t.0))
    }

    /// Bytes of a weight's storage buffer (whether it exists yet or not).
    pub(crate) fn buffer_bytes(&self, name: &str) -> Option<u64> {
        self.buffers.get(name).map(|b| b.0.size()).or_else(|| self.texture_only.get(name).map(|t| t.2))
    }

    /// The weight's storage buffer; for a matrix kept only as a texture, a buffer copied
    /// from it on the device (once, then kept), counted in `extra_bytes`.
    pub(crate) fn buffer(&self, gpu: &Gpu, name: &str) -> Result<wgpu::Buffer> {
        if let Some((b, _)) = self.buffers.get(name) {
            return Ok(b.clone());
        }
        let &(dtype, [k, n], size) = self.texture_only.get(name).ok_or_else(|| EngineError::MissingWeight(name.to_string()))?;
        let mut made = self.from_texture.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = made.get(name) {
            return Ok(b.clone());
        }
        // Texture rows are N/4 texels; a copy to a buffer wants rows of a multiple of 256
        // bytes, so copy with padded rows, then pack the rows densely.
        let elem = match dtype {
            DType::F16 => 2,
            DType::F32 => 4,
        };
        let row = (n * elem) as u64;
        let pitch = row.div_ceil(256) * 256;
        gpu.check_buffer(&format!("weight {name} (rows padded to 256 bytes for the copy from its texture)"), pitch * k as u64, false)?;
        let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("weight rows"),
            size: pitch * k as u64,
            usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let buf = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(name),
            size,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        enc.copy_texture_to_buffer(
            self.texture_handles[name].as_image_copy(),
            wgpu::TexelCopyBufferInfo {
                buffer: &staging,
                layout: wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(pitch as u32), rows_per_image: Some(k as u32) },
            },
            wgpu::Extent3d { width: (n / 4) as u32, height: k as u32, depth_or_array_layers: 1 },
        );
        if pitch == row {
            enc.copy_buffer_to_buffer(&staging, 0, &buf, 0, row * k as u64);
        } else {
            for r in 0..k as u64 {
                enc.copy_buffer_to_buffer(&staging, r * pitch, &buf, r * row, row);
            }
        }
        gpu.queue.submit([enc.finish()]);
        gpu.take_uncaptured()?;
        made.insert(name.to_string(), buf.clone());
        Ok(buf)
    }

    /// Whether the weight has a storage buffer now (one made on demand included).
    pub(crate) fn has_buffer(&self, name: &str) -> bool {
        self.buffers.contains_key(name) || self.from_texture.lock().unwrap_or_else(|e| e.into_inner()).contains_key(name)
    }

    /// Bytes of the buffers made from textures on demand so far.
    pub fn extra_bytes(&self) -> u64 {
        self.from_texture.lock().unwrap_or_else(|e| e.into_inner()).values().map(|b| b.size()).sum()
    }

    pub fn has_texture(&self, name: &str) -> bool {
        self.textures.contains_key(name)
    }
}
