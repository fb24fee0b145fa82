//! Where the binary's logs go and how they read.
//!
//! Logging starts before a command has read its configuration (an error loading it
//! must be logged too), from `HOLDFAST_LOG` or `info`, as text. A command that serves
//! then applies `[logging]` (its filter and its format) with [`apply`]: the filter and
//! the writing layer each sit behind a reload handle, so the switch needs no second
//! subscriber. (The filter is a layer of its own, not a per-layer filter of the writer:
//! a per-layer filter is registered once, and a reloaded one would be unknown.)
//! `HOLDFAST_LOG`, when set, keeps winning over `logging.filter`, so that an operator
//! can turn up one module without editing the file. Colours are written only to a
//! terminal and never when `NO_COLOR` is set: escape codes in a log file or a log
//! pipeline are noise.

use std::io::IsTerminal;
use std::sync::OnceLock;

use holdfast_config::{LogFormat, Logging};
use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

/// The environment variable that sets the filter, over `logging.filter`.
pub(crate) const ENV_LOG: &str = "HOLDFAST_LOG";

/// The registry under its filter: what the writing layer sits on.
type Filtered = Layered<reload::Layer<EnvFilter, Registry>, Registry>;
type Writer = Box<dyn Layer<Filtered> + Send + Sync>;

struct Handles {
    filter: reload::Handle<EnvFilter, Registry>,
    writer: reload::Handle<Writer, Filtered>,
}

static HANDLES: OnceLock<Handles> = OnceLock::new();

/// Starts logging to stderr, as text, filtered by `HOLDFAST_LOG` or `info`.
pub(crate) fn init() {
    let (filter, filter_handle) = reload::Layer::new(filter(None));
    let (writer, writer_handle) = reload::Layer::new(writer(LogFormat::Text));
    if tracing_subscriber::registry()
        .with(filter)
        .with(writer)
        .try_init()
        .is_ok()
    {
        let _ = HANDLES.set(Handles {
            filter: filter_handle,
            writer: writer_handle,
        });
    }
}

/// Switches to the configuration's filter (unless `HOLDFAST_LOG` is set) and format.
pub(crate) fn apply(logging: &Logging) {
    let Some(handles) = HANDLES.get() else { return };
    let applied = handles
        .writer
        .reload(writer(logging.format))
        .and_then(|()| handles.filter.reload(filter(Some(&logging.filter))));
    if let Err(e) = applied {
        tracing::warn!(error = %e, "applying [logging] failed; logging goes on as it was");
    }
}

/// `HOLDFAST_LOG` when set and valid, else `configured`, else `info`.
fn filter(configured: Option<&str>) -> EnvFilter {
    if let Ok(filter) = EnvFilter::try_from_env(ENV_LOG) {
        return filter;
    }
    configured
        .and_then(|directives| EnvFilter::builder().parse(directives).ok())
        .unwrap_or_else(|| EnvFilter::new("info"))
}

fn writer(format: LogFormat) -> Writer {
    let base = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match format {
        LogFormat::Text => base.with_ansi(colours()).boxed(),
        LogFormat::Json => base
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    }
}

/// Whether stderr takes colours: a terminal, and `NO_COLOR` unset (no-color.org).
fn colours() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
