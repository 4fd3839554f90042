//! Things that answer inside a namespace: TCP listeners that keep accepting,
//! UDP echo responders, and daemon processes.
//!
//! Contract: sockets are created and bound on a thread that entered the
//! namespace, so bind errors are returned synchronously; a service thread
//! then serves them until its guard or its namespace is dropped, whichever
//! comes first (both join the thread). Listeners accept as fast as
//! connections arrive, so a fast scan never finds a full backlog and an open
//! port never turns into silence. Daemons run in their own process group,
//! which is sent SIGTERM, then SIGKILL after [`DAEMON_GRACE`], on drop.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::namespace::{Namespace, describe};
use crate::{LabError, sys};

/// Backlog requested for lab listeners; the kernel caps it at the
/// namespace's `net.core.somaxconn` (4096 by default).
pub const LISTEN_BACKLOG: i32 = 4096;

/// How long a dropped [`Daemon`] gets between SIGTERM and SIGKILL.
pub const DAEMON_GRACE: Duration = Duration::from_secs(2);

/// Read and write timeout set on accepted streams before they reach a
/// handler, so a stuck peer cannot stall the accept loop for long.
pub const HANDLER_IO_TIMEOUT: Duration = Duration::from_secs(2);

/// What a TCP listener does with each accepted connection. It runs on the
/// accept thread, so it must be quick (write a banner, read a line).
pub type TcpHandler = dyn Fn(TcpStream) + Send + Sync + 'static;

/// The shared stop switch of one service thread.
#[derive(Debug)]
pub(crate) struct ServiceControl {
    stopping: AtomicBool,
    wake: UnixStream,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl ServiceControl {
    /// Stops the service thread and waits for it; idempotent.
    pub(crate) fn stop(&self) {
        if !self.stopping.swap(true, Ordering::SeqCst) {
            let _ = (&self.wake).write_all(&[1]);
        }
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = handle {
            // A panicking handler already printed its message; nothing to add.
            let _ = handle.join();
        }
    }
}

/// Running TCP listeners on some ports of a namespace, IPv4 and IPv6.
/// Dropping it closes them.
#[derive(Debug)]
#[must_use = "the listeners stop when this guard is dropped"]
pub struct TcpService {
    control: Arc<ServiceControl>,
    local_addrs: Vec<SocketAddr>,
    handled: Arc<AtomicU64>,
}

impl TcpService {
    /// The bound addresses: `0.0.0.0:PORT` and `[::]:PORT` for every port.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// How many connections have been accepted so far.
    pub fn accepted(&self) -> u64 {
        self.handled.load(Ordering::Relaxed)
    }

    /// Stops the listeners now (same as dropping the guard).
    pub fn stop(self) {}
}

impl Drop for TcpService {
    fn drop(&mut self) {
        self.control.stop();
    }
}

/// UDP sockets bound on ports that never answer
/// ([`Namespace::listen_udp_silent`]). Dropping it closes them.
#[derive(Debug)]
#[must_use = "the ports close when this guard is dropped"]
pub struct SilentUdp {
    _sockets: Vec<UdpSocket>,
}

/// Running UDP echo responders on some ports of a namespace, IPv4 and IPv6:
/// every datagram is sent back to its source. Dropping it closes them.
#[derive(Debug)]
#[must_use = "the responders stop when this guard is dropped"]
pub struct UdpEcho {
    control: Arc<ServiceControl>,
    local_addrs: Vec<SocketAddr>,
    handled: Arc<AtomicU64>,
}

impl UdpEcho {
    /// The bound addresses: `0.0.0.0:PORT` and `[::]:PORT` for every port.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// How many datagrams have been echoed so far.
    pub fn echoed(&self) -> u64 {
        self.handled.load(Ordering::Relaxed)
    }

    /// Stops the responders now (same as dropping the guard).
    pub fn stop(self) {}
}

impl Drop for UdpEcho {
    fn drop(&mut self) {
        self.control.stop();
    }
}

/// A process running inside a namespace, killed (with its process group)
/// when dropped.
#[derive(Debug)]
#[must_use = "the process is killed when this guard is dropped"]
pub struct Daemon {
    child: Child,
    namespace: String,
    command: String,
}

impl Daemon {
    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The command line it was started with.
    pub fn command_line(&self) -> &str {
        &self.command
    }

    /// Whether it has exited, without blocking.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// Waits until something accepts TCP connections on `addr` inside the
    /// daemon's namespace (the daemon finished starting), failing early if
    /// the daemon exits. Connection attempts stay inside the namespace.
    pub fn wait_for_tcp(&mut self, addr: SocketAddr, timeout: Duration) -> Result<(), LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            let connected = crate::in_namespace(&self.namespace, || {
                TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            })?;
            if connected {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(LabError::Timeout(format!(
                    "`{}` exited ({status}) before listening on {addr}",
                    self.command
                )));
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout(format!(
                    "`{}` not listening on {addr} after {timeout:?}",
                    self.command
                )));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the process now (same as dropping the guard).
    pub fn stop(self) {}
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let pgid = self.child.id();
        let _ = sys::kill_group(pgid, libc::SIGTERM);
        let deadline = Instant::now() + DAEMON_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                // The leader is gone; make sure its group is too.
                let _ = sys::kill_group(pgid, libc::SIGKILL);
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let _ = sys::kill_group(pgid, libc::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Bound sockets handed to a service thread.
pub(crate) enum Sockets {
    Tcp(Vec<TcpListener>, Box<TcpHandler>),
    Udp(Vec<UdpSocket>),
    /// Raw SCTP sockets (IPv4, IPv6) and the ports that answer as open.
    SctpRaw(Vec<(UdpSocket, bool)>, Box<dyn Fn(u16) -> bool + Send>),
    /// An idle-scan zombie's packet and raw sockets.
    Zombie(Box<crate::zombie::Zombie>),
    /// A persona responder's packet and raw sockets.
    Persona(Box<crate::persona::Responder>),
}

impl Sockets {
    fn fds(&self) -> Vec<RawFd> {
        match self {
            Sockets::Tcp(list, _) => list.iter().map(AsRawFd::as_raw_fd).collect(),
            Sockets::Udp(list) => list.iter().map(AsRawFd::as_raw_fd).collect(),
            Sockets::SctpRaw(list, _) => list.iter().map(|(s, _)| s.as_raw_fd()).collect(),
            Sockets::Zombie(zombie) => vec![zombie.fd()],
            Sockets::Persona(responder) => vec![responder.fd()],
        }
    }

    /// How long the service may wait for readiness before [`Sockets::tick`]
    /// is due; `None` for ever.
    fn wait(&self) -> Option<Duration> {
        match self {
            Sockets::Zombie(zombie) => zombie.wait(),
            _ => None,
        }
    }

    /// Work that is due by time rather than by packets.
    fn tick(&self) {
        if let Sockets::Zombie(zombie) = self {
            zombie.tick();
        }
    }

    /// Serves the `index`-th socket until it would block.
    fn drain(&self, index: usize, buffer: &mut [u8], handled: &AtomicU64) -> io::Result<()> {
        match self {
            Sockets::Tcp(list, handler) => drain_accepts(&list[index], handler, handled),
            Sockets::Udp(list) => drain_datagrams(&list[index], buffer, handled),
            Sockets::SctpRaw(list, open) => {
                let (socket, v6) = &list[index];
                crate::sctp::drain_raw(socket, *v6, open, buffer, handled)
            }
            Sockets::Zombie(zombie) => zombie.drain(buffer, handled),
            Sockets::Persona(responder) => responder.drain(buffer, handled),
        }
    }
}

impl Namespace {
    /// Starts TCP listeners on `ports` (on `0.0.0.0` and `[::]`, IPv6-only)
    /// that accept and immediately close every connection.
    pub fn listen_tcp(&self, ports: impl IntoIterator<Item = u16>) -> Result<TcpService, LabError> {
        self.listen_tcp_with(ports, drop)
    }

    /// Starts TCP listeners on `ports` that pass every accepted connection
    /// to `handler` (on the accept thread; keep it short), e.g. to send a
    /// service banner. The stream has [`HANDLER_IO_TIMEOUT`] read and write
    /// timeouts and is closed when the handler drops it.
    pub fn listen_tcp_with(
        &self,
        ports: impl IntoIterator<Item = u16>,
        handler: impl Fn(TcpStream) + Send + Sync + 'static,
    ) -> Result<TcpService, LabError> {
        self.listen_stream(ports, Protocol::TCP, handler)
    }

    /// Listening stream sockets of `protocol` (TCP, or SCTP's one-to-one
    /// style) on `ports`, accepted by a service thread that hands every
    /// connection to `handler`.
    pub(crate) fn listen_stream(
        &self,
        ports: impl IntoIterator<Item = u16>,
        protocol: Protocol,
        handler: impl Fn(TcpStream) + Send + Sync + 'static,
    ) -> Result<TcpService, LabError> {
        let addrs = wildcard_addrs(ports)?;
        let sockets = self.bind_all(&addrs, Type::STREAM, protocol)?;
        let listeners = sockets.into_iter().map(TcpListener::from).collect();
        let (control, handled) = self.start(Sockets::Tcp(listeners, Box::new(handler)))?;
        Ok(TcpService {
            control,
            local_addrs: addrs,
            handled,
        })
    }

    /// Starts UDP echo responders on `ports` (on `0.0.0.0` and `[::]`).
    pub fn listen_udp(&self, ports: impl IntoIterator<Item = u16>) -> Result<UdpEcho, LabError> {
        let addrs = wildcard_addrs(ports)?;
        let sockets = self.bind_all(&addrs, Type::DGRAM, Protocol::UDP)?;
        let sockets = sockets.into_iter().map(UdpSocket::from).collect();
        let (control, handled) = self.start(Sockets::Udp(sockets))?;
        Ok(UdpEcho {
            control,
            local_addrs: addrs,
            handled,
        })
    }

    /// Binds UDP sockets on `ports` (on `0.0.0.0` and `[::]`) that never
    /// answer: open ports that are silent, as a service that ignores a
    /// request it does not understand (the kernel sends no port
    /// unreachable to a bound port). Dropping the guard closes them.
    pub fn listen_udp_silent(
        &self,
        ports: impl IntoIterator<Item = u16>,
    ) -> Result<SilentUdp, LabError> {
        let addrs = wildcard_addrs(ports)?;
        let sockets = self.bind_all(&addrs, Type::DGRAM, Protocol::UDP)?;
        Ok(SilentUdp {
            _sockets: sockets.into_iter().map(UdpSocket::from).collect(),
        })
    }

    /// Runs `command` inside this namespace (entering it between fork and
    /// exec, so stdio and environment are kept as configured) in a process
    /// group of its own. Unlike [`Namespace::command`], `/sys` is not
    /// remounted. Daemons must stay in the foreground (e.g. `sshd -D`,
    /// `nginx -g 'daemon off;'`); anything that escapes its group is still
    /// killed when the namespace is deleted.
    pub fn spawn(&self, mut command: Command) -> Result<Daemon, LabError> {
        let line = describe(&command);
        let netns = File::open(self.path()).map_err(|source| LabError::EnterNamespace {
            namespace: self.name().to_owned(),
            source,
        })?;
        sys::enter_in_child(&mut command, netns.as_raw_fd());
        let spawned = command.spawn();
        // The pre-exec hook holds the raw descriptor: drop the command (and
        // with it the hook) before the descriptor is closed.
        drop(command);
        drop(netns);
        let child = spawned.map_err(|source| LabError::Spawn {
            command: line.clone(),
            source,
        })?;
        Ok(Daemon {
            child,
            namespace: self.name().to_owned(),
            command: line,
        })
    }

    /// Creates, configures and binds one socket per address, inside the namespace.
    fn bind_all(
        &self,
        addrs: &[SocketAddr],
        kind: Type,
        protocol: Protocol,
    ) -> Result<Vec<Socket>, LabError> {
        let bound = self.run(|| {
            addrs
                .iter()
                .map(|&addr| bind_one(addr, kind, protocol).map_err(|e| (addr, e)))
                .collect::<Result<Vec<_>, _>>()
        })?;
        bound.map_err(|(addr, source)| LabError::Bind {
            namespace: self.name().to_owned(),
            addr,
            source,
        })
    }

    /// Spawns the service thread and registers its stop switch here.
    pub(crate) fn start(
        &self,
        sockets: Sockets,
    ) -> Result<(Arc<ServiceControl>, Arc<AtomicU64>), LabError> {
        let (wake, wake_rx) =
            UnixStream::pair().map_err(|e| LabError::io("creating a wake-up socket pair", e))?;
        let handled = Arc::new(AtomicU64::new(0));
        let control = Arc::new(ServiceControl {
            stopping: AtomicBool::new(false),
            wake,
            thread: Mutex::new(None),
        });
        let counter = Arc::clone(&handled);
        let handle = thread::Builder::new()
            .name(format!("lab-serve-{}", self.name()))
            .spawn(move || serve(sockets, wake_rx, &counter))
            .map_err(|e| LabError::io("spawning a service thread", e))?;
        *control.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        self.register_service(Arc::downgrade(&control));
        Ok((control, handled))
    }
}

fn wildcard_addrs(ports: impl IntoIterator<Item = u16>) -> Result<Vec<SocketAddr>, LabError> {
    let mut addrs = Vec::new();
    for port in ports {
        if port == 0 {
            return Err(LabError::Invalid("port 0 cannot be listened on".into()));
        }
        addrs.push(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)));
        addrs.push(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)));
    }
    if addrs.is_empty() {
        return Err(LabError::Invalid("no ports to listen on".into()));
    }
    Ok(addrs)
}

fn bind_one(addr: SocketAddr, kind: Type, protocol: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), kind, Some(protocol))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    if kind == Type::STREAM {
        socket.listen(LISTEN_BACKLOG)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// The service loop: wait for readiness, drain every ready socket, repeat
/// until the wake-up socket becomes readable.
fn serve(sockets: Sockets, mut wake_rx: UnixStream, handled: &AtomicU64) {
    let mut fds = sockets.fds();
    let wake_index = fds.len();
    fds.push(wake_rx.as_raw_fd());
    let mut buffer = vec![0u8; 65_536];
    loop {
        let Ok(ready) = sys::poll_readable(&fds, sockets.wait()) else {
            return;
        };
        sockets.tick();
        if ready[wake_index] {
            let _ = wake_rx.read(&mut [0u8; 1]);
            return;
        }
        for index in (0..wake_index).filter(|&i| ready[i]) {
            if sockets.drain(index, &mut buffer, handled).is_err() {
                // EMFILE and friends: back off instead of spinning.
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

fn drain_accepts(
    listener: &TcpListener,
    handler: &TcpHandler,
    handled: &AtomicU64,
) -> io::Result<()> {
    loop {
        match listener.accept() {
            Ok((stream, _peer)) => {
                handled.fetch_add(1, Ordering::Relaxed);
                // Accepted sockets do not inherit O_NONBLOCK on Linux.
                let _ = stream.set_read_timeout(Some(HANDLER_IO_TIMEOUT));
                let _ = stream.set_write_timeout(Some(HANDLER_IO_TIMEOUT));
                handler(stream);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            // The peer reset before we got to it: nothing to serve.
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn drain_datagrams(socket: &UdpSocket, buffer: &mut [u8], handled: &AtomicU64) -> io::Result<()> {
    loop {
        match socket.recv_from(buffer) {
            Ok((len, peer)) => {
                handled.fetch_add(1, Ordering::Relaxed);
                let _ = socket.send_to(&buffer[..len], peer);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // ICMP errors caused by earlier echoes surface here; keep serving.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(e) => return Err(e),
        }
    }
}
