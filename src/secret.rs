//! A string that must never be printed: API secrets, passwords, signing keys.
//! `Debug` and `Display` show a mask; the value is reachable only through `expose()`.

use std::fmt;

/// A secret value. Printing it, by mistake or in a log line, shows `********`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The real value, for the few places that must use it (signing, writing LiveKit's key file).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Length in characters, for validation messages that must not echo the value.
    pub fn char_len(&self) -> usize {
        self.0.chars().count()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(********)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_never_shows_the_value() {
        let s = Secret::new("hunter2-hunter2-hunter2-hunter2-xx");
        assert!(!format!("{s}").contains("hunter2"));
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2-hunter2-hunter2-hunter2-xx");
    }
}
