//! The service contract's JSON Schemas as checks for integration tests:
//! [`validate_request`] for what edgebot POSTs to a service, [`validate_response`] for
//! what a service answers. The schemas are read from the project's `schemas/` folder, the
//! same files `SERVICE_CONTRACTS.md` embeds. Use it from a test with
//!
//! ```ignore
//! #[path = "support/contract.rs"]
//! mod contract;
//! ```
//!
//! A failure lists every place the value breaks the schema, one per `;`.

// Each test uses the part it needs.
#![allow(dead_code)]

use serde_json::Value;
use std::path::PathBuf;
use std::sync::OnceLock;

pub const REQUEST_SCHEMA: &str = "schemas/service-request.v1.json";
pub const RESPONSE_SCHEMA: &str = "schemas/service-response.v1.json";

/// Checks a request body against `schemas/service-request.v1.json`.
pub fn validate_request(value: &Value) -> Result<(), String> {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    check(VALIDATOR.get_or_init(|| validator(REQUEST_SCHEMA)), value)
}

/// Checks a response body against `schemas/service-response.v1.json`. The schema cannot
/// check everything edgebot does (sizes in bytes, the buttons of a keyboard in all, which
/// actions an update allows); SERVICE_CONTRACTS.md lists those.
pub fn validate_response(value: &Value) -> Result<(), String> {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    check(VALIDATOR.get_or_init(|| validator(RESPONSE_SCHEMA)), value)
}

/// A file of the project, by its path from the project's root.
pub fn project_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A schema file, parsed.
pub fn load_schema(path: &str) -> Value {
    let file = project_file(path);
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", file.display()))
}

fn validator(path: &str) -> jsonschema::Validator {
    jsonschema::draft202012::new(&load_schema(path))
        .unwrap_or_else(|e| panic!("{path} is not a usable draft 2020-12 schema: {e}"))
}

fn check(validator: &jsonschema::Validator, value: &Value) -> Result<(), String> {
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| {
            // A message repeats the value, which may be a 4097-character text.
            let message: String = e.to_string().chars().take(200).collect();
            format!("at `{}`: {message}", e.instance_path())
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}
