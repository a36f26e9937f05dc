//! Pipelines: tasks joined by IOMappings and dependencies (docs/DESIGN.md decision 10).
//! `model` is the file format, `plan` the pure checks and the planned order and folders.
//! Running a pipeline is not built yet.

pub mod model;
pub mod plan;
