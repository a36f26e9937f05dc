//! `tapir inspect IMAGE` (alias `processing-container`): what an image offers as a Task
//! API processing container — its `/processing-container.json`, validated, and the image
//! metadata a platform catalogue would show (seed 004: the OCI
//! `org.opencontainers.image.*` annotations).

use std::path::Path;

use serde_json::json;

use crate::backend::docker::Docker;
use crate::cli::{ColorChoice, InspectArgs, PlanFormat};
use crate::diagnostic::Severity;
use crate::error::{Error, ExitStatus, Result};
use crate::model::quantity::format_bytes;
use crate::output::{self, Printer};
use crate::schema::Kind;
use crate::validation::{KindRule, check_source};

use crate::backend::lookup::processing_container_bytes;

/// The OCI annotation keys (image-spec, annotations.md), in the order they are shown.
const OCI_PREFIX: &str = "org.opencontainers.image.";

pub(crate) fn run(args: &InspectArgs, color: ColorChoice) -> Result<ExitStatus> {
    let (image, bytes) = if args
        .image
        .starts_with(crate::backend::registry::REMOTE_PREFIX)
    {
        // From its registry: manifest, config, and the layers down to the file.
        let remote =
            crate::backend::registry::RemoteRef::parse(&args.image).map_err(Error::Usage)?;
        let mut registry = crate::backend::registry::Registry::new(&remote.registry);
        let image = registry.image(&remote)?;
        let bytes = registry.processing_container(&image)?;
        (image.info, bytes)
    } else {
        let docker = Docker::locate().map_err(|e| Error::Usage(e.to_string()))?;
        // An engine that fails or does not answer in time ends with 125, as for `run`.
        let image = docker.image(&args.image)?.ok_or_else(|| {
            Error::Usage(format!(
                "image {} is not present locally (tapir never pulls)\n  fix: build it, or `docker pull {}` first; or read it from its registry: `tapir inspect docker://{}`",
                args.image, args.image, args.image
            ))
        })?;
        let bytes = processing_container_bytes(&docker, &args.image, &image)?;
        (image, bytes)
    };
    let image = crate::backend::image_check::mask_secret_labels(image);
    let name = format!("{}:/processing-container.json", args.image);
    let report = bytes.map(
        |bytes| match crate::source::decode(Path::new(&name), bytes) {
            // `decoded` as it is: it remembers a byte-order mark for the `bom` warning.
            Ok(decoded) => Ok(check_source(
                decoded,
                KindRule::Forced(Kind::ProcessingContainer),
            )),
            Err(_) => Err(format!("{name} is not UTF-8 text")),
        },
    );
    let valid = match &report {
        Some(Ok(r)) => r.is_valid(),
        _ => false,
    };
    let oci: Vec<(&String, &String)> = image
        .labels
        .iter()
        .filter(|(k, _)| k.starts_with(OCI_PREFIX))
        .collect();

    match args.format {
        PlanFormat::Json => {
            let (document, findings) = match &report {
                Some(Ok(r)) => (
                    r.document.as_ref().map(|d| d.value.clone()),
                    serde_json::Value::from(
                        r.diagnostics
                            .iter()
                            .map(crate::diagnostic::Diagnostic::to_json)
                            .collect::<Vec<_>>(),
                    ),
                ),
                Some(Err(why)) => (None, json!([{"severity": "error", "message": why}])),
                None => (None, json!([])),
            };
            let value = json!({
                "image": args.image,
                "id": image.id,
                "repo_digests": image.repo_digests,
                "created": image.created,
                "size_bytes": image.size_bytes,
                "os": image.os,
                "architecture": image.architecture,
                "user": image.user,
                "entrypoint": image.entrypoint,
                "cmd": image.cmd,
                "working_dir": image.working_dir,
                "labels": image.labels,
                "oci_annotations": oci.iter().map(|(k, v)| (k.trim_start_matches(OCI_PREFIX).to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
                "has_processing_container": report.is_some(),
                "processing_container": document,
                "findings": findings,
                "valid": valid,
            });
            output::stdout_json(&value);
        }
        PlanFormat::Human => {
            let p = Printer::for_stdout(color);
            let mut out = String::new();
            let mut row = |label: &str, text: String| {
                out.push_str(&format!("{} {text}\n", p.bold(&format!("{label:<12}"))));
            };
            row("image", format!("{} ({})", args.image, image.id));
            for d in &image.repo_digests {
                row("digest", d.clone());
            }
            row("created", image.created.clone());
            row("size", format_bytes(image.size_bytes));
            row("platform", format!("{}/{}", image.os, image.architecture));
            row(
                "user",
                if image.user.is_empty() {
                    "root (no USER)".into()
                } else {
                    image.user.clone()
                },
            );
            row("entrypoint", format!("{:?}", image.entrypoint));
            row("cmd", format!("{:?}", image.cmd));
            for (i, (k, v)) in oci.iter().enumerate() {
                row(
                    if i == 0 { "oci" } else { "" },
                    format!("{}: {v}", k.trim_start_matches(OCI_PREFIX)),
                );
            }
            for (i, (k, v)) in image
                .labels
                .iter()
                .filter(|(k, _)| !k.starts_with(OCI_PREFIX))
                .enumerate()
            {
                row(if i == 0 { "labels" } else { "" }, format!("{k}={v}"));
            }
            match &report {
                None => row("templates", "none: the image has no /processing-container.json (tasks must give their template inline)".into()),
                Some(Err(why)) => row("templates", why.clone()),
                Some(Ok(r)) => {
                    let templates = r
                        .document
                        .as_ref()
                        .and_then(|d| d.value["templates"].as_array().cloned())
                        .unwrap_or_default();
                    for (i, t) in templates.iter().enumerate() {
                        row(
                            if i == 0 { "templates" } else { "" },
                            format!(
                                "{} — {}",
                                t["identifier"].as_str().unwrap_or("?"),
                                t["description"].as_str().unwrap_or("")
                            ),
                        );
                    }
                    let errors = r.count(Severity::Error);
                    let warnings = r.count(Severity::Warning);
                    row(
                        "validation",
                        if errors == 0 && warnings == 0 {
                            p.green("valid")
                        } else if errors == 0 {
                            format!("valid, {}", output::plural(warnings, "warning"))
                        } else {
                            p.red(&format!(
                                "INVALID: {}, {}",
                                output::plural(errors, "error"),
                                output::plural(warnings, "warning")
                            ))
                        },
                    );
                }
            }
            output::stdout(&out);
            if let Some(Ok(r)) = &report {
                let err = Printer::for_stderr(color);
                for d in &r.diagnostics {
                    output::stderr(&err.diagnostic(&name, r.source(), d));
                }
            }
        }
    }
    // Like `validate`: 1 when the embedded file is invalid (an image without one is fine).
    Ok(match report {
        Some(_) if !valid => ExitStatus::Failed,
        _ => ExitStatus::Success,
    })
}
