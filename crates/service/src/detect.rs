//! The probe engine: what answers on each open TCP port, and on each open
//! or open|filtered UDP port.
//!
//! Per port, as nmap's version detection (read
//! <https://nmap.org/book/vscan-technique.html> first):
//! 1. Connect and wait for a banner (the NULL probe). A close without a
//!    byte within `tcpwrappedms` is `tcpwrapped`.
//! 2. Send the other probes, a connection each (a connection on which
//!    nothing was said carries the next probe): first those whose `ports`
//!    list the port, then those of rarity at most the intensity, in file
//!    order. Each answer is read until a rule matches, the reply buffer is
//!    full ([`MAX_RESPONSE`]), the peer closes, or the probe's
//!    `totalwaitms` runs out. Rules are tried in order: the probe's own,
//!    its fallbacks', then the NULL probe's.
//! 3. A hard match ends the port. A soft match fixes the service name; from
//!    then on only probes with rules for that service are sent.
//! 4. An answer that looks like TLS, or a match of service `ssl`, starts a
//!    rustls handshake; the certificate and protocol are recorded and the
//!    probes run again inside TLS (`ssl/<name>`), without the NULL probe
//!    when ALPN chose HTTP. Ports in a probe's `sslports` try TLS first.
//! 5. RPC ports of a host with a portmapper are named from its `DUMP` list
//!    ([`crate::rpc`]).
//!
//! 6. A UDP port gets the UDP probes (those listing the port, then those
//!    of rarity up to the intensity), each in one datagram from a socket
//!    of its own, all at once: a silent port costs one `totalwaitms`, not
//!    one per probe. The answer to the earliest probe in that order that
//!    hard-matches wins (else the earliest soft match); any answer proves
//!    the port open ([`Detected::answered`]), an ICMP port unreachable
//!    ends the port's probes.
//!
//! Every wait grows with the host's measured round trip
//! ([`rtt_allowance`]).
//!
//! Contract: every port is bounded by the service timeout (also a service
//! that drips a byte at a time), and holds at most [`MAX_RESPONSE`] bytes
//! of answer; ports run in parallel up to a limit, so one slow service
//! holds up no other, and at most [`UDP_SOCKETS`] UDP probe sockets are
//! open at once. Banners are untrusted bytes: nothing here prints
//! them; no panics on any answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use portolan_engine::{ServiceInfo, ServiceMethod, TlsInfo};
use portolan_targets::Protocol;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout_at};

use crate::db::{ProbeDb, Transport};
use crate::rpc;
use crate::tls::{self, TlsClients};

/// The most answer bytes kept per probe.
pub const MAX_RESPONSE: usize = 32 * 1024;
/// Answers up to this long are matched at every chunk that arrives;
/// longer ones once, when reading ends (matching costs time per byte).
pub const EAGER_MATCH: usize = 8 * 1024;
/// How many banner bytes a [`ServiceInfo`] keeps.
pub const BANNER_BYTES: usize = 256;
/// Waits grow by this many round-trip times of the host.
pub const RTT_WAITS: u32 = 4;
/// ... and by this much at most.
pub const MAX_RTT_ALLOWANCE: Duration = Duration::from_secs(10);

/// How much longer every wait is for a host `rtt` away.
pub fn rtt_allowance(rtt: Option<Duration>) -> Duration {
    rtt.map_or(Duration::ZERO, |r| (r * RTT_WAITS).min(MAX_RTT_ALLOWANCE))
}

/// The most UDP probe sockets open at once, over all ports.
pub const UDP_SOCKETS: usize = 256;

/// How often detection checks [`DetectOptions::stop`].
pub const STOP_POLL: Duration = Duration::from_millis(100);
/// The longest wait for a connection or a TLS handshake.
pub const CONNECT_WAIT: Duration = Duration::from_secs(5);

/// How detection runs.
#[derive(Clone, Debug)]
pub struct DetectOptions {
    /// `--version-intensity`: probes of rarity up to this are sent (0-9).
    pub intensity: u8,
    /// `--version-timeout`: the most one port may take.
    pub service_timeout: Duration,
    /// How many ports are probed at once.
    pub parallelism: usize,
    /// Whether to speak TLS to services that do.
    pub tls: bool,
    /// When set (by Ctrl-C), detection stops within [`STOP_POLL`]; ports
    /// not done by then get the port table's name.
    pub stop: Option<Arc<AtomicBool>>,
}

impl Default for DetectOptions {
    fn default() -> Self {
        DetectOptions {
            intensity: 7,
            service_timeout: Duration::from_secs(30),
            parallelism: 256,
            tls: true,
            stop: None,
        }
    }
}

/// Why detection could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DetectError {
    /// The async runtime could not be built.
    #[error("cannot start the detection runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The TLS client could not be configured.
    #[error("cannot configure TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// One port to identify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DetectTarget {
    /// The service's address.
    pub addr: SocketAddr,
    /// TCP or UDP.
    pub transport: Transport,
    /// The round trip the port scan measured to the host, if any.
    pub rtt: Option<Duration>,
}

/// What detection found on one port.
#[derive(Clone, Debug, Default)]
pub struct Detected {
    /// The service.
    pub info: ServiceInfo,
    /// Whether the port answered a probe: for UDP, a datagram came back
    /// (the port is open, whatever the scan could tell); for TCP, whether
    /// a probe's answer named the service.
    pub answered: bool,
}

/// Probes every address and returns one [`ServiceInfo`] per address, in
/// the same order. Blocks until all are done.
pub fn detect_all(
    db: Arc<ProbeDb>,
    targets: &[SocketAddr],
    options: &DetectOptions,
) -> Result<Vec<ServiceInfo>, DetectError> {
    let with_rtt: Vec<(SocketAddr, Option<Duration>)> =
        targets.iter().map(|&a| (a, None)).collect();
    detect_all_with_rtt(db, &with_rtt, options)
}

/// [`detect_all`], each address with the round-trip time the port scan
/// measured to its host: waits (connect, handshake, each probe's answer,
/// the `tcpwrapped` window) grow by [`rtt_allowance`] of it, so a distant
/// host gets the time a near one has.
pub fn detect_all_with_rtt(
    db: Arc<ProbeDb>,
    targets: &[(SocketAddr, Option<Duration>)],
    options: &DetectOptions,
) -> Result<Vec<ServiceInfo>, DetectError> {
    let targets: Vec<DetectTarget> = targets
        .iter()
        .map(|&(addr, rtt)| DetectTarget {
            addr,
            transport: Transport::Tcp,
            rtt,
        })
        .collect();
    Ok(detect_targets(db, &targets, options)?
        .into_iter()
        .map(|d| d.info)
        .collect())
}

/// Identifies every port of `targets` (TCP and UDP), one [`Detected`] per
/// target in the same order; waits grow by [`rtt_allowance`] of each
/// target's round trip. Blocks until all are done, on a runtime of its
/// own: never call it from async code (use [`Detector::detect`] there).
pub fn detect_targets(
    db: Arc<ProbeDb>,
    targets: &[DetectTarget],
    options: &DetectOptions,
) -> Result<Vec<Detected>, DetectError> {
    let runtime = runtime().map_err(DetectError::Runtime)?;
    let detector = Detector::new(db, options.clone())?;
    Ok(runtime.block_on(detector.detect(targets)))
}

/// A runtime fit for detection: matching is CPU work (thousands of
/// patterns with nmap's file), so one worker per core, with I/O and time.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
}

/// Version detection shared by any number of concurrent calls (a scan
/// hands it each host as the host finishes): the probe database, the TLS
/// clients, and the limits on ports probed and UDP sockets open at once,
/// which hold across calls. Runs on the caller's tokio runtime.
#[derive(Clone)]
pub struct Detector {
    db: Arc<ProbeDb>,
    clients: TlsClients,
    options: DetectOptions,
    limit: Arc<Semaphore>,
    udp_sockets: Arc<Semaphore>,
}

impl Detector {
    /// A detector with `db` and `options`; needs no runtime yet.
    pub fn new(db: Arc<ProbeDb>, options: DetectOptions) -> Result<Detector, DetectError> {
        Ok(Detector {
            clients: TlsClients::new()?,
            limit: Arc::new(Semaphore::new(options.parallelism.max(1))),
            udp_sockets: Arc::new(Semaphore::new(UDP_SOCKETS)),
            db,
            options,
        })
    }

    /// Identifies every port of `targets`, one [`Detected`] per target in
    /// the same order (see [`detect_targets`]). Must run inside a tokio
    /// runtime with time and I/O enabled.
    pub async fn detect(&self, targets: &[DetectTarget]) -> Vec<Detected> {
        let options = &self.options;
        let mut tasks = tokio::task::JoinSet::new();
        for (i, t) in targets.iter().enumerate() {
            let ctx = Context {
                db: Arc::clone(&self.db),
                clients: self.clients.clone(),
                options: options.clone(),
                addr: t.addr,
                extra: rtt_allowance(t.rtt),
                udp_sockets: Arc::clone(&self.udp_sockets),
            };
            let limit = Arc::clone(&self.limit);
            let transport = t.transport;
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let found = match transport {
                    Transport::Tcp => {
                        let info = ctx.detect().await;
                        Detected {
                            answered: info.method == ServiceMethod::Probed,
                            info,
                        }
                    }
                    Transport::Udp => ctx.detect_udp().await,
                };
                (i, found)
            });
        }
        let mut found: Vec<Detected> = targets
            .iter()
            .map(|t| Detected {
                info: table_guess(t.transport, t.addr.port(), Vec::new()),
                answered: false,
            })
            .collect();
        let stopped = || {
            options
                .stop
                .as_ref()
                .is_some_and(|s| s.load(Ordering::Relaxed))
        };
        loop {
            tokio::select! {
                done = tasks.join_next() => match done {
                    Some(Ok((i, info))) => found[i] = info,
                    Some(Err(_)) => {}
                    None => break,
                },
                _ = tokio::time::sleep(STOP_POLL) => {
                    if stopped() {
                        tasks.abort_all();
                        break;
                    }
                }
            }
        }
        if !stopped() {
            let wait = options.service_timeout.min(CONNECT_WAIT * 2);
            name_rpc_ports(targets, &mut found, wait).await;
        }
        found
    }
}

/// A byte stream to a service, plain or inside TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// What one probe's answer gave.
enum Answer {
    /// A hard match: the service is known.
    Hard(ServiceInfo),
    /// A soft match: the service name is known.
    Soft(ServiceInfo),
    /// Nothing matched.
    Nothing,
}

/// How a run of probes ended.
enum Verdict {
    Found(ServiceInfo),
    Soft(ServiceInfo),
    /// The service speaks TLS; the match that said so, if one did.
    Tls(Option<ServiceInfo>),
    /// It closed without a word.
    Wrapped,
    /// Nothing matched (or nothing could connect).
    Unknown,
}

struct Context {
    db: Arc<ProbeDb>,
    clients: TlsClients,
    options: DetectOptions,
    addr: SocketAddr,
    /// Added to every wait: [`rtt_allowance`] of the host's round trip.
    extra: Duration,
    /// Permits for UDP probe sockets, shared by every port.
    udp_sockets: Arc<Semaphore>,
}

/// A port's progress: the deadline and the first bytes seen.
struct Run {
    deadline: Instant,
    banner: Vec<u8>,
}

impl Context {
    async fn detect(&self) -> ServiceInfo {
        let port = self.addr.port();
        let mut run = Run {
            deadline: Instant::now() + self.options.service_timeout,
            banner: Vec::new(),
        };
        if self.db.exclude.tcp.contains(port) {
            return self.table_guess(&run);
        }
        let ssl_first = self.options.tls
            && self
                .db
                .probes
                .iter()
                .any(|p| p.transport == Transport::Tcp && p.sslports.contains(port));
        if ssl_first && let Some(info) = self.inside_tls(&mut run, None).await {
            return info;
        }
        match self.run_probes(&mut run, None).await {
            Verdict::Tls(hint) => {
                let inside = if self.options.tls {
                    self.inside_tls(&mut run, hint.as_ref()).await
                } else {
                    None
                };
                inside.unwrap_or_else(|| self.tls_hint(&run, hint))
            }
            other => self.conclude(other, &run),
        }
    }

    /// What a TLS port is without a look inside: the match that said TLS
    /// (`ssl/http` becomes `http` in TLS), or plain `ssl`.
    fn tls_hint(&self, run: &Run, hint: Option<ServiceInfo>) -> ServiceInfo {
        let Some(mut info) = hint else {
            return self.named(run, "ssl");
        };
        if let Some(inner) = info.name.strip_prefix("ssl/") {
            info.name = inner.to_string();
            info.ssl = true;
        }
        info.banner = run.banner.clone();
        info
    }

    /// The handshake, then the probes inside TLS; `None` if no handshake
    /// completed. `hint` is the plain-text match that said TLS, if any.
    async fn inside_tls(&self, run: &mut Run, hint: Option<&ServiceInfo>) -> Option<ServiceInfo> {
        let tls_info = self.handshake(run).await?;
        let verdict = self.run_probes(run, Some(&tls_info)).await;
        let mut info = match verdict {
            Verdict::Found(i) | Verdict::Soft(i) => i,
            // A service that speaks TLS and then nothing we know.
            Verdict::Tls(_) | Verdict::Wrapped | Verdict::Unknown => match hint {
                Some(h) if h.name.starts_with("ssl/") => self.tls_hint(run, Some(h.clone())),
                _ => self.named(run, "unknown"),
            },
        };
        info.ssl = true;
        info.tls = Some(tls_info);
        Some(info)
    }

    async fn handshake(&self, run: &Run) -> Option<TlsInfo> {
        let wait = run.deadline.min(Instant::now() + CONNECT_WAIT + self.extra);
        let tcp = timeout_at(wait, TcpStream::connect(self.addr))
            .await
            .ok()?
            .ok()?;
        let name = tls::server_name(self.addr.ip());
        let stream = timeout_at(wait, self.clients.inspect.connect(name, tcp))
            .await
            .ok()?
            .ok()?;
        Some(tls::inspect(&stream))
    }

    async fn open(&self, run: &Run, tls: bool) -> Option<Box<dyn Io>> {
        let wait = run.deadline.min(Instant::now() + CONNECT_WAIT + self.extra);
        let tcp = timeout_at(wait, TcpStream::connect(self.addr))
            .await
            .ok()?
            .ok()?;
        if !tls {
            return Some(Box::new(tcp));
        }
        let name = tls::server_name(self.addr.ip());
        let stream = timeout_at(wait, self.clients.probe.connect(name, tcp))
            .await
            .ok()?
            .ok()?;
        Some(Box::new(stream))
    }

    /// The probes to send to this port, in order: NULL, those listing the
    /// port, then the rest up to the intensity.
    fn plan(&self, tls: Option<&TlsInfo>) -> Vec<usize> {
        let port = self.addr.port();
        let in_tls = tls.is_some();
        // A TLS service that chose HTTP by ALPN waits for a request: no
        // banner to wait for.
        let http_by_alpn = tls
            .and_then(|t| t.alpn.as_deref())
            .is_some_and(|a| a == "http/1.1" || a == "h2");
        let tcp = |i: &usize| self.db.probes[*i].transport == Transport::Tcp;
        let all: Vec<usize> = (0..self.db.probes.len()).filter(tcp).collect();
        let listed = |i: usize| {
            let p = &self.db.probes[i];
            p.ports.contains(port) || (in_tls && p.sslports.contains(port))
        };
        let mut order: Vec<usize> = all
            .iter()
            .copied()
            .filter(|&i| self.db.probes[i].is_null() && !http_by_alpn)
            .collect();
        order.extend(
            all.iter()
                .copied()
                .filter(|&i| !self.db.probes[i].is_null() && listed(i)),
        );
        order.extend(all.iter().copied().filter(|&i| {
            let p = &self.db.probes[i];
            !p.is_null() && !listed(i) && p.rarity <= self.options.intensity
        }));
        order
    }

    async fn run_probes(&self, run: &mut Run, tls: Option<&TlsInfo>) -> Verdict {
        let mut soft: Option<ServiceInfo> = None;
        // A connection on which nothing was said yet can carry the next probe.
        let mut carried: Option<Box<dyn Io>> = None;
        for index in self.plan(tls) {
            if Instant::now() >= run.deadline {
                break;
            }
            let probe = &self.db.probes[index];
            if let Some(s) = &soft
                && !self.db.rules_for(index).any(|r| r.service == s.name)
            {
                continue;
            }
            let started = Instant::now();
            let mut stream = match carried.take() {
                Some(s) => s,
                None => match self.open(run, tls.is_some()).await {
                    Some(s) => s,
                    None => break,
                },
            };
            let wait_until = run
                .deadline
                .min(Instant::now() + probe.totalwait + self.extra);
            if !probe.payload.is_empty()
                && timeout_at(wait_until, stream.write_all(&probe.payload))
                    .await
                    .map_or(true, |r| r.is_err())
            {
                continue;
            }
            let mut response = Vec::new();
            let mut closed = false;
            let mut chunk = [0u8; 4096];
            let mut answer = Answer::Nothing;
            // Bytes already matched against: a long answer is matched at
            // each chunk only while short, then once at the end.
            let mut matched = 0;
            while response.len() < MAX_RESPONSE {
                match timeout_at(wait_until, stream.read(&mut chunk)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => {
                        closed = true;
                        break;
                    }
                    Ok(Ok(n)) => {
                        let room = MAX_RESPONSE - response.len();
                        response.extend_from_slice(&chunk[..n.min(room)]);
                        if response.len() <= EAGER_MATCH {
                            matched = response.len();
                            self.improve(&mut answer, index, &response, soft.as_ref(), tls);
                            if matches!(answer, Answer::Hard(_)) {
                                break;
                            }
                        }
                    }
                    Err(_) => break,
                }
            }
            if matched < response.len() {
                self.improve(&mut answer, index, &response, soft.as_ref(), tls);
            }
            if run.banner.is_empty() {
                run.banner = response[..response.len().min(BANNER_BYTES)].to_vec();
            }
            if probe.is_null()
                && tls.is_none()
                && response.is_empty()
                && closed
                && started.elapsed() < probe.tcpwrapped + self.extra
            {
                return Verdict::Wrapped;
            }
            match answer {
                Answer::Hard(info) if says_tls(&info) && tls.is_none() => {
                    return Verdict::Tls(Some(info));
                }
                Answer::Hard(mut info) => {
                    info.banner = run.banner.clone();
                    return Verdict::Found(info);
                }
                Answer::Soft(info) if says_tls(&info) && tls.is_none() => {
                    return Verdict::Tls(Some(info));
                }
                Answer::Soft(info) => soft = Some(info),
                Answer::Nothing if tls.is_none() && tls::looks_like_tls(&response) => {
                    return Verdict::Tls(None);
                }
                Answer::Nothing => {}
            }
            if response.is_empty() && !closed {
                carried = Some(stream);
            }
        }
        match soft {
            Some(mut info) => {
                info.banner = run.banner.clone();
                Verdict::Soft(info)
            }
            None => Verdict::Unknown,
        }
    }

    /// Matches `response` again; a match replaces `answer` (a longer
    /// answer may fail a pattern anchored at its end that the shorter one
    /// passed: what matched before stays).
    fn improve(
        &self,
        answer: &mut Answer,
        index: usize,
        response: &[u8],
        soft: Option<&ServiceInfo>,
        tls: Option<&TlsInfo>,
    ) {
        let now = self.match_answer(index, response, soft, tls);
        if !matches!(now, Answer::Nothing) {
            *answer = now;
        }
    }

    fn match_answer(
        &self,
        index: usize,
        response: &[u8],
        soft: Option<&ServiceInfo>,
        tls: Option<&TlsInfo>,
    ) -> Answer {
        let only = soft.map(|s| s.name.as_str());
        let Some(found) = self.db.identify(index, response, only) else {
            return Answer::Nothing;
        };
        let fields = found.fields;
        let info = ServiceInfo {
            name: found.rule.service.clone(),
            product: fields.product,
            version: fields.version,
            extrainfo: fields.info,
            hostname: fields.hostname,
            ostype: fields.ostype,
            devicetype: fields.devicetype,
            cpe: fields.cpe,
            method: ServiceMethod::Probed,
            conf: 10,
            ssl: tls.is_some(),
            tls: None,
            banner: Vec::new(),
        };
        if found.rule.soft {
            Answer::Soft(info)
        } else {
            Answer::Hard(info)
        }
    }

    fn conclude(&self, verdict: Verdict, run: &Run) -> ServiceInfo {
        match verdict {
            Verdict::Found(info) | Verdict::Soft(info) => info,
            Verdict::Wrapped => {
                let mut info = self.named(run, "tcpwrapped");
                info.conf = 8;
                info
            }
            Verdict::Tls(hint) => self.tls_hint(run, hint),
            Verdict::Unknown => self.table_guess(run),
        }
    }

    fn named(&self, run: &Run, name: &str) -> ServiceInfo {
        ServiceInfo {
            name: name.to_string(),
            method: ServiceMethod::Probed,
            conf: 10,
            banner: run.banner.clone(),
            ..ServiceInfo::default()
        }
    }

    fn table_guess(&self, run: &Run) -> ServiceInfo {
        table_guess(Transport::Tcp, self.addr.port(), run.banner.clone())
    }

    /// The UDP probes to send to this port, in order: those listing the
    /// port, then the rest up to the intensity.
    fn plan_udp(&self) -> Vec<usize> {
        let port = self.addr.port();
        let udp: Vec<usize> = (0..self.db.probes.len())
            .filter(|&i| self.db.probes[i].transport == Transport::Udp)
            .collect();
        let listed = |i: &usize| self.db.probes[*i].ports.contains(port);
        let mut order: Vec<usize> = udp.iter().copied().filter(listed).collect();
        order.extend(
            udp.iter()
                .copied()
                .filter(|i| !listed(i) && self.db.probes[*i].rarity <= self.options.intensity),
        );
        order
    }

    /// Every UDP probe at once, each from its own socket; the answers
    /// matched in the plan's order.
    async fn detect_udp(&self) -> Detected {
        let port = self.addr.port();
        let unanswered = |banner: Vec<u8>| Detected {
            info: table_guess(Transport::Udp, port, banner),
            answered: false,
        };
        if self.db.exclude.udp.contains(port) {
            return unanswered(Vec::new());
        }
        let plan = self.plan_udp();
        let deadline = Instant::now() + self.options.service_timeout;
        let mut exchanges = tokio::task::JoinSet::new();
        for (rank, &index) in plan.iter().enumerate() {
            let probe = &self.db.probes[index];
            let payload = probe.payload.clone();
            let until = deadline.min(Instant::now() + probe.totalwait + self.extra);
            let sockets = Arc::clone(&self.udp_sockets);
            let addr = self.addr;
            exchanges.spawn(async move {
                let _permit = sockets.acquire_owned().await;
                (rank, udp_exchange(addr, &payload, until).await)
            });
        }
        // Per rank: None while waiting, then the answer (empty: none).
        let mut answers: Vec<Option<Vec<u8>>> = vec![None; plan.len()];
        let mut refused = false;
        while let Some(done) = exchanges.join_next().await {
            let Ok((rank, outcome)) = done else { continue };
            match outcome {
                UdpOutcome::Answer(bytes) => answers[rank] = Some(bytes),
                UdpOutcome::Silent => answers[rank] = Some(Vec::new()),
                UdpOutcome::Refused => {
                    answers[rank] = Some(Vec::new());
                    refused = true;
                }
            }
            // Done once every probe before the first hard match is in.
            let mut settled = true;
            let mut hard = false;
            for (r, a) in answers.iter().enumerate() {
                match a {
                    None => {
                        settled = false;
                        break;
                    }
                    Some(bytes) if !bytes.is_empty() => {
                        if matches!(
                            self.match_answer(plan[r], bytes, None, None),
                            Answer::Hard(_)
                        ) {
                            hard = true;
                            break;
                        }
                    }
                    Some(_) => {}
                }
            }
            if (settled && hard) || refused {
                exchanges.abort_all();
                break;
            }
        }
        let banner = answers
            .iter()
            .flatten()
            .find(|a| !a.is_empty())
            .map(|a| a[..a.len().min(BANNER_BYTES)].to_vec());
        let Some(banner) = banner else {
            return unanswered(Vec::new());
        };
        let mut soft = None;
        for (r, answer) in answers.iter().enumerate() {
            let Some(bytes) = answer.as_ref().filter(|a| !a.is_empty()) else {
                continue;
            };
            match self.match_answer(plan[r], bytes, None, None) {
                Answer::Hard(mut info) => {
                    info.banner = banner;
                    return Detected {
                        info,
                        answered: true,
                    };
                }
                Answer::Soft(info) if soft.is_none() => soft = Some(info),
                _ => {}
            }
        }
        let info = match soft {
            Some(mut info) => {
                info.banner = banner;
                info
            }
            None => table_guess(Transport::Udp, port, banner),
        };
        Detected {
            info,
            answered: true,
        }
    }
}

/// How one UDP probe went.
enum UdpOutcome {
    /// A datagram came back (at most [`MAX_RESPONSE`] bytes kept).
    Answer(Vec<u8>),
    /// Nothing came back in time (or the socket could not be used).
    Silent,
    /// The host said the port is unreachable (ICMP port unreachable).
    Refused,
}

/// Sends `payload` to `addr` from a fresh connected socket and waits until
/// `until` for one datagram back.
async fn udp_exchange(addr: SocketAddr, payload: &[u8], until: Instant) -> UdpOutcome {
    let local: SocketAddr = if addr.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let Ok(socket) = UdpSocket::bind(local).await else {
        return UdpOutcome::Silent;
    };
    if socket.connect(addr).await.is_err() || socket.send(payload).await.is_err() {
        return UdpOutcome::Silent;
    }
    let mut buf = vec![0u8; MAX_RESPONSE];
    match timeout_at(until, socket.recv(&mut buf)).await {
        Ok(Ok(n)) => {
            buf.truncate(n);
            UdpOutcome::Answer(buf)
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => UdpOutcome::Refused,
        Ok(Err(_)) | Err(_) => UdpOutcome::Silent,
    }
}

/// Whether a match says the port speaks TLS (`ssl`, or `ssl/<service>` as
/// nmap's database writes some).
fn says_tls(info: &ServiceInfo) -> bool {
    info.name == "ssl" || info.name.starts_with("ssl/")
}

/// What the port table says of a port nothing matched on.
fn table_guess(transport: Transport, port: u16, banner: Vec<u8>) -> ServiceInfo {
    let proto = match transport {
        Transport::Tcp => Protocol::Tcp,
        Transport::Udp => Protocol::Udp,
    };
    ServiceInfo {
        name: portolan_targets::service_name(proto, port)
            .unwrap_or("unknown")
            .to_string(),
        method: ServiceMethod::Table,
        conf: 3,
        banner,
        ..ServiceInfo::default()
    }
}

/// Names the RPC ports of each host that runs a portmapper (or answered
/// RPC on some port) from the portmapper's `DUMP` list: program, versions
/// and number, as nmap's RPC grinder reports them (`nfs 3-4 (RPC
/// #100003)`); RPC ports no list names are ground ([`grind`]). Ports
/// already matched to a product keep their match.
async fn name_rpc_ports(targets: &[DetectTarget], found: &mut [Detected], wait: Duration) {
    let is_rpc = |f: &ServiceInfo| f.name == "rpc" || f.name == "rpcbind";
    let mut hosts: Vec<std::net::IpAddr> = targets
        .iter()
        .zip(found.iter())
        .filter(|(_, f)| is_rpc(&f.info))
        .map(|(t, _)| t.addr.ip())
        .collect();
    hosts.sort();
    hosts.dedup();
    for ip in hosts {
        // The portmapper's TCP port (111 unless it was found elsewhere).
        let portmapper = targets
            .iter()
            .zip(found.iter())
            .find(|(t, f)| {
                t.addr.ip() == ip && t.transport == Transport::Tcp && f.info.name == "rpcbind"
            })
            .map_or(111, |(t, _)| t.addr.port());
        let Some(list) = portmapper_dump(SocketAddr::new(ip, portmapper), wait).await else {
            continue;
        };
        for (target, detected) in targets.iter().zip(found.iter_mut()) {
            let info = &mut detected.info;
            let nameable = is_rpc(info) || info.method == ServiceMethod::Table;
            if target.addr.ip() != ip || !nameable {
                continue;
            }
            // A silent UDP port is not named from the list: nothing says
            // the program is what listens there now.
            if target.transport == Transport::Udp && !detected.answered {
                continue;
            }
            let proto = match target.transport {
                Transport::Tcp => rpc::PROTO_TCP,
                Transport::Udp => rpc::PROTO_UDP,
            };
            let port = target.addr.port();
            let Some(program) = rpc::program_on(&list, proto, port) else {
                continue;
            };
            let Some((low, high)) = rpc::versions_on(&list, program, proto, port) else {
                continue;
            };
            name_program(info, program, low, high);
        }
    }
    // RPC answered where no list names the program (no portmapper, or it
    // refuses DUMP): grind the port.
    for (target, detected) in targets.iter().zip(found.iter_mut()) {
        if detected.info.name != "rpc" {
            continue;
        }
        if let Some((program, low, high)) = grind(target.addr, target.transport, wait).await {
            name_program(&mut detected.info, program, low, high);
        }
    }
}

/// Names a port's service from the RPC program found on it.
fn name_program(info: &mut ServiceInfo, program: u32, low: u32, high: u32) {
    info.name = rpc::program_name(program).unwrap_or("rpc").to_string();
    info.version = Some(if low == high {
        low.to_string()
    } else {
        format!("{low}-{high}")
    });
    info.extrainfo = Some(format!("RPC #{program}"));
    info.method = ServiceMethod::Probed;
    info.conf = 10;
}

/// Grinds an RPC port as nmap's RPC grinder does: a NULL call for each
/// program of [`rpc::GRIND_PROGRAMS`] at [`rpc::GRIND_VERSION`], until one
/// answers `PROG_MISMATCH` with the versions it serves. Each call waits
/// `wait` at most for its answer; the first silence ends the grinding.
async fn grind(addr: SocketAddr, transport: Transport, wait: Duration) -> Option<(u32, u32, u32)> {
    let deadline = || Instant::now() + wait;
    let calls = rpc::GRIND_PROGRAMS
        .iter()
        .enumerate()
        .map(|(i, &(program, _))| (program, rpc::XID ^ (i as u32 + 1)));
    match transport {
        Transport::Tcp => {
            let mut stream = timeout_at(deadline(), TcpStream::connect(addr))
                .await
                .ok()?
                .ok()?;
            for (program, xid) in calls {
                let call = rpc::null_call(program, rpc::GRIND_VERSION, xid, true);
                let at = deadline();
                timeout_at(at, stream.write_all(&call)).await.ok()?.ok()?;
                let reply = read_record(&mut stream, at).await?;
                if let Some(rpc::CallReply::ProgramMismatch { low, high }) =
                    rpc::parse_call_reply(&reply, xid)
                {
                    return Some((program, low, high));
                }
            }
            None
        }
        Transport::Udp => {
            let local = if addr.is_ipv4() {
                SocketAddr::from(([0, 0, 0, 0], 0))
            } else {
                SocketAddr::from(([0u16; 8], 0))
            };
            let socket = UdpSocket::bind(local).await.ok()?;
            socket.connect(addr).await.ok()?;
            let mut buf = [0u8; 1024];
            for (program, xid) in calls {
                let call = rpc::null_call(program, rpc::GRIND_VERSION, xid, false);
                let at = deadline();
                socket.send(&call).await.ok()?;
                // Datagrams answering earlier calls are skipped.
                let answer = loop {
                    let n = timeout_at(at, socket.recv(&mut buf)).await.ok()?.ok()?;
                    if let Some(answer) = rpc::parse_call_reply(&buf[..n], xid) {
                        break answer;
                    }
                };
                if let rpc::CallReply::ProgramMismatch { low, high } = answer {
                    return Some((program, low, high));
                }
            }
            None
        }
    }
}

/// One record of RPC over TCP (its fragments joined), read by `deadline`,
/// at most [`MAX_RESPONSE`] bytes.
async fn read_record(stream: &mut TcpStream, deadline: Instant) -> Option<Vec<u8>> {
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    while reply.len() < MAX_RESPONSE {
        if let Some(joined) = rpc::record(&reply) {
            return Some(joined);
        }
        let n = timeout_at(deadline, stream.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        reply.extend_from_slice(&chunk[..n.min(MAX_RESPONSE - reply.len())]);
    }
    rpc::record(&reply)
}

/// The portmapper's list at `addr`, over TCP, within `wait`.
async fn portmapper_dump(addr: SocketAddr, wait: Duration) -> Option<Vec<rpc::Mapping>> {
    let deadline = Instant::now() + wait;
    let mut stream = timeout_at(deadline, TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    timeout_at(deadline, stream.write_all(&rpc::dump_call()))
        .await
        .ok()?
        .ok()?;
    rpc::parse_dump(&read_record(&mut stream, deadline).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Probes, in file order: NULL; A (rarity 1); B (rarity 5, lists 8080);
    /// C (rarity 8); D (rarity 3, lists 443 as an sslport); a UDP probe.
    const DB: &str = "\
Probe TCP NULL q||
Probe TCP A q|a|
rarity 1
Probe TCP B q|b|
rarity 5
ports 8080
Probe TCP C q|c|
rarity 8
Probe TCP D q|d|
rarity 3
sslports 443
Probe UDP U q|u|
rarity 1
";

    fn plan(port: u16, intensity: u8, tls: Option<&TlsInfo>) -> Vec<String> {
        let parsed = crate::parse(DB.as_bytes());
        assert_eq!(parsed.errors, vec![]);
        let ctx = Context {
            db: Arc::new(parsed.db),
            clients: TlsClients::new().unwrap(),
            options: DetectOptions {
                intensity,
                ..DetectOptions::default()
            },
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            extra: Duration::ZERO,
            udp_sockets: Arc::new(Semaphore::new(1)),
        };
        ctx.plan(tls)
            .into_iter()
            .map(|i| ctx.db.probes[i].name.clone())
            .collect()
    }

    #[test]
    fn probes_follow_port_lists_then_rarity_up_to_the_intensity() {
        // --version-intensity 7 (the default): every TCP probe up to 7.
        assert_eq!(plan(22, 7, None), ["NULL", "A", "B", "D"]);
        // --version-light (2): the rarest go; a probe listing the port
        // comes first whatever its rarity.
        assert_eq!(plan(22, 2, None), ["NULL", "A"]);
        assert_eq!(plan(8080, 2, None), ["NULL", "B", "A"]);
        // --version-all (9) and 0.
        assert_eq!(plan(22, 9, None), ["NULL", "A", "B", "C", "D"]);
        assert_eq!(plan(22, 0, None), ["NULL"]);
        // sslports count inside TLS only; HTTP chosen by ALPN skips NULL.
        let tls = TlsInfo::default();
        assert_eq!(plan(443, 2, Some(&tls)), ["NULL", "D", "A"]);
        assert_eq!(plan(443, 2, None), ["NULL", "A"]);
        let http = TlsInfo {
            alpn: Some("http/1.1".into()),
            ..TlsInfo::default()
        };
        assert_eq!(plan(443, 2, Some(&http)), ["D", "A"]);
    }

    #[test]
    fn waits_grow_with_the_round_trip_up_to_a_bound() {
        assert_eq!(rtt_allowance(None), Duration::ZERO);
        assert_eq!(
            rtt_allowance(Some(Duration::from_millis(150))),
            Duration::from_millis(600)
        );
        assert_eq!(
            rtt_allowance(Some(Duration::from_secs(60))),
            MAX_RTT_ALLOWANCE
        );
    }
}
