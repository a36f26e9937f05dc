//! Resolve: model values → `RunPlan`, pure data that needs no engine.

pub(crate) mod env_input;
pub(crate) mod host;
pub(crate) mod plan;
pub(crate) mod run_options;
pub(crate) mod sizing;
pub(crate) mod task_file;
