//! Escaping of untrusted text for the terminal and text files.
//!
//! Anything that did not come from Portolan itself (host names typed or
//! resolved, later service banners) may hold control characters that would
//! move a terminal's cursor or change its colours. Printable characters
//! pass; everything else becomes `\xNN` (or `\u{..}` for non-printing
//! Unicode). JSON and XML have their own escaping in their writers.

use std::borrow::Cow;

/// Escapes `text` for a terminal or a plain-text file.
pub fn for_terminal(text: &str) -> Cow<'_, str> {
    if text.chars().all(|c| !c.is_control() && c != '\\') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x80 && c.is_control() => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(for_terminal("host.example"), Cow::Borrowed(_)));
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(for_terminal("a\x1b[31mb\n"), "a\\x1b[31mb\\x0a");
        assert_eq!(for_terminal("x\u{9b}y"), "x\\u{9b}y");
        assert_eq!(for_terminal("back\\slash"), "back\\\\slash");
    }
}
