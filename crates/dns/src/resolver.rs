//! [`ReverseResolver`]: PTR lookups on a thread of their own, many at once.
//!
//! The caller hands in addresses ([`ReverseResolver::lookup`]) and reads
//! [`Resolved`] values back, one per address, in the order they finish.
//! The thread keeps at most [`ResolverConfig::max_in_flight`] queries
//! outstanding; the rest wait in a queue. Each name gets
//! [`ResolverConfig::attempts`] tries, sent to the configured servers in
//! turn (the first try to the first server), each given
//! [`ResolverConfig::timeout`]; an error code from a server moves on to the
//! next try at once, and a truncated answer ends the lookup (no TCP). A
//! lookup may carry a time after which its answer is of no use: if that
//! passes while it is queued or in flight, it ends as
//! [`Failure::Expired`] and frees its place.
//!
//! Queries leave one unconnected UDP socket per address family (an
//! ephemeral port chosen by the kernel) with a fresh random ID per try; an
//! answer counts only if it comes from the server that try was sent to,
//! with that ID and that question ([`crate::message::read_answer`]).
//! Everything else is dropped. Dropping the resolver stops the thread at
//! once (a [`mio::Waker`] interrupts its wait) and joins it.

use std::collections::hash_map::{Entry, RandomState};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::message::{Answer, query, read_answer};
use crate::name::HostName;

/// How lookups are made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolverConfig {
    /// The servers, asked in turn.
    pub servers: Vec<SocketAddr>,
    /// How long each try waits for its answer.
    pub timeout: Duration,
    /// Tries per name, over all servers (at least one).
    pub attempts: u32,
    /// Queries outstanding at most.
    pub max_in_flight: usize,
}

impl ResolverConfig {
    /// Queries in flight at most, by default.
    pub const MAX_IN_FLIGHT: usize = 64;
    /// Each try's timeout, by default.
    pub const TIMEOUT: Duration = Duration::from_millis(700);
    /// Tries per name, by default (at least one per server).
    pub const ATTEMPTS: u32 = 3;

    /// The defaults, with these servers.
    pub fn new(servers: Vec<SocketAddr>) -> ResolverConfig {
        let attempts = Self::ATTEMPTS.max(u32::try_from(servers.len()).unwrap_or(u32::MAX));
        ResolverConfig {
            servers,
            timeout: Self::TIMEOUT,
            attempts,
            max_in_flight: Self::MAX_IN_FLIGHT,
        }
    }
}

/// The end of one lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The address looked up.
    pub addr: IpAddr,
    /// What came of it.
    pub outcome: Outcome,
}

/// What a lookup found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The address's name.
    Found(HostName),
    /// A server said there is none.
    NotFound,
    /// No server said.
    Failed(Failure),
}

/// Why a lookup found nothing to say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// No answer within any try.
    Timeout,
    /// The answer was truncated (no TCP fallback).
    Truncated,
    /// The last try drew this response code.
    ServerError(u16),
    /// The last try could not be sent.
    Send(io::ErrorKind),
    /// The caller's time for it ran out.
    Expired,
}

/// A lookup asked for.
#[derive(Debug)]
struct Request {
    addr: IpAddr,
    give_up_at: Option<Instant>,
}

/// Reverse DNS on a thread of its own (see the module's documentation).
#[derive(Debug)]
pub struct ReverseResolver {
    requests: Option<Sender<Request>>,
    results: Receiver<Resolved>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

const V4: Token = Token(0);
const V6: Token = Token(1);
const WAKE: Token = Token(2);

impl ReverseResolver {
    /// Opens the sockets and starts the thread.
    pub fn start(config: ResolverConfig) -> io::Result<ReverseResolver> {
        if config.servers.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no DNS server to ask",
            ));
        }
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let open = |wanted: bool, local: IpAddr, token| -> io::Result<Option<UdpSocket>> {
            if !wanted {
                return Ok(None);
            }
            let mut socket = UdpSocket::bind(SocketAddr::new(local, 0))?;
            poll.registry()
                .register(&mut socket, token, Interest::READABLE)?;
            Ok(Some(socket))
        };
        let v4 = open(
            config.servers.iter().any(SocketAddr::is_ipv4),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            V4,
        )?;
        let v6 = open(
            config.servers.iter().any(SocketAddr::is_ipv6),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            V6,
        )?;
        let (request_tx, request_rx) = mpsc::channel();
        let (result_tx, result_rx) = mpsc::channel();
        let mut worker = Worker {
            attempts: config.attempts.max(1),
            max_in_flight: config.max_in_flight.max(1),
            config,
            poll,
            v4,
            v6,
            requests: request_rx,
            results: result_tx,
            queue: VecDeque::new(),
            flights: HashMap::new(),
            ids: IdSource::new(),
        };
        let thread = std::thread::Builder::new()
            .name("portolan-dns".into())
            .spawn(move || worker.run())?;
        Ok(ReverseResolver {
            requests: Some(request_tx),
            results: result_rx,
            waker,
            thread: Some(thread),
        })
    }

    /// Asks for the name of `addr`; its answer is of no use after
    /// `give_up_at`, if given.
    pub fn lookup(&self, addr: IpAddr, give_up_at: Option<Instant>) {
        if let Some(tx) = &self.requests
            && tx.send(Request { addr, give_up_at }).is_ok()
        {
            let _ = self.waker.wake();
        }
    }

    /// A finished lookup, if one is waiting.
    pub fn try_result(&self) -> Option<Resolved> {
        self.results.try_recv().ok()
    }

    /// The next finished lookup, waiting until `deadline` at most.
    pub fn result_before(&self, deadline: Instant) -> Option<Resolved> {
        let wait = deadline.saturating_duration_since(Instant::now());
        self.results.recv_timeout(wait).ok()
    }
}

impl Drop for ReverseResolver {
    fn drop(&mut self) {
        self.requests = None;
        let _ = self.waker.wake();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Random 16-bit query IDs (SipHash of a counter under a random key).
struct IdSource {
    key: RandomState,
    counter: u64,
}

impl IdSource {
    fn new() -> IdSource {
        IdSource {
            key: RandomState::new(),
            counter: 0,
        }
    }

    fn next(&mut self) -> u16 {
        self.counter += 1;
        let mut h = self.key.build_hasher();
        h.write_u64(self.counter);
        h.finish() as u16
    }
}

/// One name's lookup while a try is outstanding.
struct Flight {
    addr: IpAddr,
    give_up_at: Option<Instant>,
    /// Tries made so far, this one included.
    tries: u32,
    server: SocketAddr,
    expires: Instant,
    /// What ends the lookup if this was the last try.
    failure: Failure,
}

struct Worker {
    config: ResolverConfig,
    attempts: u32,
    max_in_flight: usize,
    poll: Poll,
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
    requests: Receiver<Request>,
    results: Sender<Resolved>,
    queue: VecDeque<Request>,
    flights: HashMap<u16, Flight>,
    ids: IdSource,
}

impl Worker {
    fn run(&mut self) {
        let mut events = Events::with_capacity(16);
        let mut buf = vec![0u8; 4096];
        loop {
            loop {
                match self.requests.try_recv() {
                    Ok(r) => self.queue.push_back(r),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            let now = Instant::now();
            if self.expire(now).is_err() || self.start_queued(now).is_err() {
                return;
            }
            let wait = self
                .flights
                .values()
                .map(|f| f.give_up_at.map_or(f.expires, |g| g.min(f.expires)))
                .min()
                .map(|t| t.saturating_duration_since(now));
            match self.poll.poll(&mut events, wait) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
            for event in events.iter() {
                let token = event.token();
                if token != V4 && token != V6 {
                    continue;
                }
                loop {
                    let socket = if token == V4 { &self.v4 } else { &self.v6 };
                    let Some(socket) = socket else { break };
                    match socket.recv_from(&mut buf) {
                        Ok((len, from)) => {
                            if self.answer(&buf[..len], from).is_err() {
                                return;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
            }
        }
    }

    /// Ends a lookup; `Err` when nobody listens any more.
    fn finish(&self, addr: IpAddr, outcome: Outcome) -> Result<(), ()> {
        self.results.send(Resolved { addr, outcome }).map_err(drop)
    }

    /// Retries or ends the lookups whose try timed out, and ends those
    /// whose caller gave up.
    fn expire(&mut self, now: Instant) -> Result<(), ()> {
        let due: Vec<u16> = self
            .flights
            .iter()
            .filter(|(_, f)| f.expires <= now || f.give_up_at.is_some_and(|g| g <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(flight) = self.flights.remove(&id) {
                if flight.give_up_at.is_some_and(|g| g <= now) {
                    self.finish(flight.addr, Outcome::Failed(Failure::Expired))?;
                } else {
                    self.next_try(flight, now)?;
                }
            }
        }
        Ok(())
    }

    /// Starts queued lookups while there is room.
    fn start_queued(&mut self, now: Instant) -> Result<(), ()> {
        while self.flights.len() < self.max_in_flight {
            let Some(request) = self.queue.pop_front() else {
                break;
            };
            if request.give_up_at.is_some_and(|g| g <= now) {
                self.finish(request.addr, Outcome::Failed(Failure::Expired))?;
                continue;
            }
            let flight = Flight {
                addr: request.addr,
                give_up_at: request.give_up_at,
                tries: 0,
                server: self.config.servers[0],
                expires: now,
                failure: Failure::Timeout,
            };
            self.next_try(flight, now)?;
        }
        Ok(())
    }

    /// Sends `flight`'s next try, or ends it after its last.
    fn next_try(&mut self, mut flight: Flight, now: Instant) -> Result<(), ()> {
        loop {
            if flight.tries >= self.attempts {
                return self.finish(flight.addr, Outcome::Failed(flight.failure));
            }
            let servers = &self.config.servers;
            flight.server = servers[flight.tries as usize % servers.len()];
            flight.tries += 1;
            flight.failure = Failure::Timeout;
            let id = loop {
                let id = self.ids.next();
                if !self.flights.contains_key(&id) {
                    break id;
                }
            };
            let socket = if flight.server.is_ipv4() {
                &self.v4
            } else {
                &self.v6
            };
            let sent = match (socket, query(id, flight.addr)) {
                (Some(socket), Ok(bytes)) => socket.send_to(&bytes, flight.server).map(drop),
                (None, _) => Err(io::ErrorKind::Unsupported.into()),
                (_, Err(_)) => Err(io::ErrorKind::InvalidData.into()),
            };
            match sent {
                // A full send buffer loses this try like the network would.
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    flight.failure = Failure::Send(e.kind());
                    continue;
                }
            }
            flight.expires = now + self.config.timeout;
            if let Entry::Vacant(slot) = self.flights.entry(id) {
                slot.insert(flight);
            }
            return Ok(());
        }
    }

    /// A datagram from `from`: ends or advances the lookup it answers, if
    /// any.
    fn answer(&mut self, datagram: &[u8], from: SocketAddr) -> Result<(), ()> {
        let Some(id) = datagram.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
            return Ok(());
        };
        let Some(flight) = self.flights.get(&id) else {
            return Ok(());
        };
        if !same_server(flight.server, from) {
            return Ok(());
        }
        let answer = match read_answer(datagram, id, flight.addr) {
            Ok(answer) => answer,
            Err(_) => return Ok(()),
        };
        let Some(mut flight) = self.flights.remove(&id) else {
            return Ok(());
        };
        match answer {
            Answer::Name(name) => self.finish(flight.addr, Outcome::Found(name)),
            Answer::NoName => self.finish(flight.addr, Outcome::NotFound),
            Answer::Truncated => self.finish(flight.addr, Outcome::Failed(Failure::Truncated)),
            Answer::ServerError(code) => {
                // Ends the lookup with this code if it was the last try.
                flight.failure = Failure::ServerError(code);
                self.next_try(flight, Instant::now())
            }
        }
    }
}

/// Whether an answer from `from` comes from `server` (an IPv4 server may
/// answer on an IPv4-mapped IPv6 address).
fn same_server(server: SocketAddr, from: SocketAddr) -> bool {
    let canonical = |a: SocketAddr| match a.ip() {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(a, |v4| SocketAddr::new(IpAddr::V4(v4), a.port())),
        IpAddr::V4(_) => a,
    };
    canonical(server) == canonical(from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
    use hickory_proto::rr::rdata::PTR;
    use hickory_proto::rr::{Name, RData, Record};
    use std::net::UdpSocket as StdUdp;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// What a fake server does with one query.
    #[derive(Clone, Copy)]
    enum Reply {
        /// Answers with `h<last byte>.lab.example`.
        Name,
        /// Answers with another ID first, then correctly.
        WrongIdFirst,
        /// SERVFAIL.
        ServFail,
        /// Nothing.
        Silence,
    }

    /// A DNS server on 127.0.0.1 answering PTR queries, on its own thread,
    /// counting the queries it got.
    struct FakeServer {
        addr: SocketAddr,
        queries: Arc<AtomicUsize>,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    }

    impl FakeServer {
        fn start(reply: Reply) -> FakeServer {
            let socket = StdUdp::bind("127.0.0.1:0").unwrap();
            socket
                .set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            let addr = socket.local_addr().unwrap();
            let queries = Arc::new(AtomicUsize::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let (q, s) = (Arc::clone(&queries), Arc::clone(&stop));
            let thread = std::thread::spawn(move || {
                let mut buf = [0u8; 512];
                while !s.load(Ordering::Relaxed) {
                    let Ok((len, from)) = socket.recv_from(&mut buf) else {
                        continue;
                    };
                    q.fetch_add(1, Ordering::Relaxed);
                    let query = Message::from_vec(&buf[..len]).unwrap();
                    let id = query.metadata.id;
                    let asked = query.queries[0].name().clone();
                    let answer = |id: u16, rcode: ResponseCode| {
                        let mut m = Message::new(id, MessageType::Response, OpCode::Query);
                        m.metadata.response_code = rcode;
                        m.add_query(query.queries[0].clone());
                        if rcode == ResponseCode::NoError {
                            let first = asked.iter().next().unwrap();
                            let host = format!("h{}.lab.example.", String::from_utf8_lossy(first));
                            m.add_answer(Record::from_rdata(
                                asked.clone(),
                                60,
                                RData::PTR(PTR(Name::from_ascii(host).unwrap())),
                            ));
                        }
                        m.to_vec().unwrap()
                    };
                    let send = |bytes: Vec<u8>| {
                        let _ = socket.send_to(&bytes, from);
                    };
                    match reply {
                        Reply::Name => send(answer(id, ResponseCode::NoError)),
                        Reply::WrongIdFirst => {
                            send(answer(id.wrapping_add(1), ResponseCode::NoError));
                            send(answer(id, ResponseCode::NoError));
                        }
                        Reply::ServFail => send(answer(id, ResponseCode::ServFail)),
                        Reply::Silence => {}
                    }
                }
            });
            FakeServer {
                addr,
                queries,
                stop,
                thread: Some(thread),
            }
        }

        fn queries(&self) -> usize {
            self.queries.load(Ordering::Relaxed)
        }
    }

    impl Drop for FakeServer {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    fn lab_addr(i: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(198, 18, 0, i))
    }

    /// Every result of `count` lookups (a generous guard against a hang).
    fn collect(resolver: &ReverseResolver, count: usize) -> HashMap<IpAddr, Outcome> {
        let guard = Instant::now() + Duration::from_secs(30);
        let mut out = HashMap::new();
        while out.len() < count {
            let r = resolver
                .result_before(guard)
                .expect("a result before the guard");
            out.insert(r.addr, r.outcome);
        }
        out
    }

    #[test]
    fn many_names_are_found() {
        let server = FakeServer::start(Reply::Name);
        let mut config = ResolverConfig::new(vec![server.addr]);
        config.max_in_flight = 4;
        let resolver = ReverseResolver::start(config).unwrap();
        for i in 1..=50 {
            resolver.lookup(lab_addr(i), None);
        }
        let got = collect(&resolver, 50);
        for i in 1..=50 {
            assert_eq!(
                got[&lab_addr(i)],
                Outcome::Found(HostName::parse_dotted(&format!("h{i}.lab.example")).unwrap())
            );
        }
    }

    #[test]
    fn ipv6_names_use_ip6_arpa() {
        let server = FakeServer::start(Reply::Name);
        let resolver = ReverseResolver::start(ResolverConfig::new(vec![server.addr])).unwrap();
        let addr: IpAddr = "fd00::a".parse().unwrap();
        resolver.lookup(addr, None);
        // The first label of the reverse name is the last nibble.
        assert_eq!(
            collect(&resolver, 1)[&addr],
            Outcome::Found(HostName::parse_dotted("ha.lab.example").unwrap())
        );
    }

    #[test]
    fn a_silent_server_bounds_queries_in_flight_and_every_lookup_ends() {
        let server = FakeServer::start(Reply::Silence);
        let mut config = ResolverConfig::new(vec![server.addr]);
        config.max_in_flight = 4;
        config.attempts = 2;
        config.timeout = Duration::from_millis(50);
        let resolver = ReverseResolver::start(config).unwrap();
        for i in 1..=12 {
            resolver.lookup(lab_addr(i), None);
        }
        let got = collect(&resolver, 12);
        assert!(
            got.values()
                .all(|o| *o == Outcome::Failed(Failure::Timeout))
        );
        // Two tries per name, none more.
        assert!(server.queries() <= 24, "{} queries", server.queries());
    }

    #[test]
    fn no_more_than_max_in_flight_queries_are_outstanding() {
        let server = FakeServer::start(Reply::Silence);
        let mut config = ResolverConfig::new(vec![server.addr]);
        config.max_in_flight = 3;
        config.timeout = Duration::from_secs(30);
        let resolver = ReverseResolver::start(config).unwrap();
        for i in 1..=20 {
            resolver.lookup(lab_addr(i), None);
        }
        std::thread::sleep(Duration::from_millis(200));
        assert!(server.queries() <= 3, "{} queries", server.queries());
        // Dropping with work queued and in flight returns.
        drop(resolver);
    }

    #[test]
    fn answers_with_another_id_are_ignored() {
        let server = FakeServer::start(Reply::WrongIdFirst);
        let resolver = ReverseResolver::start(ResolverConfig::new(vec![server.addr])).unwrap();
        resolver.lookup(lab_addr(7), None);
        assert_eq!(
            collect(&resolver, 1)[&lab_addr(7)],
            Outcome::Found(HostName::parse_dotted("h7.lab.example").unwrap())
        );
    }

    #[test]
    fn answers_from_another_address_are_ignored() {
        // The server answers from 127.0.0.1, but the query went to
        // 127.0.0.2 (where a socket listens and never answers).
        let server = FakeServer::start(Reply::Name);
        let silent = StdUdp::bind("127.0.0.2:0").unwrap();
        let mut config = ResolverConfig::new(vec![silent.local_addr().unwrap()]);
        config.attempts = 1;
        config.timeout = Duration::from_millis(100);
        let resolver = ReverseResolver::start(config).unwrap();
        resolver.lookup(lab_addr(9), None);
        let mut buf = [0u8; 512];
        silent
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let (len, from) = silent.recv_from(&mut buf).unwrap();
        // Forward the query to the answering server from a socket bound to
        // the resolver's port? Not possible; instead send the real answer
        // straight from another address.
        let spoofer = StdUdp::bind("127.0.0.1:0").unwrap();
        let query = Message::from_vec(&buf[..len]).unwrap();
        let mut m = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
        m.add_query(query.queries[0].clone());
        m.add_answer(Record::from_rdata(
            query.queries[0].name().clone(),
            60,
            RData::PTR(PTR(Name::from_ascii("spoofed.example.").unwrap())),
        ));
        spoofer.send_to(&m.to_vec().unwrap(), from).unwrap();
        assert_eq!(
            collect(&resolver, 1)[&lab_addr(9)],
            Outcome::Failed(Failure::Timeout)
        );
        drop(server);
    }

    #[test]
    fn servers_are_asked_in_turn() {
        let failing = FakeServer::start(Reply::ServFail);
        let good = FakeServer::start(Reply::Name);
        let resolver =
            ReverseResolver::start(ResolverConfig::new(vec![failing.addr, good.addr])).unwrap();
        resolver.lookup(lab_addr(3), None);
        assert_eq!(
            collect(&resolver, 1)[&lab_addr(3)],
            Outcome::Found(HostName::parse_dotted("h3.lab.example").unwrap())
        );
        assert_eq!(failing.queries(), 1);
        assert_eq!(good.queries(), 1);
    }

    #[test]
    fn server_errors_everywhere_end_the_lookup() {
        let failing = FakeServer::start(Reply::ServFail);
        let resolver = ReverseResolver::start(ResolverConfig::new(vec![failing.addr])).unwrap();
        resolver.lookup(lab_addr(4), None);
        assert_eq!(
            collect(&resolver, 1)[&lab_addr(4)],
            Outcome::Failed(Failure::ServerError(2))
        );
    }

    #[test]
    fn lookups_past_their_time_expire() {
        let server = FakeServer::start(Reply::Silence);
        let resolver = ReverseResolver::start(ResolverConfig::new(vec![server.addr])).unwrap();
        resolver.lookup(lab_addr(5), Some(Instant::now()));
        resolver.lookup(
            lab_addr(6),
            Some(Instant::now() + Duration::from_millis(50)),
        );
        let got = collect(&resolver, 2);
        assert_eq!(got[&lab_addr(5)], Outcome::Failed(Failure::Expired));
        assert_eq!(got[&lab_addr(6)], Outcome::Failed(Failure::Expired));
    }

    #[test]
    fn no_server_is_an_error() {
        assert!(ReverseResolver::start(ResolverConfig::new(Vec::new())).is_err());
    }

    #[test]
    fn mapped_addresses_are_the_same_server() {
        let v4: SocketAddr = "198.18.0.1:53".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:198.18.0.1]:53".parse().unwrap();
        assert!(same_server(v4, mapped));
        assert!(!same_server(v4, "198.18.0.1:54".parse().unwrap()));
    }
}
