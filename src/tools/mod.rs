//! The tools behind `edgebot model …`: training, evaluation and cross-validation of the
//! spam and sentiment classifiers, and the MiniLM converter. They build and measure the
//! models that `crate::ml` only runs, so nothing here is linked into the bot's serving path.

pub mod cli;
mod data;
mod export;
mod import_minilm;
mod metrics;
mod train;

use std::path::PathBuf;

use crate::ml::MlError;
use import_minilm::ImportError;

/// Everything that can go wrong in a model command.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error(transparent)]
    Ml(#[from] MlError),
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Data {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("training failed: {0}")]
    Training(String),
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
}
