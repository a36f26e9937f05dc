//! Host facts: what resolving a task needs to know about this machine (which bound host
//! paths exist and what they are, the measured sizes for scale rules, the invoker's
//! $HOME), gathered in one place before `plan::resolve`, which then stays a pure function
//! of its inputs and can be tested with facts written down in a table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::model::target::{SizingError, Target};
use crate::model::{Task, Template};
use crate::resolve::plan::{self, Direction, PlannedBind};
use crate::resolve::sizing::{self, Measurement};

/// Everything `plan::resolve` may know about the host.
#[derive(Debug, Clone, Default)]
pub(crate) struct HostFacts {
    /// The invoker's $HOME: a host path `~/…` starts there.
    pub home: Option<PathBuf>,
    /// What each bound host path is, by its resolved (absolute, normalised) path.
    pub paths: BTreeMap<PathBuf, PathFact>,
    /// The target size of each input channel that has a scale rule, by channel name.
    pub measurements: BTreeMap<String, Result<Measurement, SizingError>>,
}

/// What is at a host path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathFact {
    Folder,
    File,
    /// Something else: a socket, a device, a fifo.
    Other,
    /// It cannot be used, in words ("it does not exist", "permission denied").
    Unusable(String),
}

impl HostFacts {
    /// Looks at the host for `task`: `$HOME`, then each bound channel's host path, then
    /// the scale rules' measurements. `task_dir` is the task file's folder.
    pub(crate) fn gather(task: &Task, template: &Template, task_dir: &Path) -> Self {
        let mut facts = HostFacts {
            home: std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from),
            ..HostFacts::default()
        };
        for (direction, declared, bound) in [
            (Direction::Input, &template.inputs, &task.inputs),
            (Direction::Output, &template.outputs, &task.outputs),
        ] {
            for mount in declared {
                let Some(binding) = bound.iter().find(|b| b.name == mount.name) else {
                    continue;
                };
                let Ok(host) = plan::host_path(
                    &binding.volume_source.host_path,
                    task_dir,
                    facts.home.as_deref(),
                ) else {
                    continue;
                };
                facts.paths.insert(host.clone(), path_fact(&host));
                if direction == Direction::Input
                    && let Some(rule) = plan::scale_rule(binding, mount)
                {
                    let target = Target {
                        dir: &rule.target_dir,
                        glob: &rule.target_glob,
                        regex: &rule.target_regex,
                    };
                    facts.measurements.insert(
                        mount.name.clone(),
                        sizing::measure(&host, rule.mode.into(), &target),
                    );
                }
            }
        }
        facts
    }

    /// Adds what is at each `--bind` host path.
    pub(crate) fn with_binds(mut self, binds: &[PlannedBind]) -> Self {
        for bind in binds {
            self.paths
                .insert(bind.host_path.clone(), path_fact(&bind.host_path));
        }
        self
    }
}

fn path_fact(path: &Path) -> PathFact {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => PathFact::Folder,
        Ok(meta) if meta.is_file() => PathFact::File,
        Ok(_) => PathFact::Other,
        Err(e) => PathFact::Unusable(match e.kind() {
            std::io::ErrorKind::NotFound => "it does not exist".into(),
            std::io::ErrorKind::PermissionDenied => "permission denied".into(),
            _ => e.to_string(),
        }),
    }
}
