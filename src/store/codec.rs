//! The compact, versioned encoding of stored records, and the redb value type over it.
//!
//! A value is one version byte followed by its postcard encoding. postcard is not
//! self-describing, so a record's layout is frozen per version: a new layout gets a new
//! version byte and a migration, and a byte this build does not know is an error, never a
//! misread.
//!
//! A table of records is typed `TableDefinition<K, Versioned<T>>`. redb's
//! `Value::from_bytes` cannot fail, so what a read hands back is a [`Stored<T>`]: the
//! bytes, decoded on demand into `Result<T, CodecError>`. A damaged value is then an error
//! at the call that reads it (which names the table and key), never a panic inside redb.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

/// The layout version written by this build.
pub const VALUE_VERSION: u8 = 1;

/// How far above [`VALUE_VERSION`] a version byte is still taken for a newer edgebot's
/// layout. Layouts change rarely and one version at a time, so a byte further out was
/// never written as a version: it is damage.
const NEWER_SPAN: u8 = 16;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("empty value")]
    Empty,
    /// A version byte just above this build's: a layout of a newer edgebot.
    #[error("value layout version {0}, newer than the {VALUE_VERSION} this build reads")]
    UnknownVersion(u8),
    /// A first byte that no edgebot writes as a version.
    #[error("the first byte {0:#04x} is not a layout version")]
    NotAVersion(u8),
    #[error("malformed value: {0}")]
    Malformed(#[from] postcard::Error),
    #[error("malformed value: {0} bytes left over after the record")]
    Trailing(usize),
    /// A schema 1 outbox row, which kept the action as JSON, did not parse.
    #[error("malformed schema 1 outbox value: {0}")]
    Json(String),
    /// A setting of the store's own (`meta`) that does not hold what its key says.
    #[error("{0}")]
    Setting(&'static str),
}

impl CodecError {
    /// Whether the value is most likely a newer edgebot's, rather than damaged.
    pub fn is_newer(&self) -> bool {
        matches!(self, CodecError::UnknownVersion(_))
    }
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing our own record types into a Vec cannot fail: they hold no maps with
    // non-string keys and no sequences of unknown length.
    postcard::to_extend(value, vec![VALUE_VERSION]).expect("records always serialize")
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        None => Err(CodecError::Empty),
        Some((&VALUE_VERSION, rest)) => match postcard::take_from_bytes(rest)? {
            (value, []) => Ok(value),
            (_, left) => Err(CodecError::Trailing(left.len())),
        },
        Some((&v, _)) if v > VALUE_VERSION && v - VALUE_VERSION <= NEWER_SPAN => {
            Err(CodecError::UnknownVersion(v))
        }
        Some((&v, _)) => Err(CodecError::NotAVersion(v)),
    }
}

/// The redb value type of a table of `T` records in the versioned encoding.
pub(crate) struct Versioned<T>(PhantomData<fn() -> T>);

impl<T> fmt::Debug for Versioned<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Versioned<{}>", std::any::type_name::<T>())
    }
}

/// One stored `T`: its encoded bytes, read from a table or encoded to be written.
pub(crate) struct Stored<'a, T> {
    bytes: Cow<'a, [u8]>,
    record: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> Stored<'static, T> {
    /// Encodes `value` to be written.
    pub fn new(value: &T) -> Stored<'static, T> {
        Stored {
            bytes: Cow::Owned(encode(value)),
            record: PhantomData,
        }
    }
}

impl<T: DeserializeOwned> Stored<'_, T> {
    pub fn decode(&self) -> Result<T, CodecError> {
        decode(&self.bytes)
    }

    /// Decodes the bytes as an older layout `U` of the record, for a migration.
    pub(crate) fn decode_as<U: DeserializeOwned>(&self) -> Result<U, CodecError> {
        decode(&self.bytes)
    }
}

impl<T> fmt::Debug for Stored<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stored")
            .field("version", &self.bytes.first())
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl<T> redb::Value for Versioned<T> {
    type SelfType<'a>
        = Stored<'a, T>
    where
        Self: 'a;
    type AsBytes<'a>
        = &'a [u8]
    where
        Self: 'a;

    fn fixed_width() -> Option<usize> {
        None
    }

    fn from_bytes<'a>(data: &'a [u8]) -> Stored<'a, T>
    where
        Self: 'a,
    {
        Stored {
            bytes: Cow::Borrowed(data),
            record: PhantomData,
        }
    }

    fn as_bytes<'a, 'b: 'a>(value: &'a Stored<'b, T>) -> &'a [u8]
    where
        Self: 'b,
    {
        &value.bytes
    }

    /// The name of `&[u8]`: these tables were created as byte tables and their values are
    /// those bytes unchanged, so files written before the values were typed open as they
    /// are (redb names `[T; N]` like `[u8; N]` for the same reason). That each table holds
    /// the right record is kept by the one list in `tables.rs`.
    fn type_name() -> redb::TypeName {
        <&[u8] as redb::Value>::type_name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_bytes_are_current_newer_or_not_a_version() {
        let mut bytes = encode(&(7u32, String::from("seven")));
        assert_eq!(bytes[0], VALUE_VERSION);
        assert_eq!(
            decode::<(u32, String)>(&bytes).unwrap(),
            (7, "seven".into())
        );
        bytes[0] = VALUE_VERSION + 1;
        assert!(matches!(
            decode::<(u32, String)>(&bytes),
            Err(CodecError::UnknownVersion(2))
        ));
        for garbage in [0, VALUE_VERSION + NEWER_SPAN + 1, 0xee, 0xff] {
            bytes[0] = garbage;
            let err = decode::<(u32, String)>(&bytes).unwrap_err();
            assert!(
                matches!(err, CodecError::NotAVersion(b) if b == garbage),
                "{err}"
            );
            assert!(!err.is_newer());
        }
        assert!(matches!(decode::<u32>(&[]), Err(CodecError::Empty)));
    }

    #[test]
    fn bytes_left_over_are_damage() {
        let mut bytes = encode(&7u32);
        bytes.push(0);
        assert!(matches!(
            decode::<u32>(&bytes),
            Err(CodecError::Trailing(1))
        ));
    }

    #[test]
    fn stored_values_are_the_encoded_bytes() {
        use redb::Value;
        let stored = Stored::new(&(1i64, Some(2u8)));
        let bytes = Versioned::<(i64, Option<u8>)>::as_bytes(&stored);
        assert_eq!(bytes, encode(&(1i64, Some(2u8))).as_slice());
        let back = Versioned::<(i64, Option<u8>)>::from_bytes(bytes);
        assert_eq!(back.decode().unwrap(), (1, Some(2)));
        assert_eq!(
            Versioned::<u8>::type_name(),
            <&[u8] as Value>::type_name(),
            "files of schema 1 open as they are"
        );
    }
}
