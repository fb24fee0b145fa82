//! SQLite reads and writes of the quality gate's verdicts on configuration versions.

use rusqlite::{Connection, OptionalExtension, params};

use crate::coordination::ConfigGate;
use crate::validate::millis;
use crate::{Result, StoreError};

pub(super) fn record(conn: &Connection, gate: &ConfigGate, report: &str) -> Result<()> {
    let version = millis("gate.version", gate.version)?;
    let decided = millis("gate.decided_at_ms", gate.decided_at_ms)?;
    let known: Option<i64> = conn
        .prepare_cached("SELECT version FROM config_versions WHERE version = ?1")?
        .query_row([version], |r| r.get(0))
        .optional()?;
    if known.is_none() {
        return Err(StoreError::not_found(
            "config version",
            gate.version.to_string(),
        ));
    }
    conn.prepare_cached(
        "INSERT INTO config_gates (version, passed, action, report, decided_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (version) DO UPDATE SET \
         passed = excluded.passed, action = excluded.action, report = excluded.report, \
         decided_at = excluded.decided_at",
    )?
    .execute(params![version, gate.passed, gate.action, report, decided])?;
    Ok(())
}

pub(super) fn list(conn: &Connection, from: u64, to: u64) -> Result<Vec<ConfigGate>> {
    let (from, to) = (millis("from", from)?, millis("to", to)?);
    let mut stmt = conn.prepare_cached(
        "SELECT version, passed, action, report, decided_at FROM config_gates \
         WHERE version BETWEEN ?1 AND ?2 ORDER BY version",
    )?;
    let rows = stmt.query_map([from, to], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, bool>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, i64>(4)?,
        ))
    })?;
    rows.map(|row| {
        let (version, passed, action, report, decided) = row?;
        crate::rows::config_gate(version, passed, action, &report, decided)
    })
    .collect()
}
