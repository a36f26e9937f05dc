//! `tapir schema pc|task`: print a bundled JSON Schema.

use crate::cli::{KindArg, SchemaArgs};
use crate::error::{ExitStatus, Result};
use crate::output;
use crate::schema::Kind;

pub fn run(args: &SchemaArgs) -> Result<ExitStatus> {
    let kind = match args.kind {
        KindArg::Pc => Kind::ProcessingContainer,
        KindArg::Task => Kind::Task,
    };
    output::stdout(kind.schema_text());
    Ok(ExitStatus::Success)
}
