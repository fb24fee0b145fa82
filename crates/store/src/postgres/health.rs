//! PostgreSQL's side of the health nodes share: bucket takes and breaker notes.
//!
//! A take locks its bucket's row (the upsert) until the exchange commits, so nodes
//! taking at once are served one after the other and never grant the same units.

use sqlx::{PgConnection, Row};

use crate::Result;
use crate::health::{self, HealthExchange, HealthReply, NOTE_RETENTION_MS, NOTES_PER_EXCHANGE};
use crate::validate::millis;

pub(super) async fn exchange(
    c: &mut PgConnection,
    exchange: &HealthExchange,
    now_ms: u64,
) -> Result<HealthReply> {
    let now = millis("now", now_ms)?;
    let mut granted = vec![0; exchange.takes.len()];
    // Buckets are locked in name order, so that two nodes taking the same buckets
    // listed in another order (their configurations differ) cannot deadlock.
    let mut order: Vec<usize> = (0..exchange.takes.len()).collect();
    order.sort_by(|a, b| exchange.takes[*a].bucket.cmp(&exchange.takes[*b].bucket));
    for index in order {
        let take = &exchange.takes[index];
        // Creates the bucket full, or locks it; answers its state before this take.
        let row = sqlx::query(
            "INSERT INTO rate_buckets (name, available, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET name = excluded.name \
             RETURNING available, updated_at",
        )
        .bind(&take.bucket)
        .bind(take.capacity)
        .bind(now)
        .fetch_one(&mut *c)
        .await?;
        let available = health::refilled(take, row.try_get(0)?, row.try_get(1)?, now);
        let units = health::granted(take, available);
        sqlx::query(
            "UPDATE rate_buckets SET available = $2, updated_at = greatest(updated_at, $3) \
             WHERE name = $1",
        )
        .bind(&take.bucket)
        .bind(available - units as f64)
        .bind(now)
        .execute(&mut *c)
        .await?;
        granted[index] = units;
    }
    if !exchange.publish.is_empty() {
        let cutoff = now.saturating_sub(NOTE_RETENTION_MS as i64);
        sqlx::query("DELETE FROM breaker_notes WHERE at < $1")
            .bind(cutoff)
            .execute(&mut *c)
            .await?;
        for note in &exchange.publish {
            sqlx::query(
                "INSERT INTO breaker_notes (target, node, open_until, at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&note.target)
            .bind(&note.node)
            .bind(health::until_column(note.kind))
            .bind(now)
            .execute(&mut *c)
            .await?;
        }
    }
    let after = millis("after_note", exchange.after_note)?;
    let rows = sqlx::query(
        "SELECT id, target, node, open_until, at FROM breaker_notes WHERE id > $1 \
         ORDER BY id LIMIT $2",
    )
    .bind(after)
    .bind(i64::from(NOTES_PER_EXCHANGE))
    .fetch_all(&mut *c)
    .await?;
    let notes = rows
        .iter()
        .map(|r| {
            Ok(health::note(
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(HealthReply { granted, notes })
}
