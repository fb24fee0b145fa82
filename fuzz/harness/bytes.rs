//! Byte-level mutations: what any reader must survive whatever its grammar (flipped
//! bits, invalid UTF-8, cut-off input, repeated and spliced ranges, grammar tokens
//! dropped in at random places).
//!
//! The decision: every mutation is bounded by [`MAX_INPUT`], so that a run's memory and
//! time per case stay flat however many mutations are stacked on one input; growth
//! that would pass the cap is cut back to it.

use super::rng::Rng;

/// The largest input a mutation produces.
pub(crate) const MAX_INPUT: usize = 256 * 1024;

/// Bytes that break readers: invalid UTF-8 lead and continuation bytes, an overlong
/// encoding, a lone surrogate's encoding, NUL, line endings, a BOM's first byte.
const INTERESTING_BYTES: &[u8] = &[
    0x00, 0x01, 0x09, 0x0A, 0x0D, 0x1F, 0x20, 0x22, 0x27, 0x2C, 0x3A, 0x3D, 0x5B, 0x5C, 0x5D, 0x7B,
    0x7D, 0x7F, 0x80, 0xBF, 0xC0, 0xC1, 0xC3, 0xED, 0xEF, 0xF4, 0xF5, 0xFE, 0xFF,
];

/// Multi-byte sequences worth dropping in anywhere.
const INTERESTING_RUNS: &[&[u8]] = &[
    b"\xEF\xBB\xBF",       // a BOM
    b"\xC3\x28",           // invalid 2-byte sequence
    b"\xE2\x82",           // truncated 3-byte sequence
    b"\xED\xA0\x80",       // a UTF-16 surrogate, UTF-8 encoded (invalid)
    b"\xC0\xAF",           // an overlong '/'
    b"\xF0\x9F\x92\xA9",   // a 4-byte character
    "\u{202E}".as_bytes(), // right-to-left override
    "\u{FEFF}".as_bytes(),
    b"\r\n",
    b"\r",
    b"\\u0000",
    b"\\ud800",
    b"\\udc00\\ud800",
];

/// Applies one random byte-level mutation to `data`; `other` is another input to
/// splice from and `tokens` the grammar's own words.
pub(crate) fn mutate(data: &mut Vec<u8>, rng: &mut Rng, other: &[u8], tokens: &[&str]) {
    match rng.below(11) {
        0 if !data.is_empty() => {
            let i = rng.below(data.len());
            data[i] ^= 1 << rng.below(8);
        }
        1 if !data.is_empty() => {
            let i = rng.below(data.len());
            data[i] = *rng.pick(INTERESTING_BYTES);
        }
        2 => {
            let at = rng.below(data.len() + 1);
            let n = rng.len(64);
            let run: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            insert(data, at, &run);
        }
        3 if !data.is_empty() => {
            let start = rng.below(data.len());
            let n = rng.len(data.len() - start);
            data.drain(start..(start + n).min(data.len()));
        }
        4 if !data.is_empty() => {
            let start = rng.below(data.len());
            let n = rng.len(data.len() - start).min(data.len() - start);
            let copy = data[start..start + n].to_vec();
            let at = rng.below(data.len() + 1);
            let times = if rng.one_in(8) { rng.len(1000) } else { 1 };
            for _ in 0..times {
                insert(data, at, &copy);
            }
        }
        5 if !other.is_empty() => {
            let start = rng.below(other.len());
            let n = rng.len(other.len() - start).min(other.len() - start);
            let at = rng.below(data.len() + 1);
            insert(data, at, &other[start..start + n]);
        }
        6 if !data.is_empty() => {
            let keep = rng.below(data.len());
            data.truncate(keep);
        }
        7 | 8 if !tokens.is_empty() => {
            let at = rng.below(data.len() + 1);
            let token = rng.pick(tokens).as_bytes().to_vec();
            insert(data, at, &token);
        }
        9 => {
            let at = rng.below(data.len() + 1);
            let run = rng.pick(INTERESTING_RUNS).to_vec();
            insert(data, at, &run);
        }
        _ => replace_number(data, rng),
    }
    data.truncate(MAX_INPUT);
}

/// Inserts `bytes` at `at`, within [`MAX_INPUT`].
pub(crate) fn insert(data: &mut Vec<u8>, at: usize, bytes: &[u8]) {
    let room = MAX_INPUT.saturating_sub(data.len());
    let bytes = &bytes[..bytes.len().min(room)];
    let at = at.min(data.len());
    data.splice(at..at, bytes.iter().copied());
}

/// Numbers at the edges of every integer and float type a reader might use.
pub(crate) const INTERESTING_NUMBERS: &[&str] = &[
    "0",
    "-0",
    "-1",
    "1",
    "2",
    "255",
    "256",
    "65535",
    "65536",
    "2147483647",
    "2147483648",
    "-2147483649",
    "4294967295",
    "4294967296",
    "9007199254740993",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "340282366920938463463374607431768211456",
    "1e308",
    "1.7976931348623157e309",
    "-1e400",
    "1e-400",
    "5e-324",
    "0.1",
    "-0.0",
    "1.5",
    "1E+2",
    "123456789012345678901234567890123456789012345678901234567890",
];

/// Replaces a run of ASCII digits (or, when there is none, a random spot) with an
/// interesting number.
fn replace_number(data: &mut Vec<u8>, rng: &mut Rng) {
    let digits: Vec<usize> = data
        .iter()
        .enumerate()
        .filter(|(_, b)| b.is_ascii_digit())
        .map(|(i, _)| i)
        .collect();
    let number = rng.pick(INTERESTING_NUMBERS).as_bytes().to_vec();
    if digits.is_empty() {
        let at = rng.below(data.len() + 1);
        insert(data, at, &number);
        return;
    }
    let start = *rng.pick(&digits);
    let end = data[start..]
        .iter()
        .position(|b| !b.is_ascii_digit())
        .map_or(data.len(), |n| start + n);
    data.splice(start..end, number);
}
