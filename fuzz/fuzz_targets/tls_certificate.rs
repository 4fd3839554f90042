//! DER certificates a TLS server sends (`-sV`): subject, issuer, dates
//! and names read into the model; nothing panics on any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portolan_model::TlsInfo;

fuzz_target!(|der: &[u8]| {
    let mut info = TlsInfo::default();
    portolan_service::tls::read_certificate(der, &mut info);
});
