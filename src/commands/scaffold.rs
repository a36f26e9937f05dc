//! `tapir init [DIR]` (a new container repository that validates, builds and runs as
//! it is) and `tapir new task IMAGE|PC.JSON TEMPLATE` (a task.json for a template, every
//! channel and adjustable env entry filled in). DESIGN.md decision 15, "Scaffolding".

use std::path::Path;

use serde_json::{Value, json};

use crate::backend::docker::Docker;
use crate::backend::lookup;
use crate::cli::{InitArgs, NewArgs, NewCommand, NewTaskArgs};
use crate::error::{Error, ExitStatus, Result};
use crate::model::{ProcessingContainer, Template};
use crate::output;
use crate::schema::Kind;
use crate::source::Source;
use crate::validation::{self, KindRule};

/// The base image `init` writes when none is given: small, and has /bin/sh.
pub(crate) const DEFAULT_BASE: &str = "debian:bookworm-slim";

/// One file `init` writes: path in the repository, content, executable or not.
struct NewFile {
    path: &'static str,
    content: String,
    executable: bool,
}

pub(crate) fn init(args: &InitArgs) -> Result<ExitStatus> {
    let name = match &args.name {
        Some(name) => {
            if !is_image_name(name) {
                return Err(Error::Usage(format!(
                    "--name {name} is not a valid image name\n  fix: lower-case letters, digits and `.`, `_`, `-` between them (`/` between parts), e.g. `my-tool`"
                )));
            }
            name.clone()
        }
        None => image_name_from(&args.dir),
    };
    // One word: it is written into the Dockerfile's FROM line as it is.
    if args.base.is_empty() || args.base.chars().any(char::is_whitespace) {
        return Err(Error::Usage(format!(
            "--from {:?} is not an image reference\n  fix: e.g. `--from debian:bookworm-slim`",
            args.base
        )));
    }
    let files = repository_files(&name, &args.base);
    // Nothing is written when anything is there already: a half-made repository mixed
    // with the user's own files is worse than a clear refusal.
    let existing: Vec<String> = files
        .iter()
        .map(|f| args.dir.join(f.path))
        .filter(|p| p.symlink_metadata().is_ok())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        return Err(Error::Usage(format!(
            "tapir init does not overwrite files, and these exist: {}\n  fix: choose an empty or new folder (`tapir init NEW_DIR`), or move them away",
            existing.join(", ")
        )));
    }
    for file in &files {
        let path = args.dir.join(file.path);
        write_new(&path, &file.content, file.executable)?;
    }
    output::stderr(&format!(
        "tapir: created a container repository in {} for the image {name}:latest\n  next: cd {}\n        tapir validate .\n        docker build -t {name}:latest .\n        tapir run tasks/process.task.json\n",
        args.dir.display(),
        super::plan_view::command_line([args.dir.display().to_string()]),
    ));
    Ok(ExitStatus::Success)
}

/// Creates `path` (and its folders); fails if it exists, never follows a link there.
fn write_new(path: &Path, content: &str, executable: bool) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if executable { 0o755 } else { 0o644 })
        .open(path)
        .map_err(|e| Error::io_with_hint(path, e, "tapir init never overwrites a file"))?;
    file.write_all(content.as_bytes())
        .map_err(|e| Error::io(path, e))
}

/// A valid image name from a folder name: lower case, other characters as `-`.
fn image_name_from(dir: &Path) -> String {
    let folder = std::fs::canonicalize(dir)
        .ok()
        .or_else(|| Some(dir.to_path_buf()))
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().to_string()))
        .unwrap_or_default();
    let mut name = String::new();
    for c in folder.to_lowercase().chars() {
        let c = if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
            c
        } else {
            '-'
        };
        // Separators only between letters and digits.
        if !c.is_ascii_alphanumeric()
            && name
                .chars()
                .last()
                .is_none_or(|l| !l.is_ascii_alphanumeric())
        {
            continue;
        }
        name.push(c);
    }
    let name = name.trim_end_matches(['-', '.', '_']).to_string();
    if name.is_empty() {
        "my-processing-container".into()
    } else {
        name
    }
}

/// Docker's repository name rule: parts of lower-case letters and digits joined by one
/// `.`, `_`, `__` or any `-`, parts joined by `/`.
fn is_image_name(name: &str) -> bool {
    let word = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    name.split('/').all(|part| {
        let ends_are_words =
            part.chars().next().is_some_and(word) && part.chars().last().is_some_and(word);
        let separators_ok = part
            .split(word)
            .filter(|run| !run.is_empty())
            .all(|run| matches!(run, "." | "_" | "__") || run.chars().all(|c| c == '-'));
        ends_are_words && separators_ok
    })
}

fn repository_files(name: &str, base: &str) -> Vec<NewFile> {
    let description =
        "TODO: say what this container does (catalogues and `tapir inspect` show it).";
    let processing_container = json!({
        "name": name,
        "description": description,
        "api_version": 1,
        "templates": [{
            "identifier": "process",
            "description": "Copies every file of `input` to `output` and writes output/summary.txt starting with GREETING.",
            "inputs": [{
                "name": "input",
                "mounted_path": "/data/input",
                "description": "The files to process (mounted read-only)."
            }],
            "outputs": [{
                "name": "output",
                "mounted_path": "/data/output",
                "description": "The processed files and summary.txt."
            }],
            "env": [{
                "name": "GREETING",
                "value": "hello",
                "type": "string",
                "adjustable": true,
                "description": "The first line of summary.txt."
            }],
            "command": ["/usr/local/bin/process.sh"]
        }]
    });
    let task = json!({
        "name": "process the example data",
        "image": format!("{name}:latest"),
        "taskTemplate": "process",
        "inputs": [{"name": "input", "input": {"host_path": "../data/input"}}],
        "outputs": [{"name": "output", "input": {"host_path": "../data/output"}}],
        "env": [{"name": "GREETING", "value": "hello from tapir init"}]
    });
    let pretty = |value: &Value| {
        let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
        text.push('\n');
        text
    };
    vec![
        NewFile {
            path: "Dockerfile",
            content: format!(
                r#"# A Task API processing container (made by `tapir init`).
FROM {base}
# The contract: the image describes its own templates at /processing-container.json.
COPY files/processing-container.json /processing-container.json
COPY files/process.sh /usr/local/bin/process.sh
# What a catalogue shows (`tapir inspect` reads them); keep them true.
LABEL org.opencontainers.image.title="{name}" \
      org.opencontainers.image.description="{description}" \
      org.opencontainers.image.version="0.1.0"
# Platforms run the container as an arbitrary non-root user: do not rely on root.
"#
            ),
            executable: false,
        },
        NewFile {
            path: "files/processing-container.json",
            content: pretty(&processing_container),
            executable: false,
        },
        NewFile {
            path: "files/process.sh",
            content: r#"#!/bin/sh
# The task's work; replace it with yours. Inputs are read-only under /data/input; write
# results under /data/output (tapir makes it, owned by whoever runs the task).
set -eu
printf '%s\n' "$GREETING" > /data/output/summary.txt
count=0
for file in /data/input/*; do
  [ -f "$file" ] || continue
  cp "$file" /data/output/
  count=$((count + 1))
done
echo "processed $count file(s)" | tee -a /data/output/summary.txt
"#
            .into(),
            executable: true,
        },
        NewFile {
            path: "tasks/process.task.json",
            content: pretty(&task),
            executable: false,
        },
        NewFile {
            path: "data/input/example.txt",
            content: "An example input file.\n".into(),
            executable: false,
        },
        NewFile {
            path: ".gitignore",
            content: "# Results and tapir's run folders\n/data/output/\ntask_run-*/\n".into(),
            executable: false,
        },
        NewFile {
            path: ".github/workflows/tapir.yml",
            content: format!(
                r#"# Check the Task API files, build the image and run its example task on every push.
name: tapir
on: [push, pull_request]
jobs:
  container:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: rustup toolchain install stable --profile minimal
      # Point this at where you get tapir from.
      - run: cargo +stable install --locked --git https://git.example.org/tapir.git tapir
      - run: tapir validate --format github .
      - run: docker build -t {name}:latest .
      - run: tapir run tasks/process.task.json
"#
            ),
            executable: false,
        },
    ]
}

pub(crate) fn new(args: &NewArgs) -> Result<ExitStatus> {
    match &args.what {
        NewCommand::Task(task) => new_task(task),
    }
}

fn new_task(args: &NewTaskArgs) -> Result<ExitStatus> {
    let source_path = Path::new(&args.source);
    let (container, image) = if source_path.is_file() {
        let report =
            validation::check_file(source_path, KindRule::Forced(Kind::ProcessingContainer))?;
        let container = lookup::read_container(&report, &args.source).map_err(|_| {
            Error::Usage(format!(
                "{} is not a valid processing-container.json\n  fix: `tapir validate {}` shows why",
                args.source, args.source
            ))
        })?;
        let image = args
            .image
            .clone()
            .unwrap_or_else(|| format!("{}:latest", container.name));
        (container, image)
    } else {
        let docker = Docker::locate()?;
        let info = docker.image(&args.source)?.ok_or_else(|| {
            Error::Usage(format!(
                "{} is neither a file nor an image on this machine\n  fix: give a processing-container.json, or build or pull the image first",
                args.source
            ))
        })?;
        let read = || lookup::processing_container_bytes(&docker, &args.source, &info);
        let container = lookup::container_from_image(&read, &args.source)?;
        (container, args.image.clone().unwrap_or(args.source.clone()))
    };
    let template = find_template(&container, &args.template)?;
    let (task, notes) = task_for(template, &image);
    let mut text = serde_json::to_string_pretty(&task).unwrap_or_default();
    text.push('\n');
    // The task must be what `validate` accepts: checked here before it is written.
    let report = validation::check_source(
        Source::new("new task.json", text.clone()),
        KindRule::Forced(Kind::Task),
    );
    if !report.is_valid() {
        return Err(Error::Usage(
            "internal: the written task does not validate; please report this".into(),
        ));
    }
    match &args.output {
        Some(path) => {
            write_new(path, &text, false)?;
            output::stderr(&format!("tapir: wrote {}\n", path.display()));
        }
        None => output::stdout(&text),
    }
    for note in notes {
        output::stderr(&format!("note: {note}\n"));
    }
    Ok(ExitStatus::Success)
}

fn find_template<'a>(container: &'a ProcessingContainer, identifier: &str) -> Result<&'a Template> {
    container
        .templates
        .iter()
        .find(|t| t.identifier == identifier)
        .ok_or_else(|| {
            let known: Vec<&str> = container
                .templates
                .iter()
                .map(|t| t.identifier.as_str())
                .collect();
            Error::Usage(format!(
                "no template `{identifier}` in {}\n  fix: use one of: {}",
                container.name,
                known.join(", ")
            ))
        })
}

/// The task for `template`, and the notes for people: each entry's description, and
/// what to do before it runs.
fn task_for(template: &Template, image: &str) -> (Value, Vec<String>) {
    let mut notes = Vec::new();
    if !template.description.is_empty() {
        notes.push(format!(
            "template `{}`: {}",
            template.identifier, template.description
        ));
    }
    let binding = |channel: &crate::model::Mount, direction: &str, notes: &mut Vec<String>| {
        let folder = format!("data/{}", channel.name);
        notes.push(format!(
            "{direction} `{}` → {folder} (mounted at {}){}",
            channel.name,
            channel.mounted_path,
            channel
                .description
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        ));
        json!({"name": channel.name, "input": {"host_path": folder}})
    };
    let inputs: Vec<Value> = template
        .inputs
        .iter()
        .map(|c| binding(c, "input", &mut notes))
        .collect();
    let outputs: Vec<Value> = template
        .outputs
        .iter()
        .map(|c| binding(c, "output", &mut notes))
        .collect();
    let mut env = Vec::new();
    for var in &template.env {
        let about = var
            .description
            .as_deref()
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        if !var.adjustable {
            notes.push(format!(
                "env {} is fixed by the template (`adjustable: false`), so it is left out{about}",
                var.name
            ));
            continue;
        }
        if var.is_secret() {
            notes.push(format!(
                "env {} looks like a secret: its default is not written; set it with `tapir run --env {}` or --env-file{about}",
                var.name, var.name
            ));
            continue;
        }
        let choices = var
            .choices
            .as_ref()
            .map(|c| format!(" (one of {})", c.join(", ")))
            .unwrap_or_default();
        notes.push(format!("env {}={}{choices}{about}", var.name, var.value));
        env.push(json!({"name": var.name, "value": var.value}));
    }
    if !template.inputs.is_empty() {
        notes.push(
            "input folders must exist before `tapir run` (paths are relative to the task file)"
                .into(),
        );
    }
    let task = json!({
        "name": template.identifier,
        "image": image,
        "taskTemplate": template.identifier,
        "inputs": inputs,
        "outputs": outputs,
        "env": env,
    });
    (task, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_are_made_and_checked_as_docker_does() {
        assert_eq!(image_name_from(Path::new("/x/My Tool_2")), "my-tool_2");
        assert_eq!(image_name_from(Path::new("/x/--odd--")), "odd");
        assert_eq!(
            image_name_from(Path::new("/x/ü")),
            "my-processing-container"
        );
        for ok in ["tool", "my-tool", "org/tool.x", "a__b", "a---b"] {
            assert!(is_image_name(ok), "{ok}");
        }
        for bad in ["Tool", "-tool", "tool-", "a//b", "", "a b", "tool:1"] {
            assert!(!is_image_name(bad), "{bad}");
        }
    }

    #[test]
    fn the_repository_files_are_valid_task_api_files() {
        let files = repository_files("tool", DEFAULT_BASE);
        for (path, kind) in [
            ("files/processing-container.json", Kind::ProcessingContainer),
            ("tasks/process.task.json", Kind::Task),
        ] {
            let file = files.iter().find(|f| f.path == path).expect(path);
            let report = validation::check_source(
                Source::new(path, file.content.clone()),
                KindRule::Forced(kind),
            );
            assert!(report.is_valid(), "{path}: {:?}", report.diagnostics);
        }
    }
}
