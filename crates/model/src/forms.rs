//! How the model's values look when serde writes them (JSON, a history
//! store's columns): times as RFC 3339 text in UTC with microseconds,
//! durations as whole microseconds, link-layer addresses as nmap writes
//! them (`02:5C:12:00:00:02`), states and reasons by nmap's names. Each
//! reads back exactly what it writes, and refuses anything else with an
//! error naming the value.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Deserializer, Serializer, de::Error};

use crate::time::{parse_rfc3339, rfc3339_micros};

/// A [`SystemTime`] as RFC 3339 text.
pub mod rfc3339 {
    use super::*;

    /// Writes `t`.
    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339_micros(*t))
    }

    /// Reads a time.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        parse_rfc3339(&text)
            .ok_or_else(|| D::Error::custom(format!("not an RFC 3339 time: {text:?}")))
    }
}

/// An optional [`SystemTime`] as RFC 3339 text, or null.
pub mod rfc3339_opt {
    use super::*;

    /// Writes `t`.
    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&rfc3339_micros(*t)),
            None => s.serialize_none(),
        }
    }

    /// Reads a time or null.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| {
                parse_rfc3339(&text)
                    .ok_or_else(|| D::Error::custom(format!("not an RFC 3339 time: {text:?}")))
            })
            .transpose()
    }
}

/// A [`Duration`] as whole microseconds.
pub mod micros {
    use super::*;

    /// Writes `d`.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    /// Reads microseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_micros(u64::deserialize(d)?))
    }
}

/// An optional [`Duration`] as whole microseconds, or null.
pub mod micros_opt {
    use super::*;

    /// Writes `d`.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
            None => s.serialize_none(),
        }
    }

    /// Reads microseconds or null.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_micros))
    }
}

/// An optional link-layer address as `02:5C:12:00:00:02`, or null.
pub mod mac_opt {
    use super::*;

    /// Writes `mac`.
    pub fn serialize<S: Serializer>(mac: &Option<[u8; 6]>, s: S) -> Result<S::Ok, S::Error> {
        match mac {
            Some(mac) => s.serialize_some(&crate::mac_text(*mac)),
            None => s.serialize_none(),
        }
    }

    /// Reads an address or null.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 6]>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| {
                crate::parse_mac(&text)
                    .ok_or_else(|| D::Error::custom(format!("not a MAC address: {text:?}")))
            })
            .transpose()
    }
}

/// Bytes as lower-case hexadecimal text.
pub mod hex {
    use super::*;

    /// Writes `bytes`.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let mut text = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            text.push_str(&format!("{b:02x}"));
        }
        s.serialize_str(&text)
    }

    /// Reads hexadecimal text.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        let bad = || D::Error::custom("not hexadecimal bytes");
        if !text.len().is_multiple_of(2) || !text.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|_| bad()))
            .collect()
    }
}

/// Serde by nmap's name (`as_str` and `from_nmap`) for the model's enums.
macro_rules! by_nmap_name {
    ($type:ty, $what:literal) => {
        impl serde::Serialize for $type {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                <$type>::from_nmap(&text).ok_or_else(|| {
                    <D::Error as serde::de::Error>::custom(format!(
                        concat!("not ", $what, ": {:?}"),
                        text
                    ))
                })
            }
        }
    };
}

pub(crate) use by_nmap_name;
