//! The OpenAPI 3.0 document of the admin listener, written by hand.
//!
//! A test (`tests/admin_api.rs`) checks that its paths and methods are exactly those of
//! [`super::routes::ROUTES`], so the two cannot drift apart.

/// `GET /api/v1/openapi.json` serves this as it is.
pub const DOCUMENT: &str = include_str!("openapi.json");
