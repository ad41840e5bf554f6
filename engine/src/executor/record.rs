//! Running a compiled graph. One function records dispatches (`record`); the run modes
//! differ only in how they cut the step list and what they read back:
//! - `run`: every step in one compute pass, one submit, outputs read back;
//! - `run_profiled`: GPU time per node, from timestamp queries around one pass per step
//!   (GPUs), or from one submit and wait per node (CPU adapters, whose pass timestamps
//!   stopped matching the work once kernels read textures);
//! - `run_debug`: one submit per node, each node's output read back.
use super::compile::Compiled;
use crate::error::{EngineError, Result};
use std::ops::Range;

/// One GPU time measurement per node, from timestamp queries.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NodeTime {
    pub node: String,
    /// The op's short name (`Op::name`).
    pub op: &'static str,
    /// The kernel variant the node ran.
    pub variant: &'static str,
    pub kernel: String,
    /// Dispatches the node took (row ranges, see `Chunking`).
    pub dispatches: usize,
    pub ms: f64,
}

/// An output tensor read back to the host.
#[derive(Clone, Debug)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Compiled {
    /// Record steps `steps` into `enc`: in one compute pass, or with `timestamps` one pass
    /// per step, writing query 2i and 2i+1 (relative to the range's start) around step i.
    fn record(&self, enc: &mut wgpu::CommandEncoder, steps: Range<usize>, timestamps: Option<&wgpu::QuerySet>) {
        let start = steps.start;
        let dispatch = |pass: &mut wgpu::ComputePass, i: usize| {
            let s = &self.steps[i];
            pass.set_pipeline(&s.pipeline);
            pass.set_bind_group(0, &s.bind_group, &[]);
            pass.dispatch_workgroups(s.dispatch.0, s.dispatch.1, 1);
        };
        match timestamps {
            None => {
                let mut pass = enc.begin_compute_pass(&Default::default());
                for i in steps {
                    dispatch(&mut pass, i);
                }
            }
            Some(qs) => {
                for i in steps {
                    let q = 2 * (i - start) as u32;
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some(&self.nodes[self.steps[i].node].name),
                        timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                            query_set: qs,
                            beginning_of_pass_write_index: Some(q),
                            end_of_pass_write_index: Some(q + 1),
                        }),
                    });
                    dispatch(&mut pass, i);
                }
            }
        }
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
                return Err(EngineError::ShapeMismatch { tensor: io.name.clone(), expected: io.shape.clone(), got: vec![data.len()] });
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

    /// Submit `enc` after copying the outputs, and read them back.
    fn finish(&self, mut enc: wgpu::CommandEncoder) -> Result<Vec<Tensor>> {
        self.copy_outputs(&mut enc);
        self.gpu.queue.submit([enc.finish()]);
        self.read_outputs()
    }

    /// Run once: upload, one compute pass, one submit, read the outputs back.
    pub fn run(&self, inputs: &[(&str, &[f32])]) -> Result<Vec<Tensor>> {
        self.upload(inputs)?;
        let mut enc = self.gpu.device.create_command_encoder(&Default::default());
        self.record(&mut enc, 0..self.steps.len(), None);
        self.finish(enc)
    }

    /// Node by node: record each node's steps, submit and wait; with `read_back`, copy its
    /// output out and read it. Returns each node's wall time (submit to idle) and the
    /// outputs read (the lowering pass's textures have none).
    fn run_node_by_node(&self, read_back: bool) -> Result<(Vec<f64>, Vec<Tensor>)> {
        self.gpu.wait_idle()?;
        let mut times = Vec::with_capacity(self.nodes.len());
        let mut outs = Vec::new();
        for node in &self.nodes {
            let t = std::time::Instant::now();
            let mut enc = self.gpu.device.create_command_encoder(&Default::default());
            if !node.steps.is_empty() {
                self.record(&mut enc, node.steps.clone(), None);
            }
            let len: usize = self.shapes[node.output].iter().product();
            let staging = match (&self.tensor_buffers[node.output], read_back) {
                (Some(buf), true) => {
                    let staging = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("debug"),
                        size: (len.max(1) * 4) as u64,
                        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    });
                    enc.copy_buffer_to_buffer(buf, 0, &staging, 0, (len * 4) as u64);
                    Some(staging)
                }
                _ => None,
            };
            self.gpu.queue.submit([enc.finish()]);
            self.gpu.wait_idle()?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
            if let Some(staging) = staging {
                outs.push(Tensor { name: node.name.clone(), shape: self.shapes[node.output].clone(), data: self.read(&staging, len)? });
            }
        }
        self.gpu.take_uncaptured()?;
        Ok((times, outs))
    }

    fn node_time(&self, ni: usize, ms: f64) -> NodeTime {
        let n = &self.nodes[ni];
        NodeTime { node: n.name.clone(), op: n.op, variant: n.variant, kernel: n.kernel.clone(), dispatches: n.steps.len(), ms }
    }

    /// Run with GPU time per node (nodes without a kernel are left out).
    pub fn run_profiled(&self, inputs: &[(&str, &[f32])]) -> Result<(Vec<Tensor>, Vec<NodeTime>)> {
        self.upload(inputs)?;
        if self.gpu.caps.cpu {
            let (ms, _) = self.run_node_by_node(false)?;
            let enc = self.gpu.device.create_command_encoder(&Default::default());
            let outputs = self.finish(enc)?;
            let times = ms.into_iter().enumerate().filter(|(ni, _)| !self.nodes[*ni].steps.is_empty()).map(|(ni, t)| self.node_time(ni, t)).collect();
            return Ok((outputs, times));
        }
        if !self.gpu.caps.timestamp {
            return Err(EngineError::Gpu(format!("adapter {} has no TIMESTAMP_QUERY: per-op timing is unavailable", self.gpu.info.name)));
        }
        const PER_SET: usize = 2048;
        let dev = &self.gpu.device;
        let mut enc = dev.create_command_encoder(&Default::default());
        let mut reads = Vec::new();
        for start in (0..self.steps.len()).step_by(PER_SET) {
            let range = start..(start + PER_SET).min(self.steps.len());
            let count = 2 * range.len() as u32;
            let qs = dev.create_query_set(&wgpu::QuerySetDescriptor { label: Some("timestamps"), ty: wgpu::QueryType::Timestamp, count });
            self.record(&mut enc, range.clone(), Some(&qs));
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
            reads.push((range, read));
        }
        let outputs = self.finish(enc)?;
        let period = self.gpu.queue.get_timestamp_period() as f64;
        let mut per_node = vec![0.0; self.nodes.len()];
        for (range, read) in &reads {
            let raw = self.read(read, 4 * range.len())?;
            let ticks: &[u64] = bytemuck::cast_slice(&raw);
            for (j, i) in range.clone().enumerate() {
                per_node[self.steps[i].node] += ticks[2 * j + 1].saturating_sub(ticks[2 * j]) as f64 * period / 1e6;
            }
        }
        let times = per_node.into_iter().enumerate().filter(|(ni, _)| !self.nodes[*ni].steps.is_empty()).map(|(ni, t)| self.node_time(ni, t)).collect();
        Ok((outputs, times))
    }

    /// Debug mode: run node by node and read every node's output back, named by node
    /// (the lowering pass's texture copies are left out, and so is a node that wrote its
    /// output into the next node's texture: compile with `fuse_textures: false` to read
    /// back every node). Returns (outputs, node outputs).
    pub fn run_debug(&self, inputs: &[(&str, &[f32])]) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
        self.upload(inputs)?;
        let (_, nodes) = self.run_node_by_node(true)?;
        let enc = self.gpu.device.create_command_encoder(&Default::default());
        Ok((self.finish(enc)?, nodes))
    }
}
