//! The one integration-test binary: runs the real `tapir` executable in a clean
//! environment. One module per area.

mod support;

mod run;
mod validate;
