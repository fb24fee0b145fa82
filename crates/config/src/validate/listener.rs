//! The listener's guards: `[server]`'s timeouts and caps, and each client key's cap on
//! requests in flight.
//!
//! The decision: none of them may be turned off. A zero timeout or cap is refused
//! rather than read as "none", since a listener without them is open to slowloris
//! clients and floods; a large value is the way to loosen one.

use crate::path::FieldPath;
use crate::resolved::Listener;
use crate::schema;

use super::Checker;

/// The most connections, and the most requests in flight per key, that may be set.
const MAX_CAP: u64 = 1_000_000;
/// The bounds of `max_header_bytes`.
const HEADER_BYTES: std::ops::RangeInclusive<u64> = (1 << 10)..=(1 << 20);

/// `[server]`'s listener settings.
pub(super) fn listener(c: &mut Checker<'_>, raw: &schema::Server) -> Option<Listener> {
    let path = FieldPath::root("server");
    let header_read_timeout = c.positive(path.key("header_read_timeout"), raw.header_read_timeout);
    let body_read_timeout = c.positive(path.key("body_read_timeout"), raw.body_read_timeout);
    let idle_timeout = c.positive(path.key("idle_timeout"), raw.idle_timeout);
    let max_connections = cap(c, path.key("max_connections"), raw.max_connections);
    let max_header_bytes = raw.max_header_bytes.0;
    let max_header_bytes = if HEADER_BYTES.contains(&max_header_bytes) {
        usize::try_from(max_header_bytes).ok()
    } else {
        c.invalid(
            path.key("max_header_bytes"),
            format!("{max_header_bytes} bytes is not in 1KiB..=1MiB"),
        );
        None
    };
    Some(Listener {
        header_read_timeout: header_read_timeout?,
        body_read_timeout: body_read_timeout?,
        idle_timeout: idle_timeout?,
        max_connections: usize::try_from(max_connections?).ok()?,
        max_header_bytes: max_header_bytes?,
    })
}

/// A client key's `max_concurrent_requests`; `u32::MAX` stands in after a problem was
/// recorded (the configuration is refused then anyway).
pub(super) fn max_concurrent_requests(c: &mut Checker<'_>, path: FieldPath, value: u64) -> u32 {
    cap(c, path, value)
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or(u32::MAX)
}

fn cap(c: &mut Checker<'_>, path: FieldPath, value: u64) -> Option<u64> {
    if (1..=MAX_CAP).contains(&value) {
        Some(value)
    } else {
        c.invalid(path, format!("{value} is not in 1..={MAX_CAP}"));
        None
    }
}
