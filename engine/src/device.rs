//! Adapter selection and device creation: high-performance adapter first, a backend
//! forced by option or WGVISION_BACKEND, the adapter's full limits requested (models are
//! checked against them at compile time), optional features detected. `Gpu::from_wgpu`
//! wraps a device the application created itself.
use crate::error::{EngineError, Result};
use crate::kernels::PipelineCache;
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Vulkan,
    Metal,
    Dx12,
    Gl,
}

impl std::str::FromStr for Backend {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "vulkan" | "vk" => Ok(Backend::Vulkan),
            "metal" => Ok(Backend::Metal),
            "dx12" | "d3d12" => Ok(Backend::Dx12),
            "gl" | "gles" | "opengl" => Ok(Backend::Gl),
            _ => Err(EngineError::UnknownBackend(s.to_string())),
        }
    }
}

impl Backend {
    fn to_wgpu(self) -> wgpu::Backends {
        match self {
            Backend::Vulkan => wgpu::Backends::VULKAN,
            Backend::Metal => wgpu::Backends::METAL,
            Backend::Dx12 => wgpu::Backends::DX12,
            Backend::Gl => wgpu::Backends::GL,
        }
    }
}

/// Optional adapter capabilities the kernels may use.
#[derive(Clone, Copy, Debug, Default)]
pub struct Caps {
    pub shader_f16: bool,
    pub subgroup: bool,
    /// The smallest subgroup the adapter may run (wgpu's `subgroup_min_size`).
    pub subgroup_min_size: u32,
    pub timestamp: bool,
    /// A CPU (software) adapter such as lavapipe: kernels pick CPU-shaped variants.
    pub cpu: bool,
}

/// An open device plus everything shared by all models on it (pipeline cache).
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub caps: Caps,
    pub limits: wgpu::Limits,
    pub pipelines: PipelineCache,
    pub(crate) uncaptured: Arc<Mutex<Option<String>>>,
}

/// Upper bounds for the limits a device is opened with; the adapter's own limits apply
/// where they are lower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitsCap {
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_compute_workgroups_per_dimension: u32,
    pub max_compute_workgroup_storage_size: u32,
    pub max_texture_dimension_2d: u32,
}

impl LimitsCap {
    /// WebGPU's default limits: 128 MiB storage bindings, 256 MiB buffers, 65535
    /// workgroups per dimension, 16 KiB workgroup storage, 8192-texel textures.
    pub fn webgpu_defaults() -> Self {
        let d = wgpu::Limits::default();
        LimitsCap {
            max_storage_buffer_binding_size: d.max_storage_buffer_binding_size,
            max_buffer_size: d.max_buffer_size,
            max_compute_workgroups_per_dimension: d.max_compute_workgroups_per_dimension,
            max_compute_workgroup_storage_size: d.max_compute_workgroup_storage_size,
            max_texture_dimension_2d: d.max_texture_dimension_2d,
        }
    }

    fn apply(&self, l: &mut wgpu::Limits) {
        l.max_storage_buffer_binding_size = l.max_storage_buffer_binding_size.min(self.max_storage_buffer_binding_size);
        l.max_buffer_size = l.max_buffer_size.min(self.max_buffer_size);
        l.max_compute_workgroups_per_dimension = l.max_compute_workgroups_per_dimension.min(self.max_compute_workgroups_per_dimension);
        l.max_compute_workgroup_storage_size = l.max_compute_workgroup_storage_size.min(self.max_compute_workgroup_storage_size);
        l.max_texture_dimension_2d = l.max_texture_dimension_2d.min(self.max_texture_dimension_2d);
    }
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gpu({} / {:?})", self.info.name, self.info.backend)
    }
}

impl Gpu {
    /// Block until the device has finished all submitted work. wgpu's wait gives up after
    /// a fixed time, but one forward pass of a large model on a software adapter can take
    /// minutes: keep waiting while the device is merely busy.
    pub fn wait_idle(&self) -> crate::error::Result<()> {
        let start = std::time::Instant::now();
        // Wait in steps of a minute (wgpu 25's fixed wait), up to an hour in all.
        let step = wgpu::PollType::Wait { submission_index: None, timeout: Some(std::time::Duration::from_secs(60)) };
        loop {
            match self.device.poll(step.clone()) {
                Ok(_) => return Ok(()),
                Err(wgpu::PollError::Timeout) if start.elapsed() <= std::time::Duration::from_secs(3600) => {}
                Err(e @ wgpu::PollError::Timeout) => {
                    return Err(EngineError::Gpu(format!("device still busy after an hour: {e}")));
                }
                Err(e) => return Err(EngineError::Gpu(format!("waiting for the device: {e}"))),
            }
        }
    }

    /// Open a device. `backend` (or the WGVISION_BACKEND environment variable) forces one;
    /// WGVISION_LIMITS=webgpu caps the limits to WebGPU's defaults (see `open`).
    pub fn new(backend: Option<Backend>) -> Result<Arc<Gpu>> {
        let cap = match std::env::var("WGVISION_LIMITS").as_deref() {
            Ok("webgpu") => Some(LimitsCap::webgpu_defaults()),
            Ok("") | Ok("adapter") | Err(_) => None,
            Ok(other) => return Err(EngineError::Gpu(format!("WGVISION_LIMITS={other}: expected 'webgpu' or 'adapter'"))),
        };
        Self::open(backend, cap)
    }

    /// Open a device, optionally with its limits capped (`LimitsCap::webgpu_defaults()`:
    /// what browsers, Android and many drivers give), so models are planned within them.
    pub fn open(backend: Option<Backend>, cap: Option<LimitsCap>) -> Result<Arc<Gpu>> {
        let backend = match backend {
            Some(b) => Some(b),
            None => match std::env::var("WGVISION_BACKEND") {
                Ok(s) if !s.is_empty() => Some(s.parse()?),
                _ => None,
            },
        };
        // Without a forced backend, GL is only a fallback: probing it is slow and noisy.
        let tries = match backend {
            Some(b) => vec![b.to_wgpu()],
            None => vec![wgpu::Backends::PRIMARY, wgpu::Backends::GL],
        };
        let mut adapters = Vec::new();
        for backends in tries {
            let instance =
                wgpu::Instance::new(wgpu::InstanceDescriptor { backends, ..wgpu::InstanceDescriptor::new_without_display_handle() });
            adapters = pollster::block_on(instance.enumerate_adapters(backends));
            if !adapters.is_empty() {
                break;
            }
        }
        // High-performance first: discrete, integrated, virtual, then CPU adapters.
        adapters.sort_by_key(|a| match a.get_info().device_type {
            wgpu::DeviceType::DiscreteGpu => 0,
            wgpu::DeviceType::IntegratedGpu => 1,
            wgpu::DeviceType::VirtualGpu => 2,
            wgpu::DeviceType::Other => 3,
            wgpu::DeviceType::Cpu => 4,
        });
        let adapter = adapters
            .into_iter()
            .find(|a| a.get_downlevel_capabilities().flags.contains(wgpu::DownlevelFlags::COMPUTE_SHADERS))
            .ok_or_else(|| EngineError::NoAdapter {
                which: backend.map(|b| format!(" for backend {b:?}")).unwrap_or_default(),
            })?;
        let info = adapter.get_info();
        let wanted = wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP | wgpu::Features::TIMESTAMP_QUERY;
        let required_features = adapter.features() & wanted;
        let mut limits = adapter.limits();
        if let Some(c) = &cap {
            c.apply(&mut limits);
        }
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("wgvision"),
            required_features,
            required_limits: limits,
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| EngineError::RequestDevice { adapter: info.name.clone(), message: e.to_string() })?;
        Self::from_wgpu(adapter, device, queue).map(Arc::new)
    }

    /// Run on a device the application already has (say, the one it renders with), so
    /// that tensors, textures and submissions share one device and queue. Nothing new is
    /// requested: the limits models are planned within and the optional kernel features
    /// (`Caps`) are the ones `device` was created with (`device.limits()`,
    /// `device.features()`); the adapter gives the name, backend and device type (a CPU
    /// adapter gets CPU-shaped kernels). Request the adapter's limits
    /// (`required_limits: adapter.limits()`) unless the app needs smaller ones: models
    /// that need more than the device allows fail to compile, naming the limit.
    ///
    /// wgvision installs its own uncaptured-error handler on the device (wgpu keeps one
    /// per device), replacing any the application set; validation errors it catches are
    /// returned from wgvision's next call on this device.
    pub fn from_wgpu(adapter: wgpu::Adapter, device: wgpu::Device, queue: wgpu::Queue) -> Result<Gpu> {
        let info = adapter.get_info();
        if !adapter.get_downlevel_capabilities().flags.contains(wgpu::DownlevelFlags::COMPUTE_SHADERS) {
            return Err(EngineError::Gpu(format!(
                "adapter {} ({:?}) cannot run compute shaders (downlevel flag COMPUTE_SHADERS)",
                info.name, info.backend
            )));
        }
        let device_info = device.adapter_info();
        if device_info != info {
            return Err(EngineError::Gpu(format!(
                "the device was created on adapter {} ({:?}), not on the adapter passed with it, {} ({:?})",
                device_info.name, device_info.backend, info.name, info.backend
            )));
        }
        let uncaptured = Arc::new(Mutex::new(None));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e| {
            if let Ok(mut slot) = sink.lock() {
                slot.get_or_insert_with(|| e.to_string());
            }
        }));
        let features = device.features();
        let caps = Caps {
            shader_f16: features.contains(wgpu::Features::SHADER_F16),
            subgroup: features.contains(wgpu::Features::SUBGROUP),
            subgroup_min_size: info.subgroup_min_size,
            timestamp: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            cpu: info.device_type == wgpu::DeviceType::Cpu,
        };
        let limits = device.limits();
        Ok(Gpu { device, queue, info, caps, limits, pipelines: PipelineCache::default(), uncaptured })
    }

    /// "llvmpipe (LLVM 15.0.6, 256 bits) / Vulkan"
    pub fn describe(&self) -> String {
        format!("{} / {:?}", self.info.name, self.info.backend)
    }

    /// The driver and its version, e.g. "llvmpipe Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6)"
    /// (adapters of one name differ by driver: kernels rank differently across them).
    pub fn driver(&self) -> String {
        format!("{} {}", self.info.driver, self.info.driver_info).trim().to_string()
    }

    pub fn backend_name(&self) -> String {
        format!("{:?}", self.info.backend).to_lowercase()
    }

    /// Errors wgpu reported outside an error scope since the last check.
    pub(crate) fn take_uncaptured(&self) -> Result<()> {
        match self.uncaptured.lock().ok().and_then(|mut s| s.take()) {
            Some(msg) => Err(EngineError::Gpu(msg)),
            None => Ok(()),
        }
    }

    /// Check a buffer size against the adapter's limits, naming the limit when it fails.
    pub fn check_buffer(&self, what: &str, bytes: u64, storage_binding: bool) -> Result<()> {
        if bytes > self.limits.max_buffer_size {
            return Err(EngineError::LimitExceeded {
                limit: "max_buffer_size",
                what: what.to_string(),
                needed: bytes,
                available: self.limits.max_buffer_size,
            });
        }
        if storage_binding && bytes > self.limits.max_storage_buffer_binding_size {
            return Err(EngineError::LimitExceeded {
                limit: "max_storage_buffer_binding_size",
                what: what.to_string(),
                needed: bytes,
                available: self.limits.max_storage_buffer_binding_size,
            });
        }
        Ok(())
    }
}
