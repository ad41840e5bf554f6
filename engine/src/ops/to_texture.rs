//! Not a graph op: the executor's step that writes an activation into an rgba32float
//! storage texture before a texture matmul reads it (CPU adapters).
use super::uniform;
use crate::kernels::KernelKey;

uniform!("to_texture.wgsl", ToTextureParams { rows: u32, k4: u32, row0: u32, _pad0: u32 });

pub fn key() -> KernelKey {
    KernelKey { shader: "to_texture.wgsl", entry: "main", defines: vec![], constants: vec![] }
}

pub fn variants() -> Vec<KernelKey> {
    vec![key()]
}
