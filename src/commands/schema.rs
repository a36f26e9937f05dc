//! `tapir schema pc|task|pipeline|pipeline-conf`: print a bundled JSON Schema.

use crate::cli::{SchemaArgs, SchemaKind};
use crate::error::{ExitStatus, Result};
use crate::output;
use crate::schema::Kind;

pub(crate) fn run(args: &SchemaArgs) -> Result<ExitStatus> {
    let text = match args.kind {
        SchemaKind::Pc => Kind::ProcessingContainer.schema_text(),
        SchemaKind::Task => Kind::Task.schema_text(),
        SchemaKind::Pipeline => crate::schema::PIPELINE_SCHEMA,
        SchemaKind::PipelineConf => crate::schema::PIPELINE_CONF_SCHEMA,
    };
    output::stdout(text);
    Ok(ExitStatus::Success)
}
