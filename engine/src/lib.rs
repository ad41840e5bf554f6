//! wgvision-engine: device, graph IR, memory planner, WGSL kernel registry, ops and
//! executor. It knows no model family: graphs are built elsewhere and handed in.
pub mod device;
pub mod error;
pub mod executor;
pub mod graph;
pub mod kernels;
pub mod ops;
pub mod planner;

pub use device::{Backend, Caps, Gpu, LimitsCap};
/// The wgpu this engine is built on, for apps that hand in their own device
/// (`Gpu::from_wgpu`): use this one, so both sides name the same wgpu types.
pub use wgpu;
pub use error::{EngineError, Result};
pub use executor::{Autotune, CompileOptions, Compiled, GpuWeights, NodeInfo, NodeTime, Tensor, WeightData};
pub use graph::{DType, Graph, GraphBuilder, TensorId, TensorKind};
pub use ops::{Activation, ConvGeometry, Op, PoolKind, Routing, WindowGeometry};
