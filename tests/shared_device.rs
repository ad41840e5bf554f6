//! An app's own wgpu device: `Gpu::from_wgpu` wraps a device created with plain wgpu calls,
//! and a model run on it gives what the same model gives on a device `Gpu::open` created.
use std::sync::Arc;
use wgvision::engine::DType;
use wgvision::{wgpu, Gpu, Model};

/// The adapter, device and queue an app would create: the adapter `reference` runs on
/// (so both sides compute on the same hardware), its limits requested, no features.
fn app_device(reference: &Gpu) -> (wgpu::Adapter, wgpu::Device, wgpu::Queue) {
    let backends = wgpu::Backends::from(reference.info.backend);
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor { backends, ..wgpu::InstanceDescriptor::new_without_display_handle() });
    let adapter = pollster::block_on(instance.enumerate_adapters(backends))
        .into_iter()
        .find(|a| a.get_info() == reference.info)
        .unwrap_or_else(|| panic!("no adapter {} among wgpu's", reference.describe()));
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("app"),
        required_limits: adapter.limits(),
        ..Default::default()
    }))
    .expect("request_device");
    (adapter, device, queue)
}

/// A small timm ViT (two blocks) with deterministic synthetic weights.
fn vit(gpu: Arc<Gpu>) -> Model {
    let sets = [("depth".to_string(), serde_json::json!(2)), ("img_size".to_string(), serde_json::json!(64))];
    let config = wgvision::weights::timm_config("vit_tiny_patch16_224", &sets).expect("config");
    Model::synthetic(gpu, config, DType::F32).expect("model")
}

fn pixels(n: usize) -> Vec<f32> {
    let mut s = 0x2545F4914F6CDD1Du64;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

#[test]
fn model_on_an_app_device_matches_gpu_open() {
    let reference = Gpu::open(None, None).expect("a GPU or software adapter (install mesa-vulkan-drivers)");
    let (adapter, device, queue) = app_device(&reference);
    let wanted_limits = adapter.limits();
    // The app keeps its own handles: wgpu's Device and Queue are shared references.
    let shared = Arc::new(Gpu::from_wgpu(adapter, device.clone(), queue.clone()).expect("from_wgpu"));

    // Caps and limits come from the device as created, nothing more requested.
    assert_eq!(shared.info, reference.info);
    assert_eq!(shared.limits, device.limits());
    assert_eq!(shared.limits, wanted_limits);
    assert!(device.features().is_empty(), "{:?}", device.features());
    assert!(!shared.caps.shader_f16 && !shared.caps.subgroup && !shared.caps.timestamp, "{:?}", shared.caps);
    assert_eq!(shared.caps.cpu, reference.caps.cpu);

    let x = pixels(2 * 3 * 64 * 64);
    let shape = [2, 3, 64, 64];
    let want = vit(reference.clone()).run(&x, &shape).expect("run on Gpu::open");
    let got = vit(shared.clone()).run(&x, &shape).expect("run on Gpu::from_wgpu");
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!((&g.name, &g.shape), (&w.name, &w.shape));
        assert_eq!(g.shape, [2, 1000]);
        assert!(g.data.iter().all(|v| v.is_finite()));
        let worst = g.data.iter().zip(&w.data).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst <= 1e-6, "{}: max |from_wgpu - open| = {worst:e}", g.name);
    }
    assert!(want[0].data.iter().any(|&v| v != want[0].data[0]), "constant logits: the comparison would prove nothing");

    // The app's device still works for its own work after wgvision ran on it.
    let buf = device.create_buffer(&wgpu::BufferDescriptor { label: None, size: 16, usage: wgpu::BufferUsages::COPY_DST, mapped_at_creation: false });
    queue.write_buffer(&buf, 0, &[1u8; 16]);
    queue.submit([]);
    shared.wait_idle().expect("wait_idle");
}

#[test]
fn from_wgpu_rejects_a_device_of_another_adapter() {
    let backends = wgpu::Backends::PRIMARY;
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor { backends, ..wgpu::InstanceDescriptor::new_without_display_handle() });
    let adapters = pollster::block_on(instance.enumerate_adapters(backends));
    let mut infos = adapters.iter().map(|a| a.get_info());
    let Some(first) = infos.next() else { return };
    // Needs two distinct adapters (e.g. a GPU and lavapipe): with one it checks nothing.
    let Some(other) = adapters.iter().find(|a| a.get_info() != first) else {
        eprintln!("one adapter only: skipped");
        return;
    };
    let (device, queue) = pollster::block_on(other.request_device(&wgpu::DeviceDescriptor::default())).expect("request_device");
    let mismatched = adapters.into_iter().find(|a| a.get_info() == first).expect("first adapter");
    let err = Gpu::from_wgpu(mismatched, device, queue).expect_err("a device of another adapter");
    assert!(err.to_string().contains("not on the adapter passed with it"), "{err}");
}
