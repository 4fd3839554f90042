//! The flag table: the one source of truth for parsing, `--help` and the
//! man page (ripgrep's `flags/defs.rs` model).
//!
//! nmap parses with `getopt_long_only`, so its long options take one dash
//! as well as two (`-oX`, `-iL`, `-min-rate`), while single letters take
//! their values attached or separate (`-p22`, `-p 22`, `-T4`, `-PS443`,
//! `-sS`). clap cannot express that, hence this small parser. Rules, in
//! order, for an argument starting with `-`:
//! 1. `--` ends the flags; everything after it is a target.
//! 2. `--name[=value]` or `-name[=value]` where `name` is a long name in
//!    the table: that flag (a value comes after `=` or as the next
//!    argument).
//! 3. Otherwise the first letter after the dash is a short flag: a switch
//!    (further letters are more short flags, as in `-nv`), or a flag with a
//!    value (the rest of the argument, or the next argument if the rest is
//!    empty), or a flag with an optional attached value (`-PS`, `-v3`).
//!
//! Errors name the offending argument. Nothing here panics.

use std::fmt::Write as _;

/// What a flag does, independent of how it was spelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum FlagId {
    // Targets
    InputList,
    Exclude,
    ExcludeFile,
    Scope,
    NoResolve,
    ResolveAll,
    DnsServers,
    SystemDns,
    Ipv6,
    // Discovery
    Ping,
    // Techniques
    Scan,
    ScanFlags,
    IdleScan,
    // Service and version detection
    VersionIntensity,
    VersionLight,
    VersionAll,
    VersionTimeout,
    VersionDb,
    // OS detection
    OsDetect,
    OsScanLimit,
    OsScanGuess,
    MaxOsTries,
    OsDb,
    // Ports
    Ports,
    ExcludePorts,
    Fast,
    TopPorts,
    NoRandomize,
    Seed,
    // Timing
    Timing,
    MinRate,
    MaxRate,
    MaxRetries,
    SweepConfidence,
    DefeatIcmpRatelimit,
    HostTimeout,
    MinRttTimeout,
    MaxRttTimeout,
    InitialRttTimeout,
    MinParallelism,
    MaxParallelism,
    ScanDelay,
    MaxScanDelay,
    MinHostgroup,
    MaxHostgroup,
    // Output
    OutNormal,
    OutJson,
    OutXml,
    OutGrep,
    OutAll,
    AppendOutput,
    Resume,
    Open,
    Reason,
    Verbose,
    Debug,
    StatsEvery,
    NoProgress,
    // History
    Db,
    NoDb,
    DbWait,
    OnChange,
    Policy,
    // Misc
    Interface,
    SendIp,
    Offline,
    Decoys,
    DisableArpPing,
    NoProxyCheck,
    Source,
    SourcePort,
    Help,
    Version,
    Man,
}

/// How a flag takes its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arity {
    /// No value.
    Switch,
    /// A required value, attached or as the next argument.
    Value,
    /// An optional value, attached only (`-PS` or `-PS443`).
    Attached,
}

/// A section of `--help` and of the man page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Targets,
    Discovery,
    Techniques,
    Ports,
    Service,
    Timing,
    Output,
    History,
    Misc,
}

impl Section {
    const ALL: [Section; 9] = [
        Section::Targets,
        Section::Discovery,
        Section::Techniques,
        Section::Ports,
        Section::Service,
        Section::Timing,
        Section::Output,
        Section::History,
        Section::Misc,
    ];

    fn title(self) -> &'static str {
        match self {
            Section::Targets => "TARGET SPECIFICATION",
            Section::Discovery => "HOST DISCOVERY",
            Section::Techniques => "SCAN TECHNIQUES",
            Section::Ports => "PORT SPECIFICATION AND SCAN ORDER",
            Section::Service => "SERVICE/VERSION DETECTION",
            Section::Timing => "TIMING AND PERFORMANCE",
            Section::Output => "OUTPUT",
            Section::History => "HISTORY (portolan history|diff|audit --help for more)",
            Section::Misc => "MISC",
        }
    }
}

/// One row of the table.
#[derive(Debug)]
pub struct FlagDef {
    /// What it does.
    pub id: FlagId,
    /// One-letter names (short) and longer names (long), without dashes.
    pub names: &'static [&'static str],
    /// How it takes a value.
    pub arity: Arity,
    /// How `--help` shows the flag and its value.
    pub usage: &'static str,
    /// One line of help.
    pub help: &'static str,
    /// Where it is listed.
    pub section: Section,
}

macro_rules! flag {
    ($id:ident, [$($n:literal),+], $arity:ident, $sec:ident, $usage:literal, $help:literal) => {
        FlagDef {
            id: FlagId::$id,
            names: &[$($n),+],
            arity: Arity::$arity,
            usage: $usage,
            help: $help,
            section: Section::$sec,
        }
    };
}

/// Every flag Portolan knows.
pub static FLAGS: &[FlagDef] = &[
    flag!(
        InputList,
        ["iL"],
        Value,
        Targets,
        "-iL <file>",
        "Read targets from a file (- for standard input); # starts a comment"
    ),
    flag!(
        Exclude,
        ["exclude"],
        Value,
        Targets,
        "--exclude <host1[,host2]...>",
        "Exclude hosts or networks"
    ),
    flag!(
        ExcludeFile,
        ["excludefile"],
        Value,
        Targets,
        "--excludefile <file>",
        "Exclude the hosts or networks listed in a file"
    ),
    flag!(
        Scope,
        ["scope"],
        Value,
        Targets,
        "--scope <file>",
        "Networks the scan may reach (one per line); a target outside them refuses the scan before anything is sent"
    ),
    flag!(
        NoResolve,
        ["n"],
        Switch,
        Targets,
        "-n",
        "Never do reverse DNS resolution (no DNS query at all)"
    ),
    flag!(
        ResolveAll,
        ["R"],
        Switch,
        Targets,
        "-R",
        "Reverse DNS for every target, up or not (by default: hosts that answered)"
    ),
    flag!(
        DnsServers,
        ["dns-servers"],
        Value,
        Targets,
        "--dns-servers <serv1[,serv2],...>",
        "Ask these DNS servers (addresses) for host names instead of the system's"
    ),
    flag!(
        SystemDns,
        ["system-dns"],
        Switch,
        Targets,
        "--system-dns",
        "Use the system's resolver configuration (/etc/resolv.conf; the default)"
    ),
    flag!(
        Ipv6,
        ["6"],
        Switch,
        Targets,
        "-6",
        "Prefer IPv6 addresses when resolving host names"
    ),
    flag!(
        Ping,
        ["P"],
        Value,
        Discovery,
        "-Pn / -PE / -PP / -PM / -PS[ports] / -PA[ports] / -PU[ports] / -PY[ports] / -PR",
        "Skip host discovery (treat every host as up) / discover hosts with ICMP echo, timestamp or address mask requests, TCP SYN or ACK, UDP or SCTP INIT probes, or ARP and Neighbor Discovery on the segment (default: -PR on a segment, else -PE -PS443 -PA80 -PP)"
    ),
    flag!(
        Scan,
        ["s"],
        Value,
        Techniques,
        "-sS / -sT / -sA / -sW / -sF / -sN / -sX / -sM / -sU / -sY / -sZ / -sO / -sn / -sL / -sV",
        "TCP SYN scan (the default with raw-socket privileges) / connect scan (the default without) / ACK, window, FIN, NULL, Xmas and Maimon scans / UDP scan / SCTP INIT and COOKIE ECHO scans / IP protocol scan (-p takes protocol numbers) / host discovery only / list targets only / then probe open TCP ports (and open or open|filtered UDP ports with -sU) for service and version"
    ),
    flag!(
        ScanFlags,
        ["scanflags"],
        Value,
        Techniques,
        "--scanflags <flags>",
        "Send TCP probes with these control bits: names run together (URGACKPSHRSTSYNFIN, ECE, CWR, ALL, NONE) or a number (9, 0x29); the scan type (-sA, -sF, ...) says how answers are read, SYN by default"
    ),
    flag!(
        IdleScan,
        ["sI"],
        Value,
        Techniques,
        "-sI <zombie host>[:<probeport>]",
        "Idle scan: SYNs spoofed from the zombie, open ports read from its IP ID (IPv4; probe port 80 by default); add -Pn to send the target nothing from this address"
    ),
    flag!(
        Ports,
        ["p"],
        Value,
        Ports,
        "-p <port ranges>",
        "Only scan these ports: -p22; -p1-65535; -p-; -p U:53,T:21-25,80"
    ),
    flag!(
        ExcludePorts,
        ["exclude-ports"],
        Value,
        Ports,
        "--exclude-ports <port ranges>",
        "Exclude these ports from the scan"
    ),
    flag!(
        Fast,
        ["F"],
        Switch,
        Ports,
        "-F",
        "Fast mode: scan the 100 most common ports"
    ),
    flag!(
        TopPorts,
        ["top-ports"],
        Value,
        Ports,
        "--top-ports <number>",
        "Scan the <number> most common ports"
    ),
    flag!(
        NoRandomize,
        ["r"],
        Switch,
        Ports,
        "-r",
        "Scan hosts and ports in order instead of a keyed random order"
    ),
    flag!(
        Seed,
        ["seed"],
        Value,
        Ports,
        "--seed <number>",
        "Key of the random order, to reproduce a scan's order"
    ),
    flag!(
        VersionIntensity,
        ["version-intensity"],
        Value,
        Service,
        "--version-intensity <0-9>",
        "With -sV: send probes up to this rarity (default 7)"
    ),
    flag!(
        VersionLight,
        ["version-light"],
        Switch,
        Service,
        "--version-light",
        "With -sV: the likeliest probes only (intensity 2)"
    ),
    flag!(
        VersionAll,
        ["version-all"],
        Switch,
        Service,
        "--version-all",
        "With -sV: every probe (intensity 9)"
    ),
    flag!(
        VersionTimeout,
        ["version-timeout"],
        Value,
        Service,
        "--version-timeout <time>",
        "With -sV: the most time spent on one port (default 30s)"
    ),
    flag!(
        VersionDb,
        ["versiondb"],
        Value,
        Service,
        "--versiondb <file>",
        "With -sV: probes from this nmap-service-probes file instead of Portolan's"
    ),
    flag!(
        OsDetect,
        ["O"],
        Switch,
        Service,
        "-O",
        "Enable OS detection (nmap's probes and tests; IPv4)"
    ),
    flag!(
        OsScanLimit,
        ["osscan-limit"],
        Switch,
        Service,
        "--osscan-limit",
        "With -O: only hosts with an open and a closed TCP port"
    ),
    flag!(
        OsScanGuess,
        ["osscan-guess", "fuzzy"],
        Switch,
        Service,
        "--osscan-guess",
        "With -O: list every guess, not only perfect matches"
    ),
    flag!(
        MaxOsTries,
        ["max-os-tries"],
        Value,
        Service,
        "--max-os-tries <number>",
        "With -O: tries per OS probe (default 2)"
    ),
    flag!(
        OsDb,
        ["osdb"],
        Value,
        Service,
        "--osdb <file>",
        "With -O: fingerprints from this nmap-os-db file instead of Portolan's"
    ),
    flag!(
        Timing,
        ["T"],
        Value,
        Timing,
        "-T<0-5>",
        "Timing template: paranoid, sneaky, polite, normal, aggressive, insane"
    ),
    flag!(
        MinRate,
        ["min-rate"],
        Value,
        Timing,
        "--min-rate <number>",
        "Send at least <number> probes per second"
    ),
    flag!(
        MaxRate,
        ["max-rate"],
        Value,
        Timing,
        "--max-rate <number>",
        "Send at most <number> probes per second"
    ),
    flag!(
        MaxRetries,
        ["max-retries"],
        Value,
        Timing,
        "--max-retries <tries>",
        "Retransmissions per port at most"
    ),
    flag!(
        SweepConfidence,
        ["sweep-confidence"],
        Value,
        Timing,
        "--sweep-confidence <p>",
        "In a sweep, find a live host with this chance despite loss (0.999)"
    ),
    flag!(
        HostTimeout,
        ["host-timeout"],
        Value,
        Timing,
        "--host-timeout <time>",
        "Give up on a host after this long"
    ),
    flag!(
        MinRttTimeout,
        ["min-rtt-timeout"],
        Value,
        Timing,
        "--min-rtt-timeout <time>",
        "Shortest probe timeout"
    ),
    flag!(
        MaxRttTimeout,
        ["max-rtt-timeout"],
        Value,
        Timing,
        "--max-rtt-timeout <time>",
        "Longest probe timeout"
    ),
    flag!(
        InitialRttTimeout,
        ["initial-rtt-timeout"],
        Value,
        Timing,
        "--initial-rtt-timeout <time>",
        "Probe timeout before any round trip is measured"
    ),
    flag!(
        MinParallelism,
        ["min-parallelism"],
        Value,
        Timing,
        "--min-parallelism <number>",
        "Probes in flight at least"
    ),
    flag!(
        MaxParallelism,
        ["max-parallelism"],
        Value,
        Timing,
        "--max-parallelism <number>",
        "Probes in flight at most"
    ),
    flag!(
        ScanDelay,
        ["scan-delay"],
        Value,
        Timing,
        "--scan-delay <time>",
        "Wait at least this long between probes to a host"
    ),
    flag!(
        MaxScanDelay,
        ["max-scan-delay"],
        Value,
        Timing,
        "--max-scan-delay <time>",
        "Longest delay between probes to a host"
    ),
    flag!(
        MinHostgroup,
        ["min-hostgroup"],
        Value,
        Timing,
        "--min-hostgroup <size>",
        "Hosts scanned side by side at least"
    ),
    flag!(
        MaxHostgroup,
        ["max-hostgroup"],
        Value,
        Timing,
        "--max-hostgroup <size>",
        "Hosts scanned side by side at most"
    ),
    flag!(
        OutNormal,
        ["oN"],
        Value,
        Output,
        "-oN <file>",
        "Write normal output to a file (- for standard output)"
    ),
    flag!(
        OutJson,
        ["oJ"],
        Value,
        Output,
        "-oJ <file>",
        "Write JSON lines to a file (- for standard output)"
    ),
    flag!(
        OutXml,
        ["oX"],
        Value,
        Output,
        "-oX <file>",
        "Write nmap XML to a file (- for standard output)"
    ),
    flag!(
        OutGrep,
        ["oG"],
        Value,
        Output,
        "-oG <file>",
        "Write grepable output to a file (- for standard output)"
    ),
    flag!(
        OutAll,
        ["oA"],
        Value,
        Output,
        "-oA <basename>",
        "Write normal, XML and grepable output to <basename>.nmap, .xml and .gnmap"
    ),
    flag!(
        AppendOutput,
        ["append-output"],
        Switch,
        Output,
        "--append-output",
        "Append to output files instead of overwriting them"
    ),
    flag!(
        Resume,
        ["resume"],
        Value,
        Output,
        "--resume <file>",
        "Continue an interrupted or killed scan from its normal, grepable or XML output (alone on the command line)"
    ),
    flag!(
        Open,
        ["open"],
        Switch,
        Output,
        "--open",
        "Show only open (or possibly open) ports"
    ),
    flag!(
        Reason,
        ["reason"],
        Switch,
        Output,
        "--reason",
        "Show the evidence for each port's state"
    ),
    flag!(
        Verbose,
        ["v"],
        Attached,
        Output,
        "-v",
        "More verbose (-vv or -v2 for more)"
    ),
    flag!(
        Debug,
        ["d"],
        Attached,
        Output,
        "-d",
        "Debugging output (-dd or -d2 for more)"
    ),
    flag!(
        StatsEvery,
        ["stats-every"],
        Value,
        Output,
        "--stats-every <time>",
        "Print a status line at this interval"
    ),
    flag!(
        NoProgress,
        ["no-progress"],
        Switch,
        Output,
        "--no-progress",
        "Never draw the progress bar"
    ),
    flag!(
        Db,
        ["db"],
        Value,
        History,
        "--db <path|postgres://...>",
        "Record the scan in this history: a SQLite file, or a PostgreSQL URL (default: $XDG_DATA_HOME/portolan/history.sqlite, else ~/.local/share/portolan/history.sqlite); a URL's password is left out of output files and the history, and taken from $PGPASSWORD when the URL has none"
    ),
    flag!(
        NoDb,
        ["no-db"],
        Switch,
        History,
        "--no-db",
        "Do not record the scan in any history"
    ),
    flag!(
        DbWait,
        ["db-wait"],
        Value,
        History,
        "--db-wait <time>",
        "Wait this long for a history another process holds (default 10s), then fail"
    ),
    flag!(
        OnChange,
        ["on-change"],
        Value,
        History,
        "--on-change <command>",
        "When the scan differs from the previous scan of the same targets, run the command (sh -c) with the diff as JSON on standard input"
    ),
    flag!(
        Policy,
        ["policy"],
        Value,
        History,
        "--policy <file.toml>",
        "Audit each host against this exposure policy as the scan writes it (its violations right after it, on standard error if a format took standard output), a summary at the end; exit 1 on any violation (see portolan audit --help)"
    ),
    flag!(
        Interface,
        ["e"],
        Value,
        Misc,
        "-e <iface>",
        "Use this network interface"
    ),
    flag!(
        DefeatIcmpRatelimit,
        ["defeat-icmp-ratelimit"],
        Switch,
        Timing,
        "--defeat-icmp-ratelimit",
        "UDP and IP protocol scans: do not slow down to a host's ICMP rate limit; ports that stay silent are reported closed|filtered instead of open|filtered (faster, less exact)"
    ),
    flag!(
        SendIp,
        ["send-ip"],
        Switch,
        Misc,
        "--send-ip",
        "Send raw probes through the kernel's IP layer, not as Ethernet frames"
    ),
    flag!(
        Offline,
        ["offline"],
        Switch,
        Misc,
        "--offline",
        "Run a raw scan's whole engine without sending anything (in virtual time; implies -Pn -n), to measure the engine alone"
    ),
    flag!(
        DisableArpPing,
        ["disable-arp-ping"],
        Switch,
        Misc,
        "--disable-arp-ping",
        "Do not use ARP or Neighbor Discovery to find hosts on a directly attached segment"
    ),
    flag!(
        NoProxyCheck,
        ["no-proxy-check"],
        Switch,
        Techniques,
        "--no-proxy-check",
        "SYN and connect scans: do not connect to the open ports of a host that looks like a SYN proxy answers for it (by default they are, to tell real services from the proxy's answers)"
    ),
    flag!(
        Decoys,
        ["D"],
        Value,
        Misc,
        "-D <decoy1,decoy2[,ME],...>",
        "Cloak a raw scan with decoys: every probe is also sent from each decoy address (RND:<n> adds n random ones)"
    ),
    flag!(
        Source,
        ["S"],
        Value,
        Misc,
        "-S <IP address[,...|range]>",
        "Use this source address; several (198.18.0.100-107, fd00::100-1ff) spread a raw scan's probes so that each gets its own share of a target's ICMP rate limit (those not configured here are claimed on the -e interface's segment)"
    ),
    flag!(
        SourcePort,
        ["g", "source-port"],
        Value,
        Misc,
        "-g/--source-port <port>",
        "Use this source port (SYN scan)"
    ),
    flag!(
        Help,
        ["h", "help"],
        Switch,
        Misc,
        "-h/--help",
        "Print this help"
    ),
    flag!(
        Version,
        ["V", "version"],
        Switch,
        Misc,
        "-V/--version",
        "Print the version"
    ),
    flag!(
        Man,
        ["man"],
        Switch,
        Misc,
        "--man",
        "Print the man page (roff)"
    ),
];

/// One flag as given on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Given {
    /// Which flag.
    pub id: FlagId,
    /// How it was spelled, for error messages (`-p`, `--min-rate`).
    pub spelled: String,
    /// Its value, if it takes one.
    pub value: Option<String>,
}

/// What the command line holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedArgs {
    /// Flags in the order given.
    pub flags: Vec<Given>,
    /// Targets.
    pub positional: Vec<String>,
}

/// A command line that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlagError {
    /// Not in the table.
    #[error("unknown flag \"{0}\" (see --help)")]
    Unknown(String),
    /// A flag that needs a value came last.
    #[error("flag \"{0}\" needs a value")]
    MissingValue(String),
    /// A switch was given a value with `=`.
    #[error("flag \"{0}\" takes no value")]
    UnexpectedValue(String),
}

fn find_long(name: &str) -> Option<&'static FlagDef> {
    FLAGS
        .iter()
        .find(|f| f.names.iter().any(|n| n.len() > 1 && *n == name))
}

fn find_short(c: char) -> Option<&'static FlagDef> {
    let mut buf = [0u8; 4];
    let s: &str = c.encode_utf8(&mut buf);
    FLAGS.iter().find(|f| f.names.contains(&s))
}

/// Parses a command line (without the program name).
pub fn parse<I, S>(args: I) -> Result<ParsedArgs, FlagError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut out = ParsedArgs::default();
    let mut it = args.into_iter().map(Into::into);
    while let Some(arg) = it.next() {
        if arg == "--" {
            out.positional.extend(it.by_ref());
            break;
        }
        if arg == "-" || !arg.starts_with('-') {
            out.positional.push(arg);
            continue;
        }
        let body = arg.strip_prefix("--").unwrap_or(&arg[1..]);
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        if let Some(def) = find_long(name) {
            let spelled = format!("{}{name}", if arg.starts_with("--") { "--" } else { "-" });
            let value = match (def.arity, inline) {
                (Arity::Switch, Some(_)) => return Err(FlagError::UnexpectedValue(spelled)),
                (Arity::Switch, None) => None,
                (Arity::Attached, v) => v,
                (Arity::Value, Some(v)) => Some(v),
                (Arity::Value, None) => Some(
                    it.next()
                        .ok_or_else(|| FlagError::MissingValue(spelled.clone()))?,
                ),
            };
            out.flags.push(Given {
                id: def.id,
                spelled,
                value,
            });
            continue;
        }
        if arg.starts_with("--") {
            return Err(FlagError::Unknown(arg));
        }
        // Short flags, possibly bundled.
        let mut rest = &arg[1..];
        while let Some(c) = rest.chars().next() {
            rest = &rest[c.len_utf8()..];
            let def = find_short(c).ok_or_else(|| FlagError::Unknown(arg.clone()))?;
            let spelled = format!("-{c}");
            match def.arity {
                Arity::Switch => out.flags.push(Given {
                    id: def.id,
                    spelled,
                    value: None,
                }),
                Arity::Attached => {
                    out.flags.push(Given {
                        id: def.id,
                        spelled,
                        value: (!rest.is_empty()).then(|| rest.to_string()),
                    });
                    break;
                }
                Arity::Value => {
                    let value = if rest.is_empty() {
                        it.next()
                            .ok_or_else(|| FlagError::MissingValue(spelled.clone()))?
                    } else {
                        rest.to_string()
                    };
                    out.flags.push(Given {
                        id: def.id,
                        spelled,
                        value: Some(value),
                    });
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// The text of `--help`.
pub fn help_text(version: &str) -> String {
    let mut s = format!(
        "Portolan {version}: a network port scanner with nmap's flags\n\
         Usage: portolan [Scan Type(s)] [Options] {{target specification}}\n\
         \x20      portolan report FILE.xml|FILE.jsonl [-o REPORT.html]\n"
    );
    // A usage longer than the column gets its text on the next line.
    const MAX_COLUMN: usize = 32;
    let width = FLAGS
        .iter()
        .map(|f| f.usage.len())
        .filter(|&n| n <= MAX_COLUMN)
        .max()
        .unwrap_or(0);
    for section in Section::ALL {
        let _ = writeln!(s, "{}:", section.title());
        if section == Section::Targets {
            let _ = writeln!(
                s,
                "  Can pass host names, IP addresses, networks, etc.\n  \
                 Ex: scanme.example, 198.18.0.0/24, 198.18.0-3.1-254, fd00::/120"
            );
        }
        for f in FLAGS.iter().filter(|f| f.section == section) {
            if f.usage.len() > width {
                let _ = writeln!(s, "  {}\n  {:<width$}  {}", f.usage, "", f.help);
            } else {
                let _ = writeln!(s, "  {:<width$}  {}", f.usage, f.help);
            }
        }
    }
    s.push_str(
        "EXAMPLES:\n  portolan -p 1-1024 127.0.0.1\n  portolan -sT -p- -T4 --open 198.18.0.0/24\n  \
         portolan -oA scan -oJ scan.jsonl 198.18.0.0/24 && portolan report scan.jsonl -o scan.html\n",
    );
    s
}

/// The man page, in roff.
pub fn man_page(version: &str) -> String {
    let esc = |t: &str| t.replace('\\', "\\e").replace('-', "\\-");
    let mut s = format!(
        ".TH PORTOLAN 1 \"\" \"Portolan {version}\" \"User Commands\"\n\
         .SH NAME\nportolan \\- network port scanner with nmap's flags\n\
         .SH SYNOPSIS\n.B portolan\n[\\fIscan type\\fR] [\\fIoptions\\fR] \\fItargets\\fR\n\
         .SH DESCRIPTION\nPortolan finds which ports of which hosts are open, closed or \
         filtered, and reports the evidence for each state.\n"
    );
    for section in Section::ALL {
        let _ = writeln!(s, ".SH {}", section.title());
        for f in FLAGS.iter().filter(|f| f.section == section) {
            let _ = writeln!(s, ".TP\n.B {}\n{}", esc(f.usage), esc(f.help));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(args: &[&str]) -> Vec<(FlagId, Option<String>)> {
        parse(args.iter().copied())
            .unwrap()
            .flags
            .into_iter()
            .map(|g| (g.id, g.value))
            .collect()
    }

    fn v(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn nmap_spellings_parse() {
        assert_eq!(
            ids(&["-sT", "-p-", "-T4", "-Pn", "-n", "-oN", "out.txt"]),
            vec![
                (FlagId::Scan, v("T")),
                (FlagId::Ports, v("-")),
                (FlagId::Timing, v("4")),
                (FlagId::Ping, v("n")),
                (FlagId::NoResolve, None),
                (FlagId::OutNormal, v("out.txt")),
            ]
        );
        assert_eq!(
            ids(&[
                "-p",
                "22,80",
                "-iL",
                "-",
                "--min-rate",
                "500",
                "-min-rate=7"
            ]),
            vec![
                (FlagId::Ports, v("22,80")),
                (FlagId::InputList, v("-")),
                (FlagId::MinRate, v("500")),
                (FlagId::MinRate, v("7")),
            ]
        );
        assert_eq!(
            ids(&["-PS443", "-vv", "-nv", "--top-ports=10", "-oX", "-"]),
            vec![
                (FlagId::Ping, v("S443")),
                (FlagId::Verbose, v("v")),
                (FlagId::NoResolve, None),
                (FlagId::Verbose, None),
                (FlagId::TopPorts, v("10")),
                (FlagId::OutXml, v("-")),
            ]
        );
    }

    #[test]
    fn idle_scan_takes_the_next_argument() {
        assert_eq!(
            ids(&["-sI", "198.18.0.3:22", "-sI=z:80", "-sIz"]),
            vec![
                (FlagId::IdleScan, v("198.18.0.3:22")),
                (FlagId::IdleScan, v("z:80")),
                // As with nmap, the zombie is not attached: scan letters.
                (FlagId::Scan, v("Iz")),
            ]
        );
        assert_eq!(
            parse(["-sI"]).unwrap_err(),
            FlagError::MissingValue("-sI".into())
        );
    }

    #[test]
    fn positional_and_double_dash() {
        let p = parse(["198.18.0.1", "-p", "22", "--", "-weird"]).unwrap();
        assert_eq!(p.positional, vec!["198.18.0.1", "-weird"]);
    }

    #[test]
    fn errors_name_the_argument() {
        assert_eq!(
            parse(["-x"]).unwrap_err().to_string(),
            "unknown flag \"-x\" (see --help)"
        );
        assert_eq!(
            parse(["--bogus"]).unwrap_err(),
            FlagError::Unknown("--bogus".into())
        );
        assert_eq!(
            parse(["-p"]).unwrap_err(),
            FlagError::MissingValue("-p".into())
        );
        assert_eq!(
            parse(["--open=yes"]).unwrap_err(),
            FlagError::UnexpectedValue("--open".into())
        );
    }

    #[test]
    fn table_names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for f in FLAGS {
            for n in f.names {
                assert!(seen.insert(*n), "duplicate flag name {n}");
            }
        }
    }

    #[test]
    fn help_and_man_list_every_flag() {
        let help = help_text("0");
        let man = man_page("0");
        for f in FLAGS {
            assert!(help.contains(f.usage), "{} missing from help", f.usage);
            assert!(man.contains(f.help.split(' ').next().unwrap()));
        }
    }
}
