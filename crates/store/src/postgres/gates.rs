//! PostgreSQL reads and writes of the quality gate's verdicts on configuration versions.

use sqlx::{PgConnection, Row};

use crate::coordination::ConfigGate;
use crate::validate::millis;
use crate::{Result, StoreError};

pub(super) async fn record(c: &mut PgConnection, gate: &ConfigGate, report: &str) -> Result<()> {
    let version = millis("gate.version", gate.version)?;
    let decided = millis("gate.decided_at_ms", gate.decided_at_ms)?;
    let known = sqlx::query("SELECT version FROM config_versions WHERE version = $1")
        .bind(version)
        .fetch_optional(&mut *c)
        .await?;
    if known.is_none() {
        return Err(StoreError::not_found(
            "config version",
            gate.version.to_string(),
        ));
    }
    sqlx::query(
        "INSERT INTO config_gates (version, passed, action, report, decided_at) \
         VALUES ($1, $2, $3, $4::json, hf_ts($5)) ON CONFLICT (version) DO UPDATE SET \
         passed = excluded.passed, action = excluded.action, report = excluded.report, \
         decided_at = excluded.decided_at",
    )
    .bind(version)
    .bind(gate.passed)
    .bind(&gate.action)
    .bind(report)
    .bind(decided)
    .execute(c)
    .await?;
    Ok(())
}

pub(super) async fn list(c: &mut PgConnection, from: u64, to: u64) -> Result<Vec<ConfigGate>> {
    let (from, to) = (millis("from", from)?, millis("to", to)?);
    let rows = sqlx::query(
        "SELECT version, passed, action, report::text, hf_ms(decided_at) FROM config_gates \
         WHERE version BETWEEN $1 AND $2 ORDER BY version",
    )
    .bind(from)
    .bind(to)
    .fetch_all(c)
    .await?;
    rows.iter()
        .map(|r| {
            let report: String = r.try_get(3)?;
            crate::rows::config_gate(
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                &report,
                r.try_get(4)?,
            )
        })
        .collect()
}
