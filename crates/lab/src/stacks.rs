//! Lab stacks: the real Linux kernel of a host namespace made to answer
//! like a distinct stack by its per-namespace sysctls (initial TTL,
//! timestamps, window scaling, SACK, ECN), for OS detection's
//! tests and benchmark with a known truth.
//!
//! The kernel stays Linux: each profile is a configuration of it, named
//! for what it changes, and Portolan's own OS database has one entry per
//! profile (`crates/os/data/portolan-os-db`). Stacks that differ in what
//! sysctls cannot reach (option order, ISN generator, IP ID policy,
//! answers to odd flags) need a user-space responder.
//!
//! Read first: Documentation/networking/ip-sysctl.rst.

use crate::{LabError, Namespace};

/// One stack: a name and the sysctls that make it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackProfile {
    /// Its name, as its entry in Portolan's database says it.
    pub name: &'static str,
    /// The sysctls (dotted keys) and values.
    pub sysctls: &'static [(&'static str, &'static str)],
}

/// The lab's stacks: the kernel's defaults and five configurations.
pub const STACKS: [StackProfile; 6] = [
    StackProfile {
        name: "default",
        sysctls: &[],
    },
    StackProfile {
        name: "timestamps-off",
        sysctls: &[("net.ipv4.tcp_timestamps", "0")],
    },
    StackProfile {
        name: "bare-options",
        sysctls: &[
            ("net.ipv4.tcp_timestamps", "0"),
            ("net.ipv4.tcp_sack", "0"),
            ("net.ipv4.tcp_window_scaling", "0"),
        ],
    },
    StackProfile {
        name: "ttl-128",
        sysctls: &[
            ("net.ipv4.ip_default_ttl", "128"),
            ("net.ipv4.tcp_timestamps", "0"),
        ],
    },
    StackProfile {
        name: "ttl-255",
        // ip_no_pmtu_disc=1 was tried too: this kernel still sets DF on
        // its SYN-ACKs and RSTs, so it makes no stack of its own.
        sysctls: &[("net.ipv4.ip_default_ttl", "255")],
    },
    StackProfile {
        name: "ecn-off",
        sysctls: &[("net.ipv4.tcp_ecn", "0")],
    },
];

impl Namespace {
    /// Makes this namespace's kernel answer as `profile`.
    ///
    /// # Errors
    /// The sysctl that could not be set.
    pub fn apply_stack(&self, profile: &StackProfile) -> Result<(), LabError> {
        for (key, value) in profile.sysctls {
            self.sysctl(key, value)?;
        }
        Ok(())
    }
}
