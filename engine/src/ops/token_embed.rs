//! Token sequence assembly: [prefix tokens; patch tokens] + position embedding.
use super::{u32_of, Arg, KernelPlan};
use crate::kernels::{Define, KernelKey};

uniform!("token_embed.wgsl", TokenEmbedParams {
    batch: u32, patches: u32, prefix: u32, dim: u32, pos_start: u32, _pad0: u32, _pad1: u32, _pad2: u32,
});

pub fn infer(s: &[&[usize]], prefix: usize, pos: bool, pos_start: usize) -> Result<Vec<usize>, String> {
    let [b, np, d] = s[0] else {
        return Err(format!("token_embed needs patches [B, Np, D], got {:?}", s[0]));
    };
    let t = prefix + np;
    let mut i = 1;
    if prefix > 0 {
        if s[i] != [prefix, *d] {
            return Err(format!("prefix tokens must be [{prefix}, {d}], got {:?}", s[i]));
        }
        i += 1;
    }
    if pos
        && (pos_start > t || s[i] != [t - pos_start, *d]) {
            return Err(format!("position embedding must be [{}, {d}], got {:?}", t.saturating_sub(pos_start), s[i]));
        }
    Ok(vec![*b, t, *d])
}

fn key(prefix: bool, pos: bool) -> KernelKey {
    let mut defines = vec![];
    if prefix {
        defines.push(Define::Flag("PREFIX"));
    }
    if pos {
        defines.push(Define::Flag("POS"));
    }
    KernelKey { shader: "token_embed.wgsl", entry: "main", defines, constants: vec![] }
}

pub fn variants() -> Vec<KernelKey> {
    vec![key(false, false), key(true, false), key(false, true), key(true, true)]
}

pub fn plan(s: &[&[usize]], out: &[usize], prefix: usize, pos: bool, pos_start: usize) -> Result<KernelPlan, String> {
    let params = TokenEmbedParams {
        batch: u32_of(s[0][0], "batch")?,
        patches: u32_of(s[0][1], "patches")?,
        prefix: u32_of(prefix, "prefix")?,
        dim: u32_of(s[0][2], "dim")?,
        pos_start: u32_of(pos_start, "pos_start")?,
        ..Default::default()
    };
    let mut bindings = vec![(1, Arg::Input(0))];
    if prefix > 0 {
        bindings.push((2, Arg::Input(1)));
    }
    if pos {
        bindings.push((3, Arg::Input(1 + (prefix > 0) as usize)));
    }
    bindings.push((4, Arg::Output));
    let total: usize = out.iter().product();
    Ok(KernelPlan {
        chunks: None,
        key: key(prefix > 0, pos),
        params: bytemuck::bytes_of(&params).to_vec(),
        bindings,
        workgroups: total.div_ceil(64) as u64,
    })
}

pub fn reference(x: &[&[f64]], s: &[&[usize]], out: &[usize], prefix: usize, pos: bool, pos_start: usize) -> Vec<f64> {
    let (np, d) = (s[0][1], s[0][2]);
    let t = out[1];
    let pos_t = pos.then(|| x[1 + (prefix > 0) as usize]);
    let mut o = vec![0.0; out.iter().product()];
    for b in 0..out[0] {
        for ti in 0..t {
            for c in 0..d {
                let mut v = if ti < prefix { x[1][ti * d + c] } else { x[0][(b * np + ti - prefix) * d + c] };
                if let Some(p) = pos_t {
                    if ti >= pos_start {
                        v += p[(ti - pos_start) * d + c];
                    }
                }
                o[(b * t + ti) * d + c] = v;
            }
        }
    }
    o
}

/// inputs: patches [B, Np, D], prefix [prefix, D] if prefix > 0, pos [T - pos_start, D] if `pos`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TokenEmbed { pub prefix: usize, pub pos: bool, pub pos_start: usize }

impl super::OpDef for TokenEmbed {
    const NAME: &'static str = "token_embed";
    type Params = TokenEmbedParams;
    type Variant = super::Single;

    fn infer(&self, s: &[&[usize]]) -> Result<Vec<usize>, String> {
        super::expect_inputs(s, 1 + (self.prefix > 0) as usize + self.pos as usize)?;
        infer(s, self.prefix, self.pos, self.pos_start)
    }

    fn plan(&self, s: &[&[usize]], out: &[usize], ctx: &super::PlanCtx, _v: super::Single) -> Result<KernelPlan, String> {
        let _ = (s, out, ctx);
        plan(s, out, self.prefix, self.pos, self.pos_start)
    }

    fn reference(&self, x: &[&[f64]], s: &[&[usize]], out: &[usize]) -> Vec<f64> {
        let _ = (x, s, out);
        reference(x, s, out, self.prefix, self.pos, self.pos_start)
    }

    fn flops(&self, s: &[&[usize]], out: &[usize]) -> u64 {
        let _ = (s, out);
        0 // no multiply-adds counted (reported GFLOP/s count contractions, as fvcore does)
    }

    fn shader_variants() -> Vec<KernelKey> {
        variants()
    }
}
