//! Bounded, cleaned text fields.
//!
//! Every free-text field a client sends is trimmed, bounded in characters and
//! stripped of control characters before it is stored, so hostile strings
//! (NUL bytes, terminal escapes, bidi overrides, megabyte names) never reach
//! the database, the logs or an operator's screen.

/// Why a text field was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters")]
    TooLong { max: usize },
    #[error("contains control or invisible formatting characters")]
    ControlCharacter,
}

/// True for characters that must never appear in a stored text field:
/// C0/C1 controls, and the Unicode bidi overrides used to disguise text.
fn is_forbidden(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Trims the value and checks it is non-empty, at most `max` characters and
/// free of forbidden characters.
pub fn clean(value: &str, max: usize) -> Result<String, TextError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(TextError::Empty);
    }
    if trimmed.chars().count() > max {
        return Err(TextError::TooLong { max });
    }
    if trimmed.chars().any(is_forbidden) {
        return Err(TextError::ControlCharacter);
    }
    Ok(trimmed.to_owned())
}

/// Like [`clean`] but an empty or absent value becomes `None`.
pub fn clean_optional(value: Option<&str>, max: usize) -> Result<Option<String>, TextError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => clean(v, max).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_bounds() {
        assert_eq!(clean("  Ada  ", 10), Ok("Ada".to_owned()));
        assert_eq!(clean("   ", 10), Err(TextError::Empty));
        assert_eq!(clean("abcdef", 5), Err(TextError::TooLong { max: 5 }));
        // Characters, not bytes.
        assert_eq!(clean("ééééé", 5), Ok("ééééé".to_owned()));
    }

    #[test]
    fn refuses_controls_and_bidi_overrides() {
        assert_eq!(clean("a\u{0}b", 10), Err(TextError::ControlCharacter));
        assert_eq!(clean("a\u{1b}[31mb", 20), Err(TextError::ControlCharacter));
        assert_eq!(clean("a\u{202E}b", 10), Err(TextError::ControlCharacter));
        assert_eq!(clean_optional(Some(" "), 10), Ok(None));
    }
}
