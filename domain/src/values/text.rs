//! Bounded free text. Free text is where PHI hides, so it is always sealed in
//! events; these types only guarantee it is well-formed and of sane size.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::InvalidValue;

fn check_text(value: &str, max_chars: usize, allow_newlines: bool) -> Result<(), &'static str> {
    if value.trim().is_empty() {
        return Err("must not be empty or only whitespace");
    }
    if value.chars().count() > max_chars {
        return Err(if allow_newlines { "must be at most 20000 characters" } else { "must be at most 200 characters" });
    }
    let bad_control = |c: char| c.is_control() && !(allow_newlines && (c == '\n' || c == '\r' || c == '\t'));
    if value.chars().any(bad_control) {
        return Err("must not contain control characters");
    }
    Ok(())
}

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, $max:expr, $newlines:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Largest accepted length, in characters.
            pub const MAX_CHARS: usize = $max;

            /// Parses text for the named field.
            pub fn parse(field: &'static str, value: impl Into<String>) -> Result<Self, InvalidValue> {
                let value = value.into();
                check_text(&value, $max, $newlines).map_err(|expected| InvalidValue::new(field, expected))?;
                Ok(Self(value))
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse("text", value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        // Free text may be PHI: Debug never prints it.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "(<{} chars>)"), self.0.chars().count())
            }
        }
    };
}

text_type!(
    /// One line of text, at most 200 characters (names, titles, reasons).
    ShortText,
    200,
    false
);
text_type!(
    /// Narrative text, at most 20,000 characters (descriptions, treatment plans).
    LongText,
    20_000,
    true
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_refuses_blank_overlong_and_control_characters() {
        assert!(ShortText::parse("title", "Chest X-ray").is_ok());
        assert_eq!(ShortText::parse("title", "   ").unwrap_err().field, "title");
        assert!(ShortText::parse("title", "a".repeat(201)).is_err());
        assert!(ShortText::parse("title", "line\nbreak").is_err());
        assert!(ShortText::parse("title", "nul\0").is_err());
    }

    #[test]
    fn long_text_keeps_line_breaks() {
        assert!(LongText::parse("treatment", "rest\nfluids").is_ok());
    }

    #[test]
    fn debug_output_does_not_leak_the_text() {
        let text = ShortText::parse("name", "Zhang San").unwrap();
        assert!(!format!("{text:?}").contains("Zhang"));
    }
}
