//! Portolan's integration tests: one test binary (to save link time), with
//! modules by subject. They run the real `portolan` binary, against
//! 127.0.0.1 and against hosts in network namespaces built by
//! `portolan-lab` (which skips loudly without root, and fails under CI).

mod util;

mod bad_input;
mod connect_lab;
mod detect_lab;
mod discovery_lab;
mod dns_lab;
mod firewall_lab;
mod forge;
mod history;
mod history_lab;
mod hostile_lab;
mod idle_lab;
mod ip_protocol_lab;
mod library_lab;
mod loopback;
mod middlebox_lab;
mod offline_lab;
mod os_lab;
mod output_golden;
mod output_interrupt;
mod output_report;
mod output_tools;
mod output_xml;
mod privilege_lab;
mod resume_lab;
mod scope_lab;
mod sctp_lab;
mod sweep_lab;
mod syn_lab;
mod tcp_flags_lab;
mod udp_lab;
