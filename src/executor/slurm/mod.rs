//! The Slurm executor (docs/DESIGN.md decision 19): each attempt is one batch job whose
//! script (`script.rs`) runs the node-side `tapir run` into a run folder made and recorded
//! `queued` beforehand; `client.rs` calls the Slurm commands with deadlines; `settings.rs`
//! merges the site settings.

pub(crate) mod client;
pub(crate) mod job;
pub(crate) mod pipeline;
pub(crate) mod script;
pub(crate) mod settings;
