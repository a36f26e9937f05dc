//! Resolve: model values → `RunPlan`, pure data that needs no engine.

pub mod sizing;
