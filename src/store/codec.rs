//! The compact, versioned encoding of stored values.
//!
//! A value is one version byte followed by its postcard encoding. postcard is not
//! self-describing, so a record's layout is frozen per version: a new layout gets a new
//! version byte and a migration, and a byte this build does not know is an error, never a
//! misread.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The layout version written by this build.
pub const VALUE_VERSION: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("empty value")]
    Empty,
    #[error("value written with layout version {0}, this build reads {VALUE_VERSION}")]
    UnknownVersion(u8),
    #[error("malformed value: {0}")]
    Malformed(#[from] postcard::Error),
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![VALUE_VERSION];
    // Serializing our own record types into a Vec cannot fail: they hold no maps with
    // non-string keys and no sequences of unknown length.
    out.extend(postcard::to_allocvec(value).expect("records always serialize"));
    out
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        None => Err(CodecError::Empty),
        Some((&VALUE_VERSION, rest)) => Ok(postcard::from_bytes(rest)?),
        Some((&other, _)) => Err(CodecError::UnknownVersion(other)),
    }
}
