//! The `tapir` binary: parse the command line, hand it to the library, exit with its code.

use std::process::ExitCode;

fn main() -> ExitCode {
    tapir::main_with_args(std::env::args_os())
}
