use proptest::prelude::*;

use super::*;

fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
    let mut parser = SseParser::default();
    chunks
        .iter()
        .flat_map(|c| parser.feed(c).unwrap())
        .collect()
}

#[test]
fn parses_the_spec_examples() {
    let stream = b"\xEF\xBB\xBF: comment\r\ndata: first\r\ndata:second\r\n\r\nevent:add\rid: 7\rretry: 300\rdata\r\rdata: x\n\n";
    let events = parse_all(&[stream]);
    assert_eq!(
        events,
        vec![
            SseEvent::data("first\nsecond"),
            SseEvent {
                event: Some("add".into()),
                data: String::new(),
                id: Some("7".into()),
                retry: Some(300),
            },
            SseEvent::data("x"),
        ]
    );
}

#[test]
fn a_split_inside_crlf_or_a_utf8_character_changes_nothing() {
    let stream = "data: héllo ✓\r\n\r\n".as_bytes();
    let whole = parse_all(&[stream]);
    for i in 0..stream.len() {
        assert_eq!(
            parse_all(&[&stream[..i], &stream[i..]]),
            whole,
            "split at {i}"
        );
    }
    assert_eq!(whole, vec![SseEvent::data("héllo ✓")]);
}

#[test]
fn an_event_without_data_is_not_dispatched_and_a_trailing_partial_one_is_kept_back() {
    let mut parser = SseParser::default();
    assert!(
        parser
            .feed(b"event: ping\n\ndata: {\"a\"")
            .unwrap()
            .is_empty()
    );
    assert!(parser.has_partial_event());
    assert_eq!(
        parser.feed(b":1}\n\n").unwrap(),
        vec![SseEvent::data("{\"a\":1}")]
    );
    assert!(!parser.has_partial_event());
}

#[test]
fn an_oversized_event_is_an_error_and_the_parser_stays_failed() {
    let mut parser = SseParser::new(16);
    assert!(parser.feed(b"data: 0123456789\n").is_ok());
    let err = parser.feed(b"data: 0123456789\n").unwrap_err();
    assert_eq!(err, SseError::EventTooLarge { limit: 16 });
    assert!(parser.feed(b"\n").is_err());
    // Small events never trip the cap, however many there are.
    let mut parser = SseParser::new(16);
    for _ in 0..100 {
        assert_eq!(parser.feed(b"data: 0123\n\n").unwrap().len(), 1);
    }
}

/// Regression: the bytes of a partial BOM were held back and then read a second time,
/// so the first line counted double against the size cap.
#[test]
fn a_partial_bom_is_read_once_whole_or_split() {
    // The first line is 7 bytes, as is `data: a`: exactly the cap, if counted once.
    let stream = b"\xEF\xBBxyzab\n\ndata: a\n\n";
    for split in 0..stream.len() {
        let mut parser = SseParser::new(7);
        let mut events = parser.feed(&stream[..split]).unwrap();
        events.extend(parser.feed(&stream[split..]).unwrap());
        assert_eq!(events, vec![SseEvent::data("a")], "split at {split}");
    }
}

#[test]
fn a_partial_bom_that_is_not_a_bom_is_content() {
    let events = parse_all(&[b"\xEF", b"\xBBx\n", b"data: y\n\n"]);
    assert_eq!(events, vec![SseEvent::data("y")]);
    let events = parse_all(&[b"\xEF\xBB", b"\xBF", b"data: y\n\n"]);
    assert_eq!(events, vec![SseEvent::data("y")]);
}

#[test]
fn the_encoder_splits_multiline_data_and_strips_breaks_from_names() {
    let event = SseEvent {
        event: Some("a\nb".into()),
        data: "one\r\ntwo\rthree".into(),
        id: None,
        retry: None,
    };
    assert_eq!(
        encode(&event),
        "event: ab\ndata: one\ndata: two\ndata: three\n\n"
    );
}

fn arb_event() -> impl Strategy<Value = SseEvent> {
    (
        proptest::option::of("[a-z_]{1,12}"),
        "[a-zA-Z0-9 {}\":,é✓\n]{0,40}",
        proptest::option::of("[0-9a-f]{1,8}"),
    )
        .prop_map(|(event, data, id)| SseEvent {
            event,
            data,
            id,
            retry: None,
        })
}

fn with_endings(text: &str, ending: &str) -> String {
    text.replace('\n', ending)
}

proptest! {
    #[test]
    fn splitting_the_stream_anywhere_yields_the_same_events(
        events in proptest::collection::vec(arb_event(), 0..8),
        ending in prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
        bom in any::<bool>(),
        comments in any::<bool>(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut text = String::new();
        if bom {
            text.push('\u{FEFF}');
        }
        for event in &events {
            if comments {
                text.push_str(": keep-alive\n");
            }
            encode_into(&mut text, event);
        }
        let bytes = with_endings(&text, ending).into_bytes();
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for p in points {
            chunks.push(&bytes[start..p]);
            start = p;
        }
        chunks.push(&bytes[start..]);
        let parsed = parse_all(&chunks);
        prop_assert_eq!(&parsed, &events);
        prop_assert_eq!(parsed, parse_all(&[&bytes]));
    }
}
