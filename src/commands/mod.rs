//! One module per subcommand. Each turns its raw clap arguments into validated values,
//! calls the library, and hands the results to `output`.

pub mod completions;
pub mod doctor;
pub mod inspect;
pub mod logs;
pub mod man;
pub mod outputs;
pub mod pipeline;
pub mod pipeline_run;
pub mod plan_view;
pub mod ps;
pub mod rm;
pub mod run;
pub mod schema;
pub mod show;
pub mod supervise;
pub mod validate;
pub mod wait;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::record::store;

/// The run folder a user means: a path, a folder name `task_run-<id>`, or a unique id
/// prefix in `runs_dir`.
pub fn locate_run(runs_dir: &Path, query: &str) -> Result<PathBuf> {
    store::find_run(runs_dir, query).map_err(|e| Error::Record(e.to_string()))
}
