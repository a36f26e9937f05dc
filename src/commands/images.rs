//! `tapir images [KEYWORD...] [--filter label=KEY[=VALUE]]`: the local Task API images,
//! with their templates and descriptions, searched by keyword and label.

use serde_json::json;

use crate::backend::catalog::{self, TaskApiImage};
use crate::backend::docker::Docker;
use crate::cli::{ColorChoice, ImagesArgs, PlanFormat};
use crate::error::{ExitStatus, Result};
use crate::output::{self, Printer, plural};

/// Version of the `--format json` output.
const JSON_FORMAT_VERSION: u32 = 1;

pub(crate) fn run(args: &ImagesArgs, color: ColorChoice) -> Result<ExitStatus> {
    let (all, total) = match &args.registry {
        Some(url) => catalog::registry_task_api_images(url)?,
        None => catalog::local_task_api_images(&Docker::locate()?)?,
    };
    let shown: Vec<&TaskApiImage> = all
        .iter()
        .filter(|i| i.matches(&args.keywords, &args.filters))
        .collect();
    match args.format {
        PlanFormat::Json => output::stdout_json(&json!({
            "format_version": JSON_FORMAT_VERSION,
            "images": shown,
        })),
        PlanFormat::Human => {
            output::stdout(&human(&shown, &Printer::for_stdout(color)));
            let searched = !args.keywords.is_empty() || !args.filters.is_empty();
            let place = match (&args.registry, total) {
                (Some(_), 1) => "image in the registry",
                (Some(_), _) => "images in the registry",
                (None, 1) => "local image",
                (None, _) => "local images",
            };
            let among = format!(
                "{} among {total} {place}",
                plural(all.len(), "Task API image")
            );
            output::stderr(&if searched {
                format!(
                    "{} {} ({among})\n",
                    shown.len(),
                    if shown.len() == 1 { "matches" } else { "match" }
                )
            } else {
                format!("{among}\n")
            });
        }
    }
    Ok(ExitStatus::Success)
}

/// One block per image: references and short id, title and description, one line per
/// template.
pub(crate) fn human(images: &[&TaskApiImage], p: &Printer) -> String {
    let mut out = String::new();
    for image in images {
        let short = image.id.trim_start_matches("sha256:");
        let short = &short[..short.len().min(12)];
        out.push_str(&format!(
            "{}  {short}",
            p.bold(&image.references.join(", "))
        ));
        if !image.valid {
            out.push_str(&format!(
                "  {}",
                p.red("(invalid /processing-container.json: see `tapir inspect`)")
            ));
        }
        out.push('\n');
        let about = match (image.title.is_empty(), image.description.is_empty()) {
            (false, false) => format!("{} — {}", image.title, image.description),
            (false, true) => image.title.clone(),
            _ => image.description.clone(),
        };
        if !about.is_empty() {
            out.push_str(&format!("    {about}\n"));
        }
        let width = image
            .templates
            .iter()
            .map(|t| t.identifier.chars().count())
            .max()
            .unwrap_or(0);
        for t in &image.templates {
            out.push_str(&format!(
                "    {} {}\n",
                p.cyan(&format!("{:<width$}", t.identifier)),
                t.description
            ));
        }
        out.push('\n');
    }
    out
}
