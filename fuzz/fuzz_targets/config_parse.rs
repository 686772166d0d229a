//! `Config::parse` on arbitrary UTF-8: a config file is written by hand, so any text
//! must give a config or an error that points at a line (lines count from 1), never a
//! panic.

#![no_main]

use edgebot::config::{Config, ConfigError};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|text: &str| {
    match Config::parse(text, Path::new("fuzz.toml")) {
        Ok(config) => {
            // What `edgebot check` prints must not panic either.
            let _ = config.to_redacted_toml();
        }
        Err(ConfigError::Invalid { line, column, .. }) => {
            assert!(line >= 1, "line {line} for {text:?}");
            assert!(column >= 1, "column {column} for {text:?}");
        }
        Err(other) => panic!("parse gave a non-parse error: {other}"),
    }
});
