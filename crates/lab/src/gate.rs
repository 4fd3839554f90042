//! The requirement gate for tests: build a lab, or explain loudly why not.
//!
//! Contract: when the machine cannot host a lab (not root, `ip` or `nft`
//! missing, namespaces or nf_tables unavailable), a test is skipped with a
//! `SKIPPED: ...` line on stderr, except under `CI` (set and not `false`/`0`),
//! where it panics: CI never skips silently. When the machine can host a
//! lab but building this one fails, the test panics (a real failure). The
//! capability probe runs once per process. Kernel SCTP has its own gate
//! ([`require_kernel_sctp`]), strict only under `PORTOLAN_EXPECT_SCTP`. This module is the only place
//! in the crate that prints.

use std::io::Write;
use std::process::Command;
use std::sync::OnceLock;

use crate::namespace::{Namespace, run_command};
use crate::sweep::next_stem;
use crate::{Lab, LabBuilder, kernel_sctp_support, sys};

/// Whether this machine can host labs; `Err` says why not. Probed once per
/// process by creating and deleting a throwaway namespace with an nftables
/// table in it.
pub fn lab_support() -> Result<(), String> {
    static SUPPORT: OnceLock<Result<(), String>> = OnceLock::new();
    SUPPORT.get_or_init(probe).clone()
}

fn probe() -> Result<(), String> {
    let euid = sys::effective_uid();
    if euid != 0 {
        return Err(format!("not running as root (euid {euid})"));
    }
    for (program, flag) in [("ip", "-V"), ("nft", "--version")] {
        run_command(Command::new(program).arg(flag), None)
            .map_err(|e| format!("`{program}` is unusable: {e}"))?;
    }
    let namespace = Namespace::create(format!("{}p", next_stem()))
        .map_err(|e| format!("cannot create a network namespace: {e}"))?;
    namespace
        .nft("add table inet probe\n")
        .map_err(|e| format!("nftables does not work in a namespace: {e}"))?;
    Ok(())
}

/// Whether the `CI` environment variable asks for strictness.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false" | "FALSE" | "False"))
}

/// Builds `builder`'s lab for a test, or returns `None` after printing
/// `SKIPPED: <test>: ...` when the machine cannot host labs. Panics instead
/// of skipping under CI, and panics if the lab fails to build although the
/// machine supports labs.
#[track_caller]
pub fn require_lab(builder: LabBuilder) -> Option<Lab> {
    let location = std::panic::Location::caller();
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("<unnamed>");
    if let Err(reason) = lab_support() {
        if under_ci() {
            panic!(
                "network lab required (CI is set) but unavailable at {location} ({test}): {reason}"
            );
        }
        // Straight to file descriptor 2: libtest captures `eprintln!` of
        // passing tests, which would hide the skip.
        let _ = writeln!(
            std::io::stderr().lock(),
            "SKIPPED: {test} at {location}: network lab unavailable: {reason}"
        );
        return None;
    }
    match builder.build() {
        Ok(lab) => Some(lab),
        Err(e) => panic!("building the network lab failed at {location} ({test}): {e}"),
    }
}

/// [`require_lab`] with one point-to-point host.
#[track_caller]
pub fn require_root_lab() -> Option<Lab> {
    require_lab(Lab::builder().hosts(1))
}

/// Whether `PORTOLAN_EXPECT_SCTP` (set and not `false`/`0`) says this
/// machine's kernel offers SCTP, so that tests needing it must not skip.
///
/// Kernel SCTP is a property of the machine's kernel, which no install step
/// can change: the machines this project runs on today lack it (see
/// [`kernel_sctp_support`]), CI included, so `CI` alone does not make its
/// absence a failure; this variable does.
pub fn expect_kernel_sctp() -> bool {
    std::env::var("PORTOLAN_EXPECT_SCTP")
        .is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false" | "FALSE" | "False"))
}

/// Whether the kernel offers SCTP sockets, for a test that needs them:
/// `false` after printing `SKIPPED: <test>: ...` when it does not. Panics
/// instead of skipping when [`expect_kernel_sctp`] says it should.
#[track_caller]
pub fn require_kernel_sctp() -> bool {
    let location = std::panic::Location::caller();
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("<unnamed>");
    match kernel_sctp_support() {
        Ok(()) => true,
        Err(reason) if expect_kernel_sctp() => panic!(
            "kernel SCTP required (PORTOLAN_EXPECT_SCTP is set) but unavailable at \
             {location} ({test}): {reason}"
        ),
        Err(reason) => {
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED: {test} at {location}: kernel SCTP unavailable: {reason}"
            );
            false
        }
    }
}

/// Evaluates to a [`Lab`](crate::Lab), or returns from the enclosing test
/// after a `SKIPPED` line (panics under CI); see [`require_lab`].
///
/// `lab_or_skip!()` builds one point-to-point host;
/// `lab_or_skip!(Lab::builder().hosts(2).segment(3))` builds what it is given.
#[macro_export]
macro_rules! lab_or_skip {
    () => {
        $crate::lab_or_skip!($crate::Lab::builder().hosts(1))
    };
    ($builder:expr) => {
        match $crate::require_lab($builder) {
            ::core::option::Option::Some(lab) => lab,
            ::core::option::Option::None => return,
        }
    };
}
