//! `validate --image` and `images` on real images of the local engine, built from the
//! example image (scratch + static busybox) with a few Dockerfile lines each.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::{example_image, run, tapir};

/// Builds `tag` from a Dockerfile whose first line is `FROM <example image>`, with the
/// given files in its context; returns the context folder (a place to run tapir in).
pub(crate) fn build(tag: &str, lines: &[&str], files: &[(&str, &str)]) -> tempfile::TempDir {
    let base = example_image();
    let ctx = tempfile::tempdir().unwrap();
    let mut dockerfile = format!("FROM {base}\n");
    for line in lines {
        dockerfile.push_str(line);
        dockerfile.push('\n');
    }
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    for (name, text) in files {
        std::fs::write(ctx.path().join(name), text).unwrap();
    }
    let mut build = Command::new("docker");
    build
        .args(["build", "-q", "-t", tag])
        .arg(ctx.path())
        .stdout(Stdio::null());
    let buildx = Command::new("docker")
        .args(["buildx", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !buildx {
        build.env("DOCKER_BUILDKIT", "0");
    }
    let out = build.output().unwrap();
    assert!(
        out.status.success(),
        "docker build {tag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ctx
}

/// Every catalogue label, set.
pub(crate) const ALL_LABELS: &str = r#"LABEL org.opencontainers.image.title="tapir-good" org.opencontainers.image.description="An image that passes the image check, about spectra" org.opencontainers.image.version="1.2.0" org.opencontainers.image.authors="Ada <ada@example.org>" org.opencontainers.image.source="https://example.org/good" org.opencontainers.image.documentation="https://example.org/good/docs" org.opencontainers.image.licenses="Apache-2.0" org.opencontainers.image.created="2026-12-01T10:00:00Z" org.opencontainers.image.revision="0123456789abcdef" org.example.team="astro""#;

/// A good image: the example's processing-container.json, every label, a non-root user.
pub(crate) fn good_image() -> &'static str {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let _ctx = build(
            "tapir-test/image-good:1.2.0",
            &[ALL_LABELS, "USER 1000:1000"],
            &[],
        );
    });
    "tapir-test/image-good:1.2.0"
}

/// A processing-container.json whose first template runs a program the image lacks, whose
/// second runs one only root may reach, and whose output is mounted over a file.
const BAD_PC: &str = r#"{
  "name": "tapir-bad",
  "description": "Everything a platform would refuse",
  "templates": [
    {"identifier": "missing", "description": "runs python3", "command": ["python3", "main.py"], "env": [],
     "inputs": [], "outputs": [{"name": "out", "mounted_path": "/etc/hosts-file"}]},
    {"identifier": "closed", "description": "runs a tool in /root", "command": ["/root/app/tool"], "env": [],
     "inputs": [], "outputs": []}
  ]
}
"#;

pub(crate) fn bad_image() -> (&'static str, tempfile::TempDir) {
    let ctx = build(
        "tapir-test/image-bad:latest",
        &[
            "COPY pc.json /processing-container.json",
            r#"RUN ["sh", "-c", "mkdir -p /root/app && cp /bin/busybox /root/app/tool && chmod 0700 /root && echo x > /etc/hosts-file"]"#,
            "ENV API_TOKEN=tok-3f9a7c-never-shown DB_PASSWORD=",
            r#"LABEL com.example.deploy_token="tok-label-5521""#,
        ],
        &[("pc.json", BAD_PC)],
    );
    ("tapir-test/image-bad:latest", ctx)
}

fn which_docker() -> String {
    let out = Command::new("sh")
        .args(["-c", "command -v docker"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn codes(file: &serde_json::Value) -> Vec<String> {
    file["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_good_image_passes_the_image_check_without_findings() {
    let image = good_image();
    let dir = tempfile::tempdir().unwrap();
    let out = run(&mut tapir(
        dir.path(),
        ["validate", "--image", image, "--format", "json"],
    ));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let files = v["files"].as_array().unwrap();
    assert_eq!(files[0]["kind"], "image");
    assert_eq!(files[0]["valid"], true);
    assert_eq!(codes(&files[0]), Vec::<String>::new(), "{}", out.stdout);
    assert_eq!(
        files[1]["file"],
        format!("{image}:/processing-container.json")
    );
    assert_eq!(codes(&files[1]), Vec::<String>::new(), "{}", out.stdout);
    assert_eq!(v["summary"]["errors"], 0);
    assert_eq!(v["summary"]["warnings"], 0);
    // No helper container is left behind.
    let left = Command::new("docker")
        .args([
            "ps",
            "-a",
            "-q",
            "--filter",
            "label=tapir.helper=image-check",
            "--filter",
        ])
        .arg(format!("ancestor={image}"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), "");
}

#[test]
fn a_bad_image_gets_every_finding_at_its_place_and_no_secret_value() {
    let (image, ctx) = bad_image();
    let out = run(&mut tapir(
        ctx.path(),
        ["validate", "--image", image, "--format", "json"],
    ));
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains("tok-3f9a7c"), "{}", out.stdout);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let files = v["files"].as_array().unwrap();
    let image_codes = codes(&files[0]);
    for code in ["runs-as-root", "secret-in-image", "missing-oci-label"] {
        assert!(
            image_codes.contains(&code.to_string()),
            "{code}: {image_codes:?}"
        );
    }
    // Only the secret with a value is reported.
    let secrets: Vec<&serde_json::Value> = files[0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "secret-in-image")
        .collect();
    assert_eq!(secrets.len(), 2, "{}", out.stdout);
    assert!(
        secrets[0]["message"]
            .as_str()
            .unwrap()
            .contains("ENV API_TOKEN")
    );
    assert!(
        secrets[1]["message"]
            .as_str()
            .unwrap()
            .contains("label com.example.deploy_token")
    );
    assert!(!out.stdout.contains("tok-label-5521"));
    // `inspect` and `images` show labels, never a secret one's value.
    let inspect = run(&mut tapir(
        ctx.path(),
        ["inspect", "--format", "json", image],
    ));
    assert_eq!(inspect.code, 0, "{}", inspect.stderr);
    assert!(
        !inspect.stdout.contains("tok-label-5521"),
        "{}",
        inspect.stdout
    );
    let v: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    assert_eq!(v["labels"]["com.example.deploy_token"], "****");
    let listed = run(&mut tapir(
        ctx.path(),
        ["images", "--format", "json", "tool in /root"],
    ));
    assert!(
        listed.stdout.contains("com.example.deploy_token"),
        "{}",
        listed.stdout
    );
    assert!(
        !listed.stdout.contains("tok-label-5521"),
        "{}",
        listed.stdout
    );
    let lines: Vec<&str> = files[0]["label_lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(lines.contains(&"LABEL org.opencontainers.image.licenses=\"<SPDX licence expression, e.g. Apache-2.0>\""), "{lines:?}");
    assert!(
        lines.contains(&"LABEL org.opencontainers.image.created=$CREATED"),
        "{lines:?}"
    );

    let embedded = &files[1];
    assert_eq!(
        codes(embedded),
        [
            "command-not-found",
            "mount-over-file",
            "command-not-runnable-by-any-user"
        ],
        "{}",
        out.stdout
    );
    let findings = embedded["findings"].as_array().unwrap();
    assert_eq!(findings[0]["pointer"], "/templates/0/command/0");
    assert_eq!(findings[0]["line"], 5);
    assert_eq!(
        findings[1]["pointer"],
        "/templates/0/outputs/0/mounted_path"
    );
    assert!(
        findings[2]["message"]
            .as_str()
            .unwrap()
            .contains("/root (mode 0700)"),
        "{}",
        findings[2]
    );

    // Without the API socket (TAPIR_DOCKER: everything through the CLI, `docker export`
    // read as a stream) the check finds the same.
    let docker = which_docker();
    let through_cli = run(tapir(
        ctx.path(),
        ["validate", "--image", image, "--format", "json"],
    )
    .env("TAPIR_DOCKER", docker));
    assert_eq!(through_cli.code, 1, "{}", through_cli.stderr);
    assert_eq!(through_cli.stdout, out.stdout);

    // The human form: snippets in the embedded file, the LABEL lines, the verdict.
    let human = run(&mut tapir(ctx.path(), ["validate", "--image", image]));
    assert_eq!(human.code, 1);
    assert!(
        human
            .stdout
            .contains(&format!("--> {image}:/processing-container.json:5:")),
        "{}",
        human.stdout
    );
    assert!(
        human
            .stdout
            .contains("    LABEL org.opencontainers.image.revision=$REVISION"),
        "{}",
        human.stdout
    );
    assert!(
        human
            .stdout
            .contains(&format!("invalid {image} (image): 5 errors")),
        "{}",
        human.stdout
    );
    assert!(!human.stdout.contains("tok-3f9a7c") && !human.stderr.contains("tok-3f9a7c"));

    // GitHub annotations name the image and the embedded file.
    let github = run(&mut tapir(
        ctx.path(),
        ["validate", "--image", image, "--format", "github"],
    ));
    assert_eq!(github.code, 1);
    assert!(
        github.stdout.contains(
            "::error file=tapir-test/image-bad%3Alatest%3A/processing-container.json,line=5"
        ),
        "{}",
        github.stdout
    );
    assert!(!github.stdout.contains("tok-3f9a7c"));
}

#[test]
fn strict_fails_on_warnings_and_a_missing_image_is_a_usage_error() {
    let image = crate::support::example_image();
    let dir = tempfile::tempdir().unwrap();
    let lenient = run(&mut tapir(dir.path(), ["validate", "--image", image, "-q"]));
    assert_eq!(lenient.code, 0, "{}", lenient.stdout);
    let strict = run(&mut tapir(
        dir.path(),
        ["validate", "--image", image, "--strict"],
    ));
    assert_eq!(strict.code, 1, "{}", strict.stdout);

    let missing = run(&mut tapir(
        dir.path(),
        ["validate", "--image", "tapir-test/not-here:9"],
    ));
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(
        missing
            .stderr
            .contains("tapir-test/not-here:9: image not present locally"),
        "{}",
        missing.stderr
    );

    // Files and images in one call: the worst verdict wins.
    let task = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/upstream-task.json");
    let both = run(&mut tapir(
        dir.path(),
        [
            "validate".as_ref(),
            task.as_os_str(),
            "--image".as_ref(),
            image.as_ref(),
        ],
    ));
    assert_eq!(both.code, 0, "{}\n{}", both.stdout, both.stderr);
    assert!(both.stdout.contains("checked 2 files"), "{}", both.stdout);
}

#[test]
fn images_lists_only_task_api_images_and_searches_them() {
    let good = good_image();
    let (bad, ctx) = bad_image();
    let _no_pc = build(
        "tapir-test/images-no-pc:1",
        &[r#"RUN ["rm", "/processing-container.json"]"#],
        &[],
    );
    let dir = ctx.path();

    let all = run(&mut tapir(dir, ["images", "--format", "json"]));
    assert_eq!(all.code, 0, "{}", all.stderr);
    let v: serde_json::Value = serde_json::from_str(&all.stdout).unwrap();
    let references: Vec<String> = v["images"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| {
            i["references"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_string())
        })
        .collect();
    assert!(references.contains(&good.to_string()), "{references:?}");
    assert!(references.contains(&bad.to_string()), "{references:?}");
    assert!(
        !references.iter().any(|r| r == "tapir-test/images-no-pc:1"),
        "{references:?}"
    );
    let good_entry = v["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| {
            i["references"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == good)
        })
        .unwrap();
    assert_eq!(good_entry["title"], "tapir-good");
    assert_eq!(good_entry["templates"][0]["identifier"], "upstream");
    assert_eq!(good_entry["valid"], true);

    // Without the API socket (everything through the docker CLI) the list is the same.
    let through_cli =
        run(tapir(dir, ["images", "--format", "json"]).env("TAPIR_DOCKER", which_docker()));
    assert_eq!(through_cli.code, 0, "{}", through_cli.stderr);
    let listed = |text: &str| {
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        v["images"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| {
                i["references"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r == good || r == bad)
            })
            .map(|i| (i["id"].clone(), i["title"].clone(), i["templates"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(listed(&all.stdout), listed(&through_cli.stdout));
    assert_eq!(listed(&all.stdout).len(), 2);

    // Keywords (any case, every one) in descriptions and templates; label filters.
    let search = run(&mut tapir(dir, ["images", "SPECTRA", "--format", "json"]));
    let v: serde_json::Value = serde_json::from_str(&search.stdout).unwrap();
    assert_eq!(
        v["images"].as_array().unwrap().len(),
        1,
        "{}",
        search.stdout
    );
    assert!(
        v["images"][0]["references"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == good),
        "{}",
        search.stdout
    );
    let by_template = run(&mut tapir(dir, ["images", "tool in /root"]));
    assert_eq!(by_template.code, 0);
    assert!(by_template.stdout.contains(bad), "{}", by_template.stdout);
    assert!(
        by_template.stdout.contains("closed  runs a tool in /root"),
        "{}",
        by_template.stdout
    );
    assert!(
        by_template.stderr.contains("1 matches"),
        "{}",
        by_template.stderr
    );
    let labelled = run(&mut tapir(
        dir,
        [
            "images",
            "--filter",
            "label=org.example.team=astro",
            "--format",
            "json",
        ],
    ));
    let v: serde_json::Value = serde_json::from_str(&labelled.stdout).unwrap();
    assert_eq!(
        v["images"].as_array().unwrap().len(),
        1,
        "{}",
        labelled.stdout
    );
    let none = run(&mut tapir(
        dir,
        [
            "images",
            "spectra",
            "--filter",
            "label=org.example.team=radio",
        ],
    ));
    assert_eq!(none.code, 0);
    assert_eq!(none.stdout, "");
    assert!(none.stderr.starts_with("0 match"), "{}", none.stderr);

    let bad_filter = run(&mut tapir(dir, ["images", "--filter", "team=astro"]));
    assert_eq!(bad_filter.code, 2);
    assert!(
        bad_filter.stderr.contains("label=KEY"),
        "{}",
        bad_filter.stderr
    );
}
