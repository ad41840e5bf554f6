//! Token pooling: the class token, or the mean over the patch tokens.
use super::{u32_of, Arg, KernelPlan, PoolKind};
use crate::kernels::KernelKey;

uniform!("pool.wgsl", PoolParams {
    batch: u32, tokens: u32, dim: u32, start: u32, end: u32, _pad0: u32, _pad1: u32, _pad2: u32,
});

fn range(kind: PoolKind, t: usize) -> (usize, usize) {
    match kind {
        PoolKind::Token(i) => (i, i + 1),
        PoolKind::MeanFrom(s) => (s, t),
    }
}

pub fn infer(x: &[usize], kind: PoolKind) -> Result<Vec<usize>, String> {
    let [b, t, d] = x else {
        return Err(format!("pool needs [B, T, D], got {x:?}"));
    };
    let (s, e) = range(kind, *t);
    if s >= e || e > *t {
        return Err(format!("pool range {s}..{e} is empty or outside {t} tokens"));
    }
    Ok(vec![*b, *d])
}

fn key() -> KernelKey {
    KernelKey { shader: "pool.wgsl", entry: "main", defines: vec![], constants: vec![] }
}

pub fn variants() -> Vec<KernelKey> {
    vec![key()]
}

pub fn plan(x: &[usize], kind: PoolKind) -> Result<KernelPlan, String> {
    let (s, e) = range(kind, x[1]);
    let params = PoolParams {
        batch: u32_of(x[0], "batch")?,
        tokens: u32_of(x[1], "tokens")?,
        dim: u32_of(x[2], "dim")?,
        start: s as u32,
        end: e as u32,
        ..Default::default()
    };
    Ok(KernelPlan {
        chunks: None,
        key: key(),
        params: bytemuck::bytes_of(&params).to_vec(),
        bindings: vec![(1, Arg::Input(0)), (2, Arg::Output)],
        workgroups: (x[0] * x[2]).div_ceil(64) as u64,
    })
}

pub fn reference(x: &[f64], s: &[usize], kind: PoolKind) -> Vec<f64> {
    let (b, t, d) = (s[0], s[1], s[2]);
    let (st, en) = range(kind, t);
    let mut o = vec![0.0; b * d];
    for bb in 0..b {
        for c in 0..d {
            o[bb * d + c] = (st..en).map(|ti| x[(bb * t + ti) * d + c]).sum::<f64>() / (en - st) as f64;
        }
    }
    o
}

/// inputs: x [B, T, D] -> [B, D].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pool { pub kind: PoolKind }

impl super::OpDef for Pool {
    const NAME: &'static str = "pool";
    type Params = PoolParams;
    type Variant = super::Single;

    fn infer(&self, s: &[&[usize]]) -> Result<Vec<usize>, String> {
        super::expect_inputs(s, 1)?;
        infer(s[0], self.kind)
    }

    fn plan(&self, s: &[&[usize]], out: &[usize], ctx: &super::PlanCtx, _v: super::Single) -> Result<KernelPlan, String> {
        let _ = (s, out, ctx);
        plan(s[0], self.kind)
    }

    fn reference(&self, x: &[&[f64]], s: &[&[usize]], out: &[usize]) -> Vec<f64> {
        let _ = (x, s, out);
        reference(x[0], s[0], self.kind)
    }

    fn flops(&self, s: &[&[usize]], out: &[usize]) -> u64 {
        let _ = (s, out);
        0 // no multiply-adds counted (reported GFLOP/s count contractions, as fvcore does)
    }

    fn shader_variants() -> Vec<KernelKey> {
        variants()
    }
}
