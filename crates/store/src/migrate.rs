//! Schema migrations, embedded in the binary and applied at open.
//!
//! Each backend has its own ordered list of SQL files (`migrations/<backend>/NNNN_*.sql`)
//! because their dialects differ; both record applied versions in `hf_schema_version`.
//! Opening a database whose recorded version is newer than the newest migration this
//! binary carries is refused ([`crate::StoreError::SchemaTooNew`]) rather than run
//! against a schema it does not understand. Migrations are forward-only.
//!
//! A migration runs when its own version is not recorded, not when it is above the
//! highest recorded one: versions may leave gaps, and a migration numbered into a gap
//! later (a change developed beside another one) still runs on a database that already
//! has the higher version. Migrations therefore never depend on the order of versions
//! they do not name.

/// One migration: its version and its SQL.
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) sql: &'static str,
}

/// The SQLite migrations, in order.
pub(crate) const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../migrations/sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../migrations/sqlite/0002_waiting_timers.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("../migrations/sqlite/0003_tenants.sql"),
    },
    Migration {
        version: 4,
        sql: include_str!("../migrations/sqlite/0004_evals.sql"),
    },
    Migration {
        version: 5,
        sql: include_str!("../migrations/sqlite/0005_config_gates.sql"),
    },
    Migration {
        version: 6,
        sql: include_str!("../migrations/sqlite/0006_examples.sql"),
    },
    Migration {
        version: 7,
        sql: include_str!("../migrations/sqlite/0007_quality_samples.sql"),
    },
    Migration {
        version: 8,
        sql: include_str!("../migrations/sqlite/0008_shared_health.sql"),
    },
    Migration {
        version: 9,
        sql: include_str!("../migrations/sqlite/0009_task_traceparent.sql"),
    },
    Migration {
        version: 10,
        sql: include_str!("../migrations/sqlite/0010_example_vectors.sql"),
    },
];

/// The PostgreSQL migrations, in order.
pub(crate) const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../migrations/postgres/0002_waiting_timers.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("../migrations/postgres/0003_advance_function.sql"),
    },
    Migration {
        version: 4,
        sql: include_str!("../migrations/postgres/0004_advance_many.sql"),
    },
    Migration {
        version: 5,
        sql: include_str!("../migrations/postgres/0005_submit_function.sql"),
    },
    Migration {
        version: 6,
        sql: include_str!("../migrations/postgres/0006_tenants.sql"),
    },
    Migration {
        version: 7,
        sql: include_str!("../migrations/postgres/0007_evals.sql"),
    },
    Migration {
        version: 8,
        sql: include_str!("../migrations/postgres/0008_config_gates.sql"),
    },
    Migration {
        version: 9,
        sql: include_str!("../migrations/postgres/0009_examples.sql"),
    },
    Migration {
        version: 10,
        sql: include_str!("../migrations/postgres/0010_quality_samples.sql"),
    },
    Migration {
        version: 11,
        sql: include_str!("../migrations/postgres/0011_shared_health.sql"),
    },
    Migration {
        version: 12,
        sql: include_str!("../migrations/postgres/0012_task_traceparent.sql"),
    },
    Migration {
        version: 13,
        sql: include_str!("../migrations/postgres/0013_example_vectors.sql"),
    },
];

/// The newest version in `migrations`.
pub(crate) fn latest(migrations: &[Migration]) -> i64 {
    migrations.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Refuses a database migrated by a newer binary.
pub(crate) fn check_not_newer(found: i64, migrations: &[Migration]) -> crate::Result<()> {
    let supported = latest(migrations);
    if found > supported {
        return Err(crate::StoreError::SchemaTooNew { found, supported });
    }
    Ok(())
}
