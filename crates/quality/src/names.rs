//! The names a suite gives things (its own name, case ids, tags): what the store
//! accepts as a name, checked when the file is loaded so that a bad one is reported
//! with its line rather than refused by the store half-way through a run.

use holdfast_store::MAX_NAME_LEN;

/// Why `value` is not a valid name, if it is not: 1..=200 bytes of letters, digits and
/// `_ . : / @ -`.
pub(crate) fn check(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > MAX_NAME_LEN {
        return Err(format!("must be 1..={MAX_NAME_LEN} bytes"));
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || "_.:/@-".contains(c);
    match value.chars().find(|c| !ok(*c)) {
        Some(c) => Err(format!(
            "{c:?} is not allowed in {value:?}; use letters, digits and _ . : / @ -"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_what_the_store_takes() {
        assert!(super::check("refund-1").is_ok());
        assert!(super::check("a/b:c@d.e_f").is_ok());
        assert!(super::check("").is_err());
        assert!(super::check("two words").is_err());
        assert!(super::check(&"x".repeat(201)).is_err());
    }
}
