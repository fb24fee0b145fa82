//! SQLite's side of the health nodes share: bucket takes and breaker notes.

use rusqlite::{Connection, OptionalExtension, params};

use crate::Result;
use crate::health::{self, HealthExchange, HealthReply, NOTE_RETENTION_MS, NOTES_PER_EXCHANGE};
use crate::validate::millis;

pub(super) fn exchange(
    conn: &Connection,
    exchange: &HealthExchange,
    now_ms: u64,
) -> Result<HealthReply> {
    let now = millis("now", now_ms)?;
    let mut granted = Vec::with_capacity(exchange.takes.len());
    for take in &exchange.takes {
        let row: Option<(f64, i64)> = conn
            .prepare_cached("SELECT available, updated_at FROM rate_buckets WHERE name = ?1")?
            .query_row([&take.bucket], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let (available, updated) = row.unwrap_or((take.capacity, now));
        let available = health::refilled(take, available, updated, now);
        let units = health::granted(take, available);
        conn.prepare_cached(
            "INSERT INTO rate_buckets (name, available, updated_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET available = excluded.available, \
             updated_at = max(rate_buckets.updated_at, excluded.updated_at)",
        )?
        .execute(params![take.bucket, available - units as f64, now])?;
        granted.push(units);
    }
    if !exchange.publish.is_empty() {
        let cutoff = now.saturating_sub(NOTE_RETENTION_MS as i64);
        conn.prepare_cached("DELETE FROM breaker_notes WHERE at < ?1")?
            .execute([cutoff])?;
        for note in &exchange.publish {
            conn.prepare_cached(
                "INSERT INTO breaker_notes (target, node, open_until, at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                note.target,
                note.node,
                health::until_column(note.kind),
                now
            ])?;
        }
    }
    let after = millis("after_note", exchange.after_note)?;
    let mut stmt = conn.prepare_cached(
        "SELECT id, target, node, open_until, at FROM breaker_notes WHERE id > ?1 \
         ORDER BY id LIMIT ?2",
    )?;
    let notes = stmt
        .query_map(params![after, NOTES_PER_EXCHANGE], |r| {
            Ok(health::note(
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(HealthReply { granted, notes })
}
