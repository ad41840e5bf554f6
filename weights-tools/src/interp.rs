//! Resampling a position-embedding grid to another patch grid at conversion, as
//! `torch.nn.functional.interpolate(mode="bicubic", align_corners=False)` does it, with
//! and without `antialias` (transformers' DINOv2 and DINOv2-with-registers differ here).
//! Computed in f64.

/// Cubic convolution weights for the 4 taps around `t` in [0, 1) (Keys, a = -0.75), as
/// torch's non-antialiased bicubic kernel uses them.
fn keys_weights(t: f64) -> [f64; 4] {
    let a = -0.75;
    let near = |x: f64| ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    let far = |x: f64| ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

/// The antialiased bicubic filter (a = -0.5, as PIL and torch's antialias path use it).
fn aa_filter(x: f64) -> f64 {
    let (a, x) = (-0.5, x.abs());
    if x < 1.0 {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * a
    } else {
        0.0
    }
}

/// For each output index: (source indices, weights) along one axis of `n_in` -> `n_out`.
fn taps(n_in: usize, n_out: usize, antialias: bool) -> Vec<Vec<(usize, f64)>> {
    let scale = n_in as f64 / n_out as f64;
    (0..n_out)
        .map(|i| {
            if !antialias {
                let real = scale * (i as f64 + 0.5) - 0.5;
                let x0 = real.floor();
                let w = keys_weights(real - x0);
                (0..4).map(|k| (((x0 as isize) - 1 + k as isize).clamp(0, n_in as isize - 1) as usize, w[k])).collect()
            } else {
                let support = 2.0 * scale.max(1.0);
                let inv = if scale >= 1.0 { 1.0 / scale } else { 1.0 };
                let center = scale * (i as f64 + 0.5);
                let lo = ((center - support + 0.5) as isize).max(0) as usize;
                let hi = ((center + support + 0.5) as isize).min(n_in as isize).max(lo as isize) as usize;
                let mut w: Vec<(usize, f64)> = (lo..hi).map(|j| (j, aa_filter((j as f64 - center + 0.5) * inv))).collect();
                let total: f64 = w.iter().map(|x| x.1).sum();
                if total != 0.0 {
                    w.iter_mut().for_each(|x| x.1 /= total);
                }
                w
            }
        })
        .collect()
}

/// `grid` [h, w, d] (row-major tokens, d channels) -> [h2, w2, d].
pub fn bicubic(grid: &[f32], (h, w, d): (usize, usize, usize), (h2, w2): (usize, usize), antialias: bool) -> Vec<f32> {
    assert_eq!(grid.len(), h * w * d, "grid size");
    let (ty, tx) = (taps(h, h2, antialias), taps(w, w2, antialias));
    // Along x first (h rows of w2), then along y.
    let mut rows = vec![0f64; h * w2 * d];
    for y in 0..h {
        for (x2, t) in tx.iter().enumerate() {
            let out = &mut rows[(y * w2 + x2) * d..][..d];
            for &(x, wt) in t {
                let src = &grid[(y * w + x) * d..][..d];
                out.iter_mut().zip(src).for_each(|(o, &s)| *o += wt * s as f64);
            }
        }
    }
    let mut out = vec![0f64; h2 * w2 * d];
    for (y2, t) in ty.iter().enumerate() {
        for &(y, wt) in t {
            let src = &rows[y * w2 * d..][..w2 * d];
            out[y2 * w2 * d..][..w2 * d].iter_mut().zip(src).for_each(|(o, &s)| *o += wt * s);
        }
    }
    out.into_iter().map(|x| x as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Same size: both kernels are the identity.
    #[test]
    fn same_size_is_identity() {
        let g: Vec<f32> = (0..4 * 3 * 2).map(|i| (i as f32 * 0.37).sin()).collect();
        for aa in [false, true] {
            let r = bicubic(&g, (4, 3, 2), (4, 3), aa);
            assert!(r.iter().zip(&g).all(|(a, b)| (a - b).abs() < 1e-6), "{aa}: {r:?}");
        }
    }

    /// Every tap set sums to one, so a constant grid stays constant.
    #[test]
    fn constant_stays_constant() {
        let g = vec![2.5f32; 37 * 37];
        for aa in [false, true] {
            for size in [(16, 16), (40, 20)] {
                assert!(bicubic(&g, (37, 37, 1), size, aa).iter().all(|x| (x - 2.5).abs() < 1e-5));
            }
        }
    }
}
