//! Argument definitions and dispatch; one file per subcommand.

/// `println!` that stops quietly when stdout is closed (e.g. piped into `head`) instead of
/// panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod bench;
mod bench_op;
mod convert;
mod inspect;
mod progress;
mod run;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::sync::Arc;
use wgvision::{Backend, Gpu};

#[derive(Parser)]
#[command(name = "wgvision", version, about = "Vision transformers on any GPU through WGSL compute shaders")]
pub struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum From {
    Timm,
    Hf,
    Vmoe,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum Dtype {
    F32,
    F16,
}

#[derive(Subcommand)]
enum Cmd {
    /// Convert a peer checkpoint (safetensors) into a wgvision model file.
    Convert {
        /// The checkpoint's library (not needed for a hub snapshot folder: INPUT a
        /// directory with config.json and model.safetensors)
        #[arg(long, value_enum)]
        from: Option<From>,
        /// timm model name, e.g. vit_base_patch16_224; with --from vmoe, a released
        /// checkpoint's config, e.g. vmoe_s32_last2_ilsvrc2012_randaug_light1
        #[arg(long)]
        model: Option<String>,
        /// timm constructor override KEY=JSON (repeatable), e.g. --set img_size=384
        #[arg(long = "set", value_name = "KEY=JSON")]
        sets: Vec<String>,
        /// Peer config.json (--from hf / vmoe)
        #[arg(long)]
        config: Option<PathBuf>,
        /// List the timm model names this build converts, then exit.
        #[arg(long)]
        list_models: bool,
        input: Option<PathBuf>,
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "f32")]
        dtype: Dtype,
        /// OWL-ViT / OWLv2: the CLIP tokenizer (tokenizer.json, or a directory with it or
        /// with vocab.json + merges.txt), stored in the model file for `run --query`
        #[arg(long)]
        tokenizer: Option<PathBuf>,
    },
    /// Run a model on a safetensors input or an image.
    Run {
        model: PathBuf,
        /// safetensors file with `pixel_values` f32 [B, 3, H, W]
        #[arg(long, conflicts_with = "image")]
        input: Option<PathBuf>,
        /// Output safetensors (with --input)
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
        /// PNG or JPEG files, or folders of them; prints the top classes of each (one
        /// JSON line per image with --json)
        #[arg(long, num_args = 1..)]
        image: Vec<PathBuf>,
        /// Images per run with --image (classifiers)
        #[arg(long, default_value_t = 8)]
        batch: usize,
        #[arg(long, default_value_t = 5)]
        top: usize,
        /// V-MoE: write per-MoE-layer routing statistics (tokens per expert, dropped
        /// choices, mean top-1 gate) to this JSON file (with --input)
        #[arg(long, requires = "input")]
        routing_stats: Option<PathBuf>,
        /// Write every node's output into this directory, named by node (with --input):
        /// DIR/NODE.safetensors plus DIR/nodes.json listing them in execution order, for a
        /// layer-by-layer comparison with the peer (weights-tools/python/compare_nodes.py)
        #[arg(long, requires = "input", value_name = "DIR")]
        dump_nodes: Option<PathBuf>,
        /// OWL-ViT / OWLv2 with --image: a text query (repeatable)
        #[arg(long = "query", value_name = "TEXT")]
        queries: Vec<String>,
        /// CLIPModel / SiglipModel with --image: a label for zero-shot classification
        /// (repeatable); prints the labels ranked
        #[arg(long = "label", value_name = "TEXT")]
        labels: Vec<String>,
        /// Tokenizer for --query / --label, if the model file has none stored
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// OWL-ViT / OWLv2 with --image: find objects like the one in this image
        /// (image-guided, one-shot detection) instead of text queries
        #[arg(long, conflicts_with = "queries")]
        query_image: Option<PathBuf>,
        /// Detections below this score (sigmoid of the best query's logit) are dropped
        #[arg(long, default_value_t = 0.1)]
        threshold: f32,
        /// IoU above which a lower-scoring box of the same query is suppressed
        #[arg(long, default_value_t = 0.3)]
        nms_iou: f32,
        /// Print the result as JSON (with --image: the top classes, or the detections)
        #[arg(long)]
        json: bool,
        /// Write the image with the detections drawn (PNG or JPEG by extension)
        #[arg(long)]
        draw: Option<PathBuf>,
        #[arg(long)]
        backend: Option<String>,
    },
    /// Show a model file's config, tensors, parameter count and FLOPs.
    Inspect {
        model: PathBuf,
        /// Print the graph IR as JSON
        #[arg(long)]
        graph: bool,
        #[arg(long)]
        json: bool,
    },
    /// Benchmark a model file or a built-in preset (synthetic weights).
    Bench {
        /// Model file, preset name (a timm model name such as vit_base_patch16_224), or one
        /// kernel: matmul:MxNxK or attention:BxNxHxD
        model: String,
        #[arg(long, default_value_t = 1)]
        batch: usize,
        #[arg(long, default_value_t = 10)]
        iters: usize,
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        /// Weight storage for presets
        #[arg(long, value_enum, default_value = "f32")]
        dtype: Dtype,
        /// GPU time per node from timestamp queries
        #[arg(long)]
        per_op: bool,
        /// Measure the kernel variants of every node's shape class on this adapter and
        /// cache the fastest (as WGVISION_AUTOTUNE=1 does); later runs use the cache
        #[arg(long)]
        autotune: bool,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        backend: Option<String>,
    },
}

pub type CliResult = Result<(), Box<dyn std::error::Error>>;

pub fn open_gpu(backend: Option<&str>) -> Result<Arc<Gpu>, Box<dyn std::error::Error>> {
    let b: Option<Backend> = backend.map(str::parse).transpose()?;
    Ok(Gpu::new(b)?)
}

pub fn dispatch(cli: Cli) -> CliResult {
    match cli.cmd {
        Cmd::Convert { from, model, sets, config, list_models, input, output, dtype, tokenizer } => {
            convert::convert(from, model, sets, config, list_models, input, output, dtype == Dtype::F16, tokenizer)
        }
        Cmd::Run { model, input, output, image, batch, top, routing_stats, dump_nodes, queries, labels, tokenizer, query_image, threshold, nms_iou, json, draw, backend } => {
            let detect = run::DetectArgs { queries, labels, tokenizer, query_image, threshold, nms_iou, json, draw };
            run::run(model, input, output, image, batch, top, run::Probes { routing_stats, dump_nodes }, detect, backend)
        }
        Cmd::Inspect { model, graph, json } => inspect::inspect(model, graph, json),
        Cmd::Bench { model, batch, iters, warmup, dtype, per_op, autotune, json, backend } => {
            if autotune {
                // Read by every compile in this process (single-threaded here).
                std::env::set_var("WGVISION_AUTOTUNE", "1");
            }
            bench::bench(&model, batch, iters, warmup, dtype == Dtype::F16, per_op, json, backend)
        }
    }
}
