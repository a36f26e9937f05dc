//! One module per subcommand. Each turns its raw clap arguments into validated values,
//! calls the library, and hands the results to `output`.

pub mod run;
pub mod schema;
pub mod supervise;
pub mod validate;
