//! Command handlers: clap argument structs, configuration loading and printing for one command
//! each; the work itself is done by the domain modules they call.

pub mod hunt;
