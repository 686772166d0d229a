//! The embeddings cache ([`EMBEDDINGS`]): FAQ questions embedded once per model, kept as
//! little-endian f32s under (model digest, text digest).

use super::Store;
use super::codec::CodecError;
use super::error::StoreError;
use super::tables::EMBEDDINGS;
use redb::ReadableDatabase;

impl Store {
    /// A cached embedding of a text under a model, if one was stored.
    pub fn embedding(&self, model: u64, text: u64) -> Result<Option<Vec<f32>>, StoreError> {
        let txn = self.db().begin_read()?;
        let table = txn.open_table(EMBEDDINGS)?;
        let Some(value) = table.get((model, text))? else {
            return Ok(None);
        };
        let (floats, []) = value.value().as_chunks::<4>() else {
            return Err(StoreError::unreadable(
                EMBEDDINGS,
                (model, text),
                CodecError::Trailing(value.value().len() % 4),
            ));
        };
        Ok(Some(
            floats.iter().map(|b| f32::from_le_bytes(*b)).collect(),
        ))
    }

    pub(crate) async fn put_embedding(
        &self,
        model: u64,
        text: u64,
        vector: &[f32],
    ) -> Result<(), StoreError> {
        let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.write(move |t| {
            t.embeddings.insert((model, text), bytes.as_slice())?;
            Ok(())
        })
        .await
    }
}
