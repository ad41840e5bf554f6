//! Running a graph on a device, in three parts: `weights` (upload, and the texture copies
//! of matrices on CPU adapters), `compile` (a variant per node, the `lower`ing pass, the
//! memory plan, pipelines, bind groups, all params in one buffer) and `record` (one
//! function that records the dispatches, used by run, profiling and debug); `autotune`
//! measures variants and caches the choice.
pub mod autotune;
mod compile;
mod lower;
mod record;
mod weights;

pub use autotune::Autotune;
pub use compile::{CompileOptions, Compiled, MemoryReport, NodeInfo};
pub use record::{NodeTime, Tensor};
pub use weights::{GpuWeights, WeightData};
