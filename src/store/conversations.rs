//! LLM conversations: the current dialog of each chat and forum topic ([`DIALOGS`]), the
//! turns of every dialog ([`TURNS`]), the dialogs each user spoke in ([`USER_DIALOGS`], so
//! that `/forget` and the export find them without a scan), each user's personality
//! ([`PERSONALITY_CHOICES`]), and the tokens spent per user and day or month
//! ([`USER_USAGE`]) and per provider and day ([`PROVIDER_USAGE`]).
//!
//! Changes come with a finished update ([`super::Finish::conversation`]) and are applied
//! in its transaction, so an answer is stored, counted and sent exactly once. The current
//! dialog's turns lie at indices `0..next_turn` without gaps (`/forget` closes the ones it
//! makes), so the n-th turn [`Store::turns`] returns from `from_turn` is turn
//! `from_turn + n`.

use super::Store;
use super::codec::{Stored, Versioned};
use super::error::{StoreError, decoded};
use super::records::{
    ConversationChange, Dialog, DialogKey, Exchange, Speaker, TurnRecord, Usage, UsageDelta,
};
use super::tables::{
    DIALOGS, PERSONALITY_CHOICES, PROVIDER_USAGE, TURNS, Tables, USER_DIALOGS, USER_USAGE,
};
use redb::{ReadableDatabase, ReadableTable, Value};
use std::ops::RangeInclusive;

/// The period kinds of a [`USER_USAGE`] key.
const DAY: u8 = 0;
const MONTH: u8 = 1;

type TurnRow = (i64, i64, u32, u32);

fn dialog_row(key: DialogKey) -> (i64, i64) {
    (key.chat_id, key.thread_id)
}

fn turn_row(key: DialogKey, number: u32, index: u32) -> TurnRow {
    (key.chat_id, key.thread_id, number, index)
}

/// The turns of dialog `number` at `key`, from index `from` on.
fn turns_of_dialog(key: DialogKey, number: u32, from: u32) -> RangeInclusive<TurnRow> {
    turn_row(key, number, from)..=turn_row(key, number, u32::MAX)
}

/// The turns at `key` of every dialog number.
fn turns_at(key: DialogKey) -> RangeInclusive<TurnRow> {
    turn_row(key, 0, 0)..=turn_row(key, u32::MAX, u32::MAX)
}

/// The rows of [`USER_DIALOGS`] of user `id`.
fn dialogs_of_user(id: i64) -> RangeInclusive<(i64, i64, i64)> {
    (id, i64::MIN, i64::MIN)..=(id, i64::MAX, i64::MAX)
}

fn dialog_in(
    table: &impl ReadableTable<(i64, i64), Versioned<Dialog>>,
    key: DialogKey,
) -> Result<Option<Dialog>, StoreError> {
    let row = dialog_row(key);
    table
        .get(row)?
        .map(|v| decoded(DIALOGS, row, v.value()))
        .transpose()
}

fn turns_in(
    table: &impl ReadableTable<TurnRow, Versioned<TurnRecord>>,
    rows: RangeInclusive<TurnRow>,
) -> Result<Vec<TurnRecord>, StoreError> {
    table
        .range(rows)?
        .map(|row| {
            let (k, v) = row?;
            decoded(TURNS, k.value(), v.value())
        })
        .collect()
}

/// The usage at `key` of a usage table, zero when there is none.
fn usage_in<'k, K: redb::Key + 'static>(
    table: &impl ReadableTable<K, Versioned<Usage>>,
    handle: impl redb::TableHandle,
    key: K::SelfType<'k>,
) -> Result<Usage, StoreError>
where
    K::SelfType<'k>: Copy + std::fmt::Debug,
{
    match table.get(key)? {
        Some(v) => decoded(handle, key, v.value()),
        None => Ok(Usage::default()),
    }
}

impl Tables<'_> {
    pub(super) fn apply_conversation_change(
        &mut self,
        change: &ConversationChange,
    ) -> Result<(), StoreError> {
        match change {
            ConversationChange::Exchange(exchange) => self.apply_exchange(exchange),
            ConversationChange::Reset { key, at } => {
                if let Some(mut dialog) = dialog_in(&self.dialogs, *key)? {
                    dialog.number = dialog.number.saturating_add(1);
                    dialog.summary.clear();
                    dialog.summarized_upto = 0;
                    dialog.next_turn = 0;
                    dialog.started_at = *at;
                    dialog.last_at = *at;
                    self.dialogs
                        .insert(dialog_row(*key), Stored::new(&dialog))?;
                }
                Ok(())
            }
            ConversationChange::Forget { user_id } => self.forget_conversations_of(*user_id),
            ConversationChange::Choose {
                user_id,
                personality,
            } => {
                self.personality_choices
                    .insert(*user_id, Stored::new(personality))?;
                Ok(())
            }
        }
    }

    fn apply_exchange(&mut self, exchange: &Exchange) -> Result<(), StoreError> {
        let Exchange {
            key,
            number,
            personality,
            question,
            answer,
            replaces_answer,
            summary,
            usage,
        } = exchange;
        let key = *key;
        // A lower number than the stored one is taken for the stored dialog: opening it
        // again would write over the turns it kept.
        let mut dialog = match dialog_in(&self.dialogs, key)? {
            Some(stored) if *number <= stored.number => stored,
            _ => Dialog {
                number: *number,
                personality: personality.clone(),
                summary: String::new(),
                summarized_upto: 0,
                next_turn: 0,
                started_at: answer.at,
                last_at: answer.at,
            },
        };
        dialog.personality.clone_from(personality);
        let replaced = if *replaces_answer {
            self.last_answer(key, dialog.number)?
        } else {
            None
        };
        let stored: Vec<&TurnRecord> = if let Some(index) = replaced {
            // The question answered is stored already.
            self.turns
                .insert(turn_row(key, dialog.number, index), Stored::new(answer))?;
            vec![answer]
        } else {
            let turns: Vec<&TurnRecord> = question.iter().chain([answer]).collect();
            for turn in &turns {
                self.append_turn(key, &mut dialog, turn)?;
            }
            turns
        };
        if let Some((text, upto)) = summary {
            dialog.summary.clone_from(text);
            dialog.summarized_upto = *upto;
        }
        dialog.last_at = dialog.last_at.max(answer.at);
        self.dialogs.insert(dialog_row(key), Stored::new(&dialog))?;
        for turn in stored {
            self.user_dialogs
                .insert((turn.user_id, key.chat_id, key.thread_id), ())?;
        }
        self.add_usage(usage)
    }

    /// Stores `turn` as the next turn of `dialog`; the first turn of a dialog starts it.
    fn append_turn(
        &mut self,
        key: DialogKey,
        dialog: &mut Dialog,
        turn: &TurnRecord,
    ) -> Result<(), StoreError> {
        if dialog.next_turn == 0 {
            dialog.started_at = turn.at;
        }
        self.turns.insert(
            turn_row(key, dialog.number, dialog.next_turn),
            Stored::new(turn),
        )?;
        dialog.next_turn = dialog.next_turn.saturating_add(1);
        Ok(())
    }

    /// The index of the last assistant turn of dialog `number` at `key`.
    fn last_answer(&self, key: DialogKey, number: u32) -> Result<Option<u32>, StoreError> {
        for row in self.turns.range(turns_of_dialog(key, number, 0))?.rev() {
            let (k, v) = row?;
            if decoded(TURNS, k.value(), v.value())?.speaker == Speaker::Assistant {
                return Ok(Some(k.value().3));
            }
        }
        Ok(None)
    }

    fn add_usage(&mut self, delta: &UsageDelta) -> Result<(), StoreError> {
        for key in [
            (delta.user_id, DAY, delta.day),
            (delta.user_id, MONTH, delta.month),
        ] {
            let before = usage_in(&self.user_usage, USER_USAGE, key)?;
            self.user_usage
                .insert(key, Stored::new(&before.plus(delta)))?;
        }
        let key = (delta.day, delta.provider.as_str());
        let before = usage_in(&self.provider_usage, PROVIDER_USAGE, key)?;
        self.provider_usage
            .insert(key, Stored::new(&before.plus(delta)))?;
        Ok(())
    }

    /// `/forget`: the private chat goes whole; elsewhere the user's turns go (see
    /// [`Tables::forget_turns_in`]); then the index rows and the personality choice.
    fn forget_conversations_of(&mut self, user_id: i64) -> Result<(), StoreError> {
        // The private chat (every topic of it) is the user's alone.
        self.dialogs
            .retain_in((user_id, i64::MIN)..=(user_id, i64::MAX), |_, _| false)?;
        self.turns.retain_in(
            (user_id, i64::MIN, 0, 0)..=(user_id, i64::MAX, u32::MAX, u32::MAX),
            |_, _| false,
        )?;
        let shared = self
            .user_dialogs
            .range(dialogs_of_user(user_id))?
            .map(|row| {
                let (_, chat_id, thread_id) = row?.0.value();
                Ok(DialogKey { chat_id, thread_id })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        for key in shared.into_iter().filter(|key| key.chat_id != user_id) {
            self.forget_turns_in(key, user_id)?;
        }
        self.user_dialogs
            .retain_in(dialogs_of_user(user_id), |_, _| false)?;
        self.personality_choices.remove(user_id)?;
        Ok(())
    }

    /// Deletes the turns of `user_id` (theirs and the answers to them) at `key`, a chat
    /// shared with others, in every dialog there. When the current dialog loses turns, the
    /// rest move down to close the gaps, and its summary, which may quote the user, starts
    /// over from the turns left.
    fn forget_turns_in(&mut self, key: DialogKey, user_id: i64) -> Result<(), StoreError> {
        let dialog = dialog_in(&self.dialogs, key)?;
        let current = dialog.as_ref().map(|d| d.number);
        let mut current_lost_turns = false;
        // A turn that does not decode is kept: whose it is cannot be told, and deleting
        // what cannot be read would hide the damage.
        self.turns
            .retain_in(turns_at(key), |(_, _, number, _), stored| {
                let keep = stored.decode().map_or(true, |turn| turn.user_id != user_id);
                current_lost_turns |= !keep && Some(number) == current;
                keep
            })?;
        let Some(mut dialog) = dialog.filter(|_| current_lost_turns) else {
            return Ok(());
        };
        // Moved as the bytes they are, so a damaged turn moves too.
        let left = self
            .turns
            .range(turns_of_dialog(key, dialog.number, 0))?
            .map(|row| Ok(Versioned::<TurnRecord>::as_bytes(&row?.1.value()).to_vec()))
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.turns
            .retain_in(turns_of_dialog(key, dialog.number, 0), |_, _| false)?;
        for (index, bytes) in (0u32..).zip(&left) {
            self.turns.insert(
                turn_row(key, dialog.number, index),
                Versioned::<TurnRecord>::from_bytes(bytes),
            )?;
        }
        dialog.next_turn = u32::try_from(left.len()).unwrap_or(u32::MAX);
        dialog.summary.clear();
        dialog.summarized_upto = 0;
        self.dialogs.insert(dialog_row(key), Stored::new(&dialog))?;
        Ok(())
    }
}

impl Store {
    /// The current dialog at `key`, if there is one.
    pub fn dialog(&self, key: DialogKey) -> Result<Option<Dialog>, StoreError> {
        let txn = self.db().begin_read()?;
        dialog_in(&txn.open_table(DIALOGS)?, key)
    }

    /// The turns of dialog `number` at `key` from index `from_turn` on, oldest first.
    pub fn turns(
        &self,
        key: DialogKey,
        number: u32,
        from_turn: u32,
    ) -> Result<Vec<TurnRecord>, StoreError> {
        let txn = self.db().begin_read()?;
        turns_in(
            &txn.open_table(TURNS)?,
            turns_of_dialog(key, number, from_turn),
        )
    }

    /// The personality the user chose, if any.
    pub fn personality_of(&self, user_id: i64) -> Result<Option<String>, StoreError> {
        let txn = self.db().begin_read()?;
        let table = txn.open_table(PERSONALITY_CHOICES)?;
        table
            .get(user_id)?
            .map(|v| decoded(PERSONALITY_CHOICES, user_id, v.value()))
            .transpose()
    }

    /// The user's usage on `day` and in `month` (see [`UsageDelta`] for how they are
    /// counted), zero where nothing was used.
    pub fn usage_of(
        &self,
        user_id: i64,
        day: u32,
        month: u32,
    ) -> Result<(Usage, Usage), StoreError> {
        let txn = self.db().begin_read()?;
        let table = txn.open_table(USER_USAGE)?;
        Ok((
            usage_in(&table, USER_USAGE, (user_id, DAY, day))?,
            usage_in(&table, USER_USAGE, (user_id, MONTH, month))?,
        ))
    }

    /// Each provider's usage per day from `from_day` to `to_day` (both included), by day
    /// and then provider name: `(provider, day, usage)`.
    pub fn provider_usage(
        &self,
        from_day: u32,
        to_day: u32,
    ) -> Result<Vec<(String, u32, Usage)>, StoreError> {
        let txn = self.db().begin_read()?;
        let table = txn.open_table(PROVIDER_USAGE)?;
        let mut found = Vec::new();
        for row in table.range((from_day, "")..)? {
            let (k, v) = row?;
            let (day, provider) = k.value();
            if day > to_day {
                break;
            }
            let usage = decoded(PROVIDER_USAGE, (day, provider), v.value())?;
            found.push((provider.to_owned(), day, usage));
        }
        Ok(found)
    }

    /// Everything kept of the user's conversations, for an export: each dialog they
    /// spoke in (the current one at each place), with their turns there (theirs and the
    /// answers to them) of every dialog number, oldest first.
    pub fn conversations_of(
        &self,
        user_id: i64,
    ) -> Result<Vec<(DialogKey, Dialog, Vec<TurnRecord>)>, StoreError> {
        let txn = self.db().begin_read()?;
        let index = txn.open_table(USER_DIALOGS)?;
        let dialogs = txn.open_table(DIALOGS)?;
        let turns = txn.open_table(TURNS)?;
        let mut found = Vec::new();
        for row in index.range(dialogs_of_user(user_id))? {
            let (_, chat_id, thread_id) = row?.0.value();
            let key = DialogKey { chat_id, thread_id };
            let Some(dialog) = dialog_in(&dialogs, key)? else {
                continue;
            };
            let mut theirs = turns_in(&turns, turns_at(key))?;
            theirs.retain(|turn| turn.user_id == user_id);
            found.push((key, dialog, theirs));
        }
        Ok(found)
    }
}
