//! Adapter limits: the engine plans within the limits the device was opened with.
//! Devices opened with tiny caps force every path that WebGPU's defaults reach on real
//! models: storage bindings split into row ranges (matmul in every variant, im2col, the
//! expert matmul, the to_texture step), dispatches split over x and y, and a clear error,
//! before any allocation, for a node that cannot be split.
mod common;
use wgvision_engine::ops;
use common::*;
use std::sync::{Arc, OnceLock};
use wgvision_engine::{Activation, Compiled, ConvGeometry, Gpu, GpuWeights, Graph, LimitsCap, Op, PoolKind};

const TOL: (f64, f64, f64) = (2e-5, 1e-4, 1e-5);

/// Storage bindings capped at 64 KiB and 64 workgroups per dimension.
fn tiny() -> Arc<Gpu> {
    static GPU: OnceLock<Arc<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| {
        let mut cap = LimitsCap::webgpu_defaults();
        cap.max_storage_buffer_binding_size = 64 << 10;
        cap.max_compute_workgroups_per_dimension = 64;
        Gpu::open(None, Some(cap)).expect("a GPU or software adapter")
    })
    .clone()
}

#[test]
fn capped_limits_are_the_devices_limits() {
    let g = tiny();
    assert_eq!(g.limits.max_storage_buffer_binding_size, 64 << 10);
    assert_eq!(g.limits.max_compute_workgroups_per_dimension, 64);
    let d = LimitsCap::webgpu_defaults();
    assert_eq!((d.max_storage_buffer_binding_size, d.max_buffer_size), (128 << 20, 256 << 20));
    assert_eq!((d.max_compute_workgroups_per_dimension, d.max_compute_workgroup_storage_size, d.max_texture_dimension_2d), (65535, 16384, 8192));
    let w = Gpu::open(None, Some(d)).unwrap();
    assert!(w.limits.max_storage_buffer_binding_size <= 128 << 20 && w.limits.max_texture_dimension_2d <= 8192);
}

#[test]
fn matmul_row_ranges_in_every_variant() {
    // A [300, 64] (75 KiB) and the output [300, 96] (112 KiB) exceed one binding.
    for variant in ["tex", "vec4", "cols8", "cols8x2", "rows", "tiled"] {
        for (bias, residual) in [(true, true), (false, false)] {
            let mut s: Vec<Vec<usize>> = vec![vec![300, 64], vec![64, 96]];
            if bias {
                s.push(vec![96]);
            }
            if residual {
                s.push(vec![300, 96]);
            }
            let refs: Vec<&[usize]> = s.iter().map(|v| v.as_slice()).collect();
            let op = Op::MatMul(ops::MatMul { act: Activation::Gelu, bias, residual });
            check_on(&tiny(), op.clone(), &refs, Some(variant), false, (2e-4, 1e-4, 1e-5));
            check_on(&tiny(), op, &refs, Some(variant), true, (2e-4, 1e-4, 1e-5));
        }
    }
}

#[test]
fn im2col_and_expert_matmul_row_ranges() {
    let g = ConvGeometry { map: [40, 36], kernel: 3, stride: 1, pad: [1, 1], out: [40, 36] };
    check_on(&tiny(), Op::Im2col(ops::Im2col { geometry: g, channels_first: true }), &[&[1, 5, 40, 36]], None, false, TOL);
    // out [8, 128, 32] is 128 KiB: ranges of experts (the weights fit one binding).
    for variant in [None, Some("buffers")] {
        check_on(&tiny(), Op::ExpertMatMul(ops::ExpertMatMul { act: Activation::GeluTanh, bias: true }), &[&[8, 128, 8], &[8, 8, 32], &[8, 32]], variant, false, TOL);
    }
}

#[test]
fn every_kind_of_kernel_with_split_dispatches() {
    // 64 workgroups per dimension: every dispatch over 64 is split over x and y.
    let t = tiny();
    check_on(&t, Op::LayerNorm(ops::LayerNorm { eps: 1e-6 }), &[&[300, 40], &[40], &[40]], None, false, TOL);
    check_on(&t, Op::Softmax(ops::Softmax {}), &[&[300, 13]], None, false, TOL);
    check_on(&t, Op::Unary(ops::Unary { act: Activation::Gelu }), &[&[70, 97]], None, false, TOL);
    check_on(&t, Op::Pool(ops::Pool { kind: PoolKind::MeanFrom(1) }), &[&[30, 9, 50]], None, false, TOL);
    check_on(&t, Op::Attention(ops::Attention { heads: 24, scale: 0.7, causal: false, key_mask: false }), &[&[3, 33, 3 * 24 * 2]], None, false, TOL);
    check_on(&t, Op::Attention(ops::Attention { heads: 16, scale: 0.5, causal: true, key_mask: false }), &[&[2, 33, 3 * 16 * 4]], None, false, TOL);
    check_on(&t, Op::Patchify(ops::Patchify { patch: 8, pad: false }), &[&[1, 3, 56, 72]], None, false, TOL);
}

#[test]
fn a_node_that_cannot_split_fails_before_allocation_naming_the_tensor() {
    // Softmax does not run in row ranges: a 120 KiB input is refused with the numbers.
    let gpu = tiny();
    let mut b = Graph::builder();
    let x = b.input("scores", &[300, 100]).unwrap();
    let y = b.node("softmax", Op::Softmax(ops::Softmax {}), &[x]).unwrap();
    b.output(y, "y").unwrap();
    let g = b.finish();
    let w = GpuWeights::upload(&gpu, &g, |_| None).unwrap();
    let err = Compiled::new(gpu, &g, &w).err().expect("refused").to_string();
    for needle in ["max_storage_buffer_binding_size", "scores", "[300, 100]", "120000", "65536"] {
        assert!(err.contains(needle), "{needle} in: {err}");
    }
}

#[test]
fn real_dispatches_over_65535_workgroups() {
    // One workgroup per row (layernorm, softmax) or per 64 elements (unary): over 65535.
    let g = gpu();
    check_on(&g, Op::LayerNorm(ops::LayerNorm { eps: 1e-5 }), &[&[70001, 3], &[3], &[3]], None, false, TOL);
    check_on(&g, Op::Softmax(ops::Softmax {}), &[&[70001, 2]], None, false, TOL);
    check_on(&g, Op::Unary(ops::Unary { act: Activation::QuickGelu }), &[&[64 * 70001 + 5]], None, false, TOL);
    check_on(&g, Op::MatMul(ops::MatMul { act: Activation::None, bias: true, residual: false }), &[&[70001 * 4, 4], &[4, 4], &[4]], Some("vec4"), false, TOL);
}
