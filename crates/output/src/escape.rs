//! Escaping of untrusted text for the terminal and text files.
//!
//! Anything that did not come from Portolan itself (host names typed or
//! resolved, later service banners) may hold control characters that would
//! move a terminal's cursor or change its colours. Printable characters
//! pass; everything else becomes `\xNN` (or `\u{..}` for non-printing
//! Unicode). JSON escaping is serde_json's.
//!
//! [`for_xml`] escapes text for XML 1.0 attribute values and character
//! data: the five markup characters become entities, tab and line breaks
//! become character references (so attribute normalisation keeps them),
//! and characters that XML 1.0 forbids even as references (other C0
//! controls, U+FFFE, U+FFFF) become the same `\xNN` / `\u{..}` text as on
//! a terminal. Read first: XML 1.0 §2.2 (Char) and §3.3.3 (attribute
//! normalisation).

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

/// Escapes `text` for an XML 1.0 attribute value or character data.
pub fn for_xml(text: &str) -> Cow<'_, str> {
    let plain = |c: char| {
        !matches!(c, '&' | '<' | '>' | '"' | '\'' | '\u{fffe}' | '\u{ffff}') && !c.is_control()
    };
    if text.chars().all(plain) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push_str(&format!("&#{};", c as u32)),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() || c == '\u{fffe}' || c == '\u{ffff}' => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
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

    #[test]
    fn xml_markup_and_invalid_characters_are_escaped() {
        assert!(matches!(for_xml("ssh"), Cow::Borrowed(_)));
        assert_eq!(
            for_xml("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;"
        );
        assert_eq!(for_xml("a\tb\r\n"), "a&#9;b&#13;&#10;");
        assert_eq!(for_xml("nul\0bell\x07"), "nul\\x00bell\\x07");
        assert_eq!(for_xml("x\u{9b}\u{fffe}y"), "x\\u{9b}\\u{fffe}y");
        assert_eq!(for_xml("caf\u{e9} \u{1F600}"), "caf\u{e9} \u{1F600}");
    }
}
