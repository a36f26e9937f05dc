//! Backends: the engines tapir runs containers with. `Backend` is the engine a run uses,
//! located once: it finds the task's image (`lookup`), reads the template out of it, and
//! renders a `RunPlan` as the engine's command line.

pub(crate) mod apptainer;
pub(crate) mod catalog;
pub(crate) mod deadline;
pub(crate) mod docker;
pub(crate) mod engine_api;
pub(crate) mod engine_args;
pub(crate) mod image_check;
pub(crate) mod image_fs;
pub(crate) mod lookup;
pub(crate) mod registry;
pub(crate) mod registry_pull;

#[cfg(test)]
mod golden;

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::resolve::plan::RunPlan;
use apptainer::{Apptainer, Capabilities, ImageFacts, ImageRef};
use docker::{Docker, ImageInfo, RenderedRun};

/// The engine a task runs on (`--mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Mode {
    Docker,
    Apptainer,
}

impl Mode {
    /// The mode as `--mode` spells it and records name it: `docker`, `apptainer`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Docker => "docker",
            Mode::Apptainer => "apptainer",
        }
    }
}

/// The engine a run uses, located once.
pub(crate) enum Backend {
    Docker(Docker),
    Apptainer {
        apptainer: Apptainer,
        /// The local Docker engine, when there is one: images it holds are run from it
        /// (`docker-daemon:`), and their metadata comes from it.
        docker: Option<Docker>,
        caps: Capabilities,
        /// Not installed (a dry run only): the command is shown for the newest apptainer.
        assumed: bool,
        /// A dry run: images are not converted to SIFs, only named.
        dry_run: bool,
    },
}

/// The task's image as the backend found it.
#[derive(Debug, Clone)]
pub(crate) struct FoundImage {
    pub info: ImageInfo,
    /// How apptainer takes the image (apptainer mode only).
    pub image_ref: Option<ImageRef>,
    /// What the image's runscript tells (apptainer mode, images not from Docker).
    pub runscript_facts: Option<ImageFacts>,
}

/// The warning of a dry run without apptainer.
const APPTAINER_ASSUMED: &str = "apptainer not found; showing the command for the newest apptainer (every flag tapir knows, e.g. --no-eval and the memory/CPU limits)";

impl Backend {
    /// The engine for `mode`. A dry run needs no apptainer: it shows the command for the
    /// newest one.
    pub(crate) fn locate(mode: Mode, dry_run: bool) -> Result<Self, Error> {
        Ok(match mode {
            Mode::Docker => Backend::Docker(Docker::locate()?),
            Mode::Apptainer => {
                let (apptainer, caps, assumed) = match Apptainer::locate() {
                    Ok(apptainer) => {
                        let caps = apptainer.capabilities();
                        (apptainer, caps, false)
                    }
                    Err(_) if dry_run => (
                        Apptainer {
                            binary: PathBuf::from("apptainer"),
                        },
                        Capabilities::newest(),
                        true,
                    ),
                    Err(e) => return Err(e),
                };
                Backend::Apptainer {
                    apptainer,
                    docker: Docker::locate().ok(),
                    caps,
                    assumed,
                    dry_run,
                }
            }
        })
    }

    /// The engine's binary (the first word of the argv).
    pub(crate) fn program(&self) -> &Path {
        match self {
            Backend::Docker(docker) => &docker.binary,
            Backend::Apptainer { apptainer, .. } => &apptainer.binary,
        }
    }

    /// The mode's name, as records keep it.
    pub(crate) fn mode(&self) -> &'static str {
        match self {
            Backend::Docker(_) => Mode::Docker,
            Backend::Apptainer { .. } => Mode::Apptainer,
        }
        .name()
    }

    /// The engine's command line for the plan (after applying the engine's own rules to
    /// it, see `docker::adapt_plan`), and the warnings of what the engine cannot do.
    pub(crate) fn render(
        &self,
        plan: &mut RunPlan,
        image: &FoundImage,
        run_id: &str,
        run_dir: &Path,
    ) -> (RenderedRun, Vec<String>) {
        match (self, &image.image_ref) {
            (Backend::Apptainer { caps, assumed, .. }, Some(image_ref)) => {
                let facts = if image_ref.is_docker_image() {
                    ImageFacts {
                        entrypoint: Some(image.info.entrypoint.clone()),
                        working_dir: Some(image.info.working_dir.clone()),
                    }
                } else {
                    image.runscript_facts.clone().unwrap_or_default()
                };
                let (rendered, mut warnings) = apptainer::exec_argv(
                    plan,
                    image_ref,
                    &facts,
                    &run_dir.join(apptainer::SCRATCH_DIR),
                    caps,
                );
                if *assumed {
                    warnings.insert(0, APPTAINER_ASSUMED.to_string());
                }
                (rendered, warnings)
            }
            _ => {
                let warnings = docker::adapt_plan(plan);
                (docker::run_argv(plan, run_id, run_dir), warnings)
            }
        }
    }
}
