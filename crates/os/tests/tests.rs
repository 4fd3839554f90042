//! Integration tests of portolan-os: nmap's own database, read whole.

mod nmap_db;
