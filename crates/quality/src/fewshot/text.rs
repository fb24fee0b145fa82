//! How the library reads text: the words of an input, and its near-duplicate key.
//!
//! One tokenizer serves both, so "two inputs are near-duplicates" and "two inputs
//! share words" mean the same thing: words are runs of letters and digits, compared
//! lowercase; case, punctuation and spacing never make two inputs different.

use sha2::{Digest, Sha256};

/// The words of `text`, lowercase, in order.
pub(crate) fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// The near-duplicate key of an input: the SHA-256 (hex) of its words, so inputs that
/// differ only in case, punctuation or spacing share it.
pub fn fingerprint(input: &str) -> String {
    let mut hash = Sha256::new();
    for (i, word) in words(input).enumerate() {
        if i > 0 {
            hash.update(b" ");
        }
        hash.update(word.as_bytes());
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_punctuation_and_spacing_do_not_make_inputs_different() {
        assert_eq!(
            fingerprint("Refund order #123, please!"),
            fingerprint("  refund ORDER 123 please")
        );
        assert_ne!(
            fingerprint("refund order 123"),
            fingerprint("refund order 124")
        );
        assert_eq!(fingerprint("x").len(), 64);
    }

    #[test]
    fn words_are_lowercase_runs_of_letters_and_digits() {
        let w: Vec<_> = words("Où est-il? Ticket#42").collect();
        assert_eq!(w, ["où", "est", "il", "ticket", "42"]);
    }
}
