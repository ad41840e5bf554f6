// Activation functions shared by the matmul epilogue, the unary op and the conv ops.
// WGSL has no erf: erfc from Numerical Recipes' Chebyshev fit (fractional error < 1.2e-7),
// so exact GELU stays within ~1e-7 of the float64 reference.

fn erf_approx(x: f32) -> f32 {
    let z = abs(x);
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
        + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
        + t * (-0.82215223 + t * 0.17087277))))))));
    let erfc_z = t * exp(poly);
    return select(erfc_z - 1.0, 1.0 - erfc_z, x >= 0.0);
}

fn gelu_exact(x: f32) -> f32 {
    return 0.5 * x * (1.0 + erf_approx(x * 0.70710678118654752));
}

fn gelu_tanh(x: f32) -> f32 {
    // tanh's argument is clamped: some drivers return NaN from tanh for large |x|.
    let u = clamp(0.7978845608028654 * (x + 0.044715 * x * x * x), -15.0, 15.0);
    return 0.5 * x * (1.0 + tanh(u));
}

fn quick_gelu(x: f32) -> f32 {
    return x / (1.0 + exp(-1.702 * x));
}

// Activation codes match `Activation` in engine/src/ops/mod.rs.
fn apply_act(code: u32, x: f32) -> f32 {
    switch code {
        case 1u: { return gelu_exact(x); }
        case 2u: { return gelu_tanh(x); }
        case 3u: { return quick_gelu(x); }
        case 4u: { return tanh(clamp(x, -15.0, 15.0)); }
        case 5u: { return max(x, 0.0); }
        case 6u: { return x / (1.0 + exp(-x)); }
        case 7u: { return 1.0 / (1.0 + exp(-x)); }
        default: { return x; }
    }
}
