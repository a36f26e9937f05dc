//! Resolve: model values → `RunPlan`, pure data that needs no engine.

pub mod env_input;
pub mod host;
pub mod plan;
pub mod sizing;
pub mod task_file;
