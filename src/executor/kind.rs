//! Where a run executes (`--executor`): on this machine, as a Slurm batch job, or as a
//! Kubernetes object. The engine inside (`--mode`) is a separate choice: a Slurm job runs
//! Docker or Apptainer on its node.

/// The executor a run or pipeline uses (`--executor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum ExecutorKind {
    /// A child process on this machine (the default).
    #[default]
    Local,
    /// One Slurm batch job per task attempt.
    Slurm,
    /// One Kubernetes object per task attempt, through `kubectl`.
    #[value(name = "k8s")]
    K8s,
}

impl ExecutorKind {
    /// The executor as `--executor` spells it and records name it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ExecutorKind::Local => "local",
            ExecutorKind::Slurm => "slurm",
            ExecutorKind::K8s => "k8s",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn names_are_the_flag_values() {
        for kind in ExecutorKind::value_variants() {
            let flag = kind.to_possible_value().expect("no hidden variants");
            assert_eq!(flag.get_name(), kind.name());
        }
        assert_eq!(ExecutorKind::default(), ExecutorKind::Local);
    }
}
