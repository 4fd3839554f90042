//! Target lists from files (`-iL`, `--excludefile`) and from `--exclude`.
//!
//! A target file holds tokens separated by any whitespace, newlines
//! included; `#` starts a comment to the end of the line; `-` means standard
//! input. Every token's syntax is checked while reading, so a mistake is
//! reported with its path and line number; names are resolved later, by
//! `TargetList`. The whole file is read into memory, and one `String` is
//! kept per token. Nothing here panics on any input. Reference: `man nmap`,
//! `-iL` and `--exclude`.

use std::io::Read;

use crate::TargetError;
use crate::target_spec::parse_token;

/// Reads the tokens of a target file; `"-"` reads standard input.
pub fn read_target_file(path: &str) -> Result<Vec<String>, TargetError> {
    let mut contents = Vec::new();
    let read = if path == "-" {
        std::io::stdin().lock().read_to_end(&mut contents).map(drop)
    } else {
        std::fs::read(path).map(|bytes| contents = bytes)
    };
    read.map_err(|io| TargetError::ReadFile {
        path: path.to_owned(),
        io,
    })?;
    let origin = if path == "-" { "stdin" } else { path };
    target_file_tokens(&contents, origin)
}

/// Splits and checks the contents of a target file; `origin` names it in
/// errors.
pub fn target_file_tokens(contents: &[u8], origin: &str) -> Result<Vec<String>, TargetError> {
    let mut tokens = Vec::new();
    for (line_index, line) in contents.split(|&byte| byte == b'\n').enumerate() {
        let line_number = line_index + 1;
        let code = match line.iter().position(|&byte| byte == b'#') {
            Some(comment) => &line[..comment],
            None => line,
        };
        let code = std::str::from_utf8(code).map_err(|_| TargetError::NotUtf8 {
            path: origin.to_owned(),
            line: line_number,
        })?;
        for token in code.split_whitespace() {
            parse_token(token).map_err(|error| TargetError::InFile {
                path: origin.to_owned(),
                line: line_number,
                error: Box::new(error),
            })?;
            tokens.push(token.to_owned());
        }
    }
    Ok(tokens)
}

/// Splits an `--exclude` argument into tokens.
///
/// nmap splits `--exclude` on every comma, which breaks octet lists such as
/// `198.18.0,2.1`. Portolan splits on commas too, then re-joins fragments
/// that cannot stand alone: an IPv4 spec has exactly three dots, so a
/// fragment of address syntax (digits, `.`, `-`, `*`) with fewer dots
/// absorbs the fragments that follow while the total stays at most three,
/// and a complete one absorbs following dotless fragments (more values for
/// its last octet: `198.18.0.1,3`). Names and IPv6 addresses never join.
/// Blanks around fragments are trimmed and empty fragments dropped. One
/// case stays ambiguous: after a complete spec, `1.2.3.4,5,6.7.8.9` reads as
/// `1.2.3.4,5` and `6.7.8.9`; give a spec whose first octet is a list in its
/// own `--exclude` or in `--excludefile`.
pub fn split_exclude_list(list: &str) -> Vec<String> {
    let mut tokens: Vec<String> = Vec::new();
    // Whether the last token may still absorb the next fragment.
    let mut open = false;
    for fragment in list.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let address_like = fragment
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'*'));
        let dots = fragment.bytes().filter(|&b| b == b'.').count();
        if let (true, true, Some(last)) = (open, address_like, tokens.last_mut()) {
            let last_dots = last.bytes().filter(|&b| b == b'.').count();
            if (last_dots < 3 && last_dots + dots <= 3) || (last_dots == 3 && dots == 0) {
                last.push(',');
                last.push_str(fragment);
                continue;
            }
        }
        open = address_like;
        tokens.push(fragment.to_owned());
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_newlines_and_comments() {
        let text =
            b"198.18.0.1 198.18.0.2\n# a comment 1.2.3\n\tfd00::1 # trailing\r\nweb.test\n\n";
        let tokens = target_file_tokens(text, "list.txt").unwrap();
        assert_eq!(tokens, ["198.18.0.1", "198.18.0.2", "fd00::1", "web.test"]);
    }

    #[test]
    fn syntax_errors_carry_path_and_line() {
        let text = b"198.18.0.1\n\n198.18.0.1 198.18.0.256\n";
        let err = target_file_tokens(text, "list.txt").unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, TargetError::InFile { line: 3, .. }));
        assert!(
            message.starts_with("list.txt:3: invalid target \"198.18.0.256\""),
            "{message}"
        );
    }

    #[test]
    fn invalid_utf8_outside_comments_is_an_error() {
        assert!(target_file_tokens(b"198.18.0.1 # caf\xe9\n", "f").is_ok());
        let err = target_file_tokens(b"\n\xff\n", "f").unwrap_err();
        assert_eq!(err.to_string(), "f:2: not valid UTF-8");
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = read_target_file("/nonexistent/portolan-targets.txt").unwrap_err();
        assert!(
            err.to_string()
                .contains("\"/nonexistent/portolan-targets.txt\"")
        );
    }

    #[test]
    fn reads_a_real_file() {
        let path =
            std::env::temp_dir().join(format!("portolan-targets-{}.txt", std::process::id()));
        std::fs::write(&path, "198.18.0.0/30\n# none\nfd00::/126\n").unwrap();
        let tokens = read_target_file(path.to_str().unwrap()).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(tokens, ["198.18.0.0/30", "fd00::/126"]);
    }

    #[test]
    fn exclude_list_splits_on_commas() {
        assert_eq!(
            split_exclude_list("198.18.0.1,web.test,fd00::/64"),
            ["198.18.0.1", "web.test", "fd00::/64"]
        );
        assert_eq!(
            split_exclude_list(" a.test , ,b.test,"),
            ["a.test", "b.test"]
        );
        assert!(split_exclude_list("").is_empty());
    }

    #[test]
    fn exclude_list_rejoins_octet_lists() {
        assert_eq!(split_exclude_list("198.18.0,2.1"), ["198.18.0,2.1"]);
        assert_eq!(
            split_exclude_list("198.18.0.1,3,5-7,198.18.1.1"),
            ["198.18.0.1,3,5-7", "198.18.1.1"]
        );
        assert_eq!(
            split_exclude_list("198,199.18.0-1,5.*,web.test"),
            ["198,199.18.0-1,5.*", "web.test"]
        );
        assert_eq!(split_exclude_list("web.test,3"), ["web.test", "3"]);
        assert_eq!(
            split_exclude_list("198.18.1,2.3.4.5"),
            ["198.18.1", "2.3.4.5"]
        );
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        proptest! {
            #[test]
            fn file_reading_never_panics(contents in proptest::collection::vec(any::<u8>(), 0..200)) {
                let _ = target_file_tokens(&contents, "f");
            }

            #[test]
            fn exclude_splitting_never_panics(list in "\\PC{0,60}") {
                for token in split_exclude_list(&list) {
                    prop_assert!(!token.is_empty());
                    let _ = crate::target_spec::parse_token(&token);
                }
            }

            /// Lists in the first octet are ambiguous after another spec
            /// (`1.2.3.4,5,6.7.8.9`), so the generated specs start with a
            /// single value.
            #[test]
            fn exclude_list_keeps_whole_octet_specs(
                specs in proptest::collection::vec(
                    proptest::array::uniform4(proptest::collection::vec(any::<u8>(), 1..4)),
                    1..5,
                ),
            ) {
                let texts: Vec<String> = specs
                    .iter()
                    .map(|octets| {
                        std::iter::once(&octets[0][..1])
                            .chain(octets[1..].iter().map(Vec::as_slice))
                            .map(|values| values.iter().map(u8::to_string).collect::<Vec<_>>().join(","))
                            .collect::<Vec<_>>()
                            .join(".")
                    })
                    .collect();
                prop_assert_eq!(split_exclude_list(&texts.join(",")), texts);
            }
        }
    }
}
