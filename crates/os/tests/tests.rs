//! Integration tests of portolan-os: nmap's own database, read whole.

mod never_panics;
mod nmap_db;
