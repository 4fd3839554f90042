#!/usr/bin/env python3
"""Writes the fuzz seeds (fuzz/seeds/<target>/) from the repository's own
fixtures: the wire crate's packets, the probe databases, the golden
reports, plus DNS answers and certificates built here (openssl). Run from
the repository root; the output is committed, so this is rerun only when
fixtures change."""
import os, re, struct, subprocess, sys, tempfile, shutil

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
seeds = os.path.join(root, "fuzz", "seeds")

def put(target, name, data):
    d = os.path.join(seeds, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())

# Packets: every static byte array of the wire crate's fixtures.
src = open(os.path.join(root, "crates/wire/src/test_packets.rs")).read()
for m in re.finditer(r"static (\w+): \[u8; \d+\] = \[(.*?)\];", src, re.S):
    body = re.sub(r"//[^\n]*", "", m.group(2))
    data = bytes(int(x, 0) for x in re.findall(r"0x[0-9a-fA-F]+|\b\d+\b", body))
    put("reply", m.group(1).lower(), data)
# An ARP reply (Ethernet) and an ICMP echo reply, laid out by hand.
arp = (b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x02" + b"\x08\x06" +
       struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) +
       b"\x02\x00\x00\x00\x00\x02" + bytes([198, 18, 0, 2]) +
       b"\x02\x00\x00\x00\x00\x01" + bytes([198, 18, 0, 1]))
put("reply", "arp_reply", arp)
echo = (struct.pack("!BBHHHBBH", 0x45, 0, 28, 1, 0, 64, 1, 0) + bytes([198, 18, 0, 2, 198, 18, 0, 1]) +
        struct.pack("!BBHHH", 0, 0, 0, 0x504c, 0x0001))
put("reply", "echo_reply_v4", echo)

# Probe databases: Portolan's own file whole, nmap's in slices of probes.
put("service_probes", "portolan", open(os.path.join(root, "crates/service/data/portolan-service-probes"), "rb").read())
nmap = "/usr/share/nmap/nmap-service-probes"
if os.path.exists(nmap):
    text = open(nmap, "rb").read()
    parts = re.split(rb"\n(?=Probe )", text)
    for i in range(0, min(len(parts), 40), 4):
        put("service_probes", f"nmap-{i:02}", b"\n".join(parts[i:i + 4])[:16000])

# OS databases: Portolan's own whole, nmap's in slices of entries.
put("os_db", "portolan-os-db", open(os.path.join(root, "crates/os/data/portolan-os-db"), "rb").read())
nmap_os = "/usr/share/nmap/nmap-os-db"
if os.path.exists(nmap_os):
    text = open(nmap_os, "rb").read()
    parts = re.split(rb"\n(?=Fingerprint )", text)
    for i in range(0, min(len(parts), 30), 3):
        put("os_db", f"nmap-{i:02}", b"\n".join(parts[i:i + 3])[:16000])

# Target and port specifications, target files.
for i, spec in enumerate([
    "198.18.0.1 198.18.0.0/30 198.18.1-3.7\n198.18.0.2",
    "fd00::1 fd00::/126 lab.example/30\n198.18.0.0/31,fd00::2",
    "198.18.0-255.1-254 10.0.0.0/8\n10.1.2.3",
    "scanme.lab ::ffff:198.18.0.1 [fd00::5]\n",
]):
    put("target_spec", f"spec{i}", spec)
for i, spec in enumerate(["22,80,443", "T:1-1024,U:53,161", "-", "[1-100]", "http,ssh,T:8000-8100", "0-65535", "S:9-10,P:1,6,17"]):
    put("port_spec", f"ports{i}", spec)
put("target_file", "list", "# lab hosts\n198.18.0.1\n198.18.0.0/29  fd00::1\n\n198.18.2-3.1 lab.example\r\n")
put("target_file", "latin1", b"198.18.0.1\n\xe9t\xe9\n")

# Scope files.
put("scope_file", "lab", "# the operator's networks\n198.18.0.0/24\n198.18.1.0/24 fd00::/64\n198.18.2.1-3\n")
put("scope_file", "bad", "198.18.0.0/33\nlab.example\n")

# Resume files: grepable, normal, XML and JSON-lines output, whole and cut short.
for path in ["crates/cli/tests/golden/lab.gnmap", "crates/cli/tests/golden/lab.nmap", "crates/cli/tests/golden/lab.xml",
             "crates/output/tests/golden/scan.gnmap", "crates/output/tests/golden/scan.nmap", "crates/output/tests/golden/scan.xml",
             "crates/cli/tests/golden/lab.jsonl", "crates/output/tests/golden/scan.jsonl"]:
    data = open(os.path.join(root, path), "rb").read()
    name = path.replace("/", "_")
    put("resume_file", name, data)
    put("resume_file", name + ".cut", data[: len(data) * 2 // 3])

# Results files: the golden reports.
for path in ["crates/cli/tests/golden/lab.xml", "crates/output/tests/golden/scan.xml"]:
    put("nmap_xml", os.path.basename(os.path.dirname(os.path.dirname(os.path.dirname(path)))) + ".xml", open(os.path.join(root, path), "rb").read())
for path in ["crates/cli/tests/golden/lab.jsonl", "crates/output/tests/golden/scan.jsonl", "crates/output/tests/golden/scan-sv.jsonl"]:
    put("json_lines", path.replace("/", "_"), open(os.path.join(root, path), "rb").read())

# DNS answers for 198.18.0.1: a PTR, a CNAME then PTR, NXDOMAIN, SERVFAIL.
def name(n):
    return b"".join(bytes([len(l)]) + l.encode() for l in n.split(".")) + b"\0"
q = name("1.0.18.198.in-addr.arpa") + struct.pack("!HH", 12, 1)
def answer(rcode, records):
    return struct.pack("!HHHHHH", 0x5042, 0x8180 | rcode, 1, len(records), 0, 0) + q + b"".join(records)
ptr = lambda target: b"\xc0\x0c" + struct.pack("!HHIH", 12, 1, 300, len(name(target))) + name(target)
put("dns_answer", "ptr", answer(0, [ptr("host.lab.example")]))
cname = b"\xc0\x0c" + struct.pack("!HHIH", 5, 1, 300, len(name("1.0-24.lab"))) + name("1.0-24.lab")
put("dns_answer", "cname_ptr", answer(0, [cname, ptr("host.lab.example")]))
put("dns_answer", "nxdomain", answer(3, []))
put("dns_answer", "servfail", answer(2, []))
put("dns_answer", "escapes", answer(0, [ptr("we\x1bird.\x07lab")]))

# Certificates: RSA and EC, self-signed, with names and addresses.
tmp = tempfile.mkdtemp()
try:
    for kind, args in [("rsa", ["-newkey", "rsa:2048"]), ("ec", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])]:
        key, crt = os.path.join(tmp, kind + ".key"), os.path.join(tmp, kind + ".der")
        subprocess.run(["openssl", "req", "-x509", *args, "-nodes", "-keyout", key, "-outform", "DER", "-out", crt,
                        "-days", "30", "-subj", "/CN=lab.example/O=Portolan Lab",
                        "-addext", "subjectAltName=DNS:lab.example,DNS:*.lab.example,IP:198.18.0.1,IP:fd00::1"],
                       check=True, capture_output=True)
        put("tls_certificate", kind, open(crt, "rb").read())
finally:
    shutil.rmtree(tmp)

# RPC replies: a portmapper DUMP (record-marked) and a NULL call's reply.
XID = 0x504C5250
words = [XID, 1, 0, 0, 0, 0]
for prog, vers, proto, port in [(100000, 4, 6, 111), (100000, 2, 17, 111), (100003, 3, 6, 2049)]:
    words += [1, prog, vers, proto, port]
words += [0]
body = struct.pack(f"!{len(words)}I", *words)
put("rpc_reply", "dump", struct.pack("!I", 0x80000000 | len(body)) + body)
put("rpc_reply", "null_reply", struct.pack("!6I", XID, 1, 0, 0, 0, 0))
put("rpc_reply", "prog_mismatch", struct.pack("!8I", XID, 1, 0, 0, 0, 2, 2, 4))
