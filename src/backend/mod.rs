//! Backends: the engines tapir runs containers with.

pub mod apptainer;
pub mod docker;
pub mod engine_api;

#[cfg(test)]
mod golden;
