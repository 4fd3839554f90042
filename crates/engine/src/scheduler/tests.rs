//! Tests of the scheduler in virtual time: a simulated network of
//! hosts (answers, loss, ICMP rate limits as token buckets, several
//! source addresses) drives a [`Scheduler`], and each test checks a
//! property it must keep (every pair resolved once, no port lost to
//! random loss or a rate limit, probes per silent address).

use super::*;
use crate::timing::TimingTemplate;
use portolan_targets::SystemResolver;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

fn plan(targets: &[&str], excludes: &[&str], ports: Vec<u16>, timing: TimingConfig) -> ScanPlan {
    let t: Vec<String> = targets.iter().map(|s| s.to_string()).collect();
    let x: Vec<String> = excludes.iter().map(|s| s.to_string()).collect();
    ScanPlan {
        targets: TargetList::parse(&t, &x, &SystemResolver).unwrap(),
        ports,
        proto: Protocol::Tcp,
        silent_state: PortState::Filtered,
        seed: 7,
        randomize: true,
        max_hostgroup: None,
        first_ports: Vec::new(),
        timing,
        discovery: false,
        pace_to_answers: false,
        sources: 1,
        clock: WallClock::now(),
    }
}

fn fast() -> TimingConfig {
    TimingConfig::from_template(TimingTemplate::Aggressive)
}

/// What a simulated run produced.
struct Run {
    ports: BTreeMap<(IpAddr, u16), PortOutcome>,
    hosts: Vec<HostReport>,
    probes: Vec<(Instant, Probe)>,
    stats: ScanStats,
    elapsed: Duration,
    /// The most events the scheduler held for the caller at once.
    most_events: usize,
}

/// Runs a scan in virtual time against a simulated network that
/// answers a probe with `Some((reply, delay))` or drops it.
fn simulate(
    plan: ScanPlan,
    mut network: impl FnMut(&Probe) -> Option<(Reply, Duration)>,
    interrupt_at: Option<Instant>,
) -> Run {
    simulate_full(plan, |p, _| network(p), interrupt_at)
}

fn simulate_with_clock(
    plan: ScanPlan,
    network: impl FnMut(&Probe, Instant) -> Option<(Reply, Duration)>,
) -> Run {
    simulate_full(plan, network, None)
}

fn simulate_full(
    plan: ScanPlan,
    network: impl FnMut(&Probe, Instant) -> Option<(Reply, Duration)>,
    interrupt_at: Option<Instant>,
) -> Run {
    let t0 = Instant::now();
    simulate_scheduler(Scheduler::new(plan, t0), t0, network, interrupt_at)
}

/// Runs `s`, made at `t0`, against `network` in virtual time.
fn simulate_scheduler(
    mut s: Scheduler,
    t0: Instant,
    mut network: impl FnMut(&Probe, Instant) -> Option<(Reply, Duration)>,
    mut interrupt_at: Option<Instant>,
) -> Run {
    let mut now = t0;
    let mut pending: BinaryHeap<Reverse<(Instant, u64, PortState, Reason)>> = BinaryHeap::new();
    let mut flying: HashMap<(IpAddr, u16), ProbeId> = HashMap::new();
    let mut flying_ids: HashMap<u64, Probe> = HashMap::new();
    let mut run = Run {
        ports: BTreeMap::new(),
        hosts: Vec::new(),
        probes: Vec::new(),
        stats: ScanStats::default(),
        elapsed: Duration::ZERO,
        most_events: 0,
    };
    for _ in 0..10_000_000 {
        if interrupt_at.is_some_and(|t| now >= t) {
            s.interrupt(now);
            interrupt_at = None;
        }
        // At most a transport's turn of cancellations (its
        // `CANCEL_BUDGET`) before the events are taken.
        let mut turn = 0;
        while turn < 4096
            && let Some(cancelled) = s.poll_cancel(now)
        {
            turn += 1;
            // A cancellation names the probe as it was given.
            let given = flying_ids.remove(&cancelled.id.as_u64());
            assert_eq!(
                given,
                Some(cancelled),
                "a cancelled probe was not in flight"
            );
            flying.remove(&(cancelled.addr, cancelled.port));
        }
        while let Some(p) = s.poll_probe(now) {
            run.probes.push((now, p));
            // Transports match answers by target and port: two probes
            // in flight to the same port could not be told apart.
            let before = flying.insert((p.addr, p.port), p.id);
            assert!(before.is_none(), "two probes in flight to one port: {p:?}");
            flying_ids.insert(p.id.as_u64(), p);
            if let Some((reply, delay)) = network(&p, now) {
                pending.push(Reverse((
                    now + delay,
                    p.id.as_u64(),
                    reply.state,
                    reply.reason,
                )));
            }
        }
        run.most_events = run.most_events.max(s.events.len());
        while let Some(e) = s.poll_event() {
            match e {
                ScanEvent::Port(r) => {
                    let dup = run.ports.insert((r.addr, r.outcome.port), r.outcome);
                    assert!(dup.is_none(), "port reported twice: {r:?}");
                }
                ScanEvent::HostDone(h) => run.hosts.push(*h),
            }
        }
        if s.is_finished() {
            run.stats = *s.stats();
            run.elapsed = now - t0;
            return run;
        }
        let next_reply = pending.peek().map(|Reverse((t, ..))| *t);
        let next = [next_reply, s.next_wakeup(now), interrupt_at]
            .into_iter()
            .flatten()
            .min()
            .expect("the scheduler stalled with nothing to wait for");
        now = now.max(next);
        while let Some(Reverse((t, id, state, reason))) = pending.peek().copied() {
            if t > now {
                break;
            }
            pending.pop();
            if let Some(p) = flying_ids.remove(&id) {
                flying.remove(&(p.addr, p.port));
            }
            s.on_reply(
                ProbeId::from_u64(id),
                Reply {
                    state,
                    reason,
                    ttl: None,
                },
                now,
            );
        }
    }
    panic!("simulation did not finish");
}

/// A path that loses `percent`% of what crosses it, reproducibly from
/// `seed` (xorshift): call once per crossing.
fn random_loss(seed: u64, percent: u64) -> impl FnMut() -> bool {
    let mut dice = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    move || {
        dice ^= dice << 13;
        dice ^= dice >> 7;
        dice ^= dice << 17;
        dice % 100 < percent
    }
}

/// A reply proving `state` with `reason`, arriving after `delay`.
fn reply_in(state: PortState, reason: Reason, delay: Duration) -> (Reply, Duration) {
    (
        Reply {
            state,
            reason,
            ttl: None,
        },
        delay,
    )
}

fn answer(state: PortState, reason: Reason) -> Option<(Reply, Duration)> {
    Some((
        Reply {
            state,
            reason,
            ttl: None,
        },
        Duration::from_micros(200),
    ))
}

#[test]
fn every_pair_is_resolved_once_with_its_evidence() {
    let run = simulate(
        plan(&["198.18.0.1-4"], &[], (1..=300).collect(), fast()),
        |p| {
            if p.port % 50 == 0 {
                answer(PortState::Open, Reason::SynAck)
            } else if p.port > 280 {
                None
            } else {
                answer(PortState::Closed, Reason::ConnRefused)
            }
        },
        None,
    );
    assert_eq!(run.ports.len(), 4 * 300);
    assert_eq!(run.hosts.len(), 4);
    for ((_, port), o) in &run.ports {
        let expected = if port % 50 == 0 {
            (PortState::Open, Reason::SynAck, 1)
        } else if *port > 280 {
            // Tried once more than the most any answered port needed.
            (PortState::Filtered, Reason::NoResponse, 2)
        } else {
            (PortState::Closed, Reason::ConnRefused, 1)
        };
        assert_eq!((o.state, o.reason, o.tries), expected, "port {port}");
    }
    for h in &run.hosts {
        assert_eq!(h.ports.len(), 300);
        assert!(h.ports.windows(2).all(|w| w[0].port < w[1].port));
        assert_eq!(h.status, HostStatus::Up(Reason::UserSet));
        assert!(h.times.srtt.is_some());
    }
    assert_eq!(run.stats.ports_by_state[PortState::Open.index()], 4 * 6);
    assert_eq!(run.stats.retransmissions, 4 * 19);
    assert_eq!(run.stats.window_decreases, 0);
}

#[test]
fn lost_first_tries_are_recovered() {
    // Every port's first try is lost once for ports divisible by 7. (Loss
    // that does not follow the rate: the window's part is in `timing`'s
    // tests and `a_bottleneck_on_the_answers_...`.)
    let mut seen: HashSet<(IpAddr, u16)> = HashSet::new();
    let run = simulate(
        plan(&["198.18.0.1"], &[], (1..=1000).collect(), fast()),
        |p| {
            if p.port % 7 == 0 && seen.insert((p.addr, p.port)) {
                None
            } else {
                answer(PortState::Closed, Reason::ConnRefused)
            }
        },
        None,
    );
    assert!(run.ports.values().all(|o| o.state == PortState::Closed));
    assert!(
        run.ports
            .iter()
            .all(|((_, p), o)| o.tries == if p % 7 == 0 { 2 } else { 1 })
    );
}

#[test]
fn early_tries_wait_briefly_and_the_last_try_waits_the_minimum() {
    // Round trips of 200 us, except port 7, whose answers take 50 ms.
    let run = simulate(
        plan(&["198.18.0.1"], &[], (1..=1000).collect(), fast()),
        |p| match p.port {
            7 => Some(reply_in(
                PortState::Open,
                Reason::SynAck,
                Duration::from_millis(50),
            )),
            500..=599 => None,
            _ => answer(PortState::Closed, Reason::Reset),
        },
        None,
    );
    let slow = run.ports[&("198.18.0.1".parse().unwrap(), 7)];
    assert_eq!(slow.state, PortState::Open, "the slow answer is not lost");
    // A dropped port: its retry follows its first try after the short
    // floor, and the last try is given the full minimum.
    let sends: Vec<Instant> = run
        .probes
        .iter()
        .filter(|(_, p)| p.port == 550)
        .map(|(t, _)| *t)
        .collect();
    assert!(sends.len() >= 2);
    let first_gap = sends[1] - sends[0];
    assert!(
        first_gap >= Duration::from_millis(10) && first_gap < Duration::from_millis(100),
        "{first_gap:?}"
    );
    let done = run.elapsed;
    assert!(done >= *sends.last().unwrap() - sends[0] + Duration::from_millis(100));
}

#[test]
fn random_loss_loses_no_port() {
    // 30% loss each way: about half of all tries go unanswered.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut t = fast();
    t.max_retries = 20;
    let run = simulate(
        plan(&["198.18.0.1"], &[], (1..=3000).collect(), t),
        |p| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 100 < 51 {
                None
            } else if p.port % 100 == 0 {
                answer(PortState::Open, Reason::SynAck)
            } else {
                answer(PortState::Closed, Reason::Reset)
            }
        },
        None,
    );
    let filtered: Vec<_> = run
        .ports
        .values()
        .filter(|o| o.state == PortState::Filtered)
        .collect();
    assert!(
        filtered.is_empty(),
        "ports lost to random loss: {filtered:?}"
    );
    assert_eq!(run.stats.ports_by_state[PortState::Open.index()], 30);
}

#[test]
fn host_timeout_with_queued_work_does_not_crash() {
    // Regression: a timed-out host freed while still listed as ready.
    let mut t = fast();
    t.host_timeout = Some(Duration::from_secs(1));
    t.max_parallelism = 100;
    let silent: IpAddr = "198.18.0.1".parse().unwrap();
    let run = simulate(
        plan(&["198.18.0.1", "198.18.0.2"], &[], (1..=2000).collect(), t),
        |p| {
            (p.addr != silent)
                .then(|| reply_in(PortState::Closed, Reason::Reset, Duration::from_millis(1)))
        },
        None,
    );
    assert_eq!(run.hosts.len(), 2);
    let live = run.hosts.iter().find(|h| h.target.addr != silent).unwrap();
    let dead = run.hosts.iter().find(|h| h.target.addr == silent).unwrap();
    assert_eq!(dead.status, HostStatus::TimedOut);
    assert_eq!(live.status, HostStatus::Up(Reason::UserSet));
    assert_eq!(live.ports.len(), 2000);
}

#[test]
fn a_path_that_warms_up_loses_no_port() {
    // Neighbour discovery drops every packet of the first 1.5 s: ports
    // probed then must not be given up after two tries.
    let mut first_sent: Option<Instant> = None;
    let run = simulate_with_clock(
        plan(&["198.18.0.1"], &[], (1..=2000).collect(), fast()),
        |p, now| {
            let t0 = *first_sent.get_or_insert(now);
            if now.duration_since(t0) < Duration::from_millis(1500) {
                None
            } else if p.port == 22 {
                answer(PortState::Open, Reason::SynAck)
            } else {
                answer(PortState::Closed, Reason::Reset)
            }
        },
    );
    assert_eq!(run.ports.len(), 2000);
    let filtered: Vec<_> = run
        .ports
        .iter()
        .filter(|(_, o)| o.state == PortState::Filtered)
        .collect();
    assert!(filtered.is_empty(), "{} ports lost", filtered.len());
    assert_eq!(
        run.ports[&("198.18.0.1".parse().unwrap(), 22)].state,
        PortState::Open
    );
}

#[test]
fn order_is_keyed_spread_and_reproducible() {
    let order = |seed| {
        let mut p = plan(&["198.18.0.0/30"], &[], (1..=64).collect(), fast());
        p.seed = seed;
        let run = simulate(p, |_| answer(PortState::Closed, Reason::ConnRefused), None);
        run.probes
            .iter()
            .map(|(_, p)| (p.addr, p.port))
            .collect::<Vec<_>>()
    };
    let a = order(1);
    assert_eq!(a.len(), 4 * 64);
    assert_eq!(a, order(1));
    assert_ne!(a, order(2));
    let distinct: HashSet<_> = a.iter().collect();
    assert_eq!(distinct.len(), a.len());
    // Spread: the first 16 probes do not all go to one host.
    let hosts: HashSet<_> = a[..16].iter().map(|(h, _)| h).collect();
    assert!(hosts.len() > 1);
    // Not sequential ports.
    assert!(a.windows(2).any(|w| w[1].1 != w[0].1 + 1));
}

#[test]
fn first_ports_go_first_on_every_host_and_only_once() {
    let mut p = plan(
        &["198.18.0.1", "198.18.0.2"],
        &[],
        (1..=500).collect(),
        fast(),
    );
    p.first_ports = vec![443, 80, 9999, 80];
    let run = simulate(p, |_| answer(PortState::Closed, Reason::Reset), None);
    assert_eq!(run.ports.len(), 1000);
    for host in ["198.18.0.1", "198.18.0.2"] {
        let addr: IpAddr = host.parse().unwrap();
        let order: Vec<u16> = run
            .probes
            .iter()
            .filter(|(_, p)| p.addr == addr)
            .map(|(_, p)| p.port)
            .collect();
        assert_eq!(order.len(), 500, "each port once");
        assert_eq!(&order[..2], &[443, 80]);
    }
}

#[test]
fn no_randomize_scans_in_order() {
    let mut p = plan(&["198.18.0.1"], &[], (1..=20).collect(), fast());
    p.randomize = false;
    let run = simulate(p, |_| answer(PortState::Closed, Reason::ConnRefused), None);
    let ports: Vec<u16> = run.probes.iter().map(|(_, p)| p.port).collect();
    assert_eq!(ports, (1..=20).collect::<Vec<_>>());
}

#[test]
fn excluded_hosts_are_never_probed() {
    let run = simulate(
        plan(
            &["198.18.0.0/28"],
            &["198.18.0.0/30", "198.18.0.9"],
            vec![80],
            fast(),
        ),
        |_| answer(PortState::Open, Reason::SynAck),
        None,
    );
    let hosts: HashSet<IpAddr> = run.probes.iter().map(|(_, p)| p.addr).collect();
    assert_eq!(hosts.len(), 16 - 5);
    assert!(!hosts.contains(&"198.18.0.9".parse::<IpAddr>().unwrap()));
}

#[test]
fn silent_host_is_given_up_after_host_timeout() {
    let mut t = fast();
    t.host_timeout = Some(Duration::from_millis(500));
    let run = simulate(
        plan(&["198.18.0.1", "198.18.0.2"], &[], (1..=20000).collect(), t),
        |p| {
            if p.addr == "198.18.0.1".parse::<IpAddr>().unwrap() {
                None
            } else {
                answer(PortState::Closed, Reason::ConnRefused)
            }
        },
        None,
    );
    let by_addr: HashMap<IpAddr, &HostReport> =
        run.hosts.iter().map(|h| (h.target.addr, h)).collect();
    let dead = by_addr[&"198.18.0.1".parse::<IpAddr>().unwrap()];
    assert_eq!(dead.status, HostStatus::TimedOut);
    assert!(dead.ports.is_empty());
    let live = by_addr[&"198.18.0.2".parse::<IpAddr>().unwrap()];
    assert_eq!(live.ports.len(), 20000);
    assert!(run.elapsed < Duration::from_secs(60));
}

#[test]
fn silent_host_speeds_up_instead_of_one_window_per_timeout() {
    // 3000 dropped ports, two tries each: with a fixed window of 10 per
    // 100 ms timeout this would take 60 s of virtual time.
    let run = simulate(
        plan(&["198.18.0.1"], &[], (40000..=42999).collect(), fast()),
        |_| None,
        None,
    );
    assert_eq!(run.stats.ports_by_state[PortState::Filtered.index()], 3000);
    assert!(run.elapsed < Duration::from_secs(10), "{:?}", run.elapsed);
}

#[test]
fn interrupt_reports_partial_hosts_and_finishes() {
    let t0_plus = Instant::now() + Duration::from_millis(150);
    let run = simulate(
        plan(&["198.18.0.1"], &[], (1..=2000).collect(), fast()),
        |p| {
            (p.port % 3 == 0)
                .then(|| reply_in(PortState::Open, Reason::SynAck, Duration::from_millis(1)))
        },
        Some(t0_plus),
    );
    assert_eq!(run.hosts.len(), 1);
    assert_eq!(run.hosts[0].status, HostStatus::Interrupted);
    assert!(run.hosts[0].ports.len() < 2000);
}

#[test]
fn max_rate_paces_probes() {
    let mut t = fast();
    t.max_rate = Some(1000.0);
    let run = simulate(
        plan(&["198.18.0.1"], &[], (1..=500).collect(), t),
        |_| answer(PortState::Closed, Reason::ConnRefused),
        None,
    );
    let first = run.probes[0].0;
    for (i, (at, _)) in run.probes.iter().enumerate() {
        let budget = (at.duration_since(first).as_secs_f64() * 1000.0) as usize + 5;
        assert!(i < budget + 1, "probe {i} sent too early");
    }
    assert!(run.elapsed >= Duration::from_millis(490));
}

#[test]
fn scan_delay_spaces_probes_to_a_host() {
    let mut t = TimingConfig::from_template(TimingTemplate::Polite);
    t.initial_rtt_timeout = Duration::from_millis(100);
    let run = simulate(
        plan(&["198.18.0.1"], &[], (1..=10).collect(), t),
        |_| answer(PortState::Closed, Reason::ConnRefused),
        None,
    );
    for w in run.probes.windows(2) {
        assert!(w[1].0 - w[0].0 >= Duration::from_millis(400));
    }
    assert_eq!(run.ports.len(), 10);
}

#[test]
fn discovery_ends_a_host_at_its_first_answer_and_calls_the_silent_down() {
    let mut p = plan(&["198.18.0.0/28"], &[], vec![0, 1, 2, 3], fast());
    p.discovery = true;
    p.silent_state = PortState::Filtered;
    // Even hosts answer probe 2 only; odd hosts never answer.
    let run = simulate(
        p,
        |probe| {
            let IpAddr::V4(a) = probe.addr else {
                unreachable!()
            };
            (a.octets()[3] % 2 == 0 && probe.port == 2)
                .then(|| reply_in(PortState::Open, Reason::SynAck, Duration::from_millis(1)))
        },
        None,
    );
    assert_eq!(run.hosts.len(), 16);
    for h in &run.hosts {
        let IpAddr::V4(a) = h.target.addr else {
            unreachable!()
        };
        if a.octets()[3] % 2 == 0 {
            assert_eq!(h.status, HostStatus::Up(Reason::SynAck), "{a}");
            assert!(
                h.ports
                    .iter()
                    .any(|o| o.port == 2 && o.reason == Reason::SynAck)
            );
        } else {
            assert_eq!(h.status, HostStatus::Down, "{a}");
        }
    }
    assert_eq!(run.stats.hosts_up, 8);
    // An up host gets no probe once its answer is in.
    let mut answered: HashMap<IpAddr, Instant> = HashMap::new();
    for (at, probe) in &run.probes {
        if probe.port == 2 && !answered.contains_key(&probe.addr) {
            answered.insert(probe.addr, *at + Duration::from_millis(1));
        }
    }
    for (at, probe) in &run.probes {
        let IpAddr::V4(a) = probe.addr else {
            unreachable!()
        };
        if a.octets()[3] % 2 == 0 {
            assert!(*at <= answered[&probe.addr], "{probe:?} after the answer");
        }
    }
}

#[test]
fn paced_hosts_get_every_answer_of_a_rate_limiting_target() {
    // A Linux-like target: closed ports answer from a token bucket of
    // six, refilled one a second; ports 1-5 are silent (open|filtered).
    let mut p = plan(&["198.18.0.2"], &[], (1..=30).collect(), fast());
    p.silent_state = PortState::OpenFiltered;
    p.pace_to_answers = true;
    let mut tokens = 6.0f64;
    let mut last: Option<Instant> = None;
    let run = simulate_full(
        p,
        |probe, now| {
            if let Some(t) = last {
                tokens = (tokens + (now - t).as_secs_f64()).min(6.0);
            }
            last = Some(now);
            if probe.port <= 5 || tokens < 1.0 {
                return None;
            }
            tokens -= 1.0;
            Some(reply_in(
                PortState::Closed,
                Reason::PortUnreach,
                Duration::from_millis(1),
            ))
        },
        None,
    );
    for (&(_, port), outcome) in &run.ports {
        let want = if port <= 5 {
            PortState::OpenFiltered
        } else {
            PortState::Closed
        };
        assert_eq!(outcome.state, want, "port {port}");
    }
    assert_eq!(run.ports.len(), 30);
    assert!(run.stats.pacing_increases > 0);
    // Bounded by the limit: about a second per closed port past the
    // burst, not a timeout per try of every port.
    assert!(run.elapsed < Duration::from_secs(90), "{:?}", run.elapsed);
}

/// A Linux-like ICMP limit per host: a bucket of six, one a second.
/// Linux-like ICMP error limits per target: a token bucket of six, one
/// more a second, full at the scan's start unless `spent`.
struct Buckets(BTreeMap<IpAddr, (f64, Instant)>, f64);

impl Buckets {
    fn full() -> Buckets {
        Buckets(BTreeMap::new(), 6.0)
    }

    /// Spent by an earlier scan just before this one.
    fn spent() -> Buckets {
        Buckets(BTreeMap::new(), 0.0)
    }

    fn take(&mut self, host: IpAddr, now: Instant) -> bool {
        let (tokens, last) = self.0.entry(host).or_insert((self.1, now));
        *tokens = (*tokens + (now - *last).as_secs_f64()).min(6.0);
        *last = now;
        if *tokens < 1.0 {
            return false;
        }
        *tokens -= 1.0;
        true
    }
}

fn rate_limited_run(targets: &[&str]) -> Run {
    let mut p = plan(targets, &[], (1..=30).collect(), fast());
    p.silent_state = PortState::OpenFiltered;
    p.pace_to_answers = true;
    let mut buckets = Buckets::full();
    simulate_full(
        p,
        |probe, now| {
            (probe.port > 5 && buckets.take(probe.addr, now)).then_some(reply_in(
                PortState::Closed,
                Reason::PortUnreach,
                Duration::from_millis(1),
            ))
        },
        None,
    )
}

#[test]
fn silence_at_the_settled_pace_costs_no_pace_interval() {
    // 25 closed ports behind the limit and 25 silent ones: the silent
    // ports' tries at the settled pace cost their timeouts, not a
    // second each (no ICMP error spent a token of the limit).
    let mut p = plan(&["198.18.0.2"], &[], (1..=50).collect(), fast());
    p.silent_state = PortState::OpenFiltered;
    p.pace_to_answers = true;
    let mut buckets = Buckets::full();
    let run = simulate_full(
        p,
        |probe, now| {
            (probe.port > 25 && buckets.take(probe.addr, now)).then_some(reply_in(
                PortState::Closed,
                Reason::PortUnreach,
                Duration::from_millis(1),
            ))
        },
        None,
    );
    for (&(_, port), outcome) in &run.ports {
        let want = if port <= 25 {
            PortState::OpenFiltered
        } else {
            PortState::Closed
        };
        assert_eq!(outcome.state, want, "port {port}");
    }
    // The limit's floor is about 19 s (25 errors, 6 at once), plus a
    // pace interval for each silent port's first try at the settled
    // pace; its two retries do not wait (three tries each at the pace
    // would take 80 s more).
    assert!(run.elapsed < Duration::from_secs(55), "{:?}", run.elapsed);
}

/// A short UDP list against a Linux-like limit (a burst of six, one a
/// second): `answering` ports answer, `silent` ones never do (dropped,
/// or open without an answer), the rest are closed.
fn short_list_run(ports: &[u16], answering: &[u16], silent: &[u16], seed: u64) -> Run {
    short_list_run_with(ports, answering, silent, seed, Buckets::full())
}

fn short_list_run_with(
    ports: &[u16],
    answering: &[u16],
    silent: &[u16],
    seed: u64,
    mut buckets: Buckets,
) -> Run {
    let mut p = plan(&["198.18.0.2"], &[], ports.to_vec(), fast());
    p.seed = seed;
    p.silent_state = PortState::OpenFiltered;
    p.pace_to_answers = true;
    let run = simulate_full(
        p,
        |probe, now| {
            if answering.contains(&probe.port) {
                return answer(PortState::Open, Reason::UdpResponse);
            }
            (!silent.contains(&probe.port) && buckets.take(probe.addr, now)).then_some(reply_in(
                PortState::Closed,
                Reason::PortUnreach,
                Duration::from_millis(1),
            ))
        },
        None,
    );
    for &port in ports {
        let want = if answering.contains(&port) {
            PortState::Open
        } else if silent.contains(&port) {
            PortState::OpenFiltered
        } else {
            PortState::Closed
        };
        let got = run.ports[&("198.18.0.2".parse().unwrap(), port)];
        assert_eq!(got.state, want, "port {port}");
    }
    assert_eq!(run.ports.len(), ports.len());
    run
}

#[test]
fn closed_ports_within_the_burst_are_not_paced() {
    // Issue 13's short lists: every closed port fits in the target's
    // burst of ICMP errors, so the silent ports' silence is their own
    // (a probe sent just after each drew an error, or the canary
    // after their retries did). No pacing: the scan takes a few
    // round-trip timeouts, not seconds.
    for seed in 0..20 {
        let ports = [53, 123, 161, 2000, 2001, 3000, 3001, 3002, 3003, 3004];
        let run = short_list_run(&ports, &[53, 123, 161], &[2000, 2001], seed);
        assert_eq!(run.stats.pacing_increases, 0, "seed {seed}");
        // Two round-trip timeouts (the retry's is the full minimum).
        assert!(
            run.elapsed < Duration::from_millis(300),
            "{:?}",
            run.elapsed
        );
    }
    let ports = [
        53, 67, 123, 137, 161, 500, 1900, 2000, 2001, 2002, 3000, 3001, 3002, 11211,
    ];
    let run = short_list_run(
        &ports,
        &[53, 123, 161, 500, 1900, 11211],
        &[67, 137, 2000, 2001, 2002],
        7,
    );
    assert_eq!(run.stats.pacing_increases, 0);
    assert!(
        run.elapsed < Duration::from_millis(300),
        "{:?}",
        run.elapsed
    );
}

#[test]
fn a_short_list_under_random_loss_loses_no_port_to_the_limit() {
    // 5% of probes and answers lost on top of the limit: a lost canary
    // or a lost error may cost pacing, but a port comes out wrong only
    // if the path lost every one of its tries (the retry budget's
    // risk, as for any scan), never because the limit cut an answer.
    let ports: Vec<u16> = (3000..3005).chain([53, 123, 161, 2000, 2001]).collect();
    for seed in 0..30u64 {
        let mut path_lost: BTreeMap<u16, u32> = BTreeMap::new();
        let mut p = plan(&["198.18.0.2"], &[], ports.clone(), fast());
        p.seed = seed;
        p.silent_state = PortState::OpenFiltered;
        p.pace_to_answers = true;
        let mut buckets = Buckets::full();
        let mut lost = random_loss(seed, 5);
        let run = simulate_full(
            p,
            |probe, now| {
                if lost() {
                    *path_lost.entry(probe.port).or_default() += 1;
                    return None;
                }
                let reply = if [53, 123, 161].contains(&probe.port) {
                    (PortState::Open, Reason::UdpResponse)
                } else if probe.port < 3000 || !buckets.take(probe.addr, now) {
                    return None;
                } else {
                    (PortState::Closed, Reason::PortUnreach)
                };
                if lost() {
                    *path_lost.entry(probe.port).or_default() += 1;
                    return None;
                }
                Some((
                    Reply {
                        state: reply.0,
                        reason: reply.1,
                        ttl: None,
                    },
                    Duration::from_millis(1),
                ))
            },
            None,
        );
        for (&(_, port), outcome) in &run.ports {
            let want = match port {
                53 | 123 | 161 => PortState::Open,
                2000 | 2001 => PortState::OpenFiltered,
                _ => PortState::Closed,
            };
            let all_lost = path_lost.get(&port) == Some(&u32::from(outcome.tries));
            assert!(
                outcome.state == want || all_lost,
                "seed {seed} port {port}: {outcome:?}, {:?} tries lost on the path",
                path_lost.get(&port)
            );
        }
    }
}

#[test]
fn a_short_list_on_a_whole_segment_takes_as_long_as_on_one_host() {
    // Issue 13's 10-port list on 250 hosts, each with its own limit:
    // each host's probes go out together (so that the errors to the
    // probes just after a silent one clear it), no host is paced, and
    // the scan takes about one host's time.
    let ports = [53, 123, 161, 2000, 2001, 3000, 3001, 3002, 3003, 3004];
    let mut p = plan(&["198.18.0.2-251"], &[], ports.to_vec(), fast());
    p.silent_state = PortState::OpenFiltered;
    p.pace_to_answers = true;
    let mut buckets = Buckets::full();
    let run = simulate_full(
        p,
        |probe, now| {
            // Round trips of 8 ms, as on the lab's bridged segment of
            // 250 namespaces.
            if [53, 123, 161].contains(&probe.port) {
                return Some(reply_in(
                    PortState::Open,
                    Reason::UdpResponse,
                    Duration::from_millis(8),
                ));
            }
            (probe.port >= 3000 && buckets.take(probe.addr, now)).then_some(reply_in(
                PortState::Closed,
                Reason::PortUnreach,
                Duration::from_millis(8),
            ))
        },
        None,
    );
    assert_eq!(run.ports.len(), 2500);
    for (&(addr, port), outcome) in &run.ports {
        let want = match port {
            53 | 123 | 161 => PortState::Open,
            2000 | 2001 => PortState::OpenFiltered,
            _ => PortState::Closed,
        };
        assert_eq!(outcome.state, want, "{addr} port {port}");
    }
    assert_eq!(run.stats.hosts_paced, 0);
    assert!(
        run.elapsed < Duration::from_millis(300),
        "{:?}",
        run.elapsed
    );
}

#[test]
fn a_target_whose_error_budget_was_spent_before_the_scan_is_still_exact() {
    // A second scan right after a first: the target's bucket of errors
    // to us is empty, so no closed port draws an error at first. The
    // host answered some ports, so its silence is checked once its
    // bucket has a token again, and the closed ports are found at the
    // limit's pace.
    let ports = [7, 9, 53, 123, 161, 1, 2, 3, 4, 5];
    for seed in 0..10 {
        let run = short_list_run_with(&ports, &[53, 123, 161], &[7, 9], seed, Buckets::spent());
        assert!(run.stats.pacing_increases > 0, "seed {seed}");
    }
}

#[test]
fn a_host_that_drops_instead_of_erring_costs_one_round_and_no_pace() {
    // Answers on some ports, silence on the others and never an ICMP
    // error (a firewall that drops): after their tries, the silent ports
    // get one more, together, a second later; its silence settles them,
    // and nothing is paced.
    let ports: Vec<u16> = (1..=20).collect();
    let mut p = plan(&["198.18.0.2"], &[], ports.clone(), fast());
    p.silent_state = PortState::OpenFiltered;
    p.pace_to_answers = true;
    let run = simulate(
        p,
        |probe| {
            (probe.port <= 2)
                .then(|| answer(PortState::Open, Reason::UdpResponse))
                .flatten()
        },
        None,
    );
    for (&(_, port), outcome) in &run.ports {
        let want = if port <= 2 {
            PortState::Open
        } else {
            PortState::OpenFiltered
        };
        assert_eq!(outcome.state, want, "port {port}");
    }
    assert_eq!(run.ports.len(), ports.len());
    assert_eq!(run.stats.pacing_increases, 0);
    let tries: HashSet<u8> = run
        .ports
        .values()
        .filter(|o| o.port > 2)
        .map(|o| o.tries)
        .collect();
    assert_eq!(
        tries.len(),
        1,
        "the same tries for every silent port: {tries:?}"
    );
    let checks: Vec<Instant> = run.probes.iter().rev().take(18).map(|(t, _)| *t).collect();
    assert!(
        checks.iter().all(|&t| t == checks[0]),
        "the check goes as one round"
    );
    let before = run.probes[run.probes.len() - 19].0;
    assert!(checks[0] - before >= PACING_MAX, "and waits for a token");
    let all: u64 = run.ports.values().map(|o| u64::from(o.tries)).sum();
    assert_eq!(run.stats.probes_sent, all);
}

#[test]
fn closed_ports_past_the_burst_are_paced_and_all_found() {
    // Twelve closed ports, six more than the burst, and two silent:
    // the canary after the suspects' retries goes unanswered, so the
    // host is paced, and every closed port is still found.
    let ports: Vec<u16> = (3000..3012).chain([2000, 2001]).collect();
    for seed in 0..10 {
        let run = short_list_run(&ports, &[], &[2000, 2001], seed);
        assert!(run.stats.pacing_increases > 0, "seed {seed}");
    }
}

/// A token bucket: `burst` tokens, `rate` more a second.
struct Bucket {
    tokens: f64,
    burst: f64,
    rate: f64,
    last: Option<Instant>,
}

impl Bucket {
    fn new(burst: f64, rate: f64) -> Bucket {
        Bucket {
            tokens: burst,
            burst,
            rate,
            last: None,
        }
    }

    fn has(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            self.tokens = (self.tokens + (now - last).as_secs_f64() * self.rate).min(self.burst);
        }
        self.last = Some(now);
        self.tokens >= 1.0
    }
}

/// 100 ports of one Linux-like host, 90 closed and 10 silent, from
/// `sources` source addresses: each source has its own bucket (six,
/// one a second), and `global` limits the host's errors over all.
fn many_sources_run(sources: u8, global: Option<(f64, f64)>, seed: u64) -> Run {
    let mut p = plan(&["198.18.0.2"], &[], (1..=100).collect(), fast());
    p.seed = seed;
    p.silent_state = PortState::OpenFiltered;
    p.pace_to_answers = true;
    p.sources = sources;
    let mut per_source: Vec<Bucket> = (0..sources).map(|_| Bucket::new(6.0, 1.0)).collect();
    let mut all = global.map(|(burst, rate)| Bucket::new(burst, rate));
    let silent = |port: u16| port.is_multiple_of(10);
    let run = simulate_full(
        p,
        |probe, now| {
            assert!(probe.source < sources, "{probe:?}");
            if silent(probe.port) {
                return None;
            }
            let mine = &mut per_source[usize::from(probe.source)];
            if !mine.has(now) || all.as_mut().is_some_and(|b| !b.has(now)) {
                return None;
            }
            mine.tokens -= 1.0;
            if let Some(b) = all.as_mut() {
                b.tokens -= 1.0;
            }
            Some(reply_in(
                PortState::Closed,
                Reason::PortUnreach,
                Duration::from_millis(1),
            ))
        },
        None,
    );
    for (&(_, port), outcome) in &run.ports {
        let want = if silent(port) {
            PortState::OpenFiltered
        } else {
            PortState::Closed
        };
        assert_eq!(outcome.state, want, "{sources} sources, port {port}");
    }
    assert_eq!(run.ports.len(), 100);
    run
}

#[test]
fn more_sources_more_icmp_budget() {
    // Each (host, source) pair is paced to its own limit: eight
    // sources take at most a quarter of one source's time, exact.
    let one = many_sources_run(1, None, 3);
    let eight = many_sources_run(8, None, 3);
    assert!(
        eight.elapsed * 4 <= one.elapsed,
        "one source {:?}, eight {:?}",
        one.elapsed,
        eight.elapsed
    );
    let used: HashSet<u8> = eight.probes.iter().map(|(_, p)| p.source).collect();
    assert_eq!(used.len(), 8, "probes spread over every source");
    assert_eq!(eight.stats.hosts_paced_globally, 0);
}

#[test]
fn a_host_wide_limit_below_the_sources_total_is_found_and_kept_exact() {
    // Eight sources could draw eight errors a second, but the host
    // sends at most two a second over all (a lowered
    // icmp_msgs_per_sec): every state stays exact, and the summary
    // says the host-wide limit was the bound.
    for seed in 0..4 {
        let run = many_sources_run(8, Some((4.0, 2.0)), seed);
        assert_eq!(run.stats.hosts_paced_globally, 1, "seed {seed}");
    }
}

#[test]
fn a_host_that_sends_no_icmp_errors_is_not_paced() {
    // A firewall that drops every UDP port but two open services: no
    // error to rate-limit, so the silence of 198 ports is silence.
    let mut p = plan(&["198.18.0.2"], &[], (1..=200).collect(), fast());
    p.silent_state = PortState::OpenFiltered;
    p.pace_to_answers = true;
    let run = simulate_full(
        p,
        |probe, _| {
            [53, 123].contains(&probe.port).then_some(reply_in(
                PortState::Open,
                Reason::UdpResponse,
                Duration::from_millis(1),
            ))
        },
        None,
    );
    assert_eq!(run.ports.len(), 200);
    assert_eq!(run.stats.pacing_increases, 0);
    assert!(run.elapsed < Duration::from_secs(5), "{:?}", run.elapsed);
}

#[test]
fn rate_limited_hosts_are_paced_side_by_side() {
    // Four hosts, each with its own limit, take about as long as one:
    // the time is bounded by the slowest host, not the sum.
    let one = rate_limited_run(&["198.18.0.2"]);
    let four = rate_limited_run(&["198.18.0.2", "198.18.0.3", "198.18.0.4", "198.18.0.5"]);
    assert_eq!(four.ports.len(), 4 * 30);
    for (&(addr, port), outcome) in &four.ports {
        let want = if port <= 5 {
            PortState::OpenFiltered
        } else {
            PortState::Closed
        };
        assert_eq!(outcome.state, want, "{addr} port {port}");
    }
    assert_eq!(four.stats.hosts_paced, 4);
    assert!(
        four.elapsed.as_secs_f64() < one.elapsed.as_secs_f64() * 1.5,
        "one host {:?}, four hosts {:?}",
        one.elapsed,
        four.elapsed
    );
}

#[test]
fn a_host_whose_errors_are_not_rate_limited_is_not_paced() {
    // Loopback or a lab host without limits: every closed port answers
    // at once, a few ports are silent. Their silence must not slow
    // the scan down to the pace of a rate limit.
    let mut p = plan(&["198.18.0.2"], &[], (0..=255).collect(), fast());
    p.silent_state = PortState::OpenFiltered;
    p.pace_to_answers = true;
    let silent = [2u16, 103, 136, 255];
    let run = simulate_full(
        p,
        |probe, _| {
            (!silent.contains(&probe.port)).then_some(reply_in(
                PortState::Closed,
                Reason::ProtoUnreach,
                Duration::from_millis(1),
            ))
        },
        None,
    );
    for (&(_, port), outcome) in &run.ports {
        let want = if silent.contains(&port) {
            PortState::OpenFiltered
        } else {
            PortState::Closed
        };
        assert_eq!(outcome.state, want, "port {port}");
    }
    assert_eq!(run.ports.len(), 256);
    assert_eq!(run.stats.pacing_increases, 0);
    // Virtual time: a few timeouts, not seconds of pacing per port.
    assert!(run.elapsed < Duration::from_secs(3), "{:?}", run.elapsed);
}

#[test]
fn a_sweep_of_mostly_empty_space_does_not_retry_the_dead_to_the_full() {
    // One port over a /22: every 16th address answers, the rest is
    // silent. Silent addresses get about what the live ones needed.
    let p = plan(&["198.18.0.0/22"], &[], vec![80], fast());
    let run = simulate(
        p,
        |probe| {
            let IpAddr::V4(a) = probe.addr else {
                unreachable!()
            };
            (a.octets()[3] % 16 == 0)
                .then(|| reply_in(PortState::Open, Reason::SynAck, Duration::from_millis(1)))
        },
        None,
    );
    assert_eq!(run.ports.len(), 1024);
    let open = run
        .ports
        .values()
        .filter(|o| o.state == PortState::Open)
        .count();
    assert_eq!(open, 64, "no live address is lost");
    let silent = 1024 - 64;
    let max_retries = fast().max_retries as usize;
    assert!(
        run.probes.len() < 64 + silent * 4,
        "{} probes for {silent} silent addresses (max_retries {max_retries})",
        run.probes.len()
    );
}

/// A one-port sweep of `targets` where every 200th address answers,
/// each probe and each answer lost with `loss` percent, on a machine
/// that reported dropped answers before it began when `drops`: (live
/// hosts found, live hosts in all, probes per address).
fn sweep_run(targets: &str, loss: u64, seed: u64, drops: bool) -> (usize, usize, f64) {
    sweep_run_timed(targets, loss, seed, drops, fast())
}

/// [`sweep_run`] with `timing`.
fn sweep_run_timed(
    targets: &str,
    loss: u64,
    seed: u64,
    drops: bool,
    timing: TimingConfig,
) -> (usize, usize, f64) {
    let mut p = plan(&[targets], &[], vec![80], timing);
    p.seed = seed;
    let live = |a: IpAddr| {
        let IpAddr::V4(a) = a else { unreachable!() };
        u32::from(a) % 200 == 7
    };
    let mut lost = random_loss(seed, loss);
    let t0 = Instant::now();
    let mut s = Scheduler::new(p, t0);
    if drops {
        s.on_local_drops(1);
    }
    let run = simulate_scheduler(
        s,
        t0,
        |probe, _| {
            (live(probe.addr) && !lost() && !lost())
                .then(|| reply_in(PortState::Open, Reason::SynAck, Duration::from_millis(1)))
        },
        None,
    );
    let all = run.ports.keys().filter(|(a, _)| live(*a)).count();
    let found = run
        .ports
        .iter()
        .filter(|((a, _), o)| live(*a) && o.state == PortState::Open)
        .count();
    let per_address = run.probes.len() as f64 / run.ports.len() as f64;
    (found, all, per_address)
}

#[test]
fn a_clean_sweep_gives_silent_addresses_one_try() {
    // Issue 18: silent addresses get the tries the measured loss calls
    // for: on a clean link one, at most 1.1 probes per address (the
    // loss probes and the parked decisions' share).
    let (found, all, per_address) = sweep_run("198.18.0.0/16", 0, 5, false);
    assert_eq!(found, all, "every live host found");
    assert!(per_address <= 1.1, "{per_address} probes per address");
}

#[test]
fn a_clean_sweep_of_a_million_addresses_gives_each_silent_one_one_try() {
    // Issue 18's test: a million targets, a few live (one in 1,024), a
    // clean path: every live one found, and the probes per target
    // within the goal of 1.1.
    let (found, all, per_address, _) = sparse_million(1024);
    assert_eq!(found, all, "every live target found");
    assert!(per_address <= 1.1, "{per_address:.4} probes per target");
}

/// A clean one-port sweep of a million addresses, one live in `every`:
/// (live found, live in all, probes per address, the most tries any
/// address got).
fn sparse_million(every: u32) -> (usize, usize, f64, u8) {
    let mut p = plan(&["198.16.0.0/12"], &[], vec![80], fast());
    p.seed = 3;
    let live = move |a: IpAddr| {
        let IpAddr::V4(a) = a else { unreachable!() };
        u32::from(a) % every == 7
    };
    let run = simulate(
        p,
        |probe| {
            live(probe.addr)
                .then(|| reply_in(PortState::Open, Reason::SynAck, Duration::from_micros(500)))
        },
        None,
    );
    let found = run
        .ports
        .iter()
        .filter(|((a, _), o)| live(*a) && o.state == PortState::Open)
        .count();
    let per_address = run.probes.len() as f64 / run.ports.len() as f64;
    // Loss probes go to live hosts; silent addresses' tries are the rest.
    let most = run
        .probes
        .iter()
        .filter(|(_, p)| !live(p.addr))
        .map(|(_, p)| p.try_no + 1)
        .max()
        .unwrap_or(0);
    (found, (1 << 20) / every as usize, per_address, most)
}

#[test]
fn a_sweep_where_live_hosts_are_rare_still_gives_silent_addresses_one_try() {
    // One live in 4,096: a live host's answer and one loss probe gave too
    // few round trips for the silent addresses decided while the order
    // waited (1.27 probes per address); the answered ports are probed
    // again while decisions wait (`chain_loss_probe`).
    let (found, all, per_address, most) = sparse_million(4096);
    assert_eq!(found, all, "every live host found");
    assert!(per_address <= 1.1, "{per_address:.4} probes per address");
    assert!(most <= 2, "an address got {most} tries");
    // One in 16,384: the first addresses are decided before sixteen
    // hosts answered, with nmap's two tries for a host that never
    // answered (they had the whole --max-retries: 2.8 probes per
    // address); the rest with one.
    let (found, all, per_address, most) = sparse_million(16_384);
    assert_eq!(found, all, "every live host found");
    assert!(per_address <= 1.2, "{per_address:.4} probes per address");
    assert!(most <= 2, "an address got {most} tries");
}

#[test]
fn a_host_that_never_answers_gets_nmaps_two_tries_per_port() {
    // nmap's allowedTryno is at least 1 for a host with no answer: one
    // retransmission, not -T4's six.
    let run = simulate(
        plan(&["198.18.0.1"], &[], (1..=100).collect(), fast()),
        |_| None,
        None,
    );
    assert_eq!(run.probes.len(), 200);
    assert!(run.ports.values().all(|o| o.state == PortState::Filtered));
    // --max-retries 0 holds.
    let timing = fast().with_max_retries(0);
    let run = simulate(
        plan(&["198.18.0.1"], &[], (1..=100).collect(), timing),
        |_| None,
        None,
    );
    assert_eq!(run.probes.len(), 100);
}

#[test]
fn parked_decisions_wait_while_the_caller_has_events_to_take() {
    // A ping sweep's silent addresses are parked while too few round
    // trips are known; once they are, the decisions (no retry on this
    // clean path) came in one call, each with its events.
    let mut p = plan(&["198.18.0.0/16"], &[], vec![0, 1, 2, 3], fast());
    p.discovery = true;
    p.silent_state = PortState::Filtered;
    let live = |a: IpAddr| {
        let IpAddr::V4(a) = a else { unreachable!() };
        u32::from(a) % 200 == 7
    };
    let run = simulate(
        p,
        |probe| {
            (live(probe.addr) && probe.port == 1)
                .then(|| reply_in(PortState::Open, Reason::SynAck, Duration::from_micros(500)))
        },
        None,
    );
    assert_eq!(run.hosts.len(), 65536);
    let up = run
        .hosts
        .iter()
        .filter(|h| matches!(h.status, HostStatus::Up(_)))
        .count();
    let all = (0..1u32 << 16)
        .filter(|i| live(IpAddr::V4(std::net::Ipv4Addr::from(0xc612_0000 + i))))
        .count();
    assert_eq!(up, all, "every live host up");
    assert!(
        run.most_events <= 2 * super::loss::UNPARK_EVENTS,
        "{} events held at once",
        run.most_events
    );
}

#[test]
fn answers_dropped_on_this_machine_give_silent_addresses_two_retries() {
    // The ring overflowed: burst loss the estimate does not see. The
    // silent addresses get three tries, as before there was an
    // estimate.
    let (found, all, per_address) = sweep_run("198.18.0.0/16", 0, 5, true);
    assert_eq!(found, all, "every live host found");
    assert!(
        (2.9..=3.1).contains(&per_address),
        "{per_address} probes per address"
    );
}

#[test]
fn a_lossy_sweep_retries_as_the_loss_calls_for_and_finds_every_host() {
    // 10% of probes and of answers lost: the loss shows in the answers
    // to retries and to re-probes of answered hosts, and silent
    // addresses get the tries it calls for: five, each live address
    // missed with a chance near 1e-3 (`sweep_miss`), so one of the 327
    // in some sweeps (four seeds of 23 miss one, before and after the
    // sweep's early unloading), two in about one in 300.
    let mut missed = 0;
    for seed in 1..9 {
        let (found, all, per_address) = sweep_run("198.18.0.0/16", 10, seed, false);
        assert!(
            found + 1 >= all,
            "seed {seed}: {found} of {all} live hosts found"
        );
        missed += all - found;
        assert!(
            per_address < 7.0,
            "seed {seed}: {per_address} probes per address"
        );
    }
    assert!(missed <= 2, "{missed} live hosts missed over eight sweeps");
}

#[test]
fn a_lower_sweep_confidence_gives_silent_addresses_fewer_tries_under_loss() {
    // --sweep-confidence 0.95: at 10% loss each way (p near 0.19), two
    // tries leave a live host missed with a chance near 0.036, where the
    // default 0.999 gives five.
    let mut timing = fast();
    timing.sweep_miss = 0.05;
    let (found, all, per_address) = sweep_run_timed("198.18.0.0/16", 10, 3, false, timing);
    assert!(
        (1.9..=2.3).contains(&per_address),
        "{per_address} probes per address"
    );
    // About 12 of 327 missed on average: most found, not all.
    assert!(found * 10 >= all * 9, "{found} of {all} live hosts found");
}

#[test]
fn host_timeout_deadlines_do_not_grow_with_the_targets() {
    // nmap's -T5 sets a host timeout; every host's deadline is queued
    // at its first probe. Finished hosts' deadlines must not pile up
    // for the whole scan (a /8 sweep held 16.7M of them).
    let mut timing = fast();
    timing.host_timeout = Some(Duration::from_secs(900));
    timing.max_retries = 0;
    let t0 = Instant::now();
    let mut s = Scheduler::new(plan(&["fd00:18::/110"], &[], vec![80], timing), t0);
    let mut now = t0;
    let mut most = 0;
    for _ in 0..10_000_000 {
        while s.poll_cancel(now).is_some() {}
        while s.poll_probe(now).is_some() {}
        while s.poll_event().is_some() {}
        most = most.max(s.host_deadlines.len());
        if s.is_finished() {
            break;
        }
        now = s.next_wakeup(now).expect("a wakeup").max(now);
    }
    assert!(s.is_finished());
    assert_eq!(s.stats().hosts_done, 262_144);
    assert!(
        most <= 2 * (MAX_GROUP as usize * 4) + 1024,
        "{most} deadlines held"
    );
}

#[test]
fn a_sweep_holds_scan_state_only_for_hosts_whose_probes_went() {
    // Issue 18: a host's scan state (several hundred bytes) is made when
    // its first probe goes, not when its group of 16,384 is built, so a
    // one-port sweep's window, not its group, bounds the hosts held.
    // With first ports (the CLI's default) and without.
    for (ports, first) in [(vec![80], vec![80]), (vec![80], vec![])] {
        let mut timing = fast();
        timing.max_retries = 0;
        timing.sweep_parallelism = 1024;
        let t0 = Instant::now();
        let mut p = plan(&["fd00:18::/112"], &[], ports.clone(), timing);
        p.first_ports = first.clone();
        let mut s = Scheduler::new(p, t0);
        let mut now = t0;
        let (mut most, mut probes) = (0, 0u64);
        for _ in 0..1_000_000 {
            while s.poll_cancel(now).is_some() {}
            while s.poll_probe(now).is_some() {
                probes += 1;
                most = most.max(s.active_hosts);
            }
            while s.poll_event().is_some() {}
            if s.is_finished() {
                break;
            }
            now = s.next_wakeup(now).expect("a wakeup").max(now);
        }
        assert!(s.is_finished(), "{ports:?} first {first:?}");
        assert_eq!(probes, 65_536 * ports.len() as u64);
        assert!(
            most <= 1024 + 64,
            "{ports:?} first {first:?}: {most} hosts held at once"
        );
    }
}

#[test]
fn a_discovery_sweep_whose_hosts_end_early_reuses_their_slots_safely() {
    // Hosts are made as their first probe goes, and freed slots are
    // reused within the same group. A discovery host ends at its first
    // answer with its other probes still to come in the order; its slot
    // must not be taken for another member's (the lab's sparse /16 `-sn`
    // hung with twice the probes when it was).
    let mut p = plan(&["198.18.0.0/18"], &[], vec![0, 1, 2, 3], fast());
    p.discovery = true;
    p.silent_state = PortState::Filtered;
    let up = |a: IpAddr| {
        let IpAddr::V4(a) = a else { unreachable!() };
        u32::from(a) % 7 == 3
    };
    let run = simulate(
        p,
        |probe| {
            (up(probe.addr) && probe.port == 1)
                .then(|| reply_in(PortState::Open, Reason::SynAck, Duration::from_micros(300)))
        },
        None,
    );
    assert_eq!(run.hosts.len(), 16384);
    let reported: HashSet<IpAddr> = run.hosts.iter().map(|h| h.target.addr).collect();
    assert_eq!(reported.len(), 16384, "every host reported once");
    for h in &run.hosts {
        let want_up = up(h.target.addr);
        assert_eq!(
            matches!(h.status, HostStatus::Up(_)),
            want_up,
            "{}",
            h.target.addr
        );
    }
    assert!(run.probes.len() <= 4 * 16384, "{} probes", run.probes.len());
}

#[test]
fn many_hosts_one_port_keeps_groups_bounded() {
    let run = simulate(
        plan(&["198.18.0.0/16"], &[], vec![443], fast()),
        |p| {
            let o = match p.addr {
                IpAddr::V4(a) => a.octets()[3],
                IpAddr::V6(_) => 0,
            };
            (o % 16 == 0)
                .then(|| reply_in(PortState::Open, Reason::SynAck, Duration::from_micros(100)))
        },
        None,
    );
    assert_eq!(run.hosts.len(), 65536);
    assert_eq!(
        run.stats.ports_by_state[PortState::Open.index()],
        65536 / 16
    );
}

#[test]
fn a_sparse_sweep_s_silent_tries_leave_the_window_once_answers_show_the_round_trip() {
    // Issue 18: a silent address held its window place for the full
    // 100 ms, so the first window of 4,096 let 41,000 probes a second go
    // (doubling per timeout), whatever the sending threads could do. Past
    // what the sweep's answers take (1 ms here; the early timeout of
    // 10 ms at least) a silent try is lost or to no one, and leaves the
    // window: the first window turns over every 10 ms, not every 100
    // (42,249 first tries in the first 100 ms; 4,462 before).
    let mut p = plan(&["198.18.0.0/16"], &[], vec![80], fast());
    p.seed = 4;
    let live = |a: IpAddr| {
        let IpAddr::V4(a) = a else { unreachable!() };
        u32::from(a) % 200 == 7
    };
    let run = simulate(
        p,
        |probe| {
            live(probe.addr)
                .then(|| reply_in(PortState::Open, Reason::SynAck, Duration::from_millis(1)))
        },
        None,
    );
    let t0 = run.probes[0].0;
    let first_tries_by = |limit: Duration| {
        run.probes
            .iter()
            .filter(|(t, p)| p.try_no == 0 && *t - t0 < limit)
            .count()
    };
    let found = run
        .ports
        .iter()
        .filter(|((a, _), o)| live(*a) && o.state == PortState::Open)
        .count();
    assert_eq!(found, run.ports.keys().filter(|(a, _)| live(*a)).count());
    assert!(
        first_tries_by(Duration::from_millis(100)) >= 30_000,
        "{} first tries in the first 100 ms",
        first_tries_by(Duration::from_millis(100))
    );
}

#[test]
fn a_sparse_sweep_opens_its_window_without_waiting_seconds_for_its_first_answer() {
    // Issue 18: a /16 with one live address in 218, at nmap's default
    // timing. With a first window of ten and a second's timeout for want
    // of a round trip, the first thousand probes took 4.7 s of virtual
    // time (the window doubled once a second until a live host answered).
    // The sweep's first window finds live hosts at once, and their round
    // trip re-times the probes in flight: the whole range goes in well
    // under a second and a half, every live host found.
    let timing = TimingConfig::from_template(TimingTemplate::Normal);
    let mut p = plan(&["198.18.0.0/16"], &[], vec![80], timing);
    p.seed = 3;
    let live = |a: IpAddr| {
        let IpAddr::V4(a) = a else { unreachable!() };
        (u32::from(a).wrapping_mul(2_654_435_761) >> 8) % 218 == 0
    };
    let run = simulate(
        p,
        |probe| {
            live(probe.addr)
                .then(|| reply_in(PortState::Open, Reason::SynAck, Duration::from_micros(300)))
        },
        None,
    );
    let live_count = run.ports.keys().filter(|(a, _)| live(*a)).count();
    let found = run
        .ports
        .values()
        .filter(|o| o.state == PortState::Open)
        .count();
    assert!(live_count > 200);
    assert_eq!(found, live_count);
    let first_thousand = run.probes[1000].0 - run.probes[0].0;
    assert!(
        first_thousand < Duration::from_millis(200),
        "{first_thousand:?}"
    );
    assert!(
        run.elapsed < Duration::from_millis(1500),
        "{:?}",
        run.elapsed
    );
}

#[test]
fn a_sweep_under_random_loss_keeps_its_speed() {
    // Issue 18: 10% of probes and of answers lost at random, a /16 with
    // one live address in 218. The few answers' retransmissions halved
    // the window a few times before the loss level settled, and growing
    // back took most of the scan: one seed took 16.4 s of virtual time
    // against 1.7 s for another. A decrease that does not lower the loss
    // is undone (see `Window`).
    for seed in 1..5u64 {
        let mut p = plan(&["198.18.0.0/16"], &[], vec![80], fast());
        p.seed = seed;
        let live = |a: IpAddr| {
            let IpAddr::V4(a) = a else { unreachable!() };
            u32::from(a) % 218 == 7
        };
        let mut lost = random_loss(seed, 10);
        let run = simulate(
            p,
            |probe| {
                (live(probe.addr) && !lost() && !lost())
                    .then(|| reply_in(PortState::Open, Reason::SynAck, Duration::from_micros(300)))
            },
            None,
        );
        let found = run
            .ports
            .iter()
            .filter(|((a, _), o)| live(*a) && o.state == PortState::Open)
            .count();
        let all = run.ports.keys().filter(|(a, _)| live(*a)).count();
        // One miss allowed, as in the lossy sweep's test: a live address
        // is missed with a chance near 1e-3 (`sweep_miss`).
        assert!(
            found + 1 >= all,
            "seed {seed}: {found} of {all} live hosts found"
        );
        assert!(
            run.elapsed < Duration::from_secs(4),
            "seed {seed}: {:?} of virtual time",
            run.elapsed
        );
    }
}

/// All 65,535 ports of one host, 3,000 filtered, under 10% loss each way
/// at `timing`: the ports read wrong, the most tries a port took, and the
/// virtual time it took.
fn lossy_host_run(timing: TimingConfig, seed: u64) -> (usize, u8, Duration) {
    let filtered = |port: u16| (30000..33000).contains(&port);
    let mut p = plan(&["198.18.0.2"], &[], (1..=65535).collect(), timing);
    p.seed = seed;
    let mut lost = random_loss(seed, 10);
    let run = simulate(
        p,
        |probe| {
            (!filtered(probe.port) && !lost() && !lost())
                .then(|| reply_in(PortState::Closed, Reason::Reset, Duration::from_micros(200)))
        },
        None,
    );
    assert_eq!(run.ports.len(), 65535);
    let wrong = run
        .ports
        .iter()
        .filter(|((_, port), o)| {
            let want = if filtered(*port) {
                PortState::Filtered
            } else {
                PortState::Closed
            };
            o.state != want
        })
        .count();
    let most = run.ports.values().map(|o| o.tries).max().unwrap_or(0);
    (wrong, most, run.elapsed)
}

#[test]
fn t4_under_measured_loss_retries_past_its_cap_and_loses_no_port() {
    // -T4 stops at 6 retries: at 19% of round trips lost, 7 tries all
    // fail for about 0.6 of the 62,535 closed ports a scan; four scans
    // lose none with a chance near 10%. The measured loss raises the cap
    // to nmap's default of 10 (`TimingConfig::max_retries_under_loss`).
    let t4 = TimingConfig::from_template(TimingTemplate::Aggressive);
    for seed in 1..5u64 {
        let (wrong, most, _) = lossy_host_run(t4.clone(), seed);
        assert_eq!(wrong, 0, "seed {seed}: {wrong} ports read wrong");
        assert!(most > 7, "seed {seed}: at most {most} tries");
    }
    // The user's --max-retries holds, loss or not.
    let (_, most, _) = lossy_host_run(t4.with_max_retries(6), 1);
    assert_eq!(most, 7);
}

#[test]
fn a_host_under_random_loss_finishes_near_its_clean_time_and_exact() {
    // Issue 18: all 65,535 ports of one host, 3,000 of them filtered,
    // with 10% of probes and of answers lost at random. Its retries
    // doubled their wait (for targets that rate-limit, which this one,
    // answering most first tries, is not), and its ports' last tries
    // filled the window waiting out 100 ms each: 1.1 s of virtual time
    // against 0.12-0.2 s clean. See `HostScan::spreads_retries` and
    // `Scheduler::unloads`.
    for seed in 1..4u64 {
        let normal = TimingConfig::from_template(TimingTemplate::Normal);
        let (wrong, _, elapsed) = lossy_host_run(normal, seed);
        assert_eq!(wrong, 0, "seed {seed}: {wrong} ports read wrong");
        assert!(
            elapsed < Duration::from_millis(600),
            "seed {seed}: {elapsed:?} of virtual time"
        );
    }
}

#[test]
fn a_bottleneck_on_the_answers_shrinks_the_window_and_loses_no_port() {
    // The answers cross a link that carries one every 24 us (20 Mbit/s of
    // 60-byte frames) behind a queue of 20 ms, past which they are
    // dropped: the lab's token bucket. The sender is held to 400,000
    // probes a second, about what one core reaches on the lab's veth.
    // The loss rises with the rate, the window follows it down, and every
    // port is still read right. (Kept from an attempt to read the loss
    // level per period and judge each decrease on the next: under this
    // bottleneck each one-shot judgement read the loss as not caused by
    // the rate, undid the decreases, and lost 1,752 to 4,734 of the
    // 20,000 ports.)
    let p = plan(
        &["198.18.0.2"],
        &[],
        (1..=20_000).collect(),
        TimingConfig {
            max_rate: Some(400_000.0),
            ..TimingConfig::from_template(TimingTemplate::Normal)
        },
    );
    let service = Duration::from_micros(24);
    let mut link_free = None::<Instant>;
    let run = simulate_with_clock(p, |probe, now| {
        let free = link_free.map_or(now, |f: Instant| f.max(now));
        let queued = free.saturating_duration_since(now);
        if queued > Duration::from_millis(20) {
            return None;
        }
        link_free = Some(free + service);
        let answer = if probe.port % 100 == 0 {
            (PortState::Open, Reason::SynAck)
        } else {
            (PortState::Closed, Reason::Reset)
        };
        Some(reply_in(
            answer.0,
            answer.1,
            Duration::from_micros(200) + queued,
        ))
    });
    assert_eq!(run.ports.len(), 20_000);
    for ((_, port), o) in &run.ports {
        let want = if port % 100 == 0 {
            PortState::Open
        } else {
            PortState::Closed
        };
        assert_eq!(o.state, want, "port {port}");
    }
    assert!(
        run.stats.retransmissions > 0,
        "the bottleneck dropped answers"
    );
    assert!(run.stats.window_decreases >= 1);
}
