//! Server-sent events: an incremental parser and an encoder.
//!
//! The parser follows the WHATWG event-stream rules (LF, CRLF or CR line endings, `:`
//! comments, one optional space after the colon, a leading BOM, `data:` lines joined by
//! `\n`) and accepts bytes split anywhere, even inside a UTF-8 character or between a
//! CR and its LF. The decision that shapes it: it works on bytes and decodes a line only
//! once the line is complete, so no split can corrupt text; and every event has a size
//! cap, so a provider that never ends an event costs bounded memory and gets an error.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` name, if the event had one (the spec's default is `message`).
    pub event: Option<String>,
    /// The `data:` lines, joined by `\n`.
    pub data: String,
    /// The `id:` of this event, if it had one.
    pub id: Option<String>,
    /// The `retry:` reconnection time in milliseconds, if it had one.
    pub retry: Option<u64>,
}

impl SseEvent {
    /// An unnamed event carrying `data`.
    pub fn data(data: impl Into<String>) -> Self {
        SseEvent {
            data: data.into(),
            ..SseEvent::default()
        }
    }

    /// A named event carrying `data`.
    pub fn named(event: impl Into<String>, data: impl Into<String>) -> Self {
        SseEvent {
            event: Some(event.into()),
            data: data.into(),
            ..SseEvent::default()
        }
    }
}

/// Why the parser gave up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// An event grew past the size cap before it ended.
    #[error("server-sent event larger than {limit} bytes")]
    EventTooLarge {
        /// The cap, in bytes.
        limit: usize,
    },
}

/// The default cap on one event: 4 MiB, far above any real chunk.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// An incremental parser: [`SseParser::feed`] bytes as they arrive, get whole events.
#[derive(Debug, Clone)]
pub struct SseParser {
    max_event_bytes: usize,
    /// Bytes of the current, incomplete line.
    line: Vec<u8>,
    /// Whether the last byte seen was a CR (so a following LF ends no new line).
    after_cr: bool,
    /// Bytes of the stream start still compared against the BOM.
    bom_checked: bool,
    event: SseEvent,
    has_data: bool,
    event_bytes: usize,
    failed: Option<SseError>,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl SseParser {
    /// A parser that refuses events larger than `max_event_bytes` (counted as the bytes
    /// of the event's lines, endings excluded).
    pub fn new(max_event_bytes: usize) -> Self {
        SseParser {
            max_event_bytes,
            line: Vec::new(),
            after_cr: false,
            bom_checked: false,
            event: SseEvent::default(),
            has_data: false,
            event_bytes: 0,
            failed: None,
        }
    }

    /// Feeds the next bytes of the stream and returns the events they complete.
    /// After an error the parser stays failed: the stream cannot be trusted any more.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let mut events = Vec::new();
        if !self.bom_checked {
            bytes = self.skip_bom(bytes);
        }
        for &byte in bytes {
            let after_cr = std::mem::replace(&mut self.after_cr, false);
            match byte {
                b'\n' if after_cr => {}
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    self.end_line(&mut events);
                }
                _ => {
                    self.line.push(byte);
                    self.event_bytes += 1;
                    if self.event_bytes > self.max_event_bytes {
                        let err = SseError::EventTooLarge {
                            limit: self.max_event_bytes,
                        };
                        self.failed = Some(err.clone());
                        return Err(err);
                    }
                }
            }
        }
        Ok(events)
    }

    /// Whether bytes of an unfinished event are buffered (at the end of a stream, the
    /// spec discards them).
    pub fn has_partial_event(&self) -> bool {
        !self.line.is_empty() || self.has_data || self.event.event.is_some()
    }

    /// Skips the BOM at the very start, which may arrive split over several feeds.
    fn skip_bom<'a>(&mut self, bytes: &'a [u8]) -> &'a [u8] {
        let seen = self.line.len();
        for (i, &byte) in bytes.iter().enumerate() {
            if seen + i == BOM.len() {
                self.bom_checked = true;
                self.line.clear();
                self.event_bytes = 0;
                return &bytes[i..];
            }
            if BOM[seen + i] != byte {
                // Not a BOM: what was held back is ordinary line content, and so is the
                // rest, from this byte on (the bytes before it are held back already).
                self.bom_checked = true;
                return &bytes[i..];
            }
            self.line.push(byte);
            self.event_bytes += 1;
        }
        if self.line.len() == BOM.len() {
            self.bom_checked = true;
            self.line.clear();
            self.event_bytes = 0;
        }
        &[]
    }

    fn end_line(&mut self, events: &mut Vec<SseEvent>) {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            if self.has_data {
                let mut event = std::mem::take(&mut self.event);
                if event.data.ends_with('\n') {
                    event.data.pop();
                }
                events.push(event);
            }
            self.event = SseEvent::default();
            self.has_data = false;
            self.event_bytes = 0;
            return;
        }
        let line = String::from_utf8_lossy(&line);
        let (field, value) = match line.find(':') {
            Some(0) => return, // a comment
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (&line[..], ""),
        };
        match field {
            "data" => {
                self.event.data.push_str(value);
                self.event.data.push('\n');
                self.has_data = true;
            }
            "event" => self.event.event = Some(value.to_owned()),
            "id" if !value.contains('\0') => self.event.id = Some(value.to_owned()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.event.retry = value.parse().ok();
            }
            _ => {} // unknown fields are ignored
        }
    }
}

/// Appends `event` to `out` in the wire format: one `data:` line per line of data
/// (split on LF, CRLF or CR) and a blank line. Line breaks in the name or id, which the
/// format cannot carry, are dropped.
pub fn encode_into(out: &mut String, event: &SseEvent) {
    if let Some(name) = &event.event {
        push_field(out, "event", name);
    }
    if let Some(id) = &event.id {
        push_field(out, "id", id);
    }
    if let Some(retry) = event.retry {
        out.push_str("retry: ");
        out.push_str(&retry.to_string());
        out.push('\n');
    }
    let data = event.data.replace("\r\n", "\n").replace('\r', "\n");
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
}

/// `event` in the wire format.
pub fn encode(event: &SseEvent) -> String {
    let mut out = String::with_capacity(event.data.len() + 32);
    encode_into(&mut out, event);
    out
}

fn push_field(out: &mut String, field: &str, value: &str) {
    out.push_str(field);
    out.push_str(": ");
    out.extend(value.chars().filter(|c| *c != '\n' && *c != '\r'));
    out.push('\n');
}

#[cfg(test)]
mod tests;
