//! One fresh store per test: a SQLite file in its own temp directory, or a PostgreSQL
//! schema of its own, so that tests run in parallel and leave nothing behind.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use holdfast_store::{Options, Store};
use sqlx::{Connection, Executor};

/// The document limit the suite runs with (small, to test oversized input cheaply).
pub(crate) const MAX_DOC: usize = 64 * 1024;

pub(crate) struct Harness {
    pub(crate) store: Arc<dyn Store>,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(PathBuf),
    Schema { url: String, schema: String },
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique(name: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name: String = name.chars().take(40).collect();
    format!("hf_{}_{}_{}", std::process::id(), n, name)
}

pub(crate) fn options() -> Options {
    Options {
        max_document_bytes: MAX_DOC,
        ..Options::default()
    }
}

pub(crate) async fn sqlite(name: &str) -> Harness {
    let dir = std::env::temp_dir()
        .join("holdfast-store-tests")
        .join(unique(name));
    let url = format!("sqlite://{}/data/holdfast.db", dir.display());
    let store = holdfast_store::open_with(&url, options()).await.unwrap();
    Harness {
        store,
        cleanup: Cleanup::Dir(dir),
    }
}

pub(crate) async fn postgres(name: &str) -> Option<Harness> {
    let url = crate::needs::postgres_url()?;
    let schema = unique(name);
    let options = Options {
        postgres_schema: Some(schema.clone()),
        postgres_max_connections: 24,
        ..options()
    };
    let store = holdfast_store::open_with(&url, options).await.unwrap();
    Some(Harness {
        store,
        cleanup: Cleanup::Schema { url, schema },
    })
}

impl Harness {
    pub(crate) async fn finish(self) {
        drop(self.store);
        match self.cleanup {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Schema { url, schema } => drop_schema(&url, &schema).await,
        }
    }
}

pub(crate) async fn drop_schema(url: &str, schema: &str) {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    conn.execute(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE").as_str())
        .await
        .unwrap();
}
