//! ONC RPC replies (`-sV` on rpcbind and RPC services): record marking
//! joined, portmapper DUMP lists and NULL call replies read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portolan_service::rpc;

fuzz_target!(|reply: &[u8]| {
    let joined = rpc::record(reply);
    let body = joined.as_deref().unwrap_or(reply);
    if let Some(list) = rpc::parse_dump(body) {
        for m in list.iter().take(64) {
            let _ = rpc::versions_on(&list, m.program, m.protocol, m.port as u16);
        }
    }
    let _ = rpc::parse_call_reply(body, rpc::XID);
});
