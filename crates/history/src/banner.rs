//! A banner's stable form ([`stable`]): what of a service's first bytes is
//! compared between scans, so that a greeting that changed shows in a
//! diff while what changes at every connection does not.
//!
//! The rule, also in `portolan diff --help` and the README:
//! - A binary banner (not UTF-8, or with control characters other than
//!   tab, CR and LF: a TLS handshake with its randoms, a database's
//!   greeting with its salt) is not compared ([`Stable::Binary`]); a TLS
//!   service is compared by its certificate instead.
//! - A text banner is compared line by line with the volatile parts
//!   masked as `#`: the values of HTTP headers that change by themselves
//!   (`Date`, `Expires`, `Last-Modified`, `Set-Cookie`, `ETag`, `Age`,
//!   `Content-Length`, request IDs); weekday and month names, a day
//!   number next to a month, times (`22:01:39`), dates (`2026-12-04`);
//!   numbers of four digits or more (years, time zones, counters,
//!   process IDs); hex runs of eight characters or more; words of twelve
//!   letters and digits or more with a digit in them, and any word of
//!   twenty or more (session tokens, nonces). Short numbers stay, so
//!   `FooFTP 1.2` and `FooFTP 1.3` differ.
//!
//! Pure code: no allocation beyond the result, never panics.

/// A banner's stable form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stable {
    /// No banner.
    Empty,
    /// Binary: not compared.
    Binary,
    /// Text, volatile parts masked.
    Text(String),
}

impl Stable {
    /// Whether `self` (earlier) and `other` (later) say the banner changed:
    /// both are comparable (text or empty, not both empty) and differ.
    pub fn changed(&self, other: &Stable) -> bool {
        !matches!(self, Stable::Binary) && !matches!(other, Stable::Binary) && self != other
    }
}

/// HTTP headers whose values change without the service changing.
const VOLATILE_HEADERS: &[&str] = &[
    "date",
    "expires",
    "last-modified",
    "set-cookie",
    "etag",
    "age",
    "content-length",
    "x-request-id",
    "request-id",
    "x-runtime",
    "x-trace-id",
    "cf-ray",
    "keep-alive",
];

const DAYS: &[&str] = &[
    "mon",
    "tue",
    "wed",
    "thu",
    "fri",
    "sat",
    "sun",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];
const MONTHS: &[&str] = &[
    "jan",
    "feb",
    "mar",
    "apr",
    "may",
    "jun",
    "jul",
    "aug",
    "sep",
    "oct",
    "nov",
    "dec",
    "january",
    "february",
    "march",
    "april",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// The stable form of `banner`.
pub fn stable(banner: &[u8]) -> Stable {
    if banner.is_empty() {
        return Stable::Empty;
    }
    let Ok(text) = std::str::from_utf8(banner) else {
        return Stable::Binary;
    };
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\n'))
    {
        return Stable::Binary;
    }
    let lines: Vec<String> = text
        .split('\n')
        .map(|l| stable_line(l.trim_end_matches('\r')))
        .collect();
    Stable::Text(lines.join("\n"))
}

fn stable_line(line: &str) -> String {
    if let Some((name, _)) = line.split_once(':')
        && !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && VOLATILE_HEADERS.contains(&name.to_ascii_lowercase().as_str())
    {
        return format!("{name}: #");
    }
    let tokens = tokenize(line);
    let mut masked: Vec<bool> = tokens.iter().map(|t| volatile_word(t)).collect();
    let digits = number;
    let month = |t: &str| is_name(t, MONTHS);
    // Chains of numbers: times (with ':'), and dates (with '-' or '/' and
    // a number of four digits) are masked whole.
    let mut i = 0;
    while i < tokens.len() {
        if !digits(tokens[i]) {
            i += 1;
            continue;
        }
        let mut j = i;
        let mut seps = String::new();
        while j + 2 < tokens.len()
            && matches!(tokens[j + 1], ":" | "-" | "/" | ".")
            && digits(tokens[j + 2])
        {
            seps.push_str(tokens[j + 1]);
            j += 2;
        }
        let long = (i..=j).step_by(2).any(|k| tokens[k].len() >= 4);
        if seps.contains(':') || (long && (seps.contains('-') || seps.contains('/'))) {
            for k in (i..=j).step_by(2) {
                masked[k] = true;
            }
        }
        i = j + 1;
    }
    // A day number next to a month name: "4 Dec", "Dec  4", "04-Dec-2026".
    for k in 0..tokens.len() {
        if !(tokens[k].bytes().all(|b| b.is_ascii_digit()) && tokens[k].len() <= 2) {
            continue;
        }
        let beside = |n: usize| {
            tokens
                .get(n)
                .is_some_and(|t| t.chars().all(|c| c == ' ' || c == '-'))
        };
        let before = k >= 2 && beside(k - 1) && month(tokens[k - 2]);
        let after = beside(k + 1) && tokens.get(k + 2).is_some_and(|t| month(t));
        if before || after {
            masked[k] = true;
        }
    }
    tokens
        .iter()
        .zip(masked)
        .map(|(t, m)| if m { "#" } else { t })
        .collect()
}

/// `line` cut into words (runs of letters and digits) and the text between.
fn tokenize(line: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    let mut start = 0;
    let mut word = None;
    for (i, c) in line.char_indices() {
        let w = c.is_alphanumeric();
        if word != Some(w) {
            if i > start {
                tokens.push(&line[start..i]);
            }
            start = i;
            word = Some(w);
        }
    }
    if start < line.len() {
        tokens.push(&line[start..]);
    }
    tokens
}

fn is_name(t: &str, names: &[&str]) -> bool {
    names.iter().any(|n| t.eq_ignore_ascii_case(n))
}

/// A number, or an ISO 8601 day and hour glued by `T` (`04T22`).
fn number(t: &str) -> bool {
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    all_digits(t)
        || t.split_once('T')
            .is_some_and(|(d, h)| all_digits(d) && all_digits(h) && d.len() <= 2 && h.len() <= 2)
}

/// A word that changes by itself, on its own.
fn volatile_word(t: &str) -> bool {
    let Some(first) = t.chars().next() else {
        return false;
    };
    if !first.is_alphanumeric() {
        return false;
    }
    let n = t.chars().count();
    let has_digit = t.bytes().any(|b| b.is_ascii_digit());
    (t.bytes().all(|b| b.is_ascii_digit()) && n >= 4)
        || (n >= 8 && has_digit && t.bytes().all(|b| b.is_ascii_hexdigit()))
        || (n >= 12 && has_digit)
        || n >= 20
        || is_name(t, DAYS)
        || is_name(t, MONTHS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> String {
        match stable(s.as_bytes()) {
            Stable::Text(t) => t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn dates_times_counters_and_tokens_are_masked() {
        let a = "220 mx.example.org ESMTP Exim 4.96 Fri, 04 Dec 2026 22:01:39 +0000\r\n";
        let b = "220 mx.example.org ESMTP Exim 4.96 Sat, 5 Dec 2026 03:10:00 +0100\r\n";
        assert_eq!(text(a), text(b));
        assert_eq!(
            text(a),
            "220 mx.example.org ESMTP Exim 4.96 #, # # # #:#:# +#\n"
        );
        // POP3 APOP nonce, ISO dates, hex and session tokens.
        assert_eq!(
            text("+OK ready <1896.697170952@pop.example>"),
            text("+OK ready <2001.811170953@pop.example>")
        );
        assert_eq!(
            text("built 2026-12-04T22:01"),
            text("built 2027-01-31T09:45")
        );
        assert_eq!(text("id deadbeef01"), text("id 0123abcdef"));
        assert_eq!(
            text("token Zm9vYmFyYmF6cXV4eHl6eg"),
            text("token cXV4eHl6eWJhcmJhemZvbw")
        );
        let h1 = "HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Fri, 04 Dec 2026 22:01:39 GMT\r\nContent-Length: 615\r\nETag: \"64d3-267\"\r\n";
        let h2 = "HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sat, 05 Dec 2026 01:00:00 GMT\r\nContent-Length: 612\r\nETag: \"64e9-264\"\r\n";
        assert_eq!(text(h1), text(h2));
    }

    #[test]
    fn a_real_change_of_greeting_is_kept() {
        assert_ne!(text("220 FooFTP 1.2 ready"), text("220 FooFTP 1.3 ready"));
        assert_ne!(
            text("SSH-2.0-OpenSSH_9.2p1"),
            text("SSH-2.0-dropbear_2022.83")
        );
        let h1 = "HTTP/1.1 200 OK\r\nServer: nginx\r\n";
        let h2 = "HTTP/1.1 200 OK\r\nServer: Apache\r\n";
        assert_ne!(text(h1), text(h2));
        // Ordinary words that start like a month or a day stay.
        assert_eq!(text("Mayday Sunny Marvel"), "Mayday Sunny Marvel");
        // Versions and addresses are kept whole.
        assert_eq!(text("v1.22.1 at 198.18.0.2"), "v1.22.1 at 198.18.0.2");
    }

    #[test]
    fn binary_banners_are_not_compared() {
        let hello = [0x16, 0x03, 0x03, 0x00, 0x7a, 0x02, 0x00, 0x00, 0x76];
        assert_eq!(stable(&hello), Stable::Binary);
        assert_eq!(stable(b"\xff\xfe text"), Stable::Binary);
        assert_eq!(stable(b"J\0\0\0\n8.0.32\0salt"), Stable::Binary);
        assert!(!Stable::Binary.changed(&Stable::Text("x".into())));
        assert!(Stable::Empty.changed(&Stable::Text("x".into())));
        assert!(!Stable::Empty.changed(&Stable::Empty));
    }
}
