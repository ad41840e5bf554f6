//! wgvision's C ABI: opaque handles for the GPU, a model and a detector; every call
//! returns a status (the message in `wgv_last_error`), and no panic crosses into C.
//! The header, include/wgvision.h, is generated from this file by cbindgen
//! (tests/header.rs checks that the committed copy is current). Ownership and threading
//! rules are in the header's opening comment (cbindgen.toml). Panics are caught with
//! catch_unwind, so the library must be built with panic = "unwind" (cargo's default).
mod status;

pub use status::WgvStatus;
use status::{fail, guard, guard_ptr, guard_void, invalid, Res};
use std::ffi::{c_char, CStr, CString};
use std::path::PathBuf;
use std::sync::Arc;
use wgvision::detect::{DetectOptions, Detector};
use wgvision::tokenizer::ClipTokenizer;
use wgvision::{Gpu, Model, ModelFile};

/// A GPU device (adapter, device and queue). Create with `wgv_gpu_create`, free with
/// `wgv_gpu_free`. Models keep the device alive: the handle may be freed before them.
pub struct WgvGpu {
    gpu: Arc<Gpu>,
    name: CString,
}

/// One named model output.
struct OutputInfo {
    name: CString,
    /// At `WgvModel::min_batch` images.
    shape: Vec<usize>,
}

/// A loaded model file: weights on the device, compiled per batch size on first use.
/// Create with `wgv_model_load`, free with `wgv_model_free`. Detectors keep the model
/// alive: the handle may be freed before them.
pub struct WgvModel {
    model: Arc<Model>,
    name: CString,
    outputs: Vec<OutputInfo>,
    min_batch: usize,
    classes: usize,
    class_names: Vec<CString>,
    /// Files stored at conversion (a detector's tokenizer vocabulary).
    files: Vec<(String, String)>,
}

/// Open-vocabulary detection (OWL-ViT / OWLv2) with text queries. Create with
/// `wgv_detector_create`, free with `wgv_detector_free`. A query set's text embeddings are
/// computed once per detector and reused for every image detected with the same set.
pub struct WgvDetector {
    // Declared first so it is dropped first: it borrows the model and the tokenizer that
    // the two Arcs below keep alive (see `wgv_detector_create`).
    detector: Detector<'static>,
    _tokenizer: Arc<ClipTokenizer>,
    _model: Arc<Model>,
}

// The thread-safety the header promises.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<WgvGpu>();
    send_sync::<WgvModel>();
    send_sync::<WgvDetector>();
};

/// Post-processing for detection. `wgv_detect_options_default()` gives the CLI's defaults.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct WgvDetectOptions {
    /// Detections scoring below this (sigmoid of the best query's logit) are dropped.
    pub threshold: f32,
    /// A lower-scoring box of the same query overlapping a kept one by more than this
    /// IoU is suppressed.
    pub nms_iou: f32,
}

/// One detected object.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct WgvDetection {
    /// [x0, y0, x1, y1] in pixels of the original image.
    pub bbox: [f32; 4],
    /// Sigmoid of the logit of the best query.
    pub score: f32,
    /// Index of that query in the array passed in.
    pub query: usize,
}

/// One output's destination for `wgv_model_run_outputs`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct WgvOutput {
    /// Where the output's values go (row-major); NULL to skip this output.
    pub data: *mut f32,
    /// How many floats `data` can hold.
    pub capacity: usize,
    /// Set by the call: how many floats the output has.
    pub len: usize,
}

// ---------------------------------------------------------------------------------------
// Argument helpers: every pointer is checked before use.

fn handle<'a, T>(p: *const T, what: &str) -> Res<&'a T> {
    // SAFETY: non-null handles come from this library's create functions (documented).
    unsafe { p.as_ref() }.ok_or_else(|| invalid(format!("{what} is NULL")))
}

fn c_str<'a>(p: *const c_char, what: &str) -> Res<&'a CStr> {
    if p.is_null() {
        return Err(invalid(format!("{what} is NULL")));
    }
    // SAFETY: the caller passes a NUL-terminated string (documented).
    Ok(unsafe { CStr::from_ptr(p) })
}

fn utf8<'a>(p: *const c_char, what: &str) -> Res<&'a str> {
    c_str(p, what)?.to_str().map_err(|e| invalid(format!("{what} is not valid UTF-8 ({e})")))
}

fn path(p: *const c_char, what: &str) -> Res<PathBuf> {
    let s = c_str(p, what)?;
    if s.is_empty() {
        return Err(invalid(format!("{what} is empty")));
    }
    // Unix paths are bytes; elsewhere they must be UTF-8.
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(s.to_bytes())))
    }
    #[cfg(not(unix))]
    {
        Ok(PathBuf::from(utf8(p, what)?))
    }
}

/// Read access to `len` values at `p` (a checked null, alignment and size).
fn slice<'a, T>(p: *const T, len: usize, what: &str) -> Res<&'a [T]> {
    if p.is_null() {
        return Err(invalid(format!("{what} is NULL")));
    }
    if !p.is_aligned() {
        return Err(invalid(format!("{what} is not aligned for its element type")));
    }
    if len.checked_mul(std::mem::size_of::<T>()).is_none_or(|b| b > isize::MAX as usize) {
        return Err(invalid(format!("{what}: {len} elements is more than can be addressed")));
    }
    // SAFETY: the caller gives `len` readable elements at `p` (documented).
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// Write access to `len` values at `p`.
fn slice_mut<'a, T>(p: *mut T, len: usize, what: &str) -> Res<&'a mut [T]> {
    slice(p as *const T, len, what)?;
    // SAFETY: as `slice`, and the caller gives write access (documented).
    Ok(unsafe { std::slice::from_raw_parts_mut(p, len) })
}

/// Store through an optional out-pointer.
fn put<T>(p: *mut T, v: T) {
    // SAFETY: a non-null out-pointer points at a writable T (documented).
    if let Some(slot) = unsafe { p.as_mut() } {
        *slot = v;
    }
}

/// Store through a required out-pointer.
fn put_required<T>(p: *mut T, v: T, what: &str) -> Res<()> {
    if p.is_null() {
        return Err(invalid(format!("{what} is NULL")));
    }
    put(p, v);
    Ok(())
}

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "\\0")).unwrap_or_default()
}

/// An image file must exist before decoding, so a missing file is WGV_STATUS_IO.
fn readable(p: &std::path::Path, what: &str) -> Res<()> {
    match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => Err(fail(WgvStatus::Io, format!("{what} {}: is a directory", p.display()))),
        Ok(_) => Ok(()),
        Err(e) => Err(fail(WgvStatus::Io, format!("{what} {}: {e}", p.display()))),
    }
}

// ---------------------------------------------------------------------------------------
// Library

/// The library version ("0.1.0"), a static string.
#[no_mangle]
pub extern "C" fn wgv_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The message of the last call on this thread that failed, or "" if the last call
/// succeeded. Never NULL. The string belongs to the library and stays valid until the
/// next wgv_* call on this thread (copy it to keep it).
#[no_mangle]
pub extern "C" fn wgv_last_error() -> *const c_char {
    status::last_error_ptr()
}

/// A status code's name ("WGV_STATUS_OK", ...), a static string; "WGV_STATUS_UNKNOWN"
/// for a value that is no status.
#[no_mangle]
pub extern "C" fn wgv_status_name(status: i32) -> *const c_char {
    let s: &CStr = match status {
        0 => c"WGV_STATUS_OK",
        1 => c"WGV_STATUS_INVALID_ARGUMENT",
        2 => c"WGV_STATUS_BUFFER_TOO_SMALL",
        3 => c"WGV_STATUS_IO",
        4 => c"WGV_STATUS_MODEL",
        5 => c"WGV_STATUS_INPUT",
        6 => c"WGV_STATUS_DEVICE",
        7 => c"WGV_STATUS_PANIC",
        _ => c"WGV_STATUS_UNKNOWN",
    };
    s.as_ptr()
}

// ---------------------------------------------------------------------------------------
// GPU

/// Open a GPU device. `backend`: NULL for the best adapter (or the WGVISION_BACKEND
/// environment variable), else "vulkan", "metal", "dx12" or "gl". On success `*out` is
/// a new handle; on failure it is set to NULL.
///
/// # Safety
/// `backend` is NULL or a NUL-terminated string; `out` points at a writable pointer.
#[no_mangle]
pub unsafe extern "C" fn wgv_gpu_create(backend: *const c_char, out: *mut *mut WgvGpu) -> WgvStatus {
    guard(|| {
        put_required(out, std::ptr::null_mut(), "out")?;
        let backend = if backend.is_null() { None } else { Some(utf8(backend, "backend")?.parse().map_err(wgvision::Error::Engine)?) };
        let gpu = Gpu::new(backend).map_err(wgvision::Error::Engine)?;
        let name = cstring(&gpu.describe());
        put(out, Box::into_raw(Box::new(WgvGpu { gpu, name })));
        Ok(())
    })
}

/// The adapter's name and backend ("llvmpipe (LLVM 15.0.6, 256 bits) / Vulkan"), owned by
/// the handle. NULL if `gpu` is NULL.
///
/// # Safety
/// `gpu` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn wgv_gpu_name(gpu: *const WgvGpu) -> *const c_char {
    guard_ptr(|| Ok(handle(gpu, "gpu")?.name.as_ptr()))
}

/// Free a GPU handle (NULL is ignored). Models created on it keep the device alive.
///
/// # Safety
/// `gpu` is NULL or a live handle, not used again after this call.
#[no_mangle]
pub unsafe extern "C" fn wgv_gpu_free(gpu: *mut WgvGpu) {
    if !gpu.is_null() {
        // SAFETY: a live handle from wgv_gpu_create, freed once (documented).
        guard_void(|| drop(unsafe { Box::from_raw(gpu) }));
    }
}

// ---------------------------------------------------------------------------------------
// Model

/// Load a model file written by `wgvision convert` onto `gpu`. On success `*out` is a new
/// handle; on failure it is set to NULL. A missing or unreadable file is WGV_STATUS_IO;
/// a file that is not a model, or whose weights do not fit its config, WGV_STATUS_MODEL,
/// as is a zero-shot model (CLIPModel / SiglipModel), which the C ABI does not run yet.
///
/// # Safety
/// `gpu` is a live handle; `path` a NUL-terminated string; `out` points at a writable
/// pointer.
#[no_mangle]
pub unsafe extern "C" fn wgv_model_load(gpu: *const WgvGpu, path: *const c_char, out: *mut *mut WgvModel) -> WgvStatus {
    guard(|| {
        put_required(out, std::ptr::null_mut(), "out")?;
        let gpu = handle(gpu, "gpu")?;
        let path = self::path(path, "path")?;
        let file = ModelFile::open(&path).map_err(wgvision::Error::Weights)?;
        if matches!(file.config.task(), wgvision::Task::ZeroShot(_)) {
            return Err(status::fail(
                WgvStatus::Model,
                format!("{}: zero-shot models (CLIPModel / SiglipModel) are not in the C ABI yet; use `wgvision run --label` or the Rust API", path.display()),
            ));
        }
        let model = Model::from_file(gpu.gpu.clone(), &file)?;
        let files = if model.config.is_detector() { file.files.clone() } else { Vec::new() };
        drop(file);
        let min_batch = model.config.min_batch().max(1);
        let graph = model.config.build(min_batch).map_err(wgvision::Error::Graph)?;
        let outputs: Vec<OutputInfo> = graph
            .outputs
            .iter()
            .map(|&t| OutputInfo { name: cstring(&graph.tensors[t].name), shape: graph.tensors[t].shape.clone() })
            .collect();
        let classes = if model.config.is_detector() {
            0
        } else {
            outputs.iter().find(|o| o.name.as_bytes() == b"logits").and_then(|o| o.shape.last().copied()).unwrap_or(0)
        };
        let class_names = model.class_names().map(|n| n.iter().map(|s| cstring(s)).collect()).unwrap_or_default();
        let name = cstring(model.config.name());
        let handle = WgvModel { model: Arc::new(model), name, outputs, min_batch, classes, class_names, files };
        put(out, Box::into_raw(Box::new(handle)));
        Ok(())
    })
}

/// Free a model handle (NULL is ignored). Detectors created from it keep it alive.
///
/// # Safety
/// `model` is NULL or a live handle, not used again after this call.
#[no_mangle]
pub unsafe extern "C" fn wgv_model_free(model: *mut WgvModel) {
    if !model.is_null() {
        // SAFETY: a live handle from wgv_model_load, freed once (documented).
        guard_void(|| drop(unsafe { Box::from_raw(model) }));
    }
}

/// The model's name from its config (e.g. "vit_base_patch16_224"), owned by the handle.
/// NULL if `model` is NULL.
///
/// # Safety
/// `model` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn wgv_model_name(model: *const WgvModel) -> *const c_char {
    guard_ptr(|| Ok(handle(model, "model")?.name.as_ptr()))
}

/// The image input of one image: channels, height, width (pixels are [B, C, H, W]).
/// Any of the out-pointers may be NULL.
///
/// # Safety
/// `model` is a live handle; each out-pointer is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn wgv_model_input_shape(model: *const WgvModel, channels: *mut usize, height: *mut usize, width: *mut usize) -> WgvStatus {
    guard(|| {
        let m = handle(model, "model")?;
        let (_, shape) = m.model.config.image_input(1);
        put(channels, shape[1]);
        put(height, shape[2]);
        put(width, shape[3]);
        Ok(())
    })
}

/// Whether the model is a detector (OWL-ViT / OWLv2: use a WgvDetector) rather than an
/// image model (use wgv_model_run).
///
/// # Safety
/// `model` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn wgv_model_is_detector(model: *const WgvModel, out: *mut bool) -> WgvStatus {
    guard(|| put_required(out, handle(model, "model")?.model.config.is_detector(), "out"))
}

/// The smallest batch the model runs, and the unit batches come in (1 for all models
/// except V-MoE with token routing groups spanning images).
///
/// # Safety
/// `model` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn wgv_model_min_batch(model: *const WgvModel, out: *mut usize) -> WgvStatus {
    guard(|| put_required(out, handle(model, "model")?.min_batch, "out"))
}

/// A classifier's class count (the last dimension of `logits`); 0 for detectors.
///
/// # Safety
/// `model` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn wgv_model_num_classes(model: *const WgvModel, out: *mut usize) -> WgvStatus {
    guard(|| put_required(out, handle(model, "model")?.classes, "out"))
}

/// A class's name (stored at conversion, or ImageNet-1k's for 1000 classes), owned by
/// the handle. NULL when the model has no names or `index` is out of range (see
/// wgv_last_error).
///
/// # Safety
/// `model` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn wgv_model_class_name(model: *const WgvModel, index: usize) -> *const c_char {
    guard_ptr(|| {
        let m = handle(model, "model")?;
        if m.class_names.is_empty() {
            return Err(fail(WgvStatus::Model, "the model has no class names"));
        }
        let n = m.class_names.get(index).ok_or_else(|| invalid(format!("class {index} is out of range (the model has {})", m.class_names.len())))?;
        Ok(n.as_ptr())
    })
}

/// How many outputs a run produces (for a classifier, output 0 is `logits`).
///
/// # Safety
/// `model` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn wgv_model_output_count(model: *const WgvModel, out: *mut usize) -> WgvStatus {
    guard(|| put_required(out, handle(model, "model")?.outputs.len(), "out"))
}

fn output_info(m: &WgvModel, index: usize) -> Res<&OutputInfo> {
    m.outputs.get(index).ok_or_else(|| invalid(format!("output {index} is out of range (the model has {})", m.outputs.len())))
}

/// The shape of `outputs[index]` for `batch` images; returns 0 if batch does not fit.
fn output_shape(m: &WgvModel, o: &OutputInfo, batch: usize) -> Vec<usize> {
    let mut s = o.shape.clone();
    if let Some(b) = s.first_mut() {
        *b = (*b / m.min_batch).saturating_mul(batch);
    }
    s
}

fn output_len(m: &WgvModel, o: &OutputInfo, batch: usize) -> Res<usize> {
    output_shape(m, o, batch)
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| invalid(format!("batch {batch}: the output size overflows")))
}

/// An output's name (e.g. "logits"), owned by the handle. NULL if `index` is out of
/// range.
///
/// # Safety
/// `model` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn wgv_model_output_name(model: *const WgvModel, index: usize) -> *const c_char {
    guard_ptr(|| Ok(output_info(handle(model, "model")?, index)?.name.as_ptr()))
}

/// An output's shape for `batch` images: its rank in `*ndim`, its dimensions (batch first)
/// in `dims[0..rank]`. With `dims_capacity` below the rank, WGV_STATUS_BUFFER_TOO_SMALL
/// (and `*ndim` still says the rank). For a detector, shapes are those of one query.
///
/// # Safety
/// `model` is a live handle; `dims` holds `dims_capacity` writable values (may be NULL
/// when that is 0); `ndim` is writable.
#[no_mangle]
pub unsafe extern "C" fn wgv_model_output_shape(model: *const WgvModel, index: usize, batch: usize, dims: *mut usize, dims_capacity: usize, ndim: *mut usize) -> WgvStatus {
    guard(|| {
        let m = handle(model, "model")?;
        let shape = output_shape(m, output_info(m, index)?, batch);
        put_required(ndim, shape.len(), "ndim")?;
        if dims_capacity < shape.len() {
            return Err(fail(WgvStatus::BufferTooSmall, format!("dims holds {dims_capacity} values; the output has rank {}", shape.len())));
        }
        slice_mut(dims, shape.len(), "dims")?.copy_from_slice(&shape);
        Ok(())
    })
}

/// How many floats an output has for `batch` images (the product of its shape).
///
/// # Safety
/// `model` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn wgv_model_output_len(model: *const WgvModel, index: usize, batch: usize, out: *mut usize) -> WgvStatus {
    guard(|| {
        let m = handle(model, "model")?;
        put_required(out, output_len(m, output_info(m, index)?, batch)?, "out")
    })
}

/// Check a pixel batch's arguments and borrow it.
fn pixel_batch<'a>(m: &WgvModel, pixels: *const f32, pixels_len: usize, batch: usize) -> Res<(&'a [f32], Vec<usize>)> {
    if batch == 0 {
        return Err(invalid("batch is 0"));
    }
    let (_, mut shape) = m.model.config.image_input(1);
    shape[0] = batch;
    let want = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| invalid(format!("batch {batch} overflows")))?;
    if pixels_len != want {
        return Err(invalid(format!("pixels_len is {pixels_len}; a batch of {batch} is {shape:?} = {want} floats")));
    }
    Ok((slice(pixels, pixels_len, "pixels")?, shape))
}

/// Run a batch and copy the outputs into `outputs[0..n_outputs]` (output i into
/// outputs[i]; outputs past n_outputs are dropped; an entry with data NULL is skipped but
/// still gets its len). Sizes are checked before running: if an entry's capacity is below
/// its output's size, nothing runs or is written, every len is set, and the status is
/// WGV_STATUS_BUFFER_TOO_SMALL.
///
/// # Safety
/// `model` is a live handle; `pixels` holds `pixels_len` floats; `outputs` holds
/// `n_outputs` entries, each `data` NULL or `capacity` writable floats.
#[no_mangle]
pub unsafe extern "C" fn wgv_model_run_outputs(model: *const WgvModel, pixels: *const f32, pixels_len: usize, batch: usize, outputs: *mut WgvOutput, n_outputs: usize) -> WgvStatus {
    guard(|| {
        let m = handle(model, "model")?;
        let outs = slice_mut(outputs, n_outputs, "outputs")?;
        run_into(m, pixels, pixels_len, batch, outs)
    })
}

/// `wgv_model_run_outputs` body: check, run, copy.
fn run_into(m: &WgvModel, pixels: *const f32, pixels_len: usize, batch: usize, outs: &mut [WgvOutput]) -> Res<()> {
    if m.model.config.is_detector() {
        return Err(fail(WgvStatus::Model, format!("{} is a detector: it needs text queries (use wgv_detector_create)", m.model.config.name())));
    }
    if outs.len() > m.outputs.len() {
        return Err(invalid(format!("{} output buffers given; the model has {} outputs", outs.len(), m.outputs.len())));
    }
    let (px, shape) = pixel_batch(m, pixels, pixels_len, batch)?;
    let mut short = None;
    for (i, o) in outs.iter_mut().enumerate() {
        o.len = output_len(m, &m.outputs[i], batch)?;
        if !o.data.is_null() && o.capacity < o.len && short.is_none() {
            short = Some((i, o.capacity, o.len));
        }
    }
    if let Some((i, cap, len)) = short {
        return Err(fail(WgvStatus::BufferTooSmall, format!("output {i} needs {len} floats; its buffer holds {cap}")));
    }
    let result = m.model.run(px, &shape)?;
    for (i, o) in outs.iter_mut().enumerate() {
        let name = m.outputs[i].name.to_str().unwrap_or("");
        let t = result.iter().find(|t| t.name == name).ok_or_else(|| fail(WgvStatus::Model, format!("the run produced no output '{name}'")))?;
        o.len = t.data.len();
        if o.data.is_null() {
            continue;
        }
        // The sizes were checked against the graph; the run's own sizes are what count.
        if o.capacity < t.data.len() {
            return Err(fail(WgvStatus::BufferTooSmall, format!("output {i} needs {} floats; its buffer holds {}", t.data.len(), o.capacity)));
        }
        slice_mut(o.data, t.data.len(), "outputs[].data")?.copy_from_slice(&t.data);
    }
    Ok(())
}

/// Run a batch of `batch` images, float32 NCHW ([B, C, H, W] as wgv_model_input_shape
/// gives, already preprocessed: see wgv_model_load_image), and copy output 0 (`logits`
/// for a classifier) into `out`. `*out_len` (if not NULL) is set to its size; if
/// `out_capacity` is smaller, nothing runs and the status is WGV_STATUS_BUFFER_TOO_SMALL
/// (so out = NULL, capacity 0 asks for the size). Each model compiles once per batch
/// size, on the first run with it.
///
/// # Safety
/// `model` is a live handle; `pixels` holds `pixels_len` floats; `out` holds
/// `out_capacity` writable floats (may be NULL when that is 0); `out_len` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn wgv_model_run(model: *const WgvModel, pixels: *const f32, pixels_len: usize, batch: usize, out: *mut f32, out_capacity: usize, out_len: *mut usize) -> WgvStatus {
    guard(|| {
        let m = handle(model, "model")?;
        if m.outputs.is_empty() {
            return Err(fail(WgvStatus::Model, "the model has no outputs"));
        }
        let data = if out.is_null() && out_capacity == 0 {
            // A size query: a non-null pointer of capacity 0 stands in for the buffer.
            std::ptr::NonNull::<f32>::dangling().as_ptr()
        } else {
            out
        };
        if data.is_null() {
            return Err(invalid("out is NULL"));
        }
        let mut o = [WgvOutput { data, capacity: out_capacity, len: 0 }];
        let r = run_into(m, pixels, pixels_len, batch, &mut o);
        put(out_len, o[0].len);
        r
    })
}

/// Load a PNG or JPEG file and preprocess it as the model was trained (resize, center
/// crop, normalize: the model's recorded preprocessing) into `out` as [C, H, W] float32.
/// `*out_len` (if not NULL) is set to C*H*W; if `out_capacity` is smaller, the status is
/// WGV_STATUS_BUFFER_TOO_SMALL. Image i of a batch goes to `pixels + i * C*H*W`.
///
/// # Safety
/// `model` is a live handle; `path` a NUL-terminated string; `out` holds `out_capacity`
/// writable floats; `out_len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn wgv_model_load_image(model: *const WgvModel, path: *const c_char, out: *mut f32, out_capacity: usize, out_len: *mut usize) -> WgvStatus {
    guard(|| {
        let m = handle(model, "model")?;
        let p = self::path(path, "path")?;
        let (_, shape) = m.model.config.image_input(1);
        let (c, h, w) = (shape[1], shape[2], shape[3]);
        let n = c * h * w;
        put(out_len, n);
        if out_capacity < n {
            return Err(fail(WgvStatus::BufferTooSmall, format!("out holds {out_capacity} floats; one image is {c}x{h}x{w} = {n}")));
        }
        let dst = slice_mut(out, n, "out")?;
        readable(&p, "image")?;
        let px = if m.model.config.is_detector() {
            wgvision::detect::owl_pixels(&wgvision::detect::open_rgb(&p)?, &m.model.config)?
        } else {
            wgvision::image_input::load_image(&p, m.model.config.preprocess())?
        };
        if px.len() != n {
            return Err(fail(WgvStatus::Input, format!("image {}: preprocessing gave {} values, expected {n}", p.display(), px.len())));
        }
        dst.copy_from_slice(&px);
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------
// Detector

/// A detector for an OWL-ViT / OWLv2 model. `tokenizer_path`: NULL to use the tokenizer
/// stored in the model file (`wgvision convert --tokenizer`), else a tokenizer.json or a
/// folder with vocab.json + merges.txt. On success `*out` is a new handle (it keeps the
/// model alive); on failure it is set to NULL. A model that is no detector is
/// WGV_STATUS_MODEL.
///
/// # Safety
/// `model` is a live handle; `tokenizer_path` is NULL or a NUL-terminated string; `out`
/// points at a writable pointer.
#[no_mangle]
pub unsafe extern "C" fn wgv_detector_create(model: *const WgvModel, tokenizer_path: *const c_char, out: *mut *mut WgvDetector) -> WgvStatus {
    guard(|| {
        put_required(out, std::ptr::null_mut(), "out")?;
        let m = handle(model, "model")?;
        if !m.model.config.is_detector() {
            return Err(fail(WgvStatus::Model, format!("{} is not a detector (text queries need an OWL-ViT / OWLv2 model)", m.model.config.name())));
        }
        let tok = if tokenizer_path.is_null() {
            if m.files.is_empty() {
                return Err(fail(WgvStatus::Model, "the model file stores no tokenizer: pass tokenizer_path (or convert with --tokenizer)"));
            }
            ClipTokenizer::from_files(&m.files).map_err(|e| fail(WgvStatus::Model, format!("stored tokenizer: {e}")))?
        } else {
            let p = path(tokenizer_path, "tokenizer_path")?;
            if let Err(e) = std::fs::metadata(&p) {
                return Err(fail(WgvStatus::Io, format!("tokenizer {}: {e}", p.display())));
            }
            ClipTokenizer::load(&p).map_err(|e| fail(WgvStatus::Model, e.to_string()))?
        };
        let model = m.model.clone();
        let tokenizer = Arc::new(tok);
        // SAFETY: the Model and the ClipTokenizer live on the heap behind the two Arcs,
        // which the handle owns next to the detector and drops after it (field order), so
        // they outlive every use of these references; the detector is never handed out
        // with the 'static lifetime, and moving the handle moves only the Arcs.
        let (mr, tr): (&'static Model, &'static ClipTokenizer) = unsafe { (&*Arc::as_ptr(&model), &*Arc::as_ptr(&tokenizer)) };
        let detector = Detector::new(mr, Some(tr))?;
        put(out, Box::into_raw(Box::new(WgvDetector { detector, _tokenizer: tokenizer, _model: model })));
        Ok(())
    })
}

/// Free a detector handle (NULL is ignored).
///
/// # Safety
/// `detector` is NULL or a live handle, not used again after this call.
#[no_mangle]
pub unsafe extern "C" fn wgv_detector_free(detector: *mut WgvDetector) {
    if !detector.is_null() {
        // SAFETY: a live handle from wgv_detector_create, freed once (documented).
        guard_void(|| drop(unsafe { Box::from_raw(detector) }));
    }
}

/// The CLI's defaults: threshold 0.1, nms_iou 0.3.
#[no_mangle]
pub extern "C" fn wgv_detect_options_default() -> WgvDetectOptions {
    WgvDetectOptions { threshold: 0.1, nms_iou: 0.3 }
}

/// How many times the detector has run its text tower (once per new query set).
///
/// # Safety
/// `detector` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn wgv_detector_text_runs(detector: *const WgvDetector, out: *mut usize) -> WgvStatus {
    guard(|| put_required(out, handle(detector, "detector")?.detector.text_runs(), "out"))
}

/// Check the query array and the options.
fn queries_and_options(queries: *const *const c_char, n_queries: usize, opts: *const WgvDetectOptions) -> Res<(Vec<String>, DetectOptions)> {
    if n_queries == 0 {
        return Err(invalid("n_queries is 0: give at least one text query"));
    }
    let ptrs = slice(queries, n_queries, "queries")?;
    let qs = ptrs.iter().enumerate().map(|(i, &q)| utf8(q, &format!("queries[{i}]")).map(str::to_string)).collect::<Res<Vec<_>>>()?;
    // SAFETY: NULL or a readable WgvDetectOptions (documented).
    let o = unsafe { opts.as_ref() }.copied().unwrap_or_else(|| wgv_detect_options_default());
    if !o.threshold.is_finite() || !o.nms_iou.is_finite() {
        return Err(invalid(format!("options: threshold {} and nms_iou {} must be finite", o.threshold, o.nms_iou)));
    }
    Ok((qs, DetectOptions { threshold: o.threshold, nms_iou: o.nms_iou }))
}

/// Detect and copy the best `capacity` detections out; `*count` is how many there were.
fn detect_into(d: &WgvDetector, img: &image::RgbImage, queries: (Vec<String>, DetectOptions), out: *mut WgvDetection, capacity: usize, count: *mut usize) -> Res<()> {
    if count.is_null() {
        return Err(invalid("count is NULL"));
    }
    let dst = if capacity == 0 { &mut [][..] } else { slice_mut(out, capacity, "out")? };
    let (qs, opts) = queries;
    let dets = d.detector.detect(img, &qs, &opts)?;
    put(count, dets.len());
    for (slot, x) in dst.iter_mut().zip(&dets) {
        *slot = WgvDetection { bbox: x.bbox, score: x.score, query: x.query };
    }
    if dets.len() > capacity {
        return Err(fail(WgvStatus::BufferTooSmall, format!("{} detections; out holds {capacity} (it has the best {capacity})", dets.len())));
    }
    Ok(())
}

/// Detect the text `queries` (UTF-8) in a PNG or JPEG file. Detections, best first, go
/// to `out`; `*count` is how many there are. If that is more than `capacity`, `out` holds
/// the best `capacity` and the status is WGV_STATUS_BUFFER_TOO_SMALL. `opts` NULL: the
/// defaults. Runs the text tower only for a query set this detector has not seen.
///
/// # Safety
/// `detector` is a live handle; `image_path` a NUL-terminated string; `queries` holds
/// `n_queries` NUL-terminated strings; `opts` is NULL or readable; `out` holds `capacity`
/// writable entries (may be NULL when that is 0); `count` is writable.
#[no_mangle]
pub unsafe extern "C" fn wgv_detector_detect_file(
    detector: *const WgvDetector,
    image_path: *const c_char,
    queries: *const *const c_char,
    n_queries: usize,
    opts: *const WgvDetectOptions,
    out: *mut WgvDetection,
    capacity: usize,
    count: *mut usize,
) -> WgvStatus {
    guard(|| {
        put(count, 0);
        let d = handle(detector, "detector")?;
        let p = path(image_path, "image_path")?;
        let q = queries_and_options(queries, n_queries, opts)?;
        readable(&p, "image")?;
        let img = wgvision::detect::open_rgb(&p)?;
        detect_into(d, &img, q, out, capacity, count)
    })
}

/// `wgv_detector_detect_file` on an image in memory: 8-bit RGB, `height` rows of
/// `width` pixels, row r starting at `rgb + r * stride` (stride >= 3 * width bytes).
///
/// # Safety
/// As `wgv_detector_detect_file`, with `rgb` holding `stride * (height - 1) + 3 * width`
/// readable bytes.
#[no_mangle]
pub unsafe extern "C" fn wgv_detector_detect_rgb(
    detector: *const WgvDetector,
    rgb: *const u8,
    width: u32,
    height: u32,
    stride: usize,
    queries: *const *const c_char,
    n_queries: usize,
    opts: *const WgvDetectOptions,
    out: *mut WgvDetection,
    capacity: usize,
    count: *mut usize,
) -> WgvStatus {
    guard(|| {
        put(count, 0);
        let d = handle(detector, "detector")?;
        let (w, h) = (width as usize, height as usize);
        if w == 0 || h == 0 {
            return Err(invalid(format!("image size {width}x{height}: both sides must be at least 1")));
        }
        if width > wgvision::image_input::MAX_IMAGE_SIDE || height > wgvision::image_input::MAX_IMAGE_SIDE || (w as u64 * h as u64) > wgvision::image_input::MAX_IMAGE_PIXELS {
            return Err(fail(WgvStatus::Input, format!("{width}x{height} pixels is larger than wgvision takes")));
        }
        let row = 3 * w;
        if stride < row {
            return Err(invalid(format!("stride {stride} is less than 3 * width = {row}")));
        }
        let total = stride.checked_mul(h - 1).and_then(|v| v.checked_add(row)).ok_or_else(|| invalid("stride * height overflows"))?;
        let q = queries_and_options(queries, n_queries, opts)?;
        let src = slice(rgb, total, "rgb")?;
        let mut buf = Vec::with_capacity(row * h);
        for r in 0..h {
            buf.extend_from_slice(&src[r * stride..r * stride + row]);
        }
        let img = image::RgbImage::from_raw(width, height, buf).ok_or_else(|| invalid("rgb: size mismatch"))?;
        detect_into(d, &img, q, out, capacity, count)
    })
}
