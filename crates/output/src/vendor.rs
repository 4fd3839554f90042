//! The vendor of a link-layer address, from the IEEE registry of
//! organizationally unique identifiers as Debian's `ieee-data` package
//! ships it (`/usr/share/ieee-data/oui.csv`; `PORTOLAN_OUI_CSV` names
//! another file). Read once, when first needed; without the file there is
//! no vendor, and nothing else changes.
//!
//! Contract: a malformed line is skipped; the text of a vendor name is
//! untrusted like any other and is escaped by each format.

use std::collections::HashMap;
use std::sync::OnceLock;

/// Where Debian's `ieee-data` puts the MA-L (24-bit) registry.
pub const DEFAULT_OUI_CSV: &str = "/usr/share/ieee-data/oui.csv";

static TABLE: OnceLock<HashMap<u32, String>> = OnceLock::new();

/// The registered organisation of `mac`'s first three bytes, if known.
/// Locally administered addresses (bit 1 of the first byte) have none.
pub fn vendor(mac: [u8; 6]) -> Option<&'static str> {
    if mac[0] & 0x02 != 0 {
        return None;
    }
    let table = TABLE.get_or_init(|| {
        let path =
            std::env::var("PORTOLAN_OUI_CSV").unwrap_or_else(|_| DEFAULT_OUI_CSV.to_string());
        std::fs::read_to_string(path)
            .map(|text| parse_registry(&text))
            .unwrap_or_default()
    });
    let key = u32::from_be_bytes([0, mac[0], mac[1], mac[2]]);
    table.get(&key).map(String::as_str)
}

/// Parses the registry's CSV: `Registry,Assignment,Organization Name,...`
/// with fields in double quotes when they hold commas.
fn parse_registry(text: &str) -> HashMap<u32, String> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = CsvFields(line);
            let _registry = fields.next()?;
            let assignment = fields.next()?;
            let name = fields.next()?;
            let key = u32::from_str_radix(assignment.trim(), 16).ok()?;
            (assignment.trim().len() == 6 && !name.trim().is_empty())
                .then(|| (key, name.trim().to_string()))
        })
        .collect()
}

/// The fields of one CSV line (RFC 4180 quoting, `""` for a quote).
struct CsvFields<'a>(&'a str);

impl Iterator for CsvFields<'_> {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        if self.0.is_empty() {
            return None;
        }
        let mut field = String::new();
        let mut chars = self.0.char_indices().peekable();
        if self.0.starts_with('"') {
            chars.next();
            while let Some((i, c)) = chars.next() {
                if c == '"' {
                    if chars.peek().is_some_and(|&(_, n)| n == '"') {
                        chars.next();
                        field.push('"');
                        continue;
                    }
                    // Past the closing quote and its comma, if any.
                    let rest = &self.0[i + 1..];
                    self.0 = rest.strip_prefix(',').unwrap_or("");
                    return Some(field);
                }
                field.push(c);
            }
            self.0 = "";
            return Some(field);
        }
        match self.0.split_once(',') {
            Some((head, rest)) => {
                self.0 = rest;
                Some(head.to_string())
            }
            None => {
                let head = self.0.to_string();
                self.0 = "";
                Some(head)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_lines_with_and_without_quotes() {
        let table = parse_registry(
            "Registry,Assignment,Organization Name,Organization Address\n\
             MA-L,002272,American Micro-Fuel Device Corp.,2181 Buchanan Loop\n\
             MA-L,08EA44,\"Extreme Networks, Inc.\",\"6480 Via Del Oro, San Jose\"\n\
             MA-L,00005E,\"ICANN, IANA \"\"Department\"\"\",x\n\
             MA-L,ZZZZZZ,Broken,x\n\
             garbage\n",
        );
        assert_eq!(table[&0x002272], "American Micro-Fuel Device Corp.");
        assert_eq!(table[&0x08ea44], "Extreme Networks, Inc.");
        assert_eq!(table[&0x00005e], "ICANN, IANA \"Department\"");
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn the_installed_registry_names_vendors() {
        // scripts/test installs ieee-data; elsewhere the file may be absent.
        if !std::path::Path::new(DEFAULT_OUI_CSV).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{DEFAULT_OUI_CSV} is required under CI (Debian's ieee-data)"
            );
            eprintln!("SKIPPED: {DEFAULT_OUI_CSV} is not installed");
            return;
        }
        // 00:00:0C is Cisco's first block, registered since the 1980s.
        assert!(vendor([0x00, 0x00, 0x0c, 1, 2, 3]).is_some_and(|v| v.contains("Cisco")));
    }

    #[test]
    fn locally_administered_addresses_have_no_vendor() {
        assert_eq!(vendor([0x02, 0x5c, 0x12, 0, 0, 1]), None);
    }
}
