//! One module per subcommand. Each turns its raw clap arguments into validated values,
//! calls the library, and hands the results to `output`.

pub(crate) mod completions;
pub(crate) mod doctor;
pub(crate) mod images;
pub(crate) mod inspect;
pub(crate) mod k8s;
pub(crate) mod k8s_submit;
pub(crate) mod logs;
pub(crate) mod man;
pub(crate) mod outputs;
pub(crate) mod pipeline;
pub(crate) mod pipeline_export;
pub(crate) mod pipeline_run;
pub(crate) mod plan_view;
pub(crate) mod ps;
pub(crate) mod rm;
pub(crate) mod run;
pub(crate) mod run_slurm;
pub(crate) mod scaffold;
pub(crate) mod schema;
pub(crate) mod session;
pub(crate) mod show;
pub(crate) mod supervise;
pub(crate) mod validate;
pub(crate) mod wait;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::record::store;

/// The run folder a user means: a path, a folder name `task_run-<id>` or
/// `pipeline-run-<id>`, or a unique id prefix in `runs_dir`.
pub(crate) fn locate_run(runs_dir: &Path, query: &str) -> Result<PathBuf> {
    store::find_run(runs_dir, query).map_err(|e| Error::Record(e.to_string()))
}

/// What the inspection commands need of a pipeline run folder.
pub(crate) mod pipeline_runs;

/// A run folder found by [`locate`], by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Located {
    Task(PathBuf),
    Pipeline(PathBuf),
}

/// Like [`locate_run`], and says whether it is a task run or a pipeline run: a folder
/// named `pipeline-run-<id>`, or (a renamed folder) one whose record says
/// `"kind": "pipeline-run"`.
pub(crate) fn locate(runs_dir: &Path, query: &str) -> Result<Located> {
    let dir = locate_run(runs_dir, query)?;
    let pipeline = store::is_pipeline_run_dir(&dir)
        || (store::run_id_of(&dir).is_none()
            && store::read_record(&dir)
                .is_ok_and(|r| r.get("kind").and_then(|k| k.as_str()) == Some("pipeline-run")));
    Ok(if pipeline {
        Located::Pipeline(dir)
    } else {
        Located::Task(dir)
    })
}

/// `path` made absolute against the current folder (as given when that fails), for
/// records and argv that must not depend on where tapir was started.
pub(crate) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
