//! The image check (`tapir validate --image IMAGE`): an image judged as a platform would
//! judge it before running it, without running it.
//!
//! - its `/processing-container.json` is valid (the same checks as `validate`) and fits
//!   the image: each template's program exists in the image and an arbitrary uid may run
//!   it, and no `mounted_path` is a file of the image (a folder cannot be mounted there);
//! - it carries the OCI labels a catalogue shows (seed 004), with the exact `LABEL`
//!   lines to add;
//! - it does not depend on running as root (CANFAR maps each user's uid at run time;
//!   tapir runs as the invoking user by default);
//! - its ENV and labels hold no secret (their values are never shown).
//!
//! Findings about the embedded file carry its positions and go into its report;
//! findings about the image as a whole have no position.

use std::path::Path;

use serde_json::Value;

use super::docker::{Docker, ImageInfo};
use super::image_fs::{self, EngineImageFs, Entry, EntryKind, ImageFs, Resolved};
use super::lookup::processing_container_bytes;
use crate::diagnostic::{Diagnostic, pointer_join};
use crate::error::Error;
use crate::model::secret::is_secret_name;
use crate::schema::Kind;
use crate::source::LoadFailure;
use crate::validation::{FileReport, KindRule, check_source};

/// The OCI annotation keys a catalogue needs (image-spec `annotations.md`), in the
/// order their `LABEL` lines are suggested.
pub(crate) const CATALOGUE_LABELS: &[&str] = &[
    "title",
    "description",
    "version",
    "authors",
    "source",
    "documentation",
    "licenses",
    "created",
    "revision",
];

/// The prefix of the OCI annotation keys.
pub(crate) const OCI_PREFIX: &str = "org.opencontainers.image.";

/// What checking one image found.
#[derive(Debug)]
pub(crate) struct ImageCheck {
    /// The image as the user named it.
    pub reference: String,
    pub info: ImageInfo,
    /// The embedded `/processing-container.json`, checked (findings about how it fits
    /// the image included), when the image has one.
    pub embedded: Option<FileReport>,
    /// Findings about the image itself.
    pub findings: Vec<Diagnostic>,
    /// Dockerfile lines that add the missing catalogue labels (empty when none is).
    pub label_lines: Vec<String>,
}

impl ImageCheck {
    /// Every finding, the embedded file's first.
    pub(crate) fn all_findings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.embedded
            .iter()
            .flat_map(|r| r.diagnostics.iter())
            .chain(&self.findings)
    }

    /// `--strict`: every warning becomes an error.
    pub(crate) fn promote_warnings(&mut self) {
        if let Some(report) = &mut self.embedded {
            report.promote_warnings();
        }
        for d in &mut self.findings {
            if d.severity == crate::diagnostic::Severity::Warning {
                d.severity = crate::diagnostic::Severity::Error;
            }
        }
    }
}

/// The image with the values of secret-looking labels masked, for anything that shows
/// labels (`inspect`, `images`): the check reports them, nothing prints them.
pub(crate) fn mask_secret_labels(mut info: ImageInfo) -> ImageInfo {
    for (key, value) in &mut info.labels {
        if is_secret_name(key) && !value.is_empty() {
            *value = crate::model::secret::MASK.to_string();
        }
    }
    info
}

/// The name the embedded file is shown under: `IMAGE:/processing-container.json`.
pub(crate) fn embedded_name(reference: &str) -> String {
    format!("{reference}:/processing-container.json")
}

/// Checks a local image; `Ok(None)` when the engine does not have it.
pub(crate) fn check_local(docker: &Docker, reference: &str) -> Result<Option<ImageCheck>, Error> {
    let Some(info) = docker.image(reference)? else {
        return Ok(None);
    };
    let bytes = processing_container_bytes(docker, reference, &info)?;
    let fs = EngineImageFs::open(docker, reference)?;
    judge(reference, info, bytes, &fs).map(Some)
}

/// Checks an image in its registry (`docker://REF`) without pulling it into the engine:
/// manifest, config and every layer's file list (streamed, contents skipped).
pub(crate) fn check_remote(reference: &str) -> Result<ImageCheck, Error> {
    let remote = super::registry::RemoteRef::parse(reference).map_err(Error::Usage)?;
    let mut registry = super::registry::Registry::new(&remote.registry);
    let image = registry.image(&remote)?;
    let bytes = registry.processing_container(&image)?;
    let fs = registry.index(&image)?;
    judge(reference, image.info, bytes, &fs)
}

/// Judges an image from its configuration, its embedded file's bytes and its files.
pub(crate) fn judge(
    reference: &str,
    info: ImageInfo,
    embedded: Option<Vec<u8>>,
    fs: &dyn ImageFs,
) -> Result<ImageCheck, Error> {
    let mut findings = Vec::new();
    let name = embedded_name(reference);
    let mut report = match embedded {
        None => {
            findings.push(
                Diagnostic::warning(
                    "no-processing-container",
                    "the image has no /processing-container.json: a task can use it only with its template written inline",
                )
                .with_fix("add `COPY processing-container.json /processing-container.json` to the Dockerfile"),
            );
            None
        }
        Some(bytes) => match crate::source::decode(Path::new(&name), bytes) {
            Ok(source) => Some(check_source(
                source,
                KindRule::Forced(Kind::ProcessingContainer),
            )),
            Err(LoadFailure::Content(d)) => {
                findings.push(*d);
                None
            }
            Err(LoadFailure::Io(e)) => return Err(e),
        },
    };
    let mut checked_image_program = false;
    if let Some(report) = &mut report
        && let Some(document) = &report.document
    {
        let mut fitting = Vec::new();
        let templates = document.value["templates"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for (i, template) in templates.iter().enumerate() {
            let pointer = pointer_join("/templates", i);
            let identifier = template["identifier"].as_str().unwrap_or("?");
            let command: Vec<&str> = template["command"]
                .as_array()
                .map(|c| c.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let (program, origin) = match (
                info.entrypoint.first(),
                command.first(),
                info.cmd.first(),
            ) {
                (Some(p), _, _) => (p.as_str(), Origin::Entrypoint),
                (None, Some(p), _) => (
                    *p,
                    Origin::Template(pointer_join(&pointer_join(&pointer, "command"), 0)),
                ),
                (None, None, Some(p)) => (p.as_str(), Origin::Cmd),
                (None, None, None) => {
                    fitting.push(
                        Diagnostic::error(
                            "no-command",
                            format!("template `{identifier}` has no `command`, and the image has neither ENTRYPOINT nor CMD: nothing would run"),
                        )
                        .at_pointer(pointer.clone())
                        .at(document.key_position(&pointer))
                        .with_fix("give the template a `command`, or the image a CMD"),
                    );
                    continue;
                }
            };
            match &origin {
                Origin::Template(at) => {
                    if let Some(d) = check_program(
                        fs,
                        &info,
                        program,
                        &format!("the command of template `{identifier}`"),
                    )? {
                        fitting.push(d.at_pointer(at.clone()).at(document.value_position(at)));
                    }
                }
                // The image's own program: checked once, about the image.
                _ if !checked_image_program => {
                    checked_image_program = true;
                    let what = match origin {
                        Origin::Entrypoint => "the image's ENTRYPOINT",
                        _ => "the image's CMD",
                    };
                    findings.extend(check_program(fs, &info, program, what)?);
                }
                _ => {}
            }
            for (side, channels) in [
                ("inputs", &template["inputs"]),
                ("outputs", &template["outputs"]),
            ] {
                for (j, channel) in channels.as_array().into_iter().flatten().enumerate() {
                    let Some(mounted) = channel["mounted_path"].as_str() else {
                        continue;
                    };
                    let at = pointer_join(
                        &pointer_join(&pointer_join(&pointer, side), j),
                        "mounted_path",
                    );
                    if let Some(d) = check_mount(fs, mounted)? {
                        fitting.push(d.at_pointer(at.clone()).at(document.value_position(&at)));
                    }
                }
            }
        }
        report.diagnostics.extend(fitting);
    }
    if report.is_none() && !checked_image_program {
        // No template to say what runs: the image's own program is what would.
        let program = info
            .entrypoint
            .first()
            .map(|p| (p, "the image's ENTRYPOINT"))
            .or_else(|| info.cmd.first().map(|p| (p, "the image's CMD")));
        if let Some((program, what)) = program {
            findings.extend(check_program(fs, &info, program, what)?);
        }
    }
    findings.extend(user_findings(&info));
    findings.extend(secret_findings(&info));
    let (label_findings, label_lines) = label_findings(reference, &info, report.as_ref());
    findings.extend(label_findings);
    Ok(ImageCheck {
        reference: reference.to_string(),
        info,
        embedded: report,
        findings,
        label_lines,
    })
}

/// Where the program a template runs comes from.
enum Origin {
    Entrypoint,
    /// The template's `command`, at this pointer.
    Template(String),
    Cmd,
}

/// Is `program` in the image, and can an arbitrary uid run it?
fn check_program(
    fs: &dyn ImageFs,
    info: &ImageInfo,
    program: &str,
    what: &str,
) -> Result<Option<Diagnostic>, Error> {
    if program.contains("{{") {
        return Ok(None); // rendered at run time; nothing to look up now
    }
    let path_var = info
        .env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(image_fs::DEFAULT_PATH);
    let Some(found) = image_fs::find_program(fs, program, path_var, &info.working_dir)? else {
        let where_ = if program.contains('/') {
            "no such file in the image".to_string()
        } else {
            format!("not found on the image's PATH ({path_var})")
        };
        return Ok(Some(
            Diagnostic::error(
                "command-not-found",
                format!("`{program}` ({what}) is not in the image: {where_}"),
            )
            .with_fix("install it in the image, or correct the command (a program the image has, or its absolute path)"),
        ));
    };
    let Resolved {
        path,
        entry,
        folders,
    } = found;
    let Some(entry) = entry else { return Ok(None) };
    if entry.kind != EntryKind::File {
        return Ok(Some(
            Diagnostic::error(
                "command-not-a-file",
                format!("`{program}` ({what}) leads to {path}, which is not a file"),
            )
            .with_fix("point the command at the program's file"),
        ));
    }
    if entry.mode & 0o111 == 0 {
        return Ok(Some(
            Diagnostic::error(
                "command-not-executable",
                format!(
                    "`{program}` ({what}) is {path}, mode {:04o}: not executable",
                    entry.mode
                ),
            )
            .with_fix(format!("add `RUN chmod 0755 {path}` to the Dockerfile")),
        ));
    }
    let closed: Vec<String> = folders
        .iter()
        .filter(|(_, e)| !e.others_can_run())
        .map(|(p, e)| format!("{p} (mode {:04o})", e.mode))
        .collect();
    if !entry.others_can_run() || !closed.is_empty() {
        let mut reasons = Vec::new();
        if !entry.others_can_run() {
            reasons.push(format!("{path} is mode {:04o}", entry.mode));
        }
        if !closed.is_empty() {
            reasons.push(format!(
                "only its owner and group may enter {}",
                closed.join(", ")
            ));
        }
        let folders: Vec<&str> = folders
            .iter()
            .filter(|(_, e)| !e.others_can_run())
            .map(|(p, _)| p.as_str())
            .collect();
        let mut fix = format!("`RUN chmod a+rx {path}`");
        if !folders.is_empty() {
            fix.push_str(&format!(" and `RUN chmod a+x {}`", folders.join(" ")));
        }
        fix.push_str(", or install the program outside root's home");
        return Ok(Some(
            Diagnostic::error(
                "command-not-runnable-by-any-user",
                format!(
                    "`{program}` ({what}) cannot be run by an arbitrary user: {}; platforms run images as the user's uid (CANFAR), and so does tapir by default",
                    reasons.join("; ")
                ),
            )
            .with_fix(fix),
        ));
    }
    Ok(None)
}

/// A channel's folder is mounted at `mounted_path`: a file of the image there makes the
/// mount fail.
fn check_mount(fs: &dyn ImageFs, mounted: &str) -> Result<Option<Diagnostic>, Error> {
    if !mounted.starts_with('/') || mounted.contains("{{") {
        return Ok(None); // the schema and checks of the file say what is wrong
    }
    let found = image_fs::resolve(fs, mounted, true)?;
    Ok(match found.entry {
        Some(Entry { kind: EntryKind::File | EntryKind::Other, .. }) => Some(
            Diagnostic::error(
                "mount-over-file",
                format!("`{mounted}` is a file in the image ({}); a channel's folder cannot be mounted over it", found.path),
            )
            .with_fix("choose a `mounted_path` the image has no file at, e.g. a new folder under /data"),
        ),
        _ => None,
    })
}

/// The uid the image runs as when no platform says otherwise.
fn user_findings(info: &ImageInfo) -> Option<Diagnostic> {
    let user = info.user.trim();
    let name = user.split(':').next().unwrap_or_default();
    (name.is_empty() || name == "root" || name == "0").then(|| {
        Diagnostic::warning(
            "runs-as-root",
            format!(
                "the image runs as root ({}); platforms run it as the user's own uid (CANFAR maps it at run time), where files only root may read or write fail",
                if user.is_empty() { "no USER".to_string() } else { format!("USER {user}") }
            ),
        )
        .with_fix("end the Dockerfile with a non-root `USER 1000:1000`, make what the task reads readable by all (`chmod a+rX`) and let it write only to its output channels or /tmp; `tapir run` runs as your uid by default, so a run shows what breaks")
    })
}

/// ENV entries and labels whose names look secret and that hold a value: everyone who
/// can pull the image can read them. The values are never shown.
fn secret_findings(info: &ImageInfo) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for entry in &info.env {
        let (name, value) = entry.split_once('=').unwrap_or((entry, ""));
        if is_secret_name(name) && !value.is_empty() {
            out.push(
                Diagnostic::error(
                    "secret-in-image",
                    format!("ENV {name} holds a value in the image: whoever can pull the image can read it (value not shown)"),
                )
                .with_fix(format!("remove `{name}` from the Dockerfile's ENV (and rebuild without it in any layer); give it at run time, e.g. the task's env `{{\"name\": \"{name}\", \"value\": \"{{{{ env.{name} }}}}\"}}` or `tapir run --env {name}`")),
            );
        }
    }
    for (key, value) in &info.labels {
        if is_secret_name(key) && !value.is_empty() {
            out.push(
                Diagnostic::error(
                    "secret-in-image",
                    format!("label {key} holds a value in the image: whoever can pull the image can read it (value not shown)"),
                )
                .with_fix(format!("remove the label `{key}` and rebuild")),
            );
        }
    }
    out
}

/// A missing or empty catalogue label is a warning each, with its `LABEL` line; the
/// lines together are what to paste into the Dockerfile.
fn label_findings(
    reference: &str,
    info: &ImageInfo,
    report: Option<&FileReport>,
) -> (Vec<Diagnostic>, Vec<String>) {
    let document = report.and_then(|r| r.document.as_ref()).map(|d| &d.value);
    let from_pc = |key: &str| {
        document
            .and_then(|v| v[key].as_str())
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string)
    };
    let mut findings = Vec::new();
    let mut lines = Vec::new();
    let mut build_args = Vec::new();
    for key in CATALOGUE_LABELS {
        let full = format!("{OCI_PREFIX}{key}");
        let value = info.labels.get(&full).map(|v| v.trim()).unwrap_or_default();
        if !value.is_empty() {
            if *key == "created" && value.parse::<jiff::Timestamp>().is_err() {
                findings.push(
                    Diagnostic::warning(
                        "bad-oci-label",
                        format!("label {full} is {value:?}, not an RFC 3339 date and time"),
                    )
                    .with_fix(format!("build with `--build-arg CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)` and `LABEL {full}=$CREATED`")),
                );
            }
            continue;
        }
        let (line, arg) = match *key {
            "created" => (
                format!("LABEL {full}=$CREATED"),
                Some(("CREATED", "$(date -u +%Y-%m-%dT%H:%M:%SZ)")),
            ),
            "revision" => (
                format!("LABEL {full}=$REVISION"),
                Some(("REVISION", "$(git rev-parse HEAD)")),
            ),
            _ => {
                let suggested = match *key {
                    "title" => from_pc("name").unwrap_or_else(|| repository_name(reference)),
                    "description" => {
                        from_pc("description").unwrap_or_else(|| "<what the image does>".into())
                    }
                    "version" => tag_of(reference)
                        .filter(|t| *t != "latest")
                        .map_or_else(|| "<version, e.g. 1.0.0>".to_string(), str::to_string),
                    "authors" => "<name> <email>".into(),
                    "source" => "<URL of the source repository>".into(),
                    "documentation" => "<URL of the documentation>".into(),
                    _ => "<SPDX licence expression, e.g. Apache-2.0>".into(),
                };
                (
                    format!("LABEL {full}={}", dockerfile_quote(&suggested)),
                    None,
                )
            }
        };
        let mut fix = format!("add `{line}` to the Dockerfile");
        if let Some((arg, value)) = arg {
            fix.push_str(&format!(
                " after `ARG {arg}`, and build with `--build-arg {arg}={value}`"
            ));
            build_args.push(arg);
        }
        findings.push(
            Diagnostic::warning(
                "missing-oci-label",
                format!("the image has no {full} label{}: catalogues (seed 004: CANFAR, registries) show it", if info.labels.contains_key(&full) { " (it is empty)" } else { "" }),
            )
            .with_fix(fix),
        );
        lines.push(line);
    }
    let mut all = build_args
        .iter()
        .map(|a| format!("ARG {a}"))
        .collect::<Vec<_>>();
    all.extend(lines);
    (findings, all)
}

/// `registry:5000/group/name:1.2@sha256:…` → `name`.
fn repository_name(reference: &str) -> String {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split(':').next().unwrap_or(last).to_string()
}

/// `name:1.2` → `1.2`; none for `host:5000/name`.
fn tag_of(reference: &str) -> Option<&str> {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split_once(':').map(|(_, tag)| tag)
}

/// A value as a Dockerfile double-quoted string (`$` and `"` and `\` escaped).
fn dockerfile_quote(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' | '\\' | '$' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::image_fs::IndexFs;
    use crate::diagnostic::Severity;

    fn fs(entries: &[(&str, EntryKind, u32, &str)]) -> IndexFs {
        crate::backend::image_fs::index_of(entries)
    }

    fn busybox() -> IndexFs {
        use EntryKind::*;
        fs(&[
            ("bin", Dir, 0o755, ""),
            ("bin/busybox", File, 0o755, ""),
            ("bin/sh", Symlink, 0o777, "/bin/busybox"),
            ("root", Dir, 0o700, ""),
            ("root/run.sh", File, 0o755, ""),
            ("etc", Dir, 0o755, ""),
            ("etc/hosts", File, 0o644, ""),
        ])
    }

    fn info() -> ImageInfo {
        ImageInfo {
            env: vec!["PATH=/bin".into()],
            user: "1000".into(),
            labels: CATALOGUE_LABELS
                .iter()
                .map(|k| {
                    (
                        format!("{OCI_PREFIX}{k}"),
                        if *k == "created" {
                            "2026-01-02T03:04:05Z".into()
                        } else {
                            "x".into()
                        },
                    )
                })
                .collect(),
            ..ImageInfo::default()
        }
    }

    fn pc(command: &str, mounted: &str) -> Vec<u8> {
        format!(
            r#"{{"name": "t", "description": "d", "templates": [{{"identifier": "a", "description": "d", "command": {command}, "env": [], "inputs": [], "outputs": [{{"name": "o", "mounted_path": "{mounted}"}}]}}]}}"#
        )
        .into_bytes()
    }

    fn codes(check: &ImageCheck) -> Vec<&'static str> {
        check.all_findings().map(|d| d.code).collect()
    }

    #[test]
    fn a_fitting_image_has_no_findings() {
        let check = judge(
            "x:1",
            info(),
            Some(pc(r#"["sh", "-c", "true"]"#, "/out")),
            &busybox(),
        )
        .unwrap();
        assert_eq!(codes(&check), Vec::<&str>::new());
        assert!(check.label_lines.is_empty());
    }

    #[test]
    fn a_missing_or_closed_program_and_a_mount_over_a_file_are_errors_at_their_place() {
        let check = judge(
            "x:1",
            info(),
            Some(pc(r#"["python3", "x.py"]"#, "/etc/hosts")),
            &busybox(),
        )
        .unwrap();
        assert_eq!(codes(&check), ["command-not-found", "mount-over-file"]);
        let report = check.embedded.as_ref().unwrap();
        assert_eq!(report.diagnostics[0].pointer, "/templates/0/command/0");
        assert!(report.diagnostics[0].position.is_some());
        assert!(report.diagnostics[0].message.contains("PATH (/bin)"));
        assert_eq!(
            report.diagnostics[1].pointer,
            "/templates/0/outputs/0/mounted_path"
        );

        let check = judge(
            "x:1",
            info(),
            Some(pc(r#"["/root/run.sh"]"#, "/out")),
            &busybox(),
        )
        .unwrap();
        assert_eq!(codes(&check), ["command-not-runnable-by-any-user"]);
        let d = &check.embedded.as_ref().unwrap().diagnostics[0];
        assert!(
            d.message.contains("/ (mode") || d.message.contains("/root (mode 0700)"),
            "{}",
            d.message
        );
        assert!(d.fix.as_deref().unwrap().contains("chmod a+x /root"));
    }

    #[test]
    fn an_entrypoint_is_what_runs_and_is_checked_once_about_the_image() {
        let mut image = info();
        image.entrypoint = vec!["/entrypoint.sh".into()];
        let check = judge("x:1", image, Some(pc(r#"["python3"]"#, "/out")), &busybox()).unwrap();
        assert_eq!(codes(&check), ["command-not-found"]);
        assert!(check.findings[0].message.contains("the image's ENTRYPOINT"));
        assert!(check.findings[0].position.is_none());
    }

    #[test]
    fn root_secrets_and_missing_labels_are_said_without_values() {
        let mut image = info();
        image.user = String::new();
        image.env.push("API_TOKEN=s3cr3t-value".into());
        image.env.push("EMPTY_PASSWORD=".into());
        image.labels.remove("org.opencontainers.image.licenses");
        image.labels.remove("org.opencontainers.image.created");
        image
            .labels
            .insert("org.opencontainers.image.version".into(), " ".into());
        let check = judge("reg:5000/g/name:2.1", image, None, &busybox()).unwrap();
        assert_eq!(
            codes(&check),
            [
                "no-processing-container",
                "runs-as-root",
                "secret-in-image",
                "missing-oci-label",
                "missing-oci-label",
                "missing-oci-label"
            ]
        );
        for d in check.all_findings() {
            let text = format!("{} {:?}", d.message, d.fix);
            assert!(!text.contains("s3cr3t"), "{text}");
        }
        assert_eq!(
            check.label_lines,
            [
                "ARG CREATED",
                "LABEL org.opencontainers.image.version=\"2.1\"",
                "LABEL org.opencontainers.image.licenses=\"<SPDX licence expression, e.g. Apache-2.0>\"",
                "LABEL org.opencontainers.image.created=$CREATED",
            ]
        );
        assert!(check.all_findings().all(|d| d.severity != Severity::Note));
    }

    #[test]
    fn reference_parts() {
        assert_eq!(repository_name("reg:5000/g/name:2.1@sha256:ab"), "name");
        assert_eq!(tag_of("reg:5000/g/name"), None);
        assert_eq!(tag_of("name:2"), Some("2"));
        assert_eq!(dockerfile_quote("a \"$b\""), "\"a \\\"\\$b\\\"\"");
    }
}
