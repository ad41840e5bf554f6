//! Experiment: matmul with both operands read through rgba32float textures (textureLoad),
//! against the same tiling over storage buffers, at 1024^3 on the default adapter.
use std::time::Instant;
use wgpu::util::DeviceExt;

const SRC: &str = r#"
@group(0) @binding(0) var a: texture_2d<f32>;
@group(0) @binding(1) var b: texture_2d<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> dims: vec4<u32>; // m, n, k, 0

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n4 = dims.y / 4u;
    let tile = gid.x;
    let c4 = tile % n4;
    let r0 = (tile / n4) * 4u;
    if (r0 >= dims.x) { return; }
    var acc0 = vec4<f32>(0.0); var acc1 = vec4<f32>(0.0); var acc2 = vec4<f32>(0.0); var acc3 = vec4<f32>(0.0);
    for (var k4 = 0u; k4 < dims.z / 4u; k4++) {
        let a0 = textureLoad(a, vec2<u32>(k4, r0), 0);
        let a1 = textureLoad(a, vec2<u32>(k4, r0 + 1u), 0);
        let a2 = textureLoad(a, vec2<u32>(k4, r0 + 2u), 0);
        let a3 = textureLoad(a, vec2<u32>(k4, r0 + 3u), 0);
        let b0 = textureLoad(b, vec2<u32>(c4, 4u * k4), 0);
        let b1 = textureLoad(b, vec2<u32>(c4, 4u * k4 + 1u), 0);
        let b2 = textureLoad(b, vec2<u32>(c4, 4u * k4 + 2u), 0);
        let b3 = textureLoad(b, vec2<u32>(c4, 4u * k4 + 3u), 0);
        acc0 += a0.x * b0 + a0.y * b1 + a0.z * b2 + a0.w * b3;
        acc1 += a1.x * b0 + a1.y * b1 + a1.z * b2 + a1.w * b3;
        acc2 += a2.x * b0 + a2.y * b1 + a2.z * b2 + a2.w * b3;
        acc3 += a3.x * b0 + a3.y * b1 + a3.z * b2 + a3.w * b3;
    }
    out[(r0) * n4 + c4] = acc0;
    out[(r0 + 1u) * n4 + c4] = acc1;
    out[(r0 + 2u) * n4 + c4] = acc2;
    out[(r0 + 3u) * n4 + c4] = acc3;
}
"#;


const SRC8: &str = r#"
@group(0) @binding(0) var a: texture_2d<f32>;
@group(0) @binding(1) var b: texture_2d<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> dims: vec4<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n8 = dims.y / 8u;
    let n4 = dims.y / 4u;
    let tile = gid.x;
    let c8 = tile % n8;
    let r0 = (tile / n8) * 4u;
    if (r0 >= dims.x) { return; }
    var acc: array<vec4<f32>, 8>;
    for (var k4 = 0u; k4 < dims.z / 4u; k4++) {
        var av: array<vec4<f32>, 4>;
        for (var i = 0u; i < 4u; i++) { av[i] = textureLoad(a, vec2<u32>(k4, r0 + i), 0); }
        for (var h = 0u; h < 2u; h++) {
            let b0 = textureLoad(b, vec2<u32>(2u * c8 + h, 4u * k4), 0);
            let b1 = textureLoad(b, vec2<u32>(2u * c8 + h, 4u * k4 + 1u), 0);
            let b2 = textureLoad(b, vec2<u32>(2u * c8 + h, 4u * k4 + 2u), 0);
            let b3 = textureLoad(b, vec2<u32>(2u * c8 + h, 4u * k4 + 3u), 0);
            for (var i = 0u; i < 4u; i++) {
                acc[i * 2u + h] += av[i].x * b0 + av[i].y * b1 + av[i].z * b2 + av[i].w * b3;
            }
        }
    }
    for (var i = 0u; i < 4u; i++) {
        for (var h = 0u; h < 2u; h++) {
            out[(r0 + i) * n4 + 2u * c8 + h] = acc[i * 2u + h];
        }
    }
}
"#;

fn src_tiled(tr: u32, tc: u32) -> String {
    format!(r#"
@group(0) @binding(0) var a: texture_2d<f32>;
@group(0) @binding(1) var b: texture_2d<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> dims: vec4<u32>;
const TR: u32 = {tr}u;
const TC: u32 = {tc}u;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {{
    let n4 = dims.y / 4u;
    let nt = n4 / TC;
    let tile = gid.x;
    let ct = tile % nt;
    let r0 = (tile / nt) * TR;
    if (r0 >= dims.x) {{ return; }}
    var acc: array<vec4<f32>, {acc}>;
    for (var k4 = 0u; k4 < dims.z / 4u; k4++) {{
        var av: array<vec4<f32>, TR>;
        for (var i = 0u; i < TR; i++) {{ av[i] = textureLoad(a, vec2<u32>(k4, r0 + i), 0); }}
        for (var h = 0u; h < TC; h++) {{
            let col = ct * TC + h;
            let b0 = textureLoad(b, vec2<u32>(col, 4u * k4), 0);
            let b1 = textureLoad(b, vec2<u32>(col, 4u * k4 + 1u), 0);
            let b2 = textureLoad(b, vec2<u32>(col, 4u * k4 + 2u), 0);
            let b3 = textureLoad(b, vec2<u32>(col, 4u * k4 + 3u), 0);
            for (var i = 0u; i < TR; i++) {{
                acc[i * TC + h] += av[i].x * b0 + av[i].y * b1 + av[i].z * b2 + av[i].w * b3;
            }}
        }}
    }}
    for (var i = 0u; i < TR; i++) {{
        for (var h = 0u; h < TC; h++) {{
            let v = acc[i * TC + h];
            let o = ((r0 + i) * n4 + ct * TC + h) * 4u;
            out[o] = v.x; out[o + 1u] = v.y; out[o + 2u] = v.z; out[o + 3u] = v.w;
        }}
    }}
}}
"#, acc = tr * tc)
}

fn main() {
    let (m, n, k) = (1024u32, 1024u32, 1024u32);
    let inst = wgpu::Instance::default();
    let adapter = pollster::block_on(inst.request_adapter(&wgpu::RequestAdapterOptions::default())).unwrap();
    println!("adapter {:?}", adapter.get_info().name);
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default())).unwrap();
    let av: Vec<f32> = (0..m * k).map(|i| ((i % 7) as f32) * 0.1).collect();
    let bv: Vec<f32> = (0..k * n).map(|i| ((i % 5) as f32) * 0.1).collect();
    let tex = |w: u32, h: u32, data: &[f32]| {
        device.create_texture_with_data(&queue, &wgpu::TextureDescriptor {
            label: None, size: wgpu::Extent3d { width: w, height: h, depth_or_array_layers: 1 }, mip_level_count: 1, sample_count: 1,
            dimension: wgpu::TextureDimension::D2, format: wgpu::TextureFormat::Rgba32Float, usage: wgpu::TextureUsages::TEXTURE_BINDING, view_formats: &[],
        }, wgpu::util::TextureDataOrder::LayerMajor, bytemuck::cast_slice(data))
    };
    let ta = tex(k / 4, m, &av);
    let tb = tex(n / 4, k, &bv);
    let out = device.create_buffer(&wgpu::BufferDescriptor { label: None, size: (m * n * 4) as u64, usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC, mapped_at_creation: false });
    let dims = device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: None, contents: bytemuck::cast_slice(&[m, n, k, 0u32]), usage: wgpu::BufferUsages::UNIFORM });
    let tex_entry = |b| wgpu::BindGroupLayoutEntry { binding: b, visibility: wgpu::ShaderStages::COMPUTE, ty: wgpu::BindingType::Texture { sample_type: wgpu::TextureSampleType::Float { filterable: false }, view_dimension: wgpu::TextureViewDimension::D2, multisampled: false }, count: None };
    let bgl = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: None, entries: &[
        tex_entry(0), tex_entry(1),
        wgpu::BindGroupLayoutEntry { binding: 2, visibility: wgpu::ShaderStages::COMPUTE, ty: wgpu::BindingType::Buffer { ty: wgpu::BufferBindingType::Storage { read_only: false }, has_dynamic_offset: false, min_binding_size: None }, count: None },
        wgpu::BindGroupLayoutEntry { binding: 3, visibility: wgpu::ShaderStages::COMPUTE, ty: wgpu::BindingType::Buffer { ty: wgpu::BufferBindingType::Uniform, has_dynamic_offset: false, min_binding_size: None }, count: None },
    ]});
    let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor { label: None, bind_group_layouts: &[Some(&bgl)], immediate_size: 0 });
    let tr: u32 = std::env::var("TR").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    let tc: u32 = std::env::var("TC").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    let engine = std::env::var("ENGINE").is_ok();
    let src = if engine {
        use wgvision_engine::kernels::{preprocess, Define};
        let s = preprocess("matmul.wgsl", &[Define::Value("TM", 4), Define::Flag("TEX")]).unwrap();
        s.replace("override WG: u32 = 64u;", "const WG: u32 = 64u;")
    } else {
        src_tiled(tr, tc)
    };
    let _ = (SRC, SRC8);
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor { label: None, source: wgpu::ShaderSource::Wgsl(src.into()) });
    let pipe = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor { label: None, layout: if engine { None } else { Some(&pl) }, module: &module, entry_point: Some(if engine { "main_tex" } else { "main" }), compilation_options: Default::default(), cache: None });
    let va = ta.create_view(&Default::default());
    let vb = tb.create_view(&Default::default());
    let ebgl = pipe.get_bind_group_layout(0);
    let params = device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: None, contents: bytemuck::cast_slice(&[m, n, k, 0u32]), usage: wgpu::BufferUsages::UNIFORM });
    let bg = if engine {
        device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &ebgl, entries: &[
            wgpu::BindGroupEntry { binding: 0, resource: params.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::TextureView(&va) },
            wgpu::BindGroupEntry { binding: 2, resource: wgpu::BindingResource::TextureView(&vb) },
            wgpu::BindGroupEntry { binding: 5, resource: out.as_entire_binding() },
        ]})
    } else {
        device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &bgl, entries: &[
            wgpu::BindGroupEntry { binding: 0, resource: wgpu::BindingResource::TextureView(&va) },
            wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::TextureView(&vb) },
            wgpu::BindGroupEntry { binding: 2, resource: out.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 3, resource: dims.as_entire_binding() },
        ]})
    };
    let (tr, tc) = if engine { (8, 2) } else { (tr, tc) };
    let tiles = (m / tr) * (n / (4 * tc));
    println!("tile {tr} rows x {} cols", 4 * tc);
    let run = || {
        let mut enc = device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipe);
            pass.set_bind_group(0, &bg, &[]);
            pass.dispatch_workgroups(tiles.div_ceil(64), 1, 1);
        }
        queue.submit([enc.finish()]);
        while device.poll(wgpu::PollType::wait_indefinitely()).is_err() {}
    };
    run();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        run();
        best = best.min(t.elapsed().as_secs_f64());
    }
    let flops = 2.0 * m as f64 * n as f64 * k as f64;
    println!("texture matmul 1024^3: best {:.1} ms = {:.2} GFLOP/s", best * 1e3, flops / best / 1e9);
    // Check one element.
    let staging = device.create_buffer(&wgpu::BufferDescriptor { label: None, size: 16, usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST, mapped_at_creation: false });
    let mut enc = device.create_command_encoder(&Default::default());
    enc.copy_buffer_to_buffer(&out, ((5 * n + 8) * 4) as u64, &staging, 0, 16);
    queue.submit([enc.finish()]);
    staging.slice(..).map_async(wgpu::MapMode::Read, |_| {});
    while device.poll(wgpu::PollType::wait_indefinitely()).is_err() {}
    let got: Vec<f32> = bytemuck::cast_slice(&staging.slice(..).get_mapped_range().unwrap()).to_vec();
    let want: f64 = (0..k).map(|kk| av[(5 * k + kk) as usize] as f64 * bv[(kk * n + 8) as usize] as f64).sum();
    println!("out[5][8] = {} (want {want:.3})", got[0]);
}
