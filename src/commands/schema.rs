//! `tapir schema pc|task|pipeline|pipeline-conf`: print a bundled JSON Schema.

use crate::cli::{KindArg, SchemaArgs};
use crate::error::Result;
use crate::output;
use crate::schema::Kind;

pub fn run(args: &SchemaArgs) -> Result<u8> {
    let text = match args.kind {
        KindArg::Pc => Kind::ProcessingContainer.schema_text(),
        KindArg::Task => Kind::Task.schema_text(),
        KindArg::Pipeline => crate::schema::PIPELINE_SCHEMA,
        KindArg::PipelineConf => crate::schema::PIPELINE_CONF_SCHEMA,
    };
    output::stdout(text);
    Ok(crate::error::exit::OK)
}
