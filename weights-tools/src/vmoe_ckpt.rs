//! vmoe's own sharded checkpoints (vmoe/checkpoints/partitioned.py): `PREFIX.index` and
//! the data shards `PREFIX.data-0000i-of-0000N` beside it, msgpack documents with flax's
//! and vmoe's ext types, read into the '/'-joined parameter names `vmoe::convert` maps.
//!
//! The index is `{shard_count, index: tree of IndexInfo, version?}`; leaves are numbered
//! in the order jax flattens the tree (keys sorted at every level). A shard is a map from
//! a leaf number to `[[subchunks..], SliceNd]` pairs: each chunk is the leaf's global
//! slice, stored flat, in one or more 1-D ndarrays. An array may be split into chunks,
//! and its chunks spread over shards; the index lists every chunk and its shard.
use crate::st::{self, Tensor};
use crate::{Result, WeightsError};
use safetensors::Dtype;
use std::path::{Path, PathBuf};

/// vmoe's ext type codes (vmoe/checkpoints/serialization.py; 1 and 3 are flax's).
const EXT_NDARRAY: i8 = 1;
const EXT_SLICE_ND: i8 = 6;
const EXT_INDEX_INFO: i8 = 8;
/// The key that marks a data shard (an ArrayChunks map).
const CHUNKS_KEY: &[u8] = b"__msgpack_array_chunk_a87ca2__";
/// The index versions vmoe writes: none (before 2022-06-22) and V1.
const VERSION_V1: &[u8] = b"20220622";
/// Bounds on what a well-formed checkpoint needs, so a hostile file cannot make the
/// decoder allocate or loop without limit: msgpack values per document, nesting depth,
/// shards, chunks per array and in all.
const MAX_VALUES: usize = 1 << 22;
const MAX_DEPTH: usize = 64;
const MAX_SHARDS: usize = 1 << 16;
const MAX_CHUNKS_PER_ARRAY: usize = 1 << 12;
const MAX_CHUNKS: usize = 1 << 16;

/// Whether `path` names a vmoe checkpoint index (`PREFIX.index`).
pub fn is_index(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "index")
}

// ---- msgpack: a bounded decoder of the subset vmoe writes (no timestamps, no streams).

#[derive(Debug)]
enum V<'a> {
    Nil,
    Bool(bool),
    Int(i128),
    /// A float (vmoe's trees hold none where wgvision looks; its value is not kept).
    Float,
    Str(&'a [u8]),
    Bin(&'a [u8]),
    Arr(Vec<V<'a>>),
    Map(Vec<(V<'a>, V<'a>)>),
    Ext(i8, &'a [u8]),
}

struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    values: usize,
}

type Msg<T> = std::result::Result<T, String>;

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize) -> Msg<&'a [u8]> {
        match self.pos.checked_add(n).filter(|&end| end <= self.buf.len()) {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(format!("truncated: a value at byte {} needs {n} more bytes, the data ends at {}", self.pos, self.buf.len())),
        }
    }

    fn uint(&mut self, n: usize) -> Msg<u64> {
        Ok(self.take(n)?.iter().fold(0u64, |a, &b| a << 8 | b as u64))
    }

    /// A length that must leave `min_each` bytes per element in what remains.
    fn len(&mut self, n: usize, min_each: usize) -> Msg<usize> {
        let at = self.pos;
        let len = self.uint(n)? as usize;
        if len.saturating_mul(min_each) > self.buf.len() - self.pos {
            return Err(format!("truncated or corrupt: a length of {len} at byte {at} runs past the end of the data ({} bytes)", self.buf.len()));
        }
        Ok(len)
    }

    fn value(&mut self, depth: usize) -> Msg<V<'a>> {
        self.values += 1;
        if self.values > MAX_VALUES || depth > MAX_DEPTH {
            return Err(format!("more than {MAX_VALUES} values or {MAX_DEPTH} levels of nesting: not a vmoe checkpoint"));
        }
        let at = self.pos;
        let b = self.take(1)?[0];
        let int = |v: u64| -> Msg<V<'a>> { Ok(V::Int(v as i128)) };
        match b {
            0x00..=0x7f => int(b as u64),
            0xe0..=0xff => Ok(V::Int(b as i8 as i128)),
            0x80..=0x8f => self.map((b & 0x0f) as usize, depth),
            0x90..=0x9f => self.arr((b & 0x0f) as usize, depth),
            0xa0..=0xbf => Ok(V::Str(self.take((b & 0x1f) as usize)?)),
            0xc0 => Ok(V::Nil),
            0xc2 => Ok(V::Bool(false)),
            0xc3 => Ok(V::Bool(true)),
            0xc4..=0xc6 => {
                let n = self.len(1 << (b - 0xc4), 1)?;
                Ok(V::Bin(self.take(n)?))
            }
            0xc7..=0xc9 => {
                let n = self.len(1 << (b - 0xc7), 1)?;
                let t = self.take(1)?[0] as i8;
                Ok(V::Ext(t, self.take(n)?))
            }
            0xca | 0xcb => {
                self.take(4 << (b - 0xca))?;
                Ok(V::Float)
            }
            0xcc..=0xcf => int(self.uint(1 << (b - 0xcc))?),
            0xd0..=0xd3 => {
                let n = 1usize << (b - 0xd0);
                let v = self.uint(n)?;
                let shift = 64 - 8 * n as u32;
                Ok(V::Int(((v << shift) as i64 >> shift) as i128))
            }
            0xd4..=0xd8 => {
                let t = self.take(1)?[0] as i8;
                Ok(V::Ext(t, self.take(1 << (b - 0xd4))?))
            }
            0xd9..=0xdb => {
                let n = self.len(1 << (b - 0xd9), 1)?;
                Ok(V::Str(self.take(n)?))
            }
            0xdc | 0xdd => {
                let n = self.len(2 << (b - 0xdc), 1)?;
                self.arr(n, depth)
            }
            0xde | 0xdf => {
                let n = self.len(2 << (b - 0xde), 2)?;
                self.map(n, depth)
            }
            _ => Err(format!("byte 0x{b:02x} at {at} is not a msgpack value")),
        }
    }

    fn arr(&mut self, n: usize, depth: usize) -> Msg<V<'a>> {
        // Reserve little up front: a corrupt length must not reserve memory the bytes
        // cannot hold (each value is larger than the byte that encodes it).
        let mut v = Vec::with_capacity(n.min(self.buf.len() - self.pos).min(4096));
        for _ in 0..n {
            v.push(self.value(depth + 1)?);
        }
        Ok(V::Arr(v))
    }

    fn map(&mut self, n: usize, depth: usize) -> Msg<V<'a>> {
        let mut v = Vec::with_capacity(n.min((self.buf.len() - self.pos) / 2).min(4096));
        for _ in 0..n {
            let k = self.value(depth + 1)?;
            v.push((k, self.value(depth + 1)?));
        }
        Ok(V::Map(v))
    }
}

/// One whole msgpack document (trailing bytes are an error: a file cut or glued).
fn decode(buf: &[u8]) -> Msg<V<'_>> {
    let mut d = Decoder { buf, pos: 0, values: 0 };
    let v = d.value(0)?;
    if d.pos != buf.len() {
        return Err(format!("{} bytes after the end of the msgpack document", buf.len() - d.pos));
    }
    Ok(v)
}

impl<'a> V<'a> {
    fn what(&self) -> &'static str {
        match self {
            V::Nil => "nil",
            V::Bool(_) => "a bool",
            V::Int(_) => "an integer",
            V::Float => "a float",
            V::Str(_) => "a string",
            V::Bin(_) => "bytes",
            V::Arr(_) => "an array",
            V::Map(_) => "a map",
            V::Ext(..) => "an ext value",
        }
    }
    fn arr(&self, what: &str) -> Msg<&[V<'a>]> {
        match self {
            V::Arr(a) => Ok(a),
            o => Err(format!("{what}: expected an array, got {}", o.what())),
        }
    }
    /// A string or bytes (vmoe packs names as str, but raw-mode writers use bin).
    fn bytes(&self, what: &str) -> Msg<&'a [u8]> {
        match self {
            V::Str(s) | V::Bin(s) => Ok(s),
            o => Err(format!("{what}: expected bytes, got {}", o.what())),
        }
    }
    fn uint(&self, what: &str) -> Msg<usize> {
        match self {
            V::Int(i) if *i >= 0 && *i <= usize::MAX as i128 => Ok(*i as usize),
            o => Err(format!("{what}: expected a non-negative integer, got {}", o.describe())),
        }
    }
    fn ext(&self, code: i8, what: &str) -> Msg<&'a [u8]> {
        match self {
            V::Ext(c, d) if *c == code => Ok(d),
            V::Ext(c, _) => Err(format!("{what}: expected ext type {code}, got ext type {c}")),
            o => Err(format!("{what}: expected ext type {code}, got {}", o.what())),
        }
    }
    fn get(&self, key: &[u8]) -> Option<&V<'a>> {
        match self {
            V::Map(m) => m.iter().find(|(k, _)| matches!(k, V::Str(s) | V::Bin(s) if *s == key)).map(|(_, v)| v),
            _ => None,
        }
    }
    fn describe(&self) -> String {
        match self {
            V::Int(i) => i.to_string(),
            V::Str(s) => format!("'{}'", String::from_utf8_lossy(s)),
            o => o.what().into(),
        }
    }
}

// ---- vmoe's types

/// A SliceNd: per axis [start, stop) of the global array (step None or 1).
type SliceNd = Vec<(usize, usize)>;

fn slice_nd(payload: &[u8], shape: &[usize]) -> Msg<SliceNd> {
    let v = decode(payload)?;
    let axes = v.arr("slice_nd")?;
    if axes.len() != shape.len() {
        return Err(format!("a slice over {} axes of an array of shape {shape:?}", axes.len()));
    }
    let mut out = Vec::with_capacity(axes.len());
    for (a, &dim) in axes.iter().zip(shape) {
        let s = decode(a.bytes("slice")?)?;
        let s = s.arr("slice")?;
        if s.len() != 3 {
            return Err(format!("a slice has {} fields, expected (start, stop, step)", s.len()));
        }
        let bound = |v: &V, default: usize| match v {
            V::Nil => Ok(default),
            v => v.uint("slice bound"),
        };
        let (start, stop) = (bound(&s[0], 0)?, bound(&s[1], dim)?);
        if !matches!(s[2], V::Nil | V::Int(1)) {
            return Err(format!("slice step {}: vmoe writes contiguous slices", s[2].describe()));
        }
        if start > stop || stop > dim {
            return Err(format!("slice {start}:{stop} is outside an axis of size {dim} (shape {shape:?})"));
        }
        out.push((start, stop));
    }
    Ok(out)
}

fn volume(s: &SliceNd) -> usize {
    s.iter().map(|(a, b)| b - a).product()
}

fn show(s: &SliceNd) -> String {
    let axes: Vec<String> = s.iter().map(|(a, b)| format!("{a}:{b}")).collect();
    format!("[{}]", axes.join(", "))
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Elem {
    F32,
    F16,
    BF16,
    F64,
    I32,
    I64,
}

impl Elem {
    fn from_name(name: &[u8]) -> Option<Elem> {
        Some(match name {
            b"float32" => Elem::F32,
            b"float16" => Elem::F16,
            b"bfloat16" => Elem::BF16,
            b"float64" => Elem::F64,
            b"int32" => Elem::I32,
            b"int64" => Elem::I64,
            _ => return None,
        })
    }
    fn size(self) -> usize {
        match self {
            Elem::F16 | Elem::BF16 => 2,
            Elem::F32 | Elem::I32 => 4,
            Elem::F64 | Elem::I64 => 8,
        }
    }
    fn dtype(self) -> Dtype {
        match self {
            Elem::F32 => Dtype::F32,
            Elem::F16 => Dtype::F16,
            Elem::BF16 => Dtype::BF16,
            Elem::F64 => Dtype::F64,
            Elem::I32 => Dtype::I32,
            Elem::I64 => Dtype::I64,
        }
    }
    /// Little-endian bytes (numpy's tobytes on the hosts vmoe runs on) widened to f32.
    fn extend(self, bytes: &[u8], out: &mut Vec<f32>) {
        match self {
            Elem::F32 => out.extend(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
            Elem::F16 => out.extend(bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())),
            Elem::BF16 => out.extend(bytes.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())),
            Elem::F64 => out.extend(bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)),
            Elem::I32 => out.extend(bytes.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)),
            Elem::I64 => out.extend(bytes.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)),
        }
    }
}

struct Chunk {
    slice: SliceNd,
    shard: usize,
    filled: bool,
}

/// One leaf of the index: its global shape and dtype, and where its chunks are.
struct Leaf {
    /// The path in the tree, '/'-joined.
    path: String,
    shape: Vec<usize>,
    /// The dtype's name as written, and the element type where wgvision reads it.
    dtype: String,
    elem: Option<Elem>,
    chunks: Vec<Chunk>,
    /// Whether the leaf is read (a train state's opt_state and rngs are not).
    wanted: bool,
    data: Vec<f32>,
}

/// The tree's leaves as jax numbers them: depth first, keys sorted at every level.
fn flatten<'a>(v: &V<'a>, path: &str, out: &mut Vec<(String, &'a [u8])>) -> Msg<()> {
    match v {
        V::Map(m) => {
            let mut keyed = Vec::with_capacity(m.len());
            for (k, child) in m {
                let k = std::str::from_utf8(k.bytes("a tree key")?).map_err(|_| format!("a key under '{path}' is not UTF-8"))?;
                keyed.push((k, child));
            }
            keyed.sort_by(|a, b| a.0.cmp(b.0));
            if let Some(w) = keyed.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(format!("key '{}' appears twice under '{path}'", w[0].0));
            }
            for (k, child) in keyed {
                let p = if path.is_empty() { k.to_string() } else { format!("{path}/{k}") };
                flatten(child, &p, out)?;
            }
            Ok(())
        }
        // jax's None is an empty subtree: no leaf.
        V::Nil => Ok(()),
        V::Ext(EXT_INDEX_INFO, payload) => {
            out.push((path.to_string(), payload));
            Ok(())
        }
        o => Err(format!("'{path}' is {}, not an IndexInfo (ext type {EXT_INDEX_INFO}) or a subtree", o.what())),
    }
}

/// IndexInfo: (shaped array (shape, dtype, weak_type, named_shape), [slice_nd..], [shard..]).
fn index_info(path: String, payload: &[u8], shard_count: usize) -> Msg<Leaf> {
    let v = decode(payload)?;
    let f = v.arr("IndexInfo")?;
    if f.len() != 3 {
        return Err(format!("IndexInfo has {} fields, expected (global_shape, global_slices, shards)", f.len()));
    }
    let shaped = decode(f[0].bytes("global_shape")?)?;
    let shaped = shaped.arr("global_shape")?;
    if shaped.len() < 2 {
        return Err("global_shape has fewer than (shape, dtype) fields".into());
    }
    let shape = shaped[0].arr("global_shape.shape")?.iter().map(|d| d.uint("a dimension")).collect::<Msg<Vec<_>>>()?;
    let dtype_name = shaped[1].bytes("global_shape.dtype")?;
    let dtype = String::from_utf8_lossy(dtype_name).into_owned();
    let (slices, shards) = (f[1].arr("global_slices")?, f[2].arr("shards")?);
    if slices.len() != shards.len() {
        return Err(format!("{} global slices but {} shards", slices.len(), shards.len()));
    }
    if slices.len() > MAX_CHUNKS_PER_ARRAY {
        return Err(format!("{} chunks, more than the {MAX_CHUNKS_PER_ARRAY} wgvision reads for one array", slices.len()));
    }
    let mut chunks = Vec::with_capacity(slices.len());
    for (s, sh) in slices.iter().zip(shards) {
        let slice = slice_nd(s.bytes("a global slice")?, &shape)?;
        let shard = sh.uint("a shard")?;
        if shard >= shard_count {
            return Err(format!("chunk {} is in shard {shard}, but the index has {shard_count} shards", show(&slice)));
        }
        chunks.push(Chunk { slice, shard, filled: false });
    }
    // The chunks must tile the array: pairwise disjoint, and as many elements as it has.
    let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| format!("shape {shape:?} overflows"))?;
    let total = chunks.iter().try_fold(0usize, |a, c| a.checked_add(volume(&c.slice))).unwrap_or(usize::MAX);
    for (i, a) in chunks.iter().enumerate() {
        if let Some(b) = chunks[i + 1..].iter().find(|b| volume(&a.slice) > 0 && volume(&b.slice) > 0 && a.slice.iter().zip(&b.slice).all(|(x, y)| x.0 < y.1 && y.0 < x.1)) {
            return Err(format!("chunks {} and {} overlap", show(&a.slice), show(&b.slice)));
        }
    }
    if total != numel {
        return Err(format!("the chunks hold {total} elements, the array of shape {shape:?} has {numel}: some are missing"));
    }
    Ok(Leaf { path, shape, elem: Elem::from_name(dtype_name), dtype, chunks, wanted: true, data: Vec::new() })
}

/// Copy a chunk (row-major over its slice) into the global array.
fn scatter(dst: &mut [f32], shape: &[usize], slice: &SliceNd, src: &[f32]) {
    let nd = shape.len();
    if nd == 0 {
        dst[..src.len()].copy_from_slice(src);
        return;
    }
    let run = slice[nd - 1].1 - slice[nd - 1].0;
    if run == 0 {
        return;
    }
    let mut strides = vec![1usize; nd];
    for i in (0..nd - 1).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    let mut idx: Vec<usize> = slice.iter().map(|s| s.0).collect();
    for piece in src.chunks_exact(run) {
        let off: usize = idx.iter().zip(&strides).map(|(i, s)| i * s).sum();
        dst[off..off + run].copy_from_slice(piece);
        for ax in (0..nd - 1).rev() {
            idx[ax] += 1;
            if idx[ax] < slice[ax].1 {
                break;
            }
            idx[ax] = slice[ax].0;
        }
    }
}

fn bad(path: &Path) -> impl Fn(String) -> WeightsError + '_ {
    move |message| WeightsError::BadFile { path: path.display().to_string(), message }
}

/// The data shard file `shard` of `shard_count` beside `index`.
pub fn shard_path(index: &Path, shard: usize, shard_count: usize) -> PathBuf {
    let stem = index.file_stem().unwrap_or_default().to_string_lossy();
    index.with_file_name(format!("{stem}.data-{shard:05}-of-{shard_count:05}"))
}

/// Read a vmoe checkpoint from its `.index` file and the data shards beside it: every
/// parameter as a tensor under its '/'-joined path. A train state's parameters (the
/// `params` subtree) are read without the `params/` prefix, and its other leaves
/// (optimizer state, step, rngs) are not read.
pub fn load(index: &Path) -> Result<Vec<Tensor>> {
    let bad_index = bad(index);
    let bytes = st::read_file(index)?;
    let root = decode(&bytes).map_err(&bad_index)?;
    if !matches!(root, V::Map(_)) {
        return Err(bad_index(format!("the index is {}, expected a map with shard_count and index", root.what())));
    }
    match root.get(b"version") {
        None => {}
        Some(V::Str(v)) if *v == VERSION_V1 => {}
        Some(v) => return Err(WeightsError::Unsupported(format!("{}: checkpoint version {}; wgvision reads vmoe's versions 20220622 and unversioned", index.display(), v.describe()))),
    }
    let shard_count = root.get(b"shard_count").ok_or_else(|| bad_index("no shard_count: not a vmoe checkpoint index".into()))?.uint("shard_count").map_err(&bad_index)?;
    if shard_count == 0 || shard_count > MAX_SHARDS {
        return Err(bad_index(format!("shard_count {shard_count} is outside 1..={MAX_SHARDS}")));
    }
    let tree = root.get(b"index").ok_or_else(|| bad_index("no index tree: not a vmoe checkpoint index".into()))?;
    let mut flat = Vec::new();
    flatten(tree, "", &mut flat).map_err(&bad_index)?;
    if flat.is_empty() {
        return Err(bad_index("the index tree has no arrays".into()));
    }
    let train_state = tree.get(b"params").is_some_and(|p| matches!(p, V::Map(_)));
    let mut leaves = Vec::with_capacity(flat.len());
    let mut chunk_total = 0usize;
    for (path, payload) in flat {
        let mut leaf = index_info(path.clone(), payload, shard_count).map_err(|m| bad_index(format!("'{path}': {m}")))?;
        chunk_total += leaf.chunks.len();
        if chunk_total > MAX_CHUNKS {
            return Err(bad_index(format!("more than {MAX_CHUNKS} chunks: not a checkpoint wgvision reads")));
        }
        if train_state {
            match leaf.path.strip_prefix("params/") {
                Some(p) => leaf.path = p.to_string(),
                None => leaf.wanted = false,
            }
        }
        if leaf.wanted && leaf.elem.is_none() {
            return Err(WeightsError::UnsupportedDtype { tensor: leaf.path, dtype: leaf.dtype });
        }
        leaves.push(leaf);
    }
    let mut names: Vec<&str> = leaves.iter().filter(|l| l.wanted).map(|l| l.path.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(bad_index(format!("two arrays are named '{}' (a key with '/' in it?)", w[0])));
    }
    let numel: Option<u64> = leaves.iter().filter(|l| l.wanted).try_fold(0u64, |a, l| a.checked_add(l.shape.iter().product::<usize>() as u64));
    st::check_host_bytes(&format!("{} (as f32)", index.display()), numel.and_then(|n| n.checked_mul(4)))?;
    for l in leaves.iter_mut().filter(|l| l.wanted) {
        l.data = vec![0.0; l.shape.iter().product()];
    }
    let mut shards: Vec<usize> = leaves.iter().filter(|l| l.wanted).flat_map(|l| l.chunks.iter().map(|c| c.shard)).collect();
    shards.sort_unstable();
    shards.dedup();
    for shard in shards {
        let path = shard_path(index, shard, shard_count);
        if !path.exists() {
            let first = leaves.iter().find(|l| l.wanted && l.chunks.iter().any(|c| c.shard == shard)).map_or("", |l| l.path.as_str());
            return Err(bad_index(format!("data shard {} is missing (the index puts chunks of '{first}' in it)", path.display())));
        }
        read_shard(&path, shard, &mut leaves)?;
    }
    let mut out = Vec::with_capacity(leaves.len());
    for l in leaves.into_iter().filter(|l| l.wanted) {
        if let Some(c) = l.chunks.iter().find(|c| !c.filled) {
            let p = shard_path(index, c.shard, shard_count);
            return Err(bad(&p)(format!("chunk {} of '{}' is listed in the index for this shard but missing from it", show(&c.slice), l.path)));
        }
        let dtype = l.elem.map_or(Dtype::F32, Elem::dtype);
        out.push(Tensor { name: l.path, dtype, shape: l.shape, data: l.data });
    }
    Ok(out)
}

/// Fill the leaves' chunks that `path` (shard number `shard`) holds.
fn read_shard(path: &Path, shard: usize, leaves: &mut [Leaf]) -> Result<()> {
    let bad_shard = bad(path);
    let bytes = st::read_file(path)?;
    let root = decode(&bytes).map_err(&bad_shard)?;
    let V::Map(entries) = &root else {
        return Err(bad_shard(format!("the shard is {}, expected a map of array chunks", root.what())));
    };
    if !matches!(root.get(CHUNKS_KEY), Some(V::Bool(true))) {
        return Err(bad_shard("no __msgpack_array_chunk_a87ca2__ key: not a vmoe data shard".into()));
    }
    let mut buf = Vec::new();
    for (k, v) in entries {
        let key = k.bytes("a leaf number").map_err(&bad_shard)?;
        if key == CHUNKS_KEY {
            continue;
        }
        let n: usize = std::str::from_utf8(key).ok().and_then(|s| s.parse().ok()).filter(|&n| n < leaves.len()).ok_or_else(|| {
            bad_shard(format!("key '{}' is not the number of one of the index's {} arrays", String::from_utf8_lossy(key), leaves.len()))
        })?;
        let leaf = &mut leaves[n];
        if !leaf.wanted {
            continue;
        }
        let name = leaf.path.clone();
        let err = |m: String| bad_shard(format!("'{name}': {m}"));
        let pairs = v.arr("chunks").map_err(err)?;
        for pair in pairs {
            let pair = pair.arr("a chunk").map_err(err)?;
            if pair.len() != 2 {
                return Err(err(format!("a chunk has {} fields, expected (subchunks, global_slice)", pair.len())));
            }
            let slice = slice_nd(pair[1].ext(EXT_SLICE_ND, "global_slice").map_err(err)?, &leaf.shape).map_err(err)?;
            let Some(ci) = leaf.chunks.iter().position(|c| c.slice == slice && c.shard == shard) else {
                return Err(err(format!("chunk {} is not listed in the index for this shard", show(&slice))));
            };
            if leaf.chunks[ci].filled {
                return Err(err(format!("chunk {} appears twice", show(&slice))));
            }
            let want = volume(&slice);
            buf.clear();
            for sub in pair[0].arr("subchunks").map_err(err)? {
                let v = decode(sub.ext(EXT_NDARRAY, "a subchunk").map_err(err)?).map_err(err)?;
                let f = v.arr("ndarray").map_err(err)?;
                if f.len() != 3 {
                    return Err(err(format!("an ndarray has {} fields, expected (shape, dtype, buffer)", f.len())));
                }
                let dims = f[0].arr("ndarray shape").map_err(err)?.iter().map(|d| d.uint("a dimension")).collect::<Msg<Vec<_>>>().map_err(err)?;
                let dtype = f[1].bytes("ndarray dtype").map_err(err)?;
                if dtype != leaf.dtype.as_bytes() {
                    return Err(err(format!("a chunk of dtype {} in an array of dtype {}", String::from_utf8_lossy(dtype), leaf.dtype)));
                }
                let data = f[2].bytes("ndarray buffer").map_err(err)?;
                let elem = leaf.elem.ok_or_else(|| err("unreadable dtype".into()))?;
                let count = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).filter(|&c| c.checked_mul(elem.size()) == Some(data.len()));
                let Some(count) = count else {
                    return Err(err(format!("an ndarray of shape {dims:?} ({}) has {} bytes", leaf.dtype, data.len())));
                };
                if buf.len() + count > want {
                    return Err(err(format!("chunk {} holds more than its {want} elements", show(&slice))));
                }
                elem.extend(data, &mut buf);
            }
            if buf.len() != want {
                return Err(err(format!("chunk {} holds {} elements, its slice has {want}", show(&slice), buf.len())));
            }
            scatter(&mut leaf.data, &leaf.shape, &slice, &buf);
            leaf.chunks[ci].filled = true;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Checkpoints built byte by byte as vmoe writes them (a tiny msgpack encoder), and
    //! the ways they can be broken.
    use super::*;

    enum M {
        Nil,
        I(i64),
        S(&'static str),
        B(Vec<u8>),
        A(Vec<M>),
        Map(Vec<(String, M)>),
        X(i8, Vec<u8>),
        T,
    }

    fn enc(m: &M, o: &mut Vec<u8>) {
        match m {
            M::Nil => o.push(0xc0),
            M::T => o.push(0xc3),
            M::I(i) if (0..128).contains(i) => o.push(*i as u8),
            M::I(i) => {
                o.push(0xd3);
                o.extend(i.to_be_bytes());
            }
            M::S(s) => {
                o.push(0xd9);
                o.push(s.len() as u8);
                o.extend(s.as_bytes());
            }
            M::B(b) => {
                o.push(0xc6);
                o.extend((b.len() as u32).to_be_bytes());
                o.extend(b);
            }
            M::A(a) => {
                o.push(0xdd);
                o.extend((a.len() as u32).to_be_bytes());
                a.iter().for_each(|x| enc(x, o));
            }
            M::Map(m) => {
                o.push(0xdf);
                o.extend((m.len() as u32).to_be_bytes());
                for (k, v) in m {
                    o.push(0xdb);
                    o.extend((k.len() as u32).to_be_bytes());
                    o.extend(k.as_bytes());
                    enc(v, o);
                }
            }
            M::X(t, d) => {
                o.push(0xc9);
                o.extend((d.len() as u32).to_be_bytes());
                o.push(*t as u8);
                o.extend(d);
            }
        }
    }

    fn bytes(m: &M) -> Vec<u8> {
        let mut o = Vec::new();
        enc(m, &mut o);
        o
    }

    fn slice_nd_bytes(s: &[(usize, usize)]) -> Vec<u8> {
        bytes(&M::A(s.iter().map(|&(a, b)| M::B(bytes(&M::A(vec![M::I(a as i64), M::I(b as i64), M::Nil])))).collect()))
    }

    fn info(shape: &[usize], dtype: &'static str, chunks: &[(&[(usize, usize)], usize)]) -> M {
        let shaped = bytes(&M::A(vec![M::A(shape.iter().map(|&d| M::I(d as i64)).collect()), M::S(dtype), M::Nil, M::Map(vec![])]));
        let slices = M::A(chunks.iter().map(|(s, _)| M::B(slice_nd_bytes(s))).collect());
        let shards = M::A(chunks.iter().map(|&(_, sh)| M::I(sh as i64)).collect());
        M::X(8, bytes(&M::A(vec![M::B(shaped), slices, shards])))
    }

    fn ndarray(dtype: &'static str, data: Vec<u8>, n: usize) -> M {
        M::X(1, bytes(&M::A(vec![M::A(vec![M::I(n as i64)]), M::S(dtype), M::B(data)])))
    }

    fn chunk(subs: Vec<M>, s: &[(usize, usize)]) -> M {
        M::A(vec![M::A(subs), M::X(6, slice_nd_bytes(s))])
    }

    fn f32s(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// The index and `shards` (numbered from 0 of `count`).
    fn write(dir: &Path, index: &M, shards: &[M], count: usize) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join("ckpt.index");
        std::fs::write(&p, bytes(index)).unwrap();
        for (i, s) in shards.iter().enumerate() {
            std::fs::write(shard_path(&p, i, count), bytes(s)).unwrap();
        }
        p
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("wgvision_vmoe_ckpt_{}_{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// A [4, 3] f32 array `a/w` in two chunks of rows, one per shard; `a/b` bf16 in one
    /// chunk of two subchunks; `z` an f16 scalar; key order as jax sorts.
    fn sample() -> (M, Vec<M>) {
        let w: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let index = M::Map(vec![
            ("shard_count".into(), M::I(2)),
            ("version".into(), M::S("20220622")),
            (
                "index".into(),
                M::Map(vec![
                    ("z".into(), info(&[], "float16", &[(&[], 1)])),
                    (
                        "a".into(),
                        M::Map(vec![
                            ("w".into(), info(&[4, 3], "float32", &[(&[(0, 2), (0, 3)], 0), (&[(2, 4), (0, 3)], 1)])),
                            ("b".into(), info(&[3], "bfloat16", &[(&[(0, 3)], 1)])),
                        ]),
                    ),
                ]),
            ),
        ]);
        // Leaves in sorted order: 0 a/b, 1 a/w, 2 z.
        let bf = |x: f32| half::bf16::from_f32(x).to_le_bytes().to_vec();
        let s0 = M::Map(vec![(std::str::from_utf8(CHUNKS_KEY).unwrap().into(), M::T), ("1".into(), M::A(vec![chunk(vec![ndarray("float32", f32s(&w[..6]), 6)], &[(0, 2), (0, 3)])]))]);
        let s1 = M::Map(vec![
            (std::str::from_utf8(CHUNKS_KEY).unwrap().into(), M::T),
            ("1".into(), M::A(vec![chunk(vec![ndarray("float32", f32s(&w[6..]), 6)], &[(2, 4), (0, 3)])])),
            ("0".into(), M::A(vec![chunk(vec![ndarray("bfloat16", [bf(1.5), bf(-2.0)].concat(), 2), ndarray("bfloat16", bf(0.25), 1)], &[(0, 3)])])),
            ("2".into(), M::A(vec![chunk(vec![M::X(1, bytes(&M::A(vec![M::A(vec![]), M::S("float16"), M::B(half::f16::from_f32(3.0).to_le_bytes().to_vec())])))], &[])])),
        ]);
        (index, vec![s0, s1])
    }

    fn load_err(index: &M, shards: &[M], count: usize, name: &str) -> String {
        let d = dir(name);
        let e = load(&write(&d, index, shards, count)).err().map(|e| e.to_string()).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&d);
        e
    }

    #[test]
    fn reads_chunks_across_shards_and_dtypes() {
        let (index, shards) = sample();
        let d = dir("ok");
        let t = load(&write(&d, &index, &shards, 2)).unwrap();
        let _ = std::fs::remove_dir_all(&d);
        let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a/b", "a/w", "z"]);
        assert_eq!(t[0].data, [1.5, -2.0, 0.25]);
        assert_eq!(t[0].dtype, Dtype::BF16);
        assert_eq!(t[1].shape, [4, 3]);
        assert_eq!(t[1].data, (0..12).map(|i| i as f32).collect::<Vec<_>>());
        assert_eq!((t[2].shape.len(), t[2].data[0]), (0, 3.0));
    }

    /// The golden fixture's checkpoint with bytes flipped, overwritten and cut: every
    /// variant loads or fails with an error, never a panic.
    #[test]
    fn mutated_fixture_never_panics() {
        let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/vmoe_ckpt");
        let case = "k2_bpr_token_prelogits_drops";
        let files = [format!("{case}.index"), format!("{case}.data-00000-of-00002"), format!("{case}.data-00001-of-00002")];
        let orig: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(fx.join(f)).unwrap()).collect();
        let d = dir("mutated");
        std::fs::create_dir_all(&d).unwrap();
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let (mut ok, mut refused) = (0, 0);
        for round in 0..240 {
            let which = round % 3;
            for (f, o) in files.iter().zip(&orig) {
                std::fs::write(d.join(f), o).unwrap();
            }
            let mut b = orig[which].clone();
            // Mostly the index (small, structure everywhere); in the shards, the headers.
            let span = if which == 0 { b.len() } else { 64.min(b.len()) };
            match next() % 4 {
                0 => b.truncate((next() as usize) % b.len()),
                1 => {
                    let i = (next() as usize) % span;
                    b[i] ^= 1 << (next() % 8);
                }
                2 => {
                    let i = (next() as usize) % span;
                    b[i] = [0xc1, 0xdf, 0xdd, 0xc6, 0xc9, 0xff, 0x00, 0x7f][(next() % 8) as usize];
                }
                _ => {
                    let i = (next() as usize) % span;
                    for k in i..(i + 4).min(b.len()) {
                        b[k] = 0xff;
                    }
                }
            }
            std::fs::write(d.join(&files[which]), &b).unwrap();
            match load(&d.join(&files[0])) {
                Ok(_) => ok += 1,
                Err(_) => refused += 1,
            }
        }
        let _ = std::fs::remove_dir_all(&d);
        assert!(refused > 100, "{ok} loaded, {refused} refused");
    }

    #[test]
    fn column_chunks_scatter_into_place() {
        let mut dst = vec![0.0; 12];
        scatter(&mut dst, &[4, 3], &vec![(1, 3), (1, 3)], &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(dst, [0., 0., 0., 0., 1., 2., 0., 3., 4., 0., 0., 0.]);
    }

    #[test]
    fn a_train_state_yields_its_params() {
        let index = M::Map(vec![
            ("shard_count".into(), M::I(1)),
            ("index".into(), M::Map(vec![("params".into(), M::Map(vec![("w".into(), info(&[2], "float32", &[(&[(0, 2)], 0)]))])), ("step".into(), info(&[], "int32", &[(&[], 0)]))])),
        ]);
        let key = std::str::from_utf8(CHUNKS_KEY).unwrap().to_string();
        let shard = M::Map(vec![(key, M::T), ("0".into(), M::A(vec![chunk(vec![ndarray("float32", f32s(&[1.0, 2.0]), 2)], &[(0, 2)])]))]);
        let d = dir("train_state");
        let t = load(&write(&d, &index, &[shard], 1)).unwrap();
        let _ = std::fs::remove_dir_all(&d);
        assert_eq!((t.len(), t[0].name.as_str(), t[0].data.as_slice()), (1, "w", &[1.0f32, 2.0][..]));
    }

    #[test]
    fn bad_checkpoints_are_refused_with_a_reason() {
        let (index, shards) = sample();
        let e = load_err(&index, &shards[..1], 2, "missing_shard");
        assert!(e.contains("missing") && e.contains("ckpt.data-00001-of-00002"), "{e}");
        // Truncated and absurd-length indexes.
        let d = dir("truncated");
        let p = write(&d, &index, &shards, 2);
        let full = std::fs::read(&p).unwrap();
        std::fs::write(&p, &full[..full.len() / 2]).unwrap();
        let e = load(&p).err().unwrap().to_string();
        assert!(e.contains("truncated"), "{e}");
        std::fs::write(&p, [0xdf, 0xff, 0xff, 0xff, 0xff]).unwrap();
        let e = load(&p).err().unwrap().to_string();
        assert!(e.contains("runs past the end"), "{e}");
        std::fs::write(&p, [0x91; 200]).unwrap();
        let e = load(&p).err().unwrap().to_string();
        assert!(e.contains("levels of nesting") || e.contains("truncated"), "{e}");
        let _ = std::fs::remove_dir_all(&d);

        let one = |chunks: &[(&[(usize, usize)], usize)]| {
            M::Map(vec![("shard_count".into(), M::I(2)), ("index".into(), M::Map(vec![("w".into(), info(&[4, 3], "float32", chunks))]))])
        };
        let e = load_err(&one(&[(&[(0, 3), (0, 3)], 0), (&[(2, 4), (0, 3)], 1)]), &shards, 2, "overlap");
        assert!(e.contains("overlap"), "{e}");
        let e = load_err(&one(&[(&[(0, 2), (0, 3)], 0)]), &shards, 2, "gap");
        assert!(e.contains("missing"), "{e}");
        let e = load_err(&one(&[(&[(0, 2), (0, 3)], 0), (&[(2, 5), (0, 3)], 1)]), &shards, 2, "outside");
        assert!(e.contains("outside"), "{e}");
        let e = load_err(&one(&[(&[(0, 4), (0, 3)], 7)]), &shards, 2, "shard_range");
        assert!(e.contains("shard 7"), "{e}");

        // A shard whose chunk has the wrong size, or is not in the index.
        let key = || std::str::from_utf8(CHUNKS_KEY).unwrap().to_string();
        let w1 = |n: usize, s: &'static [(usize, usize)]| M::Map(vec![(key(), M::T), ("0".into(), M::A(vec![chunk(vec![ndarray("float32", f32s(&vec![0.0; n]), n)], s)]))]);
        let ix = M::Map(vec![("shard_count".into(), M::I(1)), ("index".into(), M::Map(vec![("w".into(), info(&[4, 3], "float32", &[(&[(0, 4), (0, 3)], 0)]))]))]);
        let e = load_err(&ix, &[w1(11, &[(0, 4), (0, 3)])], 1, "short_chunk");
        assert!(e.contains("holds 11 elements"), "{e}");
        let e = load_err(&ix, &[w1(6, &[(0, 2), (0, 3)])], 1, "unlisted_chunk");
        assert!(e.contains("not listed"), "{e}");
        let e = load_err(&ix, &[M::Map(vec![(key(), M::T)])], 1, "empty_shard");
        assert!(e.contains("missing from it"), "{e}");
        let e = load_err(&ix, &[M::Map(vec![("0".into(), M::Nil)])], 1, "no_magic");
        assert!(e.contains("not a vmoe data shard"), "{e}");
        let mut bytes_ = f32s(&[0.0; 12]);
        bytes_.pop();
        let e = load_err(&ix, &[M::Map(vec![(key(), M::T), ("0".into(), M::A(vec![chunk(vec![ndarray("float32", bytes_, 12)], &[(0, 4), (0, 3)])]))])], 1, "ragged_bytes");
        assert!(e.contains("47 bytes"), "{e}");
        let e = load_err(&M::Map(vec![("shard_count".into(), M::I(1)), ("version".into(), M::S("2099")), ("index".into(), M::Map(vec![]))]), &[], 1, "version");
        assert!(e.contains("version"), "{e}");
        let e = load_err(&M::Map(vec![("shard_count".into(), M::I(1)), ("index".into(), M::Map(vec![("w".into(), info(&[2], "complex64", &[(&[(0, 2)], 0)]))]))]), &[], 1, "dtype");
        assert!(e.contains("complex64"), "{e}");
    }
}
