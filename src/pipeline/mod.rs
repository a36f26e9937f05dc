//! Pipelines: tasks joined by IOMappings and dependencies (docs/DESIGN.md decision 10).
//! `model` is the file format, `plan` the pure checks and the planned order and folders,
//! `graph` the cycle search and the levels, `record` the pipeline run record, `derive`
//! the task file each pipeline task runs as, `ccat` the CCAT container contract
//! (manifest, products, the folders as `run --bind`), `values` Tapis' `value_from`
//! (parameters, upstream values and the outputs file), `archive` Tapis' archives and
//! the cleaning of a succeeded run, `build` the image builds run before the tasks.

pub(crate) mod archive;
pub(crate) mod build;
pub(crate) mod ccat;
pub(crate) mod derive;
pub(crate) mod export;
pub(crate) mod graph;
pub(crate) mod model;
pub(crate) mod plan;
pub(crate) mod record;
pub(crate) mod schedule;
pub(crate) mod values;
