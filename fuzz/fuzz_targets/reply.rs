//! Received packets, from the IP header on: the reply parser every raw
//! scan runs on each packet the kernel hands it, the ICMP/ICMPv6 query
//! replies (`-PE`, `-PP`, `-PM`) and the ARP / neighbour discovery answers
//! of a local sweep. None may panic, on any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portolan_wire::{
    parse_neighbour_reply, parse_neighbour_request, parse_query_reply, parse_reply,
};

fuzz_target!(|packet: &[u8]| {
    if let Ok(reply) = parse_reply(packet) {
        // The spans a reply hands out must stay inside the packet.
        let _ = reply.udp_payload(packet);
        let _ = format!("{reply:?}");
    }
    let _ = parse_query_reply(packet);
    let _ = parse_neighbour_request(packet);
    let _ = parse_neighbour_reply(packet);
});
