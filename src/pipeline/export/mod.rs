//! Pipelines to and from other platforms' workflow formats (docs/DESIGN.md decision 17).
//! `kaapana` writes a Kaapana workflow chart from a checked pipeline; `kaapana_import`
//! reads a Kaapana DAG file back into a pipeline. Both are pure: the command writes.

pub(crate) mod kaapana;
pub(crate) mod kaapana_import;
pub(crate) mod python;
