//! Finding a task's image on the backend's engine (never pulled unless asked), and its
//! template: inline in the task, from `--container-file`, or from the image's
//! `/processing-container.json` (read without running the image, cached per image id).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::apptainer::{self, Apptainer, ImageRef};
use super::docker::{Docker, ImageInfo};
use super::{Backend, FoundImage};
use crate::diagnostic::did_you_mean;
use crate::error::Error;
use crate::model::registry::RegistryCredentials;
use crate::model::{self, ProcessingContainer, Template, TemplateRef};
use crate::resolve::plan::Problem;
use crate::resolve::task_file::{self, LoadedTask};
use crate::schema::Kind;
use crate::source::Source;
use crate::validation::{FileReport, KindRule, check_file, check_source};

impl Backend {
    /// The task's image: in the local Docker engine (pulled only with `pull`), or for
    /// apptainer a sandbox folder, a SIF file (relative to `task_dir`), an image of the
    /// local Docker engine, or a registry reference (only with `pull`).
    /// `registry`: the task's credentials, used when Docker pulls (Apptainer's pull does
    /// not get them: it reads its own `APPTAINER_DOCKER_USERNAME`/`_PASSWORD`).
    pub(crate) fn find_image(
        &self,
        reference: &str,
        pull: bool,
        registry: &RegistryCredentials,
        task_dir: &Path,
    ) -> Result<FoundImage, Error> {
        match self {
            Backend::Docker(docker) => Ok(FoundImage {
                info: docker_image(docker, reference, pull, registry)?,
                image_ref: None,
                runscript_facts: None,
            }),
            Backend::Apptainer {
                apptainer,
                docker,
                dry_run,
                ..
            } => {
                let found = apptainer_image(docker.as_ref(), reference, task_dir, pull)?;
                let Some(image_ref) = &found.image_ref else {
                    return Ok(found);
                };
                let image_ref = cached_sif(
                    apptainer,
                    docker.as_ref(),
                    image_ref,
                    &found.info,
                    pull,
                    *dry_run,
                )?;
                let runscript_facts = (!image_ref.is_docker_image()).then(|| {
                    apptainer::runscript_facts(apptainer.runscript(&image_ref).as_deref())
                });
                Ok(FoundImage {
                    image_ref: Some(image_ref),
                    runscript_facts,
                    ..found
                })
            }
        }
    }

    /// The image's `/processing-container.json` (`Ok(None)` when it has none): through
    /// Docker (cached) for images Docker holds, else through apptainer.
    pub(crate) fn processing_container(
        &self,
        reference: &str,
        image: &FoundImage,
    ) -> Result<Option<Vec<u8>>, Error> {
        match (self, &image.image_ref) {
            (Backend::Docker(docker), _) => {
                processing_container_bytes(docker, reference, &image.info)
            }
            (
                Backend::Apptainer {
                    docker: Some(docker),
                    ..
                },
                Some(image_ref),
            ) if image_ref.is_docker_image() => {
                processing_container_bytes(docker, reference, &image.info)
            }
            (Backend::Apptainer { apptainer, .. }, Some(image_ref)) => {
                apptainer.read_file(image_ref, "/processing-container.json")
            }
            (Backend::Apptainer { .. }, None) => Ok(None),
        }
    }
}

/// The words of a missing image's fix that ask for `run --pull`. A pipeline, whose user
/// asks for it otherwise (`run_options.pull`, `pipeline run --pull`), puts its own words
/// in their place (`commands/pipeline_run.rs`).
pub(crate) const PULL_FIX: &str = "pass --pull";

/// The image in the local Docker engine (pulled only with `--pull`).
fn docker_image(
    docker: &Docker,
    reference: &str,
    pull: bool,
    registry: &RegistryCredentials,
) -> Result<ImageInfo, Error> {
    Ok(match docker.image(reference)? {
        Some(image) => image,
        None if pull => {
            let pulled = match registry.login_for(reference).map_err(Error::not_started)? {
                Some(login) => {
                    super::registry_pull::pull_with_login(docker, reference, &login)?;
                    true
                }
                None => docker.pull(reference)?,
            };
            match (pulled, docker.image(reference)?) {
                (true, Some(image)) => image,
                _ => {
                    return Err(Error::not_started(format!(
                        "could not pull image {reference}"
                    )));
                }
            }
        }
        None => {
            return Err(Error::not_started(format!(
                "image {reference} is not present locally (tapir never pulls unless asked)\n  fix: build it (`docker build -t {reference} .`), or {PULL_FIX}"
            )));
        }
    })
}

/// The image as apptainer takes it, with what is known about it: a sandbox folder or a
/// SIF file (hashed, for the record), an image of the local Docker engine (inspected
/// there), or a registry reference (only with `--pull`: apptainer would download it).
fn apptainer_image(
    docker: Option<&Docker>,
    reference: &str,
    task_dir: &Path,
    pull: bool,
) -> Result<FoundImage, Error> {
    // An engine that did not answer within the deadline is remembered: when the image is
    // then not found anywhere, that is what the user must hear, not "not local". (Other
    // failures, e.g. no Docker daemon on a cluster node, stay "not found": apptainer mode
    // does not need Docker.)
    let engine_failure = std::cell::RefCell::new(None);
    let in_docker = |r: &str| match docker.map(|d| (d.image(r), d.went_silent())) {
        Some((Ok(image), _)) => image,
        Some((Err(e), true)) => {
            engine_failure.borrow_mut().get_or_insert(e);
            None
        }
        Some((Err(_), false)) | None => None,
    };
    let not_found = |message: String| {
        engine_failure
            .borrow_mut()
            .take()
            .unwrap_or_else(|| Error::not_started(message))
    };
    // A plain reference is looked up in Docker while classifying it; keep what was found.
    let mut found = None;
    let image_ref = ImageRef::parse(reference, task_dir, |r| {
        found = in_docker(r);
        found.is_some()
    });
    let info = match &image_ref {
        ImageRef::DockerDaemon(r) => found.or_else(|| in_docker(r)).ok_or_else(|| {
            not_found(format!(
                "image {r} is not in the local Docker engine (docker-daemon: needs it there)\n  fix: build or load it into Docker, or give a sandbox folder or .sif file as the task's image"
            ))
        })?,
        ImageRef::Sandbox(dir) => ImageInfo {
            id: format!("sandbox:{}", dir.display()),
            ..ImageInfo::default()
        },
        ImageRef::Sif(path) => {
            let id = sha256_file(path).map_err(|e| {
                Error::not_started(format!(
                    "image {}: {e}\n  fix: give an existing .sif file or sandbox folder (relative paths are taken from the task file's folder)",
                    path.display()
                ))
            })?;
            ImageInfo {
                id: format!("sha256:{id}"),
                ..ImageInfo::default()
            }
        }
        ImageRef::Docker(_) | ImageRef::Oras(_) if !pull && !pulled_sif(&image_ref).is_some_and(|p| p.exists()) => {
            return Err(not_found(format!(
                "image {reference} is not local (not a sandbox folder, not a .sif file, not in the Docker engine, not pulled before); apptainer would download it\n  fix: {PULL_FIX} to allow that (once: the SIF is kept in tapir's cache, so later runs, e.g. on compute nodes without network, need no registry), or build the image locally"
            )));
        }
        ImageRef::Docker(_) | ImageRef::Oras(_) | ImageRef::Cached { .. } => ImageInfo {
            id: image_ref.argument(),
            ..ImageInfo::default()
        },
    };
    Ok(FoundImage {
        info,
        image_ref: Some(image_ref),
        runscript_facts: None,
    })
}

/// Where tapir keeps the SIF pulled once from a registry reference (`docker://`,
/// `oras://`): named by the reference's sha256.
fn pulled_sif(image_ref: &ImageRef) -> Option<PathBuf> {
    use sha2::Digest;
    let source = match image_ref {
        ImageRef::Docker(_) | ImageRef::Oras(_) => image_ref.argument(),
        _ => return None,
    };
    let key = format!("{:x}", sha2::Sha256::digest(source.as_bytes()));
    Some(
        cache_dir()?
            .join("apptainer/pulled")
            .join(format!("{key}.sif")),
    )
}

/// Where tapir keeps the SIF converted once from an image of the Docker engine: named by
/// the image id (a content hash, so the SIF never goes stale).
fn converted_sif(image_id: &str) -> Option<PathBuf> {
    let hex = image_id.trim_start_matches("sha256:");
    if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    Some(
        cache_dir()?
            .join("apptainer/docker-daemon")
            .join(format!("{hex}.sif")),
    )
}

/// Registry and Docker-engine images run from a SIF made once and kept in tapir's cache:
/// apptainer would otherwise export the whole image from Docker (or ask the registry for
/// its digest) on every run, which is slow, and impossible on compute nodes without
/// network. A dry run names the SIF without making it.
fn cached_sif(
    apptainer: &Apptainer,
    docker: Option<&Docker>,
    image_ref: &ImageRef,
    info: &ImageInfo,
    pull: bool,
    dry_run: bool,
) -> Result<ImageRef, Error> {
    let (sif, source, extra_env) = match image_ref {
        ImageRef::DockerDaemon(reference) => {
            let source = format!(
                "docker-daemon:{}",
                apptainer::daemon_reference(reference, &info.id)
            );
            let Some(sif) = converted_sif(&info.id) else {
                // No cache folder (no HOME): apptainer converts on every run.
                return Ok(ImageRef::DockerDaemon(
                    source.trim_start_matches("docker-daemon:").to_string(),
                ));
            };
            (
                sif,
                source,
                docker.map(docker_host_for_apptainer).unwrap_or_default(),
            )
        }
        ImageRef::Docker(_) | ImageRef::Oras(_) => {
            let Some(sif) = pulled_sif(image_ref) else {
                return Ok(image_ref.clone());
            };
            if sif.exists() || !pull {
                return Ok(ImageRef::Cached {
                    sif,
                    source: image_ref.argument(),
                });
            }
            (sif, image_ref.argument(), Vec::new())
        }
        _ => return Ok(image_ref.clone()),
    };
    if !dry_run && !sif.exists() {
        apptainer.make_sif(&sif, &source, &extra_env)?;
    }
    Ok(ImageRef::Cached { sif, source })
}

/// `DOCKER_HOST` for apptainer, which reaches Docker only through it (or the default
/// socket), never through a docker context: the endpoint of the context the docker CLI
/// uses, when DOCKER_HOST is not set already.
fn docker_host_for_apptainer(docker: &Docker) -> Vec<(String, String)> {
    if std::env::var_os("DOCKER_HOST").is_some() {
        return Vec::new();
    }
    let mut command = docker.command();
    command.args([
        "context",
        "inspect",
        "--format",
        "{{.Endpoints.docker.Host}}",
    ]);
    let host = apptainer::output_within(&mut command, std::time::Duration::from_secs(30))
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|h| !h.is_empty() && h != "unix:///var/run/docker.sock");
    host.map(|h| vec![("DOCKER_HOST".to_string(), h)])
        .unwrap_or_default()
}

/// The sha256 of a file, streamed (SIF images are large).
fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    Ok(format!("{:x}", hasher.finalize()))
}

/// The template: inline in the task, from `--container-file`, or from the image's
/// `/processing-container.json` (read once per image id, then cached).
pub(crate) fn template_for(
    loaded: &LoadedTask,
    container_file: Option<&Path>,
    read_image_file: &dyn Fn() -> Result<Option<Vec<u8>>, Error>,
) -> Result<(Template, String), Error> {
    let identifier = match &loaded.task.template {
        TemplateRef::Inline(template) => return Ok(((**template).clone(), "inline".to_string())),
        TemplateRef::Identifier(identifier) => identifier,
    };
    let (container, source) = match container_file {
        Some(path) => {
            let report = check_file(path, KindRule::Forced(Kind::ProcessingContainer))?;
            (
                read_container(&report, &path.display().to_string())?,
                format!("file:{}", path.display()),
            )
        }
        None => (
            container_from_image(read_image_file, &loaded.task.image)?,
            "image".to_string(),
        ),
    };
    let identifiers: Vec<String> = container
        .templates
        .iter()
        .map(|t| t.identifier.clone())
        .collect();
    match container
        .templates
        .into_iter()
        .find(|t| t.identifier == *identifier)
    {
        Some(template) => Ok((template, source)),
        None => Err(task_file::problems_error(
            &[Problem {
                message: format!(
                    "template `{identifier}` is not in {}",
                    if source == "image" {
                        format!(
                            "the image's /processing-container.json ({})",
                            loaded.task.image
                        )
                    } else {
                        source.clone()
                    }
                ),
                fix: match did_you_mean(identifier, identifiers.iter().map(String::as_str)) {
                    Some(s) => format!("did you mean `{s}`? templates: {}", identifiers.join(", ")),
                    None => format!("templates there: {}", identifiers.join(", ")),
                },
                pointer: Some("/taskTemplate".into()),
            }],
            loaded,
        )),
    }
}

pub(crate) fn read_container(
    report: &FileReport,
    name: &str,
) -> Result<ProcessingContainer, Error> {
    if !report.is_valid() {
        return Err(task_file::report_error(
            report,
            format!("{name} is not a valid processing-container.json"),
        ));
    }
    let value = report
        .document
        .as_ref()
        .map(|d| d.value.clone())
        .unwrap_or_default();
    model::from_value(&value, "processing-container.json").map_err(Error::not_started)
}

pub(crate) fn container_from_image(
    read_image_file: &dyn Fn() -> Result<Option<Vec<u8>>, Error>,
    reference: &str,
) -> Result<ProcessingContainer, Error> {
    let bytes = read_image_file()?.ok_or_else(|| {
        Error::not_started(format!(
            "image {reference} has no /processing-container.json, so template identifiers cannot be looked up in it\n  fix: give the template inline in the task (`\"taskTemplate\": {{…}}`), or pass --container-file PATH"
        ))
    })?;
    let name = format!("{reference}:/processing-container.json");
    let source = crate::source::decode(Path::new(&name), bytes)
        .map_err(|_| Error::not_started(format!("{name} is not UTF-8 text")))?;
    read_container(
        &check_source(
            Source::new(&name, source.text),
            KindRule::Forced(Kind::ProcessingContainer),
        ),
        &name,
    )
}

/// The image's `/processing-container.json`, read without running the image and cached
/// per image id (ids are content hashes, so a cached copy never goes stale). `Ok(None)`
/// when the image has none.
pub(crate) fn processing_container_bytes(
    docker: &Docker,
    reference: &str,
    image: &ImageInfo,
) -> Result<Option<Vec<u8>>, Error> {
    if let Some(known) = cached_processing_container(&image.id) {
        return Ok(known);
    }
    let bytes = docker.read_file_from_image(reference, "/processing-container.json")?;
    remember_processing_container(&image.id, bytes.as_deref());
    Ok(bytes)
}

/// What the cache knows of an image's `/processing-container.json`, by image id (a
/// content hash, so an answer never goes stale; a registry image's config digest is the
/// same id): `Some(Some(bytes))`, `Some(None)` for "has none" (`tapir images` asks every
/// image), `None` when it does not know.
pub(crate) fn cached_processing_container(id: &str) -> Option<Option<Vec<u8>>> {
    let (file, absent) = cache_paths(id)?;
    if let Ok(bytes) = std::fs::read(&file) {
        return Some(Some(bytes));
    }
    absent.exists().then_some(None)
}

/// Remembers what an image holds at `/processing-container.json` (best effort).
pub(crate) fn remember_processing_container(id: &str, bytes: Option<&[u8]>) {
    if let Some((file, absent)) = cache_paths(id) {
        match bytes {
            Some(bytes) => write_cache(&file, bytes),
            None => write_cache(&absent, b""),
        }
    }
}

/// The cache files for an image id: its copy, and its "has none" marker.
fn cache_paths(id: &str) -> Option<(PathBuf, PathBuf)> {
    let hex = id.trim_start_matches("sha256:");
    if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let dir = cache_dir()?.join("processing-container");
    Some((
        dir.join(format!("{hex}.json")),
        dir.join(format!("{hex}.none")),
    ))
}

/// `$XDG_CACHE_HOME/tapir` or `~/.cache/tapir`.
pub(crate) fn cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .map(|d| d.join("tapir"))
}

/// Best effort: a cache that cannot be written only costs time on the next run.
pub(crate) fn write_cache(path: &Path, bytes: &[u8]) {
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    if let Ok(mut file) = tempfile::NamedTempFile::new_in(dir)
        && file.write_all(bytes).is_ok()
    {
        let _ = file.persist(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_file_is_the_lower_case_hex_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image.sif");
        std::fs::write(&path, "abc").unwrap();
        assert_eq!(
            sha256_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(sha256_file(&dir.path().join("missing.sif")).is_err());
    }
}
