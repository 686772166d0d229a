//! Fakes of the services edgebot talks to but cannot reach from a test: they speak the
//! real wire formats, errors included, and run as `edgebot fake-api` and `edgebot
//! fake-llm` for anyone testing a bot offline.

pub mod botapi;
pub mod llm;
