//! Fuzz target: the SSE reader, the way a provider's stream reaches it (in pieces split
//! anywhere), and the decoders behind it: OpenAI chunks, Anthropic events through the
//! translator, and canonical chunks translated back for `/v1/messages` clients.
//!
//! The decision: check the parser's promises, not only the absence of panics. A
//! stream split anywhere gives the same events as the stream whole; an event written
//! by the encoder reads back as itself; the size cap refuses rather than grows.

// A broken property is a panic: that is what a fuzz target reports.
#![allow(clippy::expect_used)]

use holdfast_llm::anthropic::StreamEvent;
use holdfast_llm::openai::ChatChunk;
use holdfast_llm::sse::{SseEvent, SseParser, encode};
use holdfast_llm::translate::{AnthropicStreamTranslator, OpenAiStreamTranslator};

/// A small cap, so that inputs of a few KiB reach the too-large path too.
const SMALL_CAP: usize = 512;

/// Runs one stream; returns its outcome.
pub(crate) fn run(stream: &[u8]) -> String {
    let whole = SseParser::default().feed(stream);
    let split = feed_split(SseParser::default(), stream);
    let events = match (whole, split) {
        (Ok(whole), Ok(split)) => {
            assert_eq!(whole, split, "splitting the stream changed its events");
            whole
        }
        (Err(_), Err(_)) => return "refused: too large".to_owned(),
        (whole, split) => panic!("whole {whole:?} but split {split:?}"),
    };
    let capped = feed_split(SseParser::new(SMALL_CAP), stream);
    if let Ok(capped) = &capped {
        assert_eq!(
            capped, &events,
            "a parser with a smaller cap read other events"
        );
    }
    for event in &events {
        let text = encode(event);
        let read = SseParser::default()
            .feed(text.as_bytes())
            .expect("an encoded event reads");
        assert_eq!(read, vec![event.clone()], "the encoder wrote {text:?}");
    }
    let (openai, anthropic) = decode(&events);
    let mut names: Vec<&str> = events.iter().filter_map(|e| e.event.as_deref()).collect();
    names.sort_unstable();
    names.dedup();
    names.truncate(4);
    format!(
        "ok events {} named {} openai {openai} anthropic {anthropic} capped {}",
        events.len().min(3),
        names.join(","),
        capped.is_ok()
    )
}

/// Feeds `stream` in pieces whose lengths follow from the stream itself (so a case is
/// a pure function of its input): 1, 2, 3, 5, 8… bytes, restarting after 64.
fn feed_split(mut parser: SseParser, stream: &[u8]) -> Result<Vec<SseEvent>, String> {
    let mut events = Vec::new();
    let (mut a, mut b) = (1usize, 1usize);
    let mut rest = stream;
    let start = stream.first().map_or(0, |b| usize::from(*b % 7));
    let first = start.min(rest.len());
    let (head, tail) = rest.split_at(first);
    events.extend(parser.feed(head).map_err(|e| e.to_string())?);
    rest = tail;
    while !rest.is_empty() {
        let n = a.min(rest.len());
        let (piece, tail) = rest.split_at(n);
        events.extend(parser.feed(piece).map_err(|e| e.to_string())?);
        rest = tail;
        (a, b) = (b, a + b);
        if a > 64 {
            (a, b) = (1, 1);
        }
    }
    Ok(events)
}

/// Decodes the events as both providers' streams; returns how each went.
fn decode(events: &[SseEvent]) -> (&'static str, &'static str) {
    let mut back = OpenAiStreamTranslator::new("fuzz", 0);
    let mut openai = "none";
    for event in events {
        let data = event.data.trim();
        if data == "[DONE]" {
            openai = "done";
            continue;
        }
        match serde_json::from_str::<ChatChunk>(data) {
            Ok(chunk) => {
                openai = "chunks";
                for out in back.push(&chunk) {
                    serde_json::to_string(&out).expect("a translated event serialises");
                }
            }
            Err(_) => openai = "malformed",
        }
    }
    back.finish();
    let mut translator = AnthropicStreamTranslator::new(0);
    let mut anthropic = "none";
    for event in events {
        if let Ok(parsed) = serde_json::from_str::<StreamEvent>(&event.data) {
            anthropic = "events";
            for chunk in translator.push(&parsed) {
                serde_json::to_string(&chunk).expect("a translated chunk serialises");
            }
        }
    }
    translator.finish();
    if translator.is_complete() {
        anthropic = "complete";
    }
    (openai, anthropic)
}
