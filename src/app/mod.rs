//! The application: wires the layers below into the long-running commands.

pub mod replay;
pub mod runtime;
pub mod serve;
