//! Every op on the GPU against its float64 CPU reference, on ragged shapes (1, 7, 257,
//! sizes that are not multiples of 4 or of the tile), in every kernel variant.
mod common;
use wgvision_engine::ops;
use common::*;
use std::borrow::Cow;
use wgvision_engine::{Activation, Compiled, ConvGeometry, DType, Graph, GpuWeights, Op, PoolKind, WeightData, WindowGeometry};

/// One node on the shared device, then on a device capped to 256 workgroups per
/// dimension, where every dispatch over 256 workgroups is split over x and y (see
/// `check_on`).
fn check(op: Op, shapes: &[&[usize]], variant: Option<&'static str>, w_f16: bool, tol: (f64, f64, f64)) {
    check_on(&gpu(), op.clone(), shapes, variant, w_f16, tol);
    check_on(&split_gpu(), op, shapes, variant, w_f16, tol);
}

const F32_TOL: (f64, f64, f64) = (2e-5, 1e-4, 1e-5);

fn matmul_variant_names() -> Vec<&'static str> {
    use ops::Variant;
    ops::matmul::MatmulVariant::ALL.iter().map(|v| v.name()).collect()
}

#[test]
fn matmul_all_variants_ragged_shapes() {
    // K a multiple of 64 with N a multiple of 4 runs the texture kernel (8x8 tiles: rows
    // and columns that do not fill a tile are clamped and masked).
    let shapes: &[(usize, usize, usize)] =
        &[(1, 1, 1), (7, 5, 3), (257, 7, 33), (65, 130, 257), (3, 257, 67), (7, 12, 20), (257, 36, 4), (257, 128, 36), (9, 64, 4), (1, 192, 12)];
    let f16_math = gpu().caps.shader_f16;
    for &(m, k, n) in shapes {
        for variant in matmul_variant_names() {
            for (bias, residual, act) in [
                (false, false, Activation::None),
                (true, false, Activation::Gelu),
                (true, true, Activation::QuickGelu),
                (false, true, Activation::GeluTanh),
            ] {
                let mut s: Vec<Vec<usize>> = vec![vec![m, k], vec![k, n]];
                if bias {
                    s.push(vec![n]);
                }
                if residual {
                    s.push(vec![m, n]);
                }
                let refs: Vec<&[usize]> = s.iter().map(|v| v.as_slice()).collect();
                let tol = (2e-5 * (k as f64).sqrt(), 1e-4, 1e-5);
                check(Op::MatMul(ops::MatMul { act, bias, residual }), &refs, Some(variant), false, tol);
                // f16 weights: widened to f32 arithmetic, except `tiled4` on adapters with
                // SHADER_F16, which rounds A to f16 and multiplies in f16 (f32 sums).
                let f16_tol = if variant == "tiled4" && f16_math { (4e-3 * (k as f64).sqrt(), 4e-3, 2e-3) } else { tol };
                check(Op::MatMul(ops::MatMul { act, bias, residual }), &refs, Some(variant), true, f16_tol);
            }
        }
    }
}

#[test]
fn matmul_batched_leading_dims() {
    check(Op::MatMul(ops::MatMul { act: Activation::None, bias: true, residual: false }), &[&[2, 7, 9], &[9, 5], &[5]], None, false, F32_TOL);
}

#[test]
fn layernorm_ragged() {
    // Both variants (the subgroup one where dim % 4 == 0 and the adapter has subgroups),
    // rows that do not fill the subgroup variant's 8-row workgroups.
    for (rows, d) in [(1, 1), (7, 7), (3, 257), (257, 64), (2, 1000), (9, 4), (197, 768), (13, 12)] {
        for variant in [Some("main"), Some("sg")] {
            check(Op::LayerNorm(ops::LayerNorm { eps: 1e-6 }), &[&[rows, d], &[d], &[d]], variant, false, F32_TOL);
            check(Op::LayerNorm(ops::LayerNorm { eps: 1e-5 }), &[&[1, rows, d], &[d], &[d]], variant, false, F32_TOL);
        }
    }
}

#[test]
fn softmax_ragged() {
    for (rows, d) in [(1, 1), (7, 7), (3, 257), (257, 13), (2, 1000)] {
        check(Op::Softmax(ops::Softmax {}), &[&[rows, d]], None, false, F32_TOL);
    }
}

#[test]
fn attention_ragged() {
    for (b, n, heads, hd) in [(1, 1, 1, 4), (2, 7, 3, 8), (1, 257, 2, 64), (2, 50, 4, 32), (1, 33, 1, 80), (1, 9, 2, 256)] {
        let scale = 1.0 / (hd as f32).sqrt();
        // The subgroup kernel (where the adapter has one) and the plain vec4 one; each
        // falls back to the scalar kernel where the head dim needs it.
        for variant in [Some("sg"), Some("vec4"), Some("flash")] {
            check(Op::Attention(ops::Attention { heads, scale, causal: false, key_mask: false }), &[&[b, n, 3 * heads * hd]], variant, false, F32_TOL);
            check(Op::Attention(ops::Attention { heads, scale, causal: true, key_mask: false }), &[&[b, n, 3 * heads * hd]], variant, false, F32_TOL);
        }
    }
}

/// Window attention's kernels: the subgroup one (forced where it can run) and the scalar one.
const WINDOW_VARIANTS: [Option<&str>; 2] = [Some("sg"), Some("main")];

#[test]
fn window_attention_windows_7_8_12_shift_and_padding() {
    // (batch, map, heads, head_dim, window, shift, pad_first, qkv bias)
    let cases: &[(usize, [usize; 2], usize, usize, [usize; 2], [usize; 2], bool, bool)] = &[
        (1, [7, 7], 2, 8, [7, 7], [0, 0], false, true),      // one window, no shift
        (2, [14, 14], 2, 8, [7, 7], [3, 3], false, true),     // shifted, whole windows
        (1, [10, 13], 1, 16, [7, 7], [3, 3], false, true),    // padding, order roll then pad
        (1, [10, 13], 1, 16, [7, 7], [3, 3], true, true),     // padding, transformers order (pad, roll)
        (1, [10, 13], 1, 16, [7, 7], [0, 0], false, false),   // padding, no bias: pad keys are 0
        (1, [16, 16], 2, 4, [8, 8], [4, 4], false, false),    // window 8
        (1, [12, 20], 1, 8, [12, 12], [6, 6], false, true),   // window 12 (N = 144 > one workgroup), padded W
        (1, [12, 20], 1, 8, [12, 12], [6, 6], true, true),
        (1, [5, 9], 1, 8, [5, 7], [0, 3], false, true),       // shrunk, unshifted rows
    ];
    for &(b, map, heads, hd, window, shift, pad_first, pad_bias) in cases {
        let layout = WindowGeometry { map, window, shift, pad_first, grid: false };
        let n = window[0] * window[1];
        let d3 = 3 * heads * hd;
        let scale = 1.0 / (hd as f32).sqrt();
        let qkv = [b, map[0] * map[1], d3];
        let rel = [heads, n, n];
        let op = Op::WindowAttention(ops::WindowAttention { heads, layout, pad_bias, scale });
        // The subgroup kernel (vec4 head dims; the head dims of 8 and 16 here need it
        // when the adapter has subgroups) and the scalar one.
        for variant in WINDOW_VARIANTS {
            if pad_bias {
                check(op.clone(), &[&qkv, &rel, &[d3]], variant, false, F32_TOL);
            } else {
                check(op.clone(), &[&qkv, &rel], variant, false, F32_TOL);
            }
        }
    }
}

#[test]
fn grid_attention_grids_7_8_12() {
    // (batch, map, heads, head_dim, grid): the dilated grid partition.
    let cases: &[(usize, [usize; 2], usize, usize, [usize; 2])] = &[
        (2, [14, 14], 2, 8, [7, 7]),
        (1, [16, 24], 1, 16, [8, 8]),
        (1, [24, 12], 2, 8, [12, 12]),
        (1, [7, 7], 1, 8, [7, 7]),
    ];
    for &(b, map, heads, hd, window) in cases {
        let layout = WindowGeometry { map, window, shift: [0, 0], pad_first: false, grid: true };
        let n = window[0] * window[1];
        let d3 = 3 * heads * hd;
        let op = Op::WindowAttention(ops::WindowAttention { heads, layout, pad_bias: false, scale: 1.0 / (hd as f32).sqrt() });
        for variant in WINDOW_VARIANTS {
            check(op.clone(), &[&[b, map[0] * map[1], d3], &[heads, n, n]], variant, false, F32_TOL);
        }
    }
}

#[test]
fn depthwise_conv_strides_and_paddings() {
    // (batch, map, channels, kernel, stride, tf "same" padding?)
    let cases: &[(usize, [usize; 2], usize, usize, usize, bool)] = &[
        (2, [7, 9], 5, 3, 1, false),
        (1, [8, 8], 7, 3, 2, true),   // even map, stride 2: TF pads 0 above, 1 below
        (1, [9, 6], 3, 3, 2, true),   // odd rows: TF pads 1 and 1
        (1, [8, 10], 4, 3, 2, false), // PyTorch symmetric padding 1
        (1, [5, 5], 257, 5, 1, true),
        (1, [1, 1], 2, 3, 2, true),
        // Channels a multiple of 4: the vec4 kernel too (56x56 x 64: a released 224 px stage 1).
        (2, [7, 9], 12, 3, 1, false),
        (1, [56, 56], 64, 3, 1, true),
        (1, [9, 6], 8, 3, 2, true),
    ];
    for &(b, map, c, k, stride, tf) in cases {
        let geometry = if tf { ConvGeometry::tf_same(map, k, stride) } else { ConvGeometry::symmetric(map, k, stride) };
        for act in [Activation::None, Activation::GeluTanh] {
            for variant in [Some("vec4"), Some("main")] {
                let op = Op::DepthwiseConv(ops::DepthwiseConv { geometry: geometry.clone(), act });
                check(op, &[&[b, map[0] * map[1], c], &[k * k, c], &[c]], variant, false, F32_TOL);
            }
        }
    }
    // TF "same" geometry against TensorFlow's formula: out = ceil(n / s), pad_total =
    // max((out - 1) * s + k - n, 0), the smaller half on top.
    let g = ConvGeometry::tf_same([8, 9], 3, 2);
    assert_eq!((g.out, g.pad), ([4, 5], [0, 1]));
}

#[test]
fn avg_pool_same_and_valid() {
    // MBConv's 2x2 shortcut pool: TF "same" (odd maps pad one zero row/column, counted in
    // the mean as AvgPool2dSame does) and PyTorch's unpadded AvgPool2d (floor).
    for (b, map, c) in [(2, [8, 6], 5), (1, [7, 9], 3), (1, [1, 1], 4)] {
        for geometry in [ConvGeometry::tf_same(map, 2, 2), ConvGeometry::valid(map, 2, 2)] {
            check(Op::AvgPool(ops::AvgPool { geometry }), &[&[b, map[0] * map[1], c]], None, false, F32_TOL);
        }
    }
    assert_eq!(ConvGeometry::valid([7, 9], 2, 2).out, [3, 4]);
    assert_eq!(ConvGeometry::tf_same([7, 9], 2, 2).out, [4, 5]);
}

#[test]
fn im2col_image_and_map_layouts() {
    // Stem convs: 3x3 stride 2 from an NCHW image (TF same and symmetric), 3x3 stride 1
    // over a channels-last map.
    for (b, map, c, k, stride, tf, channels_first) in [
        (2, [9, 8], 3, 3, 2, true, true),
        (1, [9, 8], 3, 3, 2, false, true),
        (1, [6, 7], 5, 3, 1, false, false),
        (2, [4, 4], 2, 3, 1, true, false),
        // k*k*C a multiple of 4: the quad kernel too.
        (1, [8, 8], 4, 3, 1, false, false),
        (1, [9, 8], 4, 3, 2, true, true),
        (2, [7, 5], 12, 3, 2, true, false),
    ] {
        let geometry = if tf { ConvGeometry::tf_same(map, k, stride) } else { ConvGeometry::symmetric(map, k, stride) };
        let shape = if channels_first { vec![b, c, map[0], map[1]] } else { vec![b, map[0] * map[1], c] };
        for variant in [Some("quad"), Some("main")] {
            check(Op::Im2col(ops::Im2col { geometry: geometry.clone(), channels_first }), &[&shape], variant, false, (0.0, 0.0, 0.0));
        }
    }
}

/// CPU adapters: im2col's quad kernel writes the stem matmul's A texture itself.
#[test]
fn im2col_writes_the_matmul_texture() {
    let gpu = gpu();
    let (map, c, n) = ([10, 9], 8, 12);
    let geometry = ConvGeometry::tf_same(map, 3, 2);
    let cols = 9 * c;
    let mut b = Graph::builder();
    let x = b.input("x0", &[1, map[0] * map[1], c]).unwrap();
    let w = b.weight("w", &[cols, n]).unwrap();
    let im = Op::Im2col(ops::Im2col { geometry: geometry.clone(), channels_first: false });
    let mm = Op::MatMul(ops::MatMul { act: Activation::None, bias: false, residual: false });
    let cols_t = b.node("im2col", im.clone(), &[x]).unwrap();
    let y = b.node("conv", mm.clone(), &[cols_t, w]).unwrap();
    b.output(y, "y").unwrap();
    let g = b.finish();
    let wd = rand_vec(cols * n, 41);
    let weights = GpuWeights::upload(&gpu, &g, |_| Some(WeightData { dtype: DType::F32, shape: vec![cols, n], bytes: Cow::Owned(bytemuck::cast_slice(&wd).to_vec()) })).unwrap();
    let c2 = Compiled::new(gpu.clone(), &g, &weights).unwrap();
    if gpu.caps.cpu {
        let ops_run: Vec<&str> = c2.nodes().iter().map(|n| n.op).collect();
        assert_eq!(ops_run, ["im2col", "matmul"], "{:?}", c2.nodes());
    }
    let xd = rand_vec(map[0] * map[1] * c, 42);
    let got = c2.run(&[("x0", &xd)]).unwrap();
    let f = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    let [oh, ow] = geometry.out;
    let r_cols = im.reference(&[&f(&xd)], &[&[1, map[0] * map[1], c]], &[1, oh * ow, cols]);
    let want = mm.reference(&[&r_cols, &f(&wd)], &[&[1, oh * ow, cols], &[cols, n]], &[1, oh * ow, n]);
    assert_close("im2col -> texture matmul", &got[0].data, &want, 2e-4, 1e-4, 1e-5);
}

#[test]
fn channel_scale_sigmoid_gate() {
    for (b, t, c) in [(1, 1, 1), (2, 49, 67), (3, 5, 256), (2, 49, 64)] {
        for act in [Activation::Sigmoid, Activation::None] {
            for variant in [Some("quad"), Some("main")] {
                check(Op::ChannelScale(ops::ChannelScale { act, skip: 0 }), &[&[b, t, c], &[b, c]], variant, false, F32_TOL);
            }
        }
    }
    // Skipping a class token, channels a multiple of 4 (quad) and not.
    for c in [8, 7] {
        for variant in [Some("quad"), Some("main")] {
            check(Op::ChannelScale(ops::ChannelScale { act: Activation::Sigmoid, skip: 1 }), &[&[2, 5, c], &[2, c]], variant, false, F32_TOL);
        }
    }
}

#[test]
fn patch_merge_even_and_odd_maps() {
    for (b, h, w, c) in [(1, 2, 2, 1), (2, 4, 6, 3), (1, 7, 5, 4), (1, 1, 1, 2)] {
        check(Op::PatchMerge(ops::PatchMerge { map: [h, w] }), &[&[b, h * w, c]], None, false, (0.0, 0.0, 0.0));
    }
}

#[test]
fn patchify_ragged() {
    for (b, c, h, w, p) in [(1, 1, 1, 1, 1), (2, 3, 7, 9, 3), (1, 3, 33, 18, 16), (1, 3, 14, 14, 14)] {
        check(Op::Patchify(ops::Patchify { patch: p, pad: false }), &[&[b, c, h, w]], None, false, (0.0, 0.0, 0.0));
        check(Op::Patchify(ops::Patchify { patch: p, pad: true }), &[&[b, c, h, w]], None, false, (0.0, 0.0, 0.0));
    }
}

#[test]
fn token_embed_variants() {
    let (b, np, d) = (2, 7, 5);
    check(Op::TokenEmbed(ops::TokenEmbed { prefix: 1, pos: true, pos_start: 0 }), &[&[b, np, d], &[1, d], &[np + 1, d]], None, false, F32_TOL);
    check(Op::TokenEmbed(ops::TokenEmbed { prefix: 5, pos: true, pos_start: 5 }), &[&[b, np, d], &[5, d], &[np, d]], None, false, F32_TOL);
    check(Op::TokenEmbed(ops::TokenEmbed { prefix: 0, pos: true, pos_start: 0 }), &[&[b, np, d], &[np, d]], None, false, F32_TOL);
    check(Op::TokenEmbed(ops::TokenEmbed { prefix: 4, pos: false, pos_start: 0 }), &[&[b, np, d], &[4, d]], None, false, F32_TOL);
}

#[test]
fn pool_token_and_mean() {
    check(Op::Pool(ops::Pool { kind: PoolKind::Token(0) }), &[&[2, 7, 257]], None, false, F32_TOL);
    check(Op::Pool(ops::Pool { kind: PoolKind::MeanFrom(1) }), &[&[3, 257, 7]], None, false, F32_TOL);
    check(Op::Pool(ops::Pool { kind: PoolKind::MeanFrom(0) }), &[&[1, 1, 1]], None, false, F32_TOL);
}

#[test]
fn activations_match_float64() {
    // Includes large |x|, where a naive tanh can return NaN and erf tails matter.
    for act in [Activation::Gelu, Activation::GeluTanh, Activation::QuickGelu, Activation::Tanh, Activation::Relu, Activation::Silu, Activation::Sigmoid] {
        check(Op::Unary(ops::Unary { act }), &[&[257, 7]], None, false, (1e-6, 1e-5, 1e-6));
    }
    let gpu = gpu();
    let xs: Vec<f32> = (-400..=400).map(|i| i as f32 * 0.05).chain([-60.0, 60.0, -1e4, 1e4]).collect();
    let mut b = Graph::builder();
    let x = b.input("x0", &[xs.len()]).unwrap();
    let mut outs = vec![];
    for (i, act) in [Activation::Gelu, Activation::GeluTanh, Activation::QuickGelu].into_iter().enumerate() {
        let y = b.node(&format!("n{i}"), Op::Unary(ops::Unary { act }), &[x]).unwrap();
        b.output(y, &format!("y{i}")).unwrap();
        outs.push(act);
    }
    let g = b.finish();
    let w = GpuWeights::upload(&gpu, &g, |_| None).unwrap();
    let c = Compiled::new(gpu, &g, &w).unwrap();
    let got = c.run(&[("x0", &xs)]).unwrap();
    for (t, act) in got.iter().zip(outs) {
        for (g, x) in t.data.iter().zip(&xs) {
            let want = act.apply(*x as f64);
            assert!(g.is_finite(), "{act:?}({x}) = {g}");
            assert!((*g as f64 - want).abs() <= 3e-7 + 2e-6 * want.abs(), "{act:?}({x}): got {g}, want {want}");
        }
    }
}

#[test]
fn reference_erf_is_accurate() {
    // Known values of erf (Abramowitz & Stegun table 7.1).
    for (x, want) in [(0.5, 0.5204998778130465), (1.0, 0.8427007929497149), (2.0, 0.9953222650189527), (3.0, 0.9999779095030014)] {
        assert!((wgvision_engine::ops::erf(x) - want).abs() < 1e-14, "erf({x})");
        assert!((wgvision_engine::ops::erf(-x) + want).abs() < 1e-14);
    }
}

/// One node whose inputs are all graph inputs with the given values (a routing table must
/// be a real one, not random numbers).
fn check_exact_inputs(op: Op, shapes: &[&[usize]], data: &[&[f64]]) {
    check_exact_inputs_in(op, shapes, data, None);
}

/// As `check_exact_inputs`, with every node in `variant` where it can run.
fn check_exact_inputs_in(op: Op, shapes: &[&[usize]], data: &[&[f64]], variant: Option<&str>) {
    check_exact_inputs_on(&gpu(), op.clone(), shapes, data, variant);
    check_exact_inputs_on(&split_gpu(), op, shapes, data, variant);
}

fn check_exact_inputs_on(gpu: &std::sync::Arc<wgvision_engine::Gpu>, op: Op, shapes: &[&[usize]], data: &[&[f64]], variant: Option<&str>) {
    let gpu = gpu.clone();
    let mut b = Graph::builder();
    let ids: Vec<_> = shapes.iter().enumerate().map(|(i, s)| b.input(&format!("x{i}"), s).unwrap()).collect();
    let out = b.node("node", op.clone(), &ids).unwrap();
    b.output(out, "y").unwrap();
    let g = b.finish();
    let weights = GpuWeights::upload(&gpu, &g, |_| None).unwrap();
    let c = Compiled::with_variant(gpu, &g, &weights, variant).unwrap();
    let f32s: Vec<Vec<f32>> = data.iter().map(|d| d.iter().map(|&v| v as f32).collect()).collect();
    let seen: Vec<Vec<f64>> = f32s.iter().map(|d| d.iter().map(|&v| v as f64).collect()).collect();
    let named: Vec<(String, &[f32])> = f32s.iter().enumerate().map(|(i, d)| (format!("x{i}"), d.as_slice())).collect();
    let inputs: Vec<(&str, &[f32])> = named.iter().map(|(n, d)| (n.as_str(), *d)).collect();
    let got = c.run(&inputs).unwrap();
    let refs: Vec<&[f64]> = seen.iter().map(|v| v.as_slice()).collect();
    let want = op.reference(&refs, shapes, g.shape(out));
    assert_eq!(got[0].shape, g.shape(out));
    assert_close(&format!("{op:?} {shapes:?}"), &got[0].data, &want, F32_TOL.0, F32_TOL.1, F32_TOL.2);
}

/// Router logits with distinct values per row (no ties) from a seed.
fn logits(rows: usize, e: usize, seed: u64) -> Vec<Vec<f64>> {
    let v = rand_vec(rows * e, seed);
    v.chunks(e).map(|c| c.iter().map(|&x| 3.0 * x as f64).collect()).collect()
}

#[test]
fn attention_causal_with_padding_mask() {
    // A text tower: causal plus a padding mask (each sequence keeps its first tokens).
    for (b, n, heads, hd) in [(3, 16, 2, 8), (2, 7, 1, 32), (4, 33, 4, 16)] {
        let qkv: Vec<f64> = rand_vec(b * n * 3 * heads * hd, 21).iter().map(|&v| v as f64).collect();
        let mask: Vec<f64> = (0..b * n).map(|i| if i % n < n - (i / n) * 2 { 1.0 } else { 0.0 }).collect();
        for causal in [true, false] {
            let op = Op::Attention(ops::Attention { heads, scale: 0.3, causal, key_mask: true });
            for variant in [Some("sg"), Some("vec4"), Some("flash")] {
                check_exact_inputs_in(op.clone(), &[&[b, n, 3 * heads * hd], &[b, n]], &[&qkv, &mask], variant);
            }
        }
    }
}

#[test]
fn moe_slot_assignment_hand_worked() {
    use wgvision_engine::ops::moe_route::assign_slots;
    // 6 tokens, 3 experts, K=2, capacity 2. Gates per token (rows) and top-2 experts:
    //   t0 [.5 .3 .2] -> 0,1   t1 [.6 .1 .3] -> 0,2   t2 [.2 .7 .1] -> 1,0
    //   t3 [.8 .15 .05] -> 0,1 t4 [.1 .2 .7] -> 2,1   t5 [.3 .6 .1] -> 1,0
    let gates: Vec<Vec<f64>> = vec![
        vec![0.5, 0.3, 0.2], vec![0.6, 0.1, 0.3], vec![0.2, 0.7, 0.1],
        vec![0.8, 0.15, 0.05], vec![0.1, 0.2, 0.7], vec![0.3, 0.6, 0.1],
    ];
    let experts = vec![vec![0, 1], vec![0, 2], vec![1, 0], vec![0, 1], vec![2, 1], vec![1, 0]];
    // Token order. Rank 1: e0 <- t0 (0), t1 (1), t3 dropped (full); e1 <- t2 (0), t5 (1);
    // e2 <- t4 (0). Rank 2: t0 -> e1 full, dropped; t1 -> e2 (1); t2 -> e0 full; t3 -> e1
    // full; t4 -> e1 full; t5 -> e0 full.
    let top1: Vec<f64> = gates.iter().zip(&experts).map(|(g, e)| g[e[0]]).collect();
    let pos = assign_slots(&top1, &experts, 3, 2, false);
    let want = vec![
        vec![Some(0), None], vec![Some(1), Some(1)], vec![Some(0), None],
        vec![None, None], vec![Some(0), None], vec![Some(1), None],
    ];
    assert_eq!(pos, want);
    // Batch priority: order by top-1 gate, descending: t3 (.8), t2 (.7), t4 (.7, after t2),
    // t1 (.6), t5 (.6), t0 (.5). Rank 1: e0 <- t3 (0), t1 (1), t0 dropped; e1 <- t2 (0),
    // t5 (1); e2 <- t4 (0). Rank 2: t3 -> e1 full; t2 -> e0 full; t4 -> e1 full;
    // t1 -> e2 (1); t5 -> e0 full; t0 -> e1 full.
    let pos = assign_slots(&top1, &experts, 3, 2, true);
    let want = vec![
        vec![None, None], vec![Some(1), Some(1)], vec![Some(0), None],
        vec![Some(0), None], vec![Some(0), None], vec![Some(1), None],
    ];
    assert_eq!(pos, want);
    // Capacity large enough: nothing dropped; 2nd choices queue behind all 1st choices.
    let pos = assign_slots(&top1, &experts, 3, 8, false);
    assert_eq!(pos[0], vec![Some(0), Some(2)]); // e1 holds t2, t5 from rank 1
    assert!(pos.iter().flatten().all(Option::is_some));
}

/// Gate, then slots: the reference gate table feeds moe_route, so routing decisions are
/// compared exactly (no f32 ties move a token).
fn gate_then_route(rows_in: usize, e: usize, d: usize, k: usize, routing: wgvision_engine::Routing, seed: u64) {
    // Router weights = identity over the first E of D channels: the tokens' first E values
    // are the logits (distinct, from `logits`), so routing decisions are not f32 ties.
    let l = logits(rows_in, e, seed);
    let x: Vec<f64> = (0..rows_in).flat_map(|r| (0..d).map(move |j| (j, r))).map(|(j, r)| if j < e { l[r][j] } else { 0.25 }).collect();
    let w: Vec<f64> = (0..d * e).map(|i| if i / e == i % e { 1.0 } else { 0.0 }).collect();
    let gate = Op::MoeGate(ops::MoeGate { experts: e, k, routing: routing.clone() });
    check_exact_inputs(gate.clone(), &[&[rows_in, d], &[d, e]], &[&x, &w]);
    if matches!(routing, wgvision_engine::Routing::Token { .. }) {
        let t = routing.tokens(rows_in);
        let table = gate.reference(&[&x, &w], &[&[rows_in, d], &[d, e]], &[t, k, 3]);
        check_exact_inputs(Op::MoeRoute(ops::MoeRoute { routing }), &[&[t, k, 3]], &[&table]);
    }
}

#[test]
fn moe_gate_and_route_token_and_image_on_gpu() {
    use wgvision_engine::Routing;
    for (t, e, k, group, cap, bpr) in [(16, 4, 1, 8, 4, false), (34, 8, 2, 17, 4, true), (64, 4, 2, 64, 8, false), (20, 3, 2, 5, 4, true), (40, 64, 8, 20, 4, true)] {
        gate_then_route(t, e, 11, k, Routing::Token { group, capacity: cap, batch_priority: bpr }, 40 + t as u64);
    }
    gate_then_route(3, 5, 7, 2, Routing::Image { tokens: 7 }, 9);
    // A real matmul in the router: ragged D and E, random weights.
    let x: Vec<f64> = rand_vec(24 * 37, 3).iter().map(|&v| v as f64).collect();
    let w: Vec<f64> = rand_vec(37 * 6, 4).iter().map(|&v| 4.0 * v as f64).collect();
    let op = Op::MoeGate(ops::MoeGate { experts: 6, k: 2, routing: Routing::Token { group: 12, capacity: 4, batch_priority: true } });
    check_exact_inputs(op, &[&[24, 37], &[37, 6]], &[&x, &w]);
}

/// Regression (issue 10): an MoE B/16 at 384 routes groups of 8 images x 577 tokens (4616)
/// with E = 8, K = 2 and a 768-wide router. One workgroup per group looped over
/// group/64 tokens per lane and the whole group per token, far past lavapipe's
/// 65535-back-edge loop limiter.
#[test]
fn moe_routing_at_released_group_size() {
    use wgvision_engine::Routing;
    let (group, e, k, d) = (8 * 577, 8, 2, 768);
    let cap = ((group * k) as f64 * 1.05 / e as f64).ceil() as usize; // ceil(S*K*cf/E) to a multiple of 4: 1212
    let cap = cap.div_ceil(4) * 4;
    for bpr in [false, true] {
        gate_then_route(group, e, d, k, Routing::Token { group, capacity: cap, batch_priority: bpr }, 5);
    }
    // The router matmul itself at that width, random weights.
    let x: Vec<f64> = rand_vec(group * d, 13).iter().map(|&v| v as f64).collect();
    let w: Vec<f64> = rand_vec(d * e, 14).iter().map(|&v| 0.2 * v as f64).collect();
    let op = Op::MoeGate(ops::MoeGate { experts: e, k, routing: Routing::Token { group, capacity: cap, batch_priority: true } });
    check_exact_inputs(op, &[&[group, d], &[d, e]], &[&x, &w]);
}

#[test]
fn moe_dispatch_expert_matmul_combine() {
    use wgvision_engine::Routing;
    // A routing table from the reference router, then each op against its reference.
    let (t, e, k, d) = (24, 4, 2, 9);
    for routing in [Routing::Token { group: 12, capacity: 4, batch_priority: true }, Routing::Image { tokens: 6 }] {
        let rows_in = if matches!(routing, Routing::Image { .. }) { t / 6 } else { t };
        let l: Vec<f64> = logits(rows_in, e, 77).concat();
        let eye: Vec<f64> = (0..e * e).map(|i| if i / e == i % e { 1.0 } else { 0.0 }).collect();
        let gates = Op::MoeGate(ops::MoeGate { experts: e, k, routing: routing.clone() }).reference(&[&l, &eye], &[&[rows_in, e], &[e, e]], &[t, k, 3]);
        let route = Op::MoeRoute(ops::MoeRoute { routing: routing.clone() }).reference(&[&gates], &[&[t, k, 3]], &[t, k, 3]);
        let r = routing.rows_per_expert(t);
        let x: Vec<f64> = rand_vec(t * d, 5).iter().map(|&v| v as f64).collect();
        let disp = Op::MoeDispatch(ops::MoeDispatch { experts: e, routing: routing.clone() });
        check_exact_inputs(disp, &[&[t, d], &[t, k, 3]], &[&x, &route]);
        let y: Vec<f64> = rand_vec(e * r * d, 6).iter().map(|&v| v as f64).collect();
        check_exact_inputs(Op::MoeCombine(ops::MoeCombine {}), &[&[e, r, d], &[t, k, 3], &[t, d]], &[&y, &route, &x]);
    }
    // K and N multiples of 4 take the texture kernel on CPU adapters; "buffers" forces
    // the storage-buffer kernel.
    for (e, r, kk, n) in [(3, 8, 5, 7), (8, 4, 16, 33), (1, 12, 1, 1), (4, 8, 12, 16), (2, 4, 64, 12), (3, 16, 32, 72), (5, 12, 20, 100), (2, 68, 16, 20)] {
        for variant in [Some("tex_sg"), Some("tex"), Some("tiled4"), Some("buffers")] {
            check(Op::ExpertMatMul(ops::ExpertMatMul { act: Activation::GeluTanh, bias: true }), &[&[e, r, kk], &[e, kk, n], &[e, n]], variant, false, F32_TOL);
            check(Op::ExpertMatMul(ops::ExpertMatMul { act: Activation::None, bias: false }), &[&[e, r, kk], &[e, kk, n]], variant, false, F32_TOL);
        }
    }
}

/// The attention-pooling head and the image-text similarity head, at ragged sizes
/// and released ones (197 tokens at width 768 / 12 heads; 729 tokens at 1152 / 16 heads,
/// the so400m width at 384 px).
#[test]
fn contrastive_head_ops_against_reference() {
    // One token, the workgroup-memory maximum, and head dims below and above the 64 lanes.
    for (b, n, a, heads) in [(2, 5, 6, 2), (1, 1, 8, 2), (1, 2048, 8, 1), (1, 197, 768, 12), (1, 729, 1152, 16), (3, 70, 40, 1), (1, 9, 130, 1)] {
        check(Op::AttentionPool(ops::AttentionPool { heads }), &[&[b, n, 2 * a], &[a]], None, false, F32_TOL);
    }
    for shape in [&[3, 7][..], &[2, 768], &[2, 3, 130]] {
        check(Op::L2Normalize(ops::L2Normalize {}), &[shape], None, false, F32_TOL);
    }
    // A zero row stays zero (torch would give NaN; a padded batch must not).
    let x = vec![0.0, 0.0, 0.0, 3.0, 4.0, 0.0];
    let want = Op::L2Normalize(ops::L2Normalize {}).reference(&[&x], &[&[2, 3]], &[2, 3]);
    assert_eq!(want, [0.0, 0.0, 0.0, 0.6, 0.8, 0.0]);
    check_exact_inputs(Op::L2Normalize(ops::L2Normalize {}), &[&[2, 3]], &[&x]);
    // Several workgroups (9 x 13 > 64 outputs), D of 1 and 257, and a released size.
    for bias in [false, true] {
        for (rows, cols, d) in [(2, 5, 9), (9, 13, 257), (3, 2, 1), (8, 1000, 512)] {
            let (a, b) = ([rows, d], [cols, d]);
            let mut shapes: Vec<&[usize]> = vec![&a, &b, &[1]];
            if bias {
                shapes.push(&[1]);
            }
            check(Op::Similarity(ops::Similarity { bias }), &shapes, None, false, F32_TOL);
        }
    }
    assert!(Op::AttentionPool(ops::AttentionPool { heads: 2 }).infer(&[&[1, 4096, 8], &[4]]).is_err(), "too many tokens for workgroup memory");
}

#[test]
fn detector_head_ops_against_reference() {
    // Class-token scaling of the patch tokens (skip = 1) and a plain reshape.
    check(Op::ChannelScale(ops::ChannelScale { act: Activation::None, skip: 1 }), &[&[2, 5, 7], &[2, 7]], None, false, F32_TOL);
    check(Op::Reshape(ops::Reshape { shape: vec![3, 4] }), &[&[3, 4, 1]], None, false, (0.0, 0.0, 0.0)); // (a graph output: a copy)
    // Token embedding: ids within the vocabulary, sequences shorter than the positions.
    let (n, l, v, d) = (3, 5, 11, 6);
    let ids: Vec<f64> = (0..n * l).map(|i| ((i * 7 + 3) % v) as f64).collect();
    let table: Vec<f64> = rand_vec(v * d, 2).iter().map(|&x| x as f64).collect();
    let pos: Vec<f64> = rand_vec(8 * d, 3).iter().map(|&x| x as f64).collect();
    check_exact_inputs(Op::EmbedTokens(ops::EmbedTokens {}), &[&[n, l], &[v, d], &[8, d]], &[&ids, &table, &pos]);
    // EOS pooling: the largest id's position, the first on ties.
    let ids: Vec<f64> = vec![5., 9., 2., 9., 0., 1., 1., 1., 1., 1., 3., 2., 7., 0., 0.];
    let x: Vec<f64> = rand_vec(n * l * d, 4).iter().map(|&v| v as f64).collect();
    check_exact_inputs(Op::EosPool(ops::EosPool {}), &[&[n, l, d], &[n, l]], &[&x, &ids]);
    let picked = Op::EosPool(ops::EosPool {}).reference(&[&x, &ids], &[&[n, l, d], &[n, l]], &[n, d]);
    assert_eq!(&picked[..d], &x[d..2 * d]); // sequence 0: first 9 at position 1
    assert_eq!(&picked[d..2 * d], &x[5 * d..6 * d]); // sequence 1: all equal -> position 0
    // Class logits: 2 images, 3 queries each, one padding query (first id 0).
    let (b, p, q, dd, len) = (2, 5, 3, 9, 4);
    let img: Vec<f64> = rand_vec(b * p * dd, 5).iter().map(|&v| v as f64).collect();
    let ss: Vec<f64> = rand_vec(b * p * 2, 6).iter().map(|&v| 2.0 * v as f64).collect();
    let text: Vec<f64> = rand_vec(b * q * dd, 7).iter().map(|&v| v as f64).collect();
    let ids: Vec<f64> = (0..b * q * len).map(|i| if i == 4 * len { 0.0 } else { 49406.0 + (i % 2) as f64 }).collect();
    let shapes: [&[usize]; 4] = [&[b, p, dd], &[b, p, 2], &[b * q, dd], &[b * q, len]];
    check_exact_inputs(Op::NormDotHead(ops::NormDotHead { image_eps: 1e-6, text_eps: 1e-6 }), &shapes, &[&img, &ss, &text, &ids]);
    let want = Op::NormDotHead(ops::NormDotHead { image_eps: 1e-6, text_eps: 1e-6 }).reference(&[&img, &ss, &text, &ids], &shapes, &[b, p, q]);
    assert_eq!(want[p * q + 1], f32::MIN as f64); // image 1, patch 0, query 1 = row 4: padding
}

#[test]
fn matmul_texture_kernel_runs_on_cpu_adapters() {
    // On a CPU adapter, an f32 weight with N % 4 == 0 and K % 64 == 0 takes the texture
    // kernel by default (on a GPU the tiled kernel); either way the result is checked.
    let gpu = gpu();
    let mut b = Graph::builder();
    let x = b.input("x0", &[2, 33, 128]).unwrap();
    let w = b.weight("w1", &[128, 40]).unwrap();
    let y = b.node("mm", Op::MatMul(ops::MatMul { act: Activation::Gelu, bias: false, residual: false }), &[x, w]).unwrap();
    b.output(y, "y").unwrap();
    let g = b.finish();
    let wd = rand_vec(128 * 40, 3);
    let weights = GpuWeights::upload(&gpu, &g, |_| Some(WeightData { dtype: DType::F32, shape: vec![128, 40], bytes: Cow::Owned(bytemuck::cast_slice(&wd).to_vec()) })).unwrap();
    let c = Compiled::new(gpu.clone(), &g, &weights).unwrap();
    let kernels = c.kernels();
    if gpu.caps.cpu {
        assert!(kernels.iter().any(|(_, k)| k.contains("main_tex")), "{kernels:?}");
        // With subgroups of 8 or more lanes (lavapipe), A texels are shared by broadcasts.
        let variant = if gpu.caps.subgroup && gpu.caps.subgroup_min_size >= 8 { "tex_sg" } else { "tex" };
        assert!(c.nodes().iter().any(|n| n.variant == variant), "{:?}", c.nodes());
    }
    let xd = rand_vec(2 * 33 * 128, 4);
    let got = c.run(&[("x0", &xd)]).unwrap();
    let xs: Vec<f64> = xd.iter().map(|&v| v as f64).collect();
    let ws: Vec<f64> = wd.iter().map(|&v| v as f64).collect();
    let want = Op::MatMul(ops::MatMul { act: Activation::Gelu, bias: false, residual: false }).reference(&[&xs, &ws], &[&[2, 33, 128], &[128, 40]], &[2, 33, 40]);
    assert_close("texture matmul", &got[0].data, &want, 2e-4, 1e-4, 1e-5);
}

/// Regression (issue 10): lavapipe's shared loop limiter (65535 back-edges per invocation)
/// cut the attention loops short past ~480 tokens at head dim 64, silently. The grid covers
/// the token counts of released checkpoints (197 ViT-B/16 224, 443 / 577 at 336 / 384,
/// 1025, 1374 (518 px /14 + registers), 2305 (768 px /16), 3601 (960 px /16)), every head
/// count {1, 3, 12, 16}, head dim {32, 64, 80, 128} and batch 1 to 4.
#[test]
fn attention_released_token_counts() {
    let cases: &[(usize, usize, usize, usize, bool)] = &[
        (1, 1, 1, 32, false),
        (2, 7, 3, 80, true),
        (4, 197, 12, 64, false),
        (3, 443, 16, 32, false),
        (1, 480, 1, 64, false),
        (1, 577, 12, 64, true),
        (2, 1025, 3, 128, false),
        (1, 1374, 1, 80, false),
        (1, 2305, 1, 64, true),
        (1, 3601, 1, 128, false),
        (1, 3601, 3, 32, false),
    ];
    for &(b, n, heads, hd, causal) in cases {
        let scale = 1.0 / (hd as f32).sqrt();
        for variant in [Some("sg"), Some("vec4"), Some("flash")] {
            check(Op::Attention(ops::Attention { heads, scale, causal, key_mask: false }), &[&[b, n, 3 * heads * hd]], variant, false, F32_TOL);
        }
    }
}

/// The scalar kernel (head dims that are not a multiple of 4) on shapes within the loop
/// limit, and a clear refusal, not a wrong answer, beyond it on CPU adapters.
#[test]
fn attention_scalar_kernel_and_loop_limit() {
    for (b, n, heads, hd) in [(2, 7, 3, 80), (4, 197, 12, 64), (1, 443, 1, 64), (1, 50, 2, 6)] {
        let scale = 1.0 / (hd as f32).sqrt();
        check(Op::Attention(ops::Attention { heads, scale, causal: false, key_mask: false }), &[&[b, n, 3 * heads * hd]], Some("scalar"), false, F32_TOL);
    }
    let gpu = gpu();
    if gpu.caps.cpu {
        let mut b = Graph::builder();
        let x = b.input("x0", &[1, 5000, 3 * 6]).unwrap();
        let y = b.node("attn", Op::Attention(ops::Attention { heads: 1, scale: 0.4, causal: false, key_mask: false }), &[x]).unwrap();
        b.output(y, "y").unwrap();
        let g = b.finish();
        let w = GpuWeights::upload(&gpu, &g, |_| None).unwrap();
        let err = Compiled::new(gpu.clone(), &g, &w).err().expect("refused").to_string();
        assert!(err.contains("5000 tokens") && err.contains("65535"), "{err}");
    }
}

/// A padding mask that removes every key of a row (an all-zero attention_mask): the
/// softmax is uniform over the causal keys, as transformers' additive masks give, never
/// 0/0 (issue 10: NaN logits). Vec4 and scalar kernels, causal and not.
#[test]
fn attention_all_keys_masked_is_uniform_not_nan() {
    for (b, n, heads, hd) in [(3, 16, 2, 8), (2, 7, 1, 6)] {
        let qkv: Vec<f64> = rand_vec(b * n * 3 * heads * hd, 31).iter().map(|&v| v as f64).collect();
        // Batch 0 has no key at all; the others keep their first tokens.
        let mask: Vec<f64> = (0..b * n).map(|i| if i / n > 0 && i % n < 3 { 1.0 } else { 0.0 }).collect();
        for causal in [true, false] {
            let op = Op::Attention(ops::Attention { heads, scale: 0.3, causal, key_mask: true });
            for variant in [Some("sg"), Some("vec4"), Some("flash")] {
                check_exact_inputs_in(op.clone(), &[&[b, n, 3 * heads * hd], &[b, n]], &[&qkv, &mask], variant);
            }
        }
    }
}

/// Window and grid attention at the windows of released checkpoints (shifted windows 7
/// and 12; block/grid 7 at 224, 12 at 384, 16 at 512) over heads {1, 3, 12, 16}, head dims {32, 64,
/// 80, 128} and batch 1 to 4; past lavapipe's loop limiter a shape is refused, not cut short.
#[test]
fn window_and_grid_attention_released_geometries() {
    // (batch, map, heads, head_dim, window, shift, grid)
    let cases: &[(usize, [usize; 2], usize, usize, [usize; 2], [usize; 2], bool)] = &[
        (1, [24, 24], 3, 32, [12, 12], [6, 6], false), // 384 px, window 12, shifted
        (4, [14, 14], 12, 32, [7, 7], [3, 3], false),  // window 7, batch 4
        (2, [32, 32], 1, 64, [16, 16], [0, 0], true),  // 512 px grid 16
        (1, [16, 16], 16, 32, [16, 16], [0, 0], false), // 512 px block 16, 16 heads
        (3, [12, 12], 1, 80, [12, 12], [0, 0], true),
        (1, [14, 14], 1, 128, [7, 7], [0, 0], false),
    ];
    for &(b, map, heads, hd, window, shift, grid) in cases {
        let layout = WindowGeometry { map, window, shift, pad_first: false, grid };
        let n = window[0] * window[1];
        let op = Op::WindowAttention(ops::WindowAttention { heads, layout, pad_bias: false, scale: 1.0 / (hd as f32).sqrt() });
        for variant in WINDOW_VARIANTS {
            check(op.clone(), &[&[b, map[0] * map[1], 3 * heads * hd], &[heads, n, n]], variant, false, F32_TOL);
        }
    }
    // 256-token windows at head dim 128: the subgroup kernel loops over 32 key blocks only.
    let layout = WindowGeometry { map: [16, 16], window: [16, 16], shift: [0, 0], pad_first: false, grid: false };
    let op = Op::WindowAttention(ops::WindowAttention { heads: 1, layout, pad_bias: false, scale: 0.1 });
    check(op, &[&[1, 256, 3 * 128], &[1, 256, 256]], Some("sg"), false, F32_TOL);
    let gpu = gpu();
    if gpu.caps.cpu {
        // The scalar kernel there: ~66k back-edges per invocation, refused.
        let layout = WindowGeometry { map: [16, 16], window: [16, 16], shift: [0, 0], pad_first: false, grid: false };
        let mut g = Graph::builder();
        let x = g.input("qkv", &[1, 256, 3 * 128]).unwrap();
        let bias = g.input("bias", &[1, 256, 256]).unwrap();
        let y = g.node("wa", Op::WindowAttention(ops::WindowAttention { heads: 1, layout, pad_bias: false, scale: 0.1 }), &[x, bias]).unwrap();
        g.output(y, "y").unwrap();
        let g = g.finish();
        let w = GpuWeights::upload(&gpu, &g, |_| None).unwrap();
        let err = Compiled::with_variant(gpu.clone(), &g, &w, Some("main")).err().expect("refused").to_string();
        assert!(err.contains("256-token windows") && err.contains("65535"), "{err}");
    }
}

/// The op-test table: each registered op and the tests above that check it against its
/// float64 reference. A row naming a test that does not exist fails to compile, and
/// `every_op_has_a_test_row` fails when an op is registered without a row.
macro_rules! op_tests {
    ($($op:literal => [$($t:ident),+ $(,)?]),+ $(,)?) => {
        const OP_TESTS: &[(&str, &[&str])] = &[$(($op, &[$(stringify!($t)),+])),+];
        #[allow(dead_code)]
        fn op_test_fns() -> Vec<fn()> {
            vec![$($($t as fn()),+),+]
        }
    };
}

op_tests! {
    "matmul" => [matmul_all_variants_ragged_shapes, matmul_variants_at_released_widths, matmul_batched_leading_dims, matmul_texture_kernel_runs_on_cpu_adapters, texture_only_weights_get_a_buffer_on_demand],
    "layernorm" => [layernorm_ragged, lowering_fuses_texture_writes_into_producers],
    "softmax" => [softmax_ragged],
    "attention" => [attention_writes_the_projection_texture, attention_ragged, attention_causal_with_padding_mask, attention_released_token_counts, attention_scalar_kernel_and_loop_limit, attention_all_keys_masked_is_uniform_not_nan],
    "patchify" => [patchify_ragged],
    "token_embed" => [token_embed_variants],
    "pool" => [pool_token_and_mean],
    "unary" => [activations_match_float64],
    "reshape" => [reshape_is_an_alias_without_a_dispatch, detector_head_ops_against_reference],
    "window_attention" => [window_attention_windows_7_8_12_shift_and_padding, grid_attention_grids_7_8_12, window_and_grid_attention_released_geometries],
    "patch_merge" => [patch_merge_even_and_odd_maps],
    "depthwise_conv" => [depthwise_conv_strides_and_paddings],
    "avg_pool" => [avg_pool_same_and_valid],
    "im2col" => [im2col_image_and_map_layouts, im2col_writes_the_matmul_texture],
    "channel_scale" => [channel_scale_sigmoid_gate, detector_head_ops_against_reference],
    "embed_tokens" => [detector_head_ops_against_reference],
    "eos_pool" => [detector_head_ops_against_reference],
    "norm_dot_head" => [detector_head_ops_against_reference],
    "moe_gate" => [moe_gate_and_route_token_and_image_on_gpu, moe_routing_at_released_group_size],
    "moe_route" => [moe_slot_assignment_hand_worked, moe_gate_and_route_token_and_image_on_gpu, moe_routing_at_released_group_size],
    "moe_dispatch" => [moe_dispatch_expert_matmul_combine],
    "expert_matmul" => [moe_dispatch_expert_matmul_combine],
    "moe_combine" => [moe_dispatch_expert_matmul_combine],
    "attention_pool" => [contrastive_head_ops_against_reference],
    "l2_normalize" => [contrastive_head_ops_against_reference],
    "similarity" => [contrastive_head_ops_against_reference],
    "to_texture" => [matmul_texture_kernel_runs_on_cpu_adapters, lowering_inserts_texture_copies_on_cpu_adapters],
}

#[test]
fn every_op_has_a_test_row() {
    for op in Op::NAMES {
        assert!(OP_TESTS.iter().any(|(o, _)| o == op), "op {op} has no row in the op-test table (engine/tests/ops.rs)");
    }
    for (o, tests) in OP_TESTS {
        assert!(Op::NAMES.contains(o), "the op-test table names unknown op {o}");
        assert!(!tests.is_empty());
    }
    assert!(op_test_fns().len() >= Op::NAMES.len());
}

/// Reshape runs no kernel: its output is its input's buffer (the planner aliases them),
/// also when the value flows on into another node; as a graph output it becomes a copy.
#[test]
fn reshape_is_an_alias_without_a_dispatch() {
    let gpu = gpu();
    let mut b = Graph::builder();
    let x = b.input("x0", &[2, 6, 5]).unwrap();
    let h = b.node("act", Op::Unary(ops::Unary { act: Activation::Relu }), &[x]).unwrap();
    let r = b.node("flat", Op::Reshape(ops::Reshape { shape: vec![12, 5] }), &[h]).unwrap();
    let y = b.node("act2", Op::Unary(ops::Unary { act: Activation::Tanh }), &[r]).unwrap();
    let r2 = b.node("out", Op::Reshape(ops::Reshape { shape: vec![60] }), &[y]).unwrap();
    b.output(r2, "y").unwrap();
    let g = b.finish();
    let w = GpuWeights::upload(&gpu, &g, |_| None).unwrap();
    let c = Compiled::new(gpu.clone(), &g, &w).unwrap();
    let kernels: Vec<String> = c.kernels().into_iter().map(|(n, _)| n).collect();
    assert_eq!(kernels, ["act", "act2", "out"], "the inner reshape dispatches nothing; the output reshape copies");
    let xd = rand_vec(60, 9);
    let want: Vec<f64> = xd.iter().map(|&v| (v as f64).max(0.0).tanh()).collect();
    let got = c.run(&[("x0", &xd)]).unwrap();
    assert_close("reshape alias", &got[0].data, &want, 1e-6, 1e-6, 1e-6);
    let (_, nodes) = c.run_debug(&[("x0", &xd)]).unwrap();
    let flat = nodes.iter().find(|t| t.name == "flat").expect("the alias node is dumped too");
    assert_eq!(flat.shape, [12, 5]);
    assert!(flat.data.iter().zip(&xd).all(|(a, b)| *a == b.max(0.0)));
}

/// CPU adapters: the lowering pass writes a texture matmul's activation into a texture
/// with an ordinary to_texture node right before it; GPUs get none.
#[test]
fn lowering_inserts_texture_copies_on_cpu_adapters() {
    let gpu = gpu();
    let mut b = Graph::builder();
    let x = b.input("x0", &[40, 64]).unwrap();
    let w = b.weight("w1", &[64, 32]).unwrap();
    let y = b.node("mm", Op::MatMul(ops::MatMul { act: Activation::None, bias: false, residual: false }), &[x, w]).unwrap();
    b.output(y, "y").unwrap();
    let g = b.finish();
    let wd = rand_vec(64 * 32, 3);
    let weights = GpuWeights::upload(&gpu, &g, |_| Some(WeightData { dtype: DType::F32, shape: vec![64, 32], bytes: Cow::Owned(bytemuck::cast_slice(&wd).to_vec()) })).unwrap();
    let c = Compiled::new(gpu.clone(), &g, &weights).unwrap();
    let nodes: Vec<(String, &str, &str)> = c.nodes().iter().map(|n| (n.name.clone(), n.op, n.variant)).collect();
    if gpu.caps.cpu {
        let tex = if gpu.caps.subgroup && gpu.caps.subgroup_min_size >= 8 { "tex_sg" } else { "tex" };
        assert_eq!(nodes, [("mm.to_texture".to_string(), "to_texture", "main"), ("mm".to_string(), "matmul", tex)]);
    } else {
        assert_eq!(nodes.len(), 1);
    }
    // Forcing a buffer variant needs no copy.
    let c = Compiled::with_variant(gpu.clone(), &g, &weights, Some("vec4")).unwrap();
    assert_eq!(c.nodes().iter().map(|n| n.variant).collect::<Vec<_>>(), ["vec4"]);
    assert!(Compiled::with_variant(gpu, &g, &weights, Some("no_such_variant")).is_err());
}

/// CPU adapters: a node that produces a texture matmul's A for it alone, right before it,
/// writes the texture itself (LayerNorm's subgroup variant, the texture matmul's
/// epilogue); an activation that is also read elsewhere still gets a to_texture copy.
#[test]
fn lowering_fuses_texture_writes_into_producers() {
    let gpu = gpu();
    let (m, d, h) = (37, 64, 96);
    let mut b = Graph::builder();
    let x = b.input("x0", &[m, d]).unwrap();
    let (g1, b1) = (b.weight("g1", &[d]).unwrap(), b.weight("b1", &[d]).unwrap());
    let (w0, w1, w2) = (b.weight("w0", &[d, d]).unwrap(), b.weight("w1", &[d, h]).unwrap(), b.weight("w2", &[h, d]).unwrap());
    let ln = Op::LayerNorm(ops::LayerNorm { eps: 1e-6 });
    let mm1 = Op::MatMul(ops::MatMul { act: Activation::Gelu, bias: false, residual: false });
    let mm2 = Op::MatMul(ops::MatMul { act: Activation::None, bias: false, residual: true });
    let n = b.node("ln", ln.clone(), &[x, g1, b1]).unwrap();
    // A square matmul reads a texture the size of the one it writes (they must differ).
    let y0 = b.node("fc0", mm1.clone(), &[n, w0]).unwrap();
    let y1 = b.node("fc1", mm1.clone(), &[y0, w1]).unwrap();
    let y2 = b.node("fc2", mm2.clone(), &[y1, w2, x]).unwrap();
    b.output(y2, "y").unwrap();
    let g = b.finish();
    let data = |name: &str| -> Vec<f32> {
        match name {
            "g1" => rand_vec(d, 11).iter().map(|v| 1.0 + v).collect(),
            "b1" => rand_vec(d, 12),
            "w0" => rand_vec(d * d, 16),
            "w1" => rand_vec(d * h, 13),
            _ => rand_vec(h * d, 14),
        }
    };
    let shape = |name: &str| match name { "g1" | "b1" => vec![d], "w0" => vec![d, d], "w1" => vec![d, h], _ => vec![h, d] };
    let weights = GpuWeights::upload(&gpu, &g, |n| Some(WeightData { dtype: DType::F32, shape: shape(n), bytes: Cow::Owned(bytemuck::cast_slice(&data(n)).to_vec()) })).unwrap();
    let c = Compiled::new(gpu.clone(), &g, &weights).unwrap();
    let ops_run: Vec<&str> = c.nodes().iter().map(|n| n.op).collect();
    if gpu.caps.cpu && gpu.caps.subgroup {
        assert_eq!(ops_run, ["layernorm", "matmul", "matmul", "matmul"], "{:?}", c.nodes());
    }
    let xd = rand_vec(m * d, 15);
    let got = c.run(&[("x0", &xd)]).unwrap();
    let f = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    let (xs, g1s, b1s, w0s, w1s, w2s) = (f(&xd), f(&data("g1")), f(&data("b1")), f(&data("w0")), f(&data("w1")), f(&data("w2")));
    let r_n = ln.reference(&[&xs, &g1s, &b1s], &[&[m, d], &[d], &[d]], &[m, d]);
    let r_0 = mm1.reference(&[&r_n, &w0s], &[&[m, d], &[d, d]], &[m, d]);
    let r_1 = mm1.reference(&[&r_0, &w1s], &[&[m, d], &[d, h]], &[m, h]);
    let r_2 = mm2.reference(&[&r_1, &w2s, &xs], &[&[m, h], &[h, d], &[m, d]], &[m, d]);
    assert_close("layernorm -> matmul x3, texture writes fused", &got[0].data, &r_2, 2e-4, 1e-4, 1e-5);
}

/// An activation read twice (as A and as the residual) keeps its to_texture copy.
#[test]
fn lowering_keeps_the_texture_copy_of_a_shared_activation() {
    let gpu = gpu();
    let (m, d) = (20, 32);
    let mut b = Graph::builder();
    let x = b.input("x0", &[m, d]).unwrap();
    let w = b.weight("w", &[d, d]).unwrap();
    let mm1 = Op::MatMul(ops::MatMul { act: Activation::Gelu, bias: false, residual: false });
    let mm2 = Op::MatMul(ops::MatMul { act: Activation::None, bias: false, residual: true });
    let y1 = b.node("fc1", mm1.clone(), &[x, w]).unwrap();
    let y2 = b.node("fc2", mm2.clone(), &[y1, w, y1]).unwrap();
    b.output(y2, "y").unwrap();
    let g = b.finish();
    let wd = rand_vec(d * d, 21);
    let weights = GpuWeights::upload(&gpu, &g, |_| Some(WeightData { dtype: DType::F32, shape: vec![d, d], bytes: Cow::Owned(bytemuck::cast_slice(&wd).to_vec()) })).unwrap();
    let c = Compiled::new(gpu.clone(), &g, &weights).unwrap();
    let names: Vec<&str> = c.nodes().iter().map(|n| n.name.as_str()).collect();
    if gpu.caps.cpu {
        assert_eq!(names, ["fc1.to_texture", "fc1", "fc2.to_texture", "fc2"]);
    }
    let xd = rand_vec(m * d, 22);
    let got = c.run(&[("x0", &xd)]).unwrap();
    let f = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    let (xs, ws) = (f(&xd), f(&wd));
    let r_1 = mm1.reference(&[&xs, &ws], &[&[m, d], &[d, d]], &[m, d]);
    let r_2 = mm2.reference(&[&r_1, &ws, &r_1], &[&[m, d], &[d, d], &[m, d]], &[m, d]);
    assert_close("shared activation", &got[0].data, &r_2, 2e-4, 1e-4, 1e-5);
}

/// CPU adapters keep a matrix weight only as its texture (stored once). A node that must
/// read it from a buffer after all (here: more rows than a texture may have) gets a
/// buffer copied from the texture on the device, f32 and packed f16 alike.
#[test]
fn texture_only_weights_get_a_buffer_on_demand() {
    let mut cap = wgvision_engine::LimitsCap::webgpu_defaults();
    cap.max_texture_dimension_2d = 64;
    let gpu = wgvision_engine::Gpu::open(None, Some(cap)).unwrap();
    let (k, n) = (64, 36);
    for dtype in [DType::F32, DType::F16] {
        for m in [40, 100] {
            let mut b = Graph::builder();
            let x = b.input("x0", &[m, k]).unwrap();
            let w = b.weight("w1", &[k, n]).unwrap();
            let op = Op::MatMul(ops::MatMul { act: Activation::None, bias: false, residual: false });
            let y = b.node("mm", op.clone(), &[x, w]).unwrap();
            b.output(y, "y").unwrap();
            let g = b.finish();
            let wd: Vec<f32> = rand_vec(k * n, 5).iter().map(|&v| half::f16::from_f32(v).to_f32()).collect();
            let bytes: Vec<u8> = match dtype {
                DType::F32 => bytemuck::cast_slice(&wd).to_vec(),
                DType::F16 => wd.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect(),
            };
            let weights = GpuWeights::upload(&gpu, &g, |_| Some(WeightData { dtype, shape: vec![k, n], bytes: Cow::Owned(bytes.clone()) })).unwrap();
            let c = Compiled::new(gpu.clone(), &g, &weights).unwrap();
            let variant = c.nodes().last().unwrap().variant;
            if gpu.caps.cpu {
                let tex = variant.starts_with("tex");
                assert_eq!(tex, m <= 64, "{m} rows ran {variant}");
                assert_eq!(weights.extra_bytes() > 0, !tex, "a buffer is made only when a buffer variant runs");
            }
            let xd = rand_vec(m * k, 6);
            let got = c.run(&[("x0", &xd)]).unwrap();
            let f = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
            let want = op.reference(&[&f(&xd), &f(&wd)], &[&[m, k], &[k, n]], &[m, n]);
            assert_close(&format!("{m} rows, {dtype:?} weights"), &got[0].data, &want, 2e-4, 1e-4, 1e-5);
        }
    }
}

/// CPU adapters with subgroups: attention and window attention (sg) write the output
/// projection's A texture themselves.
#[test]
fn attention_writes_the_projection_texture() {
    let gpu = gpu();
    let (b, side, heads, hd) = (2, 10, 3, 16);
    let (t, d) = (side * side, heads * hd);
    let layout = WindowGeometry { map: [side, side], window: [7, 7], shift: [3, 3], pad_first: false, grid: false };
    let n = 49;
    let mixers = [
        (Op::Attention(ops::Attention { heads, scale: 0.25, causal: false, key_mask: false }), false),
        (Op::WindowAttention(ops::WindowAttention { heads, layout, pad_bias: false, scale: 0.25 }), true),
    ];
    for (mixer, windowed) in mixers {
        let mut g = Graph::builder();
        let x = g.input("x0", &[b, t, 3 * d]).unwrap();
        let w = g.weight("w", &[d, d]).unwrap();
        let mut ins = vec![x];
        if windowed {
            ins.push(g.weight("rel", &[heads, n, n]).unwrap());
        }
        let a = g.node("attn", mixer.clone(), &ins).unwrap();
        let proj = Op::MatMul(ops::MatMul { act: Activation::None, bias: false, residual: false });
        let y = g.node("proj", proj.clone(), &[a, w]).unwrap();
        g.output(y, "y").unwrap();
        let g = g.finish();
        let wd = rand_vec(d * d, 51);
        let rel = rand_vec(heads * n * n, 52);
        let weights = GpuWeights::upload(&gpu, &g, |name| {
            let (shape, v) = if name == "w" { (vec![d, d], &wd) } else { (vec![heads, n, n], &rel) };
            Some(WeightData { dtype: DType::F32, shape, bytes: Cow::Owned(bytemuck::cast_slice(v).to_vec()) })
        })
        .unwrap();
        let c = Compiled::new(gpu.clone(), &g, &weights).unwrap();
        if gpu.caps.cpu && gpu.caps.subgroup && gpu.caps.subgroup_min_size >= 8 {
            let ops_run: Vec<(&str, &str)> = c.nodes().iter().map(|n| (n.op, n.variant)).collect();
            assert_eq!(ops_run.len(), 2, "no texture copy: {ops_run:?}");
            assert_eq!(ops_run[0].1, "sg");
        }
        let xd = rand_vec(b * t * 3 * d, 53);
        let got = c.run(&[("x0", &xd)]).unwrap();
        let f = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
        let (xs, ws, rs) = (f(&xd), f(&wd), f(&rel));
        let r_a = if windowed {
            mixer.reference(&[&xs, &rs], &[&[b, t, 3 * d], &[heads, n, n]], &[b, t, d])
        } else {
            mixer.reference(&[&xs], &[&[b, t, 3 * d]], &[b, t, d])
        };
        let want = proj.reference(&[&r_a, &ws], &[&[b, t, d], &[d, d]], &[b, t, d]);
        assert_close(&format!("{} -> texture matmul", mixer.name()), &got[0].data, &want, 2e-4, 1e-4, 1e-5);
    }
}

/// Every vec4-class matmul variant at released widths (ViT-B's qkv at 197 tokens, an
/// fc2 of width 3072), f32 and f16 weights: the tile loops past their first few steps.
#[test]
fn matmul_variants_at_released_widths() {
    let f16_math = gpu().caps.shader_f16;
    for &(m, k, n) in &[(197usize, 768usize, 2304usize), (50, 3072, 768)] {
        for variant in ["tex_sg", "tex", "sg4", "tiled4", "vec4"] {
            let s: Vec<Vec<usize>> = vec![vec![m, k], vec![k, n], vec![n]];
            let refs: Vec<&[usize]> = s.iter().map(|v| v.as_slice()).collect();
            let op = Op::MatMul(ops::MatMul { act: Activation::Gelu, bias: true, residual: false });
            let tol = (2e-5 * (k as f64).sqrt(), 1e-4, 1e-5);
            check_on(&gpu(), op.clone(), &refs, Some(variant), false, tol);
            let f16_tol = if variant == "tiled4" && f16_math { (4e-3 * (k as f64).sqrt(), 4e-3, 2e-3) } else { tol };
            check_on(&gpu(), op, &refs, Some(variant), true, f16_tol);
        }
    }
}
