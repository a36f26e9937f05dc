//! Backends: the engines tapir runs containers with.

pub mod docker;
pub mod engine_api;
