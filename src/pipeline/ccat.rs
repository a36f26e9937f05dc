//! The CCAT container contract (docs/DESIGN.md decision 10, profile `ccat`): the
//! `manifest.json` a step reads from `/workflow/config/`, and the data products a finished
//! step leaves — the final step's `/workflow/output/` classified by its top subfolder,
//! an intermediate step's `/workflow/workspace/<step>/` as intermediates — with the
//! `.metadata.json` sidecars read into each product's metadata.
//!
//! Nothing here runs anything or writes anything: `list_files` and `scan` only read a
//! folder, `manifest` and `products` are functions of what was read, so every rule is
//! tested on its own.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::pipeline::model::InputRole;
use crate::pipeline::plan::{FolderDirection, PlannedFolder, WORKFLOW_OUTPUT_DIR};
use crate::resolve::env_input::EnvOverride;
use crate::resolve::plan::{MASK, PlannedBind, is_secret_name};

/// Where the contract mounts each folder inside the container.
pub(crate) const INPUT: &str = "/workflow/input";
pub(crate) const WORKSPACE: &str = "/workflow/workspace";
pub(crate) const OUTPUT: &str = "/workflow/output";
pub(crate) const CONFIG: &str = "/workflow/config";
pub(crate) const LOGS: &str = "/workflow/logs";

/// The manifest's file name in the step's config folder.
pub(crate) const MANIFEST_FILE: &str = "manifest.json";

/// The suffix of a sidecar: `scan001_cal.hdf5.metadata.json` describes `scan001_cal.hdf5`.
pub(crate) const SIDECAR_SUFFIX: &str = ".metadata.json";

/// The `role` of a raw input file that no `input_roles` pattern matches: most raw files
/// are scans, and the contract says the role is informational.
pub(crate) const DEFAULT_INPUT_ROLE: &str = "science";

/// The manifest's `run_id`: the contract's is an integer (a database key), and a
/// container may parse it as one, so the pipeline run's string id cannot serve. It is
/// the run's creation time in microseconds since the Unix epoch: unique in practice,
/// growing with time, the same on every `--resume` (it comes from the record's
/// `created_at`), and below 2^53 until the year 2255, so exact in every JSON parser
/// (JavaScript's and jq's numbers are doubles).
pub(crate) fn manifest_run_id(created_at: jiff::Timestamp) -> u64 {
    u64::try_from(created_at.as_microsecond()).unwrap_or_default()
}

/// The pipeline's `input_roles`, compiled.
#[derive(Debug, Clone, Default)]
pub(crate) struct InputRoles {
    rules: Vec<(InputRole, GlobMatcher)>,
}

impl InputRoles {
    /// `Err((index, message))` for the first pattern that is not a valid glob.
    pub(crate) fn compile(roles: &[InputRole]) -> Result<Self, (usize, String)> {
        let mut rules = Vec::new();
        for (index, role) in roles.iter().enumerate() {
            let glob = GlobBuilder::new(&role.pattern)
                .literal_separator(true)
                .build()
                .map_err(|e| (index, e.kind().to_string()))?;
            rules.push((role.clone(), glob.compile_matcher()));
        }
        Ok(Self { rules })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The role of the raw file at `relative` (under the input folder, `/`-separated):
    /// the first pattern that matches (one without `/` is tried on the file's name).
    pub(crate) fn role_of(&self, relative: &str) -> &str {
        let name = relative.rsplit('/').next().unwrap_or(relative);
        self.rules
            .iter()
            .find(|(rule, matcher)| {
                matcher.is_match(if rule.pattern.contains('/') {
                    relative
                } else {
                    name
                })
            })
            .map_or(DEFAULT_INPUT_ROLE, |(rule, _)| rule.role.as_str())
    }
}

impl Serialize for InputRoles {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.rules.iter().map(|(rule, _)| rule))
    }
}

/// The manifest's `environment`, from the pipeline's. Serialized (plans, records) with
/// the values of secret-looking names as `****`; `manifest` alone uses the values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Environment(BTreeMap<String, String>);

impl Environment {
    pub(crate) fn new(values: BTreeMap<String, String>) -> Self {
        Self(values)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a value must not be written where the container is not the reader.
    pub(crate) fn has_secrets(&self) -> bool {
        self.0.keys().any(|name| is_secret_name(name))
    }

    fn unmasked(&self) -> Value {
        json!(self.0)
    }

    fn masked(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(name, value)| {
                    let shown = if is_secret_name(name) { MASK } else { value };
                    (name.clone(), Value::from(shown))
                })
                .collect(),
        )
    }
}

impl Serialize for Environment {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.masked().serialize(s)
    }
}

/// The contract's DataProductType, plus `INTERMEDIATE` for what intermediate steps leave
/// in the workspace (the contract has no type for them: they are DataProducts that
/// downstream steps read by `data_product_id`, not pipeline results).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum ProductType {
    Science,
    QaMetric,
    Plot,
    Statistics,
    Log,
    Intermediate,
}

impl ProductType {
    /// As the contract and the record spell it: `SCIENCE`, `QA_METRIC`, …
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ProductType::Science => "SCIENCE",
            ProductType::QaMetric => "QA_METRIC",
            ProductType::Plot => "PLOT",
            ProductType::Statistics => "STATISTICS",
            ProductType::Log => "LOG",
            ProductType::Intermediate => "INTERMEDIATE",
        }
    }

    /// A final-step product's type by the first folder of its path under
    /// `/workflow/output/`; files in no recognised subfolder are SCIENCE (the contract).
    pub(crate) fn of_output(relative: &str) -> Self {
        let top = match relative.split_once('/') {
            Some((top, _)) => top,
            None => return ProductType::Science,
        };
        match top {
            "science" => ProductType::Science,
            "qa" => ProductType::QaMetric,
            "plots" => ProductType::Plot,
            "statistics" => ProductType::Statistics,
            "logs" => ProductType::Log,
            _ => ProductType::Science,
        }
    }
}

/// One data product of a pipeline run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Product {
    /// Numbered from 1 across the pipeline run, in the order products were collected;
    /// downstream manifests name intermediates by it.
    pub data_product_id: u64,
    /// The step that wrote it.
    pub step: String,
    /// Where the container saw it: `/workflow/output/science/x.hdf5`.
    pub path: String,
    /// Its path under the folder it was collected from (`science/x.hdf5`).
    pub relative_path: String,
    pub product_type: ProductType,
    pub size_bytes: u64,
    pub sha256: String,
    /// The sidecar's JSON, when there is a readable one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// A file found under a folder, as `products` needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScannedFile {
    /// Relative to the scanned folder, `/`-separated.
    pub relative_path: String,
    pub size_bytes: u64,
    pub sha256: String,
    /// A sidecar's text (read only for `*.metadata.json`, which are small by nature).
    pub text: Option<String>,
}

/// What a step's manifest is made of.
#[derive(Debug, Clone)]
pub(crate) struct ManifestContext<'a> {
    /// `manifest_run_id` of the pipeline run.
    pub run_id: u64,
    pub step_name: &'a str,
    /// The pipeline's `sub_group_key`, or "".
    pub sub_group_key: &'a str,
    /// The step's `step_config`, passed through as-is (`{}` without one).
    pub config: Option<&'a Value>,
    pub roles: &'a InputRoles,
    pub environment: &'a Environment,
}

/// Who reads a manifest: the container gets the environment's values; the copy tapir
/// keeps in the run folder has its secrets masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reader {
    Container,
    RunFolder,
}

/// The `manifest.json` of a step: `input_files` are the raw files under the pipeline's
/// input folder (paths relative to it, as `list_files` gives them) with their role by
/// pattern, `input_products` the products of the steps it depends on.
pub(crate) fn manifest(
    ctx: &ManifestContext,
    input_files: &[String],
    upstream: &[&Product],
    reader: Reader,
) -> Value {
    json!({
        "run_id": ctx.run_id,
        "step_name": ctx.step_name,
        "sub_group_key": ctx.sub_group_key,
        "input_files": input_files
            .iter()
            .map(|relative| json!({"path": format!("{INPUT}/{relative}"), "role": ctx.roles.role_of(relative)}))
            .collect::<Vec<_>>(),
        "input_products": upstream
            .iter()
            .map(|p| json!({"path": p.path, "data_product_id": p.data_product_id}))
            .collect::<Vec<_>>(),
        "config": ctx.config.cloned().unwrap_or_else(|| json!({})),
        "environment": match reader {
            Reader::Container => ctx.environment.unmasked(),
            Reader::RunFolder => ctx.environment.masked(),
        },
    })
}

/// Where a step's products are collected from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Collected<'a> {
    /// The final step's `/workflow/output/`: typed by subfolder.
    Output,
    /// An intermediate step's `/workflow/workspace/<step>/`: INTERMEDIATE.
    Workspace { step: &'a str },
}

impl Collected<'_> {
    fn container_dir(&self) -> String {
        match self {
            Collected::Output => OUTPUT.to_string(),
            Collected::Workspace { step } => format!("{WORKSPACE}/{step}"),
        }
    }
}

/// The products among `files` (from `scan` of the folder `from` names), numbered from
/// `first_id`. A `<name>.metadata.json` is the sidecar of `<name>` and not a product
/// itself; a sidecar that is not valid JSON, or whose file is missing, is a warning (in
/// words, naming the file and the position), never a failure: the products stay.
pub(crate) fn products(
    step: &str,
    from: Collected,
    files: &[ScannedFile],
    first_id: u64,
) -> (Vec<Product>, Vec<String>) {
    let dir = from.container_dir();
    let mut warnings = Vec::new();
    let is_sidecar = |f: &ScannedFile| f.relative_path.ends_with(SIDECAR_SUFFIX);
    for sidecar in files.iter().filter(|f| is_sidecar(f)) {
        let subject = &sidecar.relative_path[..sidecar.relative_path.len() - SIDECAR_SUFFIX.len()];
        if !files.iter().any(|f| f.relative_path == subject) {
            warnings.push(format!(
                "step `{step}`: {dir}/{}: a metadata sidecar for {dir}/{subject}, which does not exist; it is ignored",
                sidecar.relative_path
            ));
        }
    }
    let mut products = Vec::new();
    for file in files.iter().filter(|f| !is_sidecar(f)) {
        let sidecar_path = format!("{}{SIDECAR_SUFFIX}", file.relative_path);
        let metadata = files
            .iter()
            .find(|f| f.relative_path == sidecar_path)
            .and_then(|sidecar| {
                let text = sidecar.text.as_deref().unwrap_or_default();
                match serde_json::from_str::<Value>(text) {
                    Ok(value) => Some(value),
                    Err(e) => {
                        warnings.push(format!(
                            "step `{step}`: {dir}/{sidecar_path}:{}:{}: the metadata sidecar is not valid JSON ({e}); {} is kept without metadata",
                            e.line(),
                            e.column(),
                            file.relative_path
                        ));
                        None
                    }
                }
            });
        products.push(Product {
            data_product_id: first_id + products.len() as u64,
            step: step.to_string(),
            path: format!("{dir}/{}", file.relative_path),
            relative_path: file.relative_path.clone(),
            product_type: match from {
                Collected::Output => ProductType::of_output(&file.relative_path),
                Collected::Workspace { .. } => ProductType::Intermediate,
            },
            size_bytes: file.size_bytes,
            sha256: file.sha256.clone(),
            metadata,
        });
    }
    (products, warnings)
}

/// What a step's `tapir run` gets beyond the task file: each of its planned
/// `/workflow/...` folders as a bind `HOST:CONTAINER:ro|rw` (inputs and config read-only,
/// the rest read-write) and `WORKFLOW_OUTPUT_DIR=...`. Managed folders are under
/// `run_dir` (the pipeline run folder); the pipeline's own input is made absolute.
///
/// `private_config` replaces the config folder when the container's manifest holds
/// secrets (`Environment::has_secrets`): it then lives outside the run folder.
pub(crate) fn step_run_options(
    folders: &[PlannedFolder],
    workflow_output_dir: Option<&str>,
    run_dir: &Path,
    private_config: Option<&Path>,
) -> (Vec<PlannedBind>, Vec<EnvOverride>) {
    let mut binds = Vec::new();
    for folder in folders {
        let Some(container) = &folder.mounted_path else {
            continue;
        };
        let host_path = match private_config {
            Some(private) if container == CONFIG => private.to_path_buf(),
            _ => folder_on_host(folder, run_dir),
        };
        binds.push(PlannedBind {
            host_path,
            container_path: container.clone(),
            read_only: folder.direction == FolderDirection::Input,
        });
    }
    let env = workflow_output_dir
        .map(|dir| EnvOverride {
            name: WORKFLOW_OUTPUT_DIR.to_string(),
            value: dir.to_string(),
        })
        .into_iter()
        .collect();
    (binds, env)
}

/// Where a planned folder is on the host.
pub(crate) fn folder_on_host(folder: &PlannedFolder, run_dir: &Path) -> PathBuf {
    if folder.managed {
        run_dir.join(&folder.path)
    } else {
        let path = PathBuf::from(&folder.path);
        std::path::absolute(&path).unwrap_or(path)
    }
}

/// The host folder behind a step's `WORKFLOW_OUTPUT_DIR`, and how its files are
/// collected: `<run>/output` for the final step, `<run>/workspace/<step>` for the others
/// (tapir creates it: the contract's containers write into it without creating it).
pub(crate) fn step_output_on_host<'a>(
    step: &'a str,
    workflow_output_dir: &str,
    run_dir: &Path,
) -> (PathBuf, Collected<'a>) {
    if workflow_output_dir.trim_end_matches('/') == OUTPUT {
        (run_dir.join("output"), Collected::Output)
    } else {
        (
            run_dir.join("workspace").join(step),
            Collected::Workspace { step },
        )
    }
}

/// The contract's `/workflow/logs/` holds the container logs: a finished attempt's
/// `stdout.log` and `stderr.log` (from its task run folder, byte for byte) are put into
/// the step's logs folder under the same names, replacing an earlier attempt's (every
/// attempt's stay in its task run). Hard links where possible (no copy of a large log),
/// copies otherwise. A log the run did not write (it never started) is skipped.
pub(crate) fn capture_logs(task_run_dir: &Path, logs_dir: &Path) -> std::io::Result<()> {
    for name in [
        crate::record::logs::STDOUT_FILE,
        crate::record::logs::STDERR_FILE,
    ] {
        let from = task_run_dir.join(name);
        if !from.is_file() {
            continue;
        }
        let to = logs_dir.join(name);
        match std::fs::remove_file(&to) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to)?;
        }
    }
    Ok(())
}

/// The regular files under `dir`, relative and sorted, without reading them (for a
/// manifest's `input_files`). Symbolic links are not followed (a link could lead out of
/// the folder); a missing folder has no files.
pub(crate) fn list_files(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut found = Vec::new();
    walk(dir, dir, &mut found)?;
    let mut relative: Vec<String> = found.into_iter().map(|(r, _)| r).collect();
    relative.sort();
    Ok(relative)
}

/// Every regular file under `dir` with its size and sha256 (read in 64 KiB pieces, so
/// memory stays flat whatever the size), sorted by path; sidecars' text is kept.
pub(crate) fn scan(dir: &Path) -> std::io::Result<Vec<ScannedFile>> {
    let mut found = Vec::new();
    walk(dir, dir, &mut found)?;
    found.sort();
    let mut files = Vec::new();
    for (relative_path, path) in found {
        let (size_bytes, sha256) = digest(&path)?;
        let text = if relative_path.ends_with(SIDECAR_SUFFIX) {
            let bytes = std::fs::read(&path)?;
            Some(String::from_utf8_lossy(&bytes).into_owned())
        } else {
            None
        };
        files.push(ScannedFile {
            relative_path,
            size_bytes,
            sha256,
            text,
        });
    }
    Ok(files)
}

fn walk(root: &Path, dir: &Path, found: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir == root => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(root, &path, found)?;
        } else if kind.is_file() {
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            found.push((parts.join("/"), path));
        }
    }
    Ok(())
}

fn digest(path: &Path) -> std::io::Result<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buffer[..n]);
    }
    Ok((size, format!("{:x}", hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(relative: &str, text: Option<&str>) -> ScannedFile {
        ScannedFile {
            relative_path: relative.into(),
            size_bytes: 3,
            sha256: format!("sha-of-{relative}"),
            text: text.map(str::to_string),
        }
    }

    fn product(id: u64, step: &str, path: &str) -> Product {
        Product {
            data_product_id: id,
            step: step.into(),
            path: path.into(),
            relative_path: path.rsplit('/').next().unwrap().into(),
            product_type: ProductType::Intermediate,
            size_bytes: 1,
            sha256: String::new(),
            metadata: None,
        }
    }

    fn roles(list: &[(&str, &str)]) -> InputRoles {
        let list: Vec<InputRole> = list
            .iter()
            .map(|(pattern, role)| InputRole {
                pattern: (*pattern).into(),
                role: (*role).into(),
            })
            .collect();
        InputRoles::compile(&list).unwrap()
    }

    #[test]
    fn the_manifest_has_every_field_of_the_contract() {
        let config = json!({"baseline_order": 3});
        let upstream = [
            product(
                1,
                "calibrate",
                "/workflow/workspace/calibrate/scan001_cal.hdf5",
            ),
            product(
                2,
                "calibrate",
                "/workflow/workspace/calibrate/scan002_cal.hdf5",
            ),
        ];
        let roles = roles(&[("hot_load*.fits", "calibration")]);
        let environment = Environment::new(BTreeMap::from([
            (
                "influxdb_url".to_string(),
                "http://127.0.0.1:8086".to_string(),
            ),
            ("influxdb_token".to_string(), "t0k3n".to_string()),
        ]));
        let ctx = ManifestContext {
            run_id: 123,
            step_name: "baseline",
            sub_group_key: "source=NGC253|line=CO43",
            config: Some(&config),
            roles: &roles,
            environment: &environment,
        };
        let files = [
            "chai/2026-03-01/scan001.fits".to_string(),
            "chai/2026-03-01/hot_load.fits".to_string(),
        ];
        let upstream: Vec<&Product> = upstream.iter().collect();
        let value = manifest(&ctx, &files, &upstream, Reader::Container);
        assert_eq!(
            value,
            json!({
                "run_id": 123,
                "step_name": "baseline",
                "sub_group_key": "source=NGC253|line=CO43",
                "input_files": [
                    {"path": "/workflow/input/chai/2026-03-01/scan001.fits", "role": "science"},
                    {"path": "/workflow/input/chai/2026-03-01/hot_load.fits", "role": "calibration"}
                ],
                "input_products": [
                    {"path": "/workflow/workspace/calibrate/scan001_cal.hdf5", "data_product_id": 1},
                    {"path": "/workflow/workspace/calibrate/scan002_cal.hdf5", "data_product_id": 2}
                ],
                "config": {"baseline_order": 3},
                "environment": {"influxdb_token": "t0k3n", "influxdb_url": "http://127.0.0.1:8086"}
            })
        );
        assert!(value["run_id"].is_u64());
        // The run folder's copy, like every record and plan, masks the secret.
        let kept = manifest(&ctx, &files, &upstream, Reader::RunFolder);
        assert_eq!(
            kept["environment"],
            json!({"influxdb_token": "****", "influxdb_url": "http://127.0.0.1:8086"})
        );
        assert_eq!(
            serde_json::to_value(&environment).unwrap(),
            kept["environment"]
        );
        assert!(environment.has_secrets());
        let bare = manifest(
            &ManifestContext {
                run_id: 1,
                step_name: "calibrate",
                sub_group_key: "",
                config: None,
                roles: &InputRoles::default(),
                environment: &Environment::default(),
            },
            &[],
            &[],
            Reader::Container,
        );
        assert_eq!(bare["config"], json!({}));
        assert_eq!(bare["input_files"], json!([]));
        assert_eq!(bare["sub_group_key"], "");
        assert_eq!(bare["environment"], json!({}));
    }

    #[test]
    fn roles_come_from_the_first_matching_pattern_by_name_or_by_path() {
        let roles = roles(&[
            ("cal/**", "calibration"),
            ("hot_load*.fits", "hot-load"),
            ("*/sky_*.fits", "sky"),
            ("*.fits", "science-scan"),
        ]);
        for (file, want) in [
            ("cal/deep/x.fits", "calibration"),
            ("night1/hot_load.fits", "hot-load"),
            ("hot_load_2.fits", "hot-load"),
            ("night1/sky_01.fits", "sky"),
            ("a/b/sky_01.fits", "science-scan"),
            ("scan001.fits", "science-scan"),
            ("notes.txt", "science"),
        ] {
            assert_eq!(roles.role_of(file), want, "{file}");
        }
        let bad = [InputRole {
            pattern: "scan[".into(),
            role: "x".into(),
        }];
        let (index, message) = InputRoles::compile(&bad).unwrap_err();
        assert_eq!(index, 0);
        assert!(message.contains("unclosed"), "{message}");
    }

    #[test]
    fn the_run_id_is_an_integer_exact_in_a_double() {
        let created: jiff::Timestamp = "2026-12-06T02:30:00.123456789Z".parse().unwrap();
        let id = manifest_run_id(created);
        assert_eq!(id, 1_796_524_200_123_456);
        assert!(id < 1 << 53);
    }

    #[test]
    fn a_steps_logs_are_put_in_its_logs_folder_replacing_an_earlier_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let (run, logs) = (dir.path().join("task_run-1"), dir.path().join("logs"));
        std::fs::create_dir_all(&run).unwrap();
        std::fs::create_dir_all(&logs).unwrap();
        std::fs::write(logs.join("stdout.log"), "attempt 1\n").unwrap();
        std::fs::write(run.join("stdout.log"), "attempt 2\n").unwrap();
        std::fs::write(run.join("stderr.log"), "oops\n").unwrap();
        capture_logs(&run, &logs).unwrap();
        assert_eq!(
            std::fs::read_to_string(logs.join("stdout.log")).unwrap(),
            "attempt 2\n"
        );
        assert_eq!(
            std::fs::read_to_string(logs.join("stderr.log")).unwrap(),
            "oops\n"
        );
        // A run that never started wrote no logs: nothing to capture, no error.
        capture_logs(&dir.path().join("task_run-2"), &logs).unwrap();
    }

    #[test]
    fn output_files_are_typed_by_their_top_subfolder() {
        for (relative, want) in [
            ("science/cube.fits", ProductType::Science),
            ("qa/noise.json", ProductType::QaMetric),
            ("plots/spectrum.png", ProductType::Plot),
            ("statistics/summary.csv", ProductType::Statistics),
            ("logs/reduce.log", ProductType::Log),
            ("other/x.bin", ProductType::Science),
            ("top-level.fits", ProductType::Science),
            ("science/deep/er/x.fits", ProductType::Science),
            ("plots/qa/x.png", ProductType::Plot),
        ] {
            assert_eq!(ProductType::of_output(relative), want, "{relative}");
        }
        assert_eq!(
            serde_json::to_value(ProductType::QaMetric).unwrap(),
            json!("QA_METRIC")
        );
    }

    #[test]
    fn sidecars_become_metadata_and_are_not_products() {
        let files = [
            file("plots/spectrum.png", None),
            file("science/a.hdf5", None),
            file(
                "science/a.hdf5.metadata.json",
                Some("{\"rms_noise\": 0.023}"),
            ),
            file("science/b.hdf5", None),
        ];
        let (products, warnings) = products("baseline", Collected::Output, &files, 7);
        assert!(warnings.is_empty(), "{warnings:?}");
        let summary: Vec<(u64, &str, ProductType, Option<&Value>)> = products
            .iter()
            .map(|p| {
                (
                    p.data_product_id,
                    p.path.as_str(),
                    p.product_type,
                    p.metadata.as_ref(),
                )
            })
            .collect();
        let metadata = json!({"rms_noise": 0.023});
        assert_eq!(
            summary,
            [
                (
                    7,
                    "/workflow/output/plots/spectrum.png",
                    ProductType::Plot,
                    None
                ),
                (
                    8,
                    "/workflow/output/science/a.hdf5",
                    ProductType::Science,
                    Some(&metadata)
                ),
                (
                    9,
                    "/workflow/output/science/b.hdf5",
                    ProductType::Science,
                    None
                ),
            ]
        );
        assert_eq!(products[1].relative_path, "science/a.hdf5");
        assert_eq!(products[1].sha256, "sha-of-science/a.hdf5");
        assert_eq!(products[1].step, "baseline");
    }

    #[test]
    fn a_broken_or_orphaned_sidecar_is_a_warning_naming_the_file_and_position() {
        let files = [
            file("science/a.hdf5", None),
            file(
                "science/a.hdf5.metadata.json",
                Some("{\n  \"rms\": 0.02,\n}"),
            ),
            file("science/gone.hdf5.metadata.json", Some("{}")),
        ];
        let (products, warnings) = products("baseline", Collected::Output, &files, 1);
        assert_eq!(products.len(), 1, "the product stays: {products:?}");
        assert_eq!(products[0].metadata, None);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings.iter().any(|w| w.contains(
                "/workflow/output/science/a.hdf5.metadata.json:3:1: the metadata sidecar is not valid JSON"
            )),
            "{warnings:?}"
        );
        assert!(
            warnings.iter().any(
                |w| w.contains("gone.hdf5.metadata.json") && w.contains("which does not exist")
            ),
            "{warnings:?}"
        );
    }

    #[test]
    fn workspace_files_are_intermediates_under_the_steps_folder() {
        let files = [
            file("scan001_cal.hdf5", None),
            file("sub/scan002_cal.hdf5", None),
            file("scan001_cal.hdf5.metadata.json", Some("[1, 2]")),
        ];
        let (products, warnings) = products(
            "calibrate",
            Collected::Workspace { step: "calibrate" },
            &files,
            1,
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            products
                .iter()
                .map(|p| (p.path.as_str(), p.product_type))
                .collect::<Vec<_>>(),
            [
                (
                    "/workflow/workspace/calibrate/scan001_cal.hdf5",
                    ProductType::Intermediate
                ),
                (
                    "/workflow/workspace/calibrate/sub/scan002_cal.hdf5",
                    ProductType::Intermediate
                ),
            ]
        );
        assert_eq!(products[0].metadata, Some(json!([1, 2])));
    }

    #[test]
    fn a_steps_folders_become_bind_arguments_and_its_output_dir_an_env_value() {
        let folder = |channel: &str, direction, managed, path: &str, mounted: &str| PlannedFolder {
            channel: channel.into(),
            direction,
            managed,
            path: path.into(),
            from: None,
            replaces: None,
            mounted_path: Some(mounted.into()),
        };
        let folders = [
            folder("input", FolderDirection::Input, false, "/data/raw", INPUT),
            folder("config", FolderDirection::Input, true, "config/cal", CONFIG),
            folder(
                "workspace",
                FolderDirection::Output,
                true,
                "workspace",
                WORKSPACE,
            ),
            folder("logs", FolderDirection::Output, true, "logs/cal", LOGS),
        ];
        let run = Path::new("/runs/pipeline-run-1");
        let private = Path::new("/run/user/1/tapir-manifest-x");
        let bind = |host: &str, container: &str, read_only| PlannedBind {
            host_path: PathBuf::from(host),
            container_path: container.into(),
            read_only,
        };
        assert_eq!(
            step_run_options(&folders, None, run, Some(private)).0[1],
            bind("/run/user/1/tapir-manifest-x", CONFIG, true)
        );
        assert_eq!(
            step_run_options(&folders, Some("/workflow/workspace/cal/"), run, None),
            (
                vec![
                    bind("/data/raw", INPUT, true),
                    bind("/runs/pipeline-run-1/config/cal", CONFIG, true),
                    bind("/runs/pipeline-run-1/workspace", WORKSPACE, false),
                    bind("/runs/pipeline-run-1/logs/cal", LOGS, false),
                ],
                vec![EnvOverride {
                    name: "WORKFLOW_OUTPUT_DIR".into(),
                    value: "/workflow/workspace/cal/".into()
                }]
            )
        );
        assert_eq!(
            step_output_on_host("cal", "/workflow/workspace/cal/", run),
            (
                PathBuf::from("/runs/pipeline-run-1/workspace/cal"),
                Collected::Workspace { step: "cal" }
            )
        );
        assert_eq!(
            step_output_on_host("base", "/workflow/output/", run),
            (
                PathBuf::from("/runs/pipeline-run-1/output"),
                Collected::Output
            )
        );
    }

    #[test]
    fn scan_reads_sizes_digests_and_sidecars_from_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("science/deep")).unwrap();
        std::fs::write(dir.path().join("science/deep/x.fits"), "abc").unwrap();
        std::fs::write(
            dir.path().join("science/deep/x.fits.metadata.json"),
            "{\"k\": 1}",
        )
        .unwrap();
        std::fs::write(dir.path().join("a.txt"), "").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
        let files = scan(dir.path()).unwrap();
        assert_eq!(
            files
                .iter()
                .map(|f| (f.relative_path.as_str(), f.size_bytes))
                .collect::<Vec<_>>(),
            [
                ("a.txt", 0),
                ("science/deep/x.fits", 3),
                ("science/deep/x.fits.metadata.json", 8)
            ],
            "sorted, symlinks not followed"
        );
        assert_eq!(
            files[1].sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(files[1].text, None);
        assert_eq!(files[2].text.as_deref(), Some("{\"k\": 1}"));
        assert_eq!(
            list_files(dir.path()).unwrap(),
            [
                "a.txt",
                "science/deep/x.fits",
                "science/deep/x.fits.metadata.json"
            ]
        );
        assert!(list_files(&dir.path().join("missing")).unwrap().is_empty());
    }
}
