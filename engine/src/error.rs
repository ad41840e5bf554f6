//! Engine errors: one enum with structured fields, so callers can report which tensor,
//! shape or limit went wrong.
use thiserror::Error;

#[derive(Debug, Error)]
pub enum EngineError {
    #[error("no GPU adapter found{which}. On Linux without a GPU install Mesa's software Vulkan driver (Debian/Ubuntu: `apt-get install mesa-vulkan-drivers`); on other systems install a Vulkan, Metal or DX12 driver")]
    NoAdapter { which: String },
    #[error("unknown backend '{0}' (expected vulkan, metal, dx12 or gl)")]
    UnknownBackend(String),
    #[error("could not open a device on {adapter}: {message}")]
    RequestDevice { adapter: String, message: String },
    #[error("the adapter's limit {limit} is {available}, but {what} needs {needed}")]
    LimitExceeded { limit: &'static str, what: String, needed: u64, available: u64 },
    #[error("shape mismatch for {tensor}: expected {expected:?}, got {got:?}")]
    ShapeMismatch { tensor: String, expected: Vec<usize>, got: Vec<usize> },
    #[error("invalid op {node}: {message}")]
    InvalidOp { node: String, message: String },
    #[error("invalid graph: {0}")]
    InvalidGraph(String),
    #[error("missing weight '{0}'")]
    MissingWeight(String),
    #[error("missing input '{name}' (the model takes {expected:?})")]
    MissingInput { name: String, expected: Vec<String> },
    #[error("shader {shader}: {message}")]
    Shader { shader: String, message: String },
    #[error("GPU error: {0}")]
    Gpu(String),
}

pub type Result<T> = std::result::Result<T, EngineError>;
