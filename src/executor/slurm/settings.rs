//! Site settings of the Slurm executor: partition, account, QoS, extra `sbatch` options and
//! the path of tapir on the nodes. Nobody types `--partition` on every run, so they come,
//! field by field, highest first, from: the command line's flags, `TAPIR_SLURM_*`
//! environment variables, the user's file (`$TAPIR_SLURM_CONFIG`, else
//! `$XDG_CONFIG_HOME/tapir/slurm.json`, else `~/.config/tapir/slurm.json`), and the
//! site's file (`/etc/tapir/slurm.json`). The files are JSON, which tapir reads anyway;
//! an unknown key is an error with its position (a misspelt `"partiton"` would otherwise
//! be silently unused).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One level's settings; `None`: this level does not say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SlurmSettings {
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// Extra `sbatch` options, each one argument (`--constraint=haswell`).
    pub sbatch_args: Option<Vec<String>>,
    /// The tapir binary on the nodes (default: this binary's path, for a shared install).
    pub tapir_on_node: Option<PathBuf>,
}

/// The site file.
pub(crate) const SITE_FILE: &str = "/etc/tapir/slurm.json";
/// Names the user's file instead of the default place.
pub(crate) const CONFIG_ENV: &str = "TAPIR_SLURM_CONFIG";

impl SlurmSettings {
    /// `self` where it says something, else `lower`.
    pub(crate) fn over(self, lower: SlurmSettings) -> SlurmSettings {
        SlurmSettings {
            partition: self.partition.or(lower.partition),
            account: self.account.or(lower.account),
            qos: self.qos.or(lower.qos),
            sbatch_args: self.sbatch_args.or(lower.sbatch_args),
            tapir_on_node: self.tapir_on_node.or(lower.tapir_on_node),
        }
    }

    /// The `TAPIR_SLURM_*` variables `var` gives (`TAPIR_SLURM_SBATCH_ARGS` is split at
    /// white space).
    pub(crate) fn from_env(var: &dyn Fn(&str) -> Option<String>) -> SlurmSettings {
        let text = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        SlurmSettings {
            partition: text("TAPIR_SLURM_PARTITION"),
            account: text("TAPIR_SLURM_ACCOUNT"),
            qos: text("TAPIR_SLURM_QOS"),
            sbatch_args: text("TAPIR_SLURM_SBATCH_ARGS")
                .map(|v| v.split_whitespace().map(str::to_string).collect()),
            tapir_on_node: text("TAPIR_SLURM_TAPIR").map(PathBuf::from),
        }
    }

    /// Reads a settings file; a missing file says nothing.
    pub(crate) fn from_file(path: &Path) -> Result<SlurmSettings, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(SlurmSettings::default());
            }
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        serde_json::from_str(&text).map_err(|e| {
            format!(
                "{}:{}:{}: {e}\n  fix: the Slurm settings file holds one JSON object with any of \"partition\", \"account\", \"qos\", \"sbatch_args\" (a list) and \"tapir_on_node\"",
                path.display(),
                e.line(),
                e.column()
            )
        })
    }

    /// The user's settings file.
    pub(crate) fn user_file(var: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
        if let Some(file) = var(CONFIG_ENV).filter(|v| !v.is_empty()) {
            return Some(PathBuf::from(file));
        }
        let config = var("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| var("HOME").map(|home| Path::new(&home).join(".config")))?;
        Some(config.join("tapir").join("slurm.json"))
    }

    /// Every level merged: `flags` over the environment over the user's file over the
    /// site's file.
    pub(crate) fn resolve(flags: SlurmSettings) -> Result<SlurmSettings, String> {
        let var = |name: &str| std::env::var(name).ok();
        let user = match Self::user_file(&var) {
            Some(file) => Self::from_file(&file)?,
            None => SlurmSettings::default(),
        };
        let site = Self::from_file(Path::new(SITE_FILE))?;
        Ok(flags.over(Self::from_env(&var)).over(user).over(site))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_field_comes_from_the_highest_level_that_names_it() {
        let flags = SlurmSettings {
            partition: Some("flag".into()),
            ..SlurmSettings::default()
        };
        let env = SlurmSettings::from_env(&|name| match name {
            "TAPIR_SLURM_PARTITION" => Some("env".into()),
            "TAPIR_SLURM_ACCOUNT" => Some("env-account".into()),
            "TAPIR_SLURM_SBATCH_ARGS" => Some(" --constraint=a  --exclusive ".into()),
            "TAPIR_SLURM_QOS" => Some("  ".into()),
            _ => None,
        });
        let file = SlurmSettings {
            account: Some("file-account".into()),
            qos: Some("file-qos".into()),
            tapir_on_node: Some("/opt/tapir".into()),
            ..SlurmSettings::default()
        };
        let merged = flags.over(env).over(file);
        assert_eq!(merged.partition.as_deref(), Some("flag"));
        assert_eq!(merged.account.as_deref(), Some("env-account"));
        assert_eq!(merged.qos.as_deref(), Some("file-qos"));
        assert_eq!(
            merged.sbatch_args,
            Some(vec![
                "--constraint=a".to_string(),
                "--exclusive".to_string()
            ])
        );
        assert_eq!(merged.tapir_on_node, Some(PathBuf::from("/opt/tapir")));
    }

    #[test]
    fn a_settings_file_is_strict_json_with_positions() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("slurm.json");
        std::fs::write(
            &file,
            "{\"partition\": \"debug\", \"sbatch_args\": [\"--exclusive\"]}",
        )
        .expect("write");
        let read = SlurmSettings::from_file(&file).expect("valid");
        assert_eq!(read.partition.as_deref(), Some("debug"));
        std::fs::write(&file, "{\n  \"partiton\": \"debug\"\n}").expect("write");
        let e = SlurmSettings::from_file(&file).err().unwrap_or_default();
        assert!(e.contains("slurm.json:2:") && e.contains("partiton"), "{e}");
        assert_eq!(
            SlurmSettings::from_file(&dir.path().join("missing.json")),
            Ok(SlurmSettings::default())
        );
    }

    #[test]
    fn the_user_file_is_found_by_variable_then_xdg_then_home() {
        let with = |pairs: &'static [(&'static str, &'static str)]| {
            SlurmSettings::user_file(&move |name| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            })
        };
        assert_eq!(
            with(&[(CONFIG_ENV, "/x.json"), ("HOME", "/h")]),
            Some("/x.json".into())
        );
        assert_eq!(
            with(&[("XDG_CONFIG_HOME", "/c"), ("HOME", "/h")]),
            Some("/c/tapir/slurm.json".into())
        );
        assert_eq!(
            with(&[("HOME", "/h")]),
            Some("/h/.config/tapir/slurm.json".into())
        );
        assert_eq!(with(&[]), None);
    }
}
