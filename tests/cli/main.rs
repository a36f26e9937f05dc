//! The one integration-test binary: runs the real `tapir` executable in a clean
//! environment. One module per area.

mod support;

mod backends;
mod docs;
mod engine_faults;
mod engine_options;
mod help;
mod images;
mod inspect_pipelines;
mod inspect_runs;
mod k8s;
mod k8s_submit;
mod pipeline;
mod pipeline_export;
mod pipeline_run;
mod pipeline_tapis;
mod readme;
mod registry;
mod run;
mod run_folder;
mod scaffold;
mod session;
mod slurm;
mod templating;
mod validate;
