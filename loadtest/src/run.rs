//! Running a scenario: the open-loop generator, the event reader, the fault timeline, the
//! drain, and the numbers for the report.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use smsroute_carrier::{Carrier, Inbound};
use smsroute_config::Config;
use smsroute_engine::{EngineOptions, EventStream, Router, SetupError};
use smsroute_types::{Message, SplitMix64};

use crate::inproc_mode::InprocFleet;
use crate::ledger::{Books, LATE_US};
use crate::lives::Lives;
pub(crate) use crate::progress::Progress;
use crate::report::{CarrierReport, Crashes, Marker, Report, Timeline};
use crate::scenario::{Fault, Mix, Mode, Prepared};
use crate::smpp_mode::SmppFleet;

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The engine refused the configuration.
    #[error("engine: {0}")]
    Setup(#[from] SetupError),
    /// The configuration serves no prefix to send to.
    #[error("the configuration has no routes to send messages to")]
    NoRoutes,
    /// A simulated SMSC could not listen.
    #[error("simulated SMSC for {carrier}: {error}")]
    Simulator {
        /// The carrier it simulates.
        carrier: String,
        /// Why it could not listen.
        #[source]
        error: std::io::Error,
    },
    /// The `smsroute serve` process of mode `serve` could not run.
    #[error("smsroute serve: {0}")]
    Serve(String),
    /// The metrics endpoint could not start.
    #[error(transparent)]
    Metrics(#[from] smsroute_metrics::ExporterError),
}

/// How to run.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Print a live progress line on stderr.
    pub progress: bool,
    /// Serve Prometheus metrics on this address while it runs.
    pub metrics: Option<std::net::SocketAddr>,
}

/// Distinct messages the generator cycles through (cloned, then numbered).
const TEMPLATES: usize = 4096;

/// What every mode shares: the books, the clock, the runtime, the engine options.
pub(crate) struct Context<'a> {
    pub prepared: &'a Prepared,
    pub books: Arc<Books>,
    pub runtime: tokio::runtime::Runtime,
    pub origin: Instant,
    pub engine: EngineOptions,
    pub planned: usize,
    pub seconds: usize,
}

impl Context<'_> {
    pub fn now_us(&self) -> u64 {
        self.origin.elapsed().as_micros() as u64
    }

    /// Message `n`'s intended send time (µs, written in the books) and the second of the run
    /// it counts in.
    pub fn intend(&self, n: u64) -> (u64, usize) {
        let intended = (self.prepared.scenario.rate.time_of(n) * 1e6) as u64;
        let second = ((intended / 1_000_000) as usize).min(self.seconds - 1);
        if let Some(at) = self.books.intended_us.get(n as usize) {
            at.store(intended as u32, Ordering::Relaxed);
        }
        (intended, second)
    }
}

/// The timeline of crashes (mode `serve`: kills): when the router goes down and, a downtime
/// later, comes back. One while it is down changes nothing.
pub(crate) struct Downtimes<'a> {
    pending: std::iter::Peekable<std::slice::Iter<'a, (f64, f64)>>,
    /// While down: when it comes back, µs.
    back_at: Option<u64>,
}

impl<'a> Downtimes<'a> {
    pub fn new(timeline: &'a [(f64, f64)]) -> Self {
        Downtimes {
            pending: timeline.iter().peekable(),
            back_at: None,
        }
    }

    /// Whether the router goes down at `now`: the marker for the charts, labelled `what`.
    pub fn goes_down(&mut self, now: u64, what: &str) -> Option<Marker> {
        let mut marker = None;
        while let Some((at, down_ms)) = self.pending.next_if(|(at, _)| (*at * 1e6) as u64 <= now) {
            if self.back_at.is_none() {
                self.back_at = Some(now + (down_ms * 1e3) as u64);
                marker = Some(Marker {
                    at_s: *at,
                    until_s: Some(at + down_ms / 1e3),
                    label: format!("{what}, down {down_ms} ms"),
                });
            }
        }
        marker
    }

    /// Whether the router comes back at `now` (then it is up).
    pub fn comes_back(&mut self, now: u64) -> bool {
        let back = self.back_at.is_some_and(|at| now >= at);
        if back {
            self.back_at = None;
        }
        back
    }

    /// Whether it is down.
    pub fn is_down(&self) -> bool {
        self.back_at.is_some()
    }
}

/// Runs a prepared scenario to the end and returns its report.
pub fn run(prepared: &Prepared, options: RunOptions) -> Result<Report, RunError> {
    let scenario = &prepared.scenario;
    let total = scenario.rate.count_until(scenario.duration_s).ceil() as u64;
    let planned = total as usize + 1;
    let seconds = (scenario.duration_s + scenario.drain_s).ceil() as usize + 2;
    // Mode serve's process keeps its own journal; the harness's router is for the others.
    let journal =
        (scenario.engine.journal && scenario.mode != Mode::Serve).then(|| run_dir("journal"));
    let mut engine = EngineOptions::default()
        .max_outstanding(scenario.engine.max_outstanding)
        .inbound_capacity(scenario.engine.inbound_capacity)
        .request_receipts(scenario.mix.receipts)
        .seed(scenario.seed);
    if let Some(dir) = &journal {
        engine = engine.journal(smsroute_journal::JournalOptions::new(dir));
    }
    let ctx = Context {
        prepared,
        books: Arc::new(Books::new(planned, seconds)),
        runtime: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime"),
        origin: Instant::now(),
        engine,
        planned,
        seconds,
    };
    let templates = Templates::new(&prepared.config, &scenario.mix, scenario.seed)?;
    let destinations = templates
        .base
        .iter()
        .map(|t| (t.to().as_str().into(), t.from().as_str().into()))
        .collect();
    let _ = ctx.books.destinations.set(destinations);
    if let Some(addr) = options.metrics {
        let _guard = ctx.runtime.enter();
        smsroute_metrics::install_exporter(addr)?;
    }
    let stall = crate::stall::StallMeter::start(&ctx.runtime);
    let mut report = match scenario.mode {
        Mode::Inproc => drive(&ctx, InprocFleet::new(&ctx), &templates, options),
        Mode::Smpp => SmppFleet::start(&ctx).and_then(|f| drive(&ctx, f, &templates, options)),
        Mode::Serve => {
            let dir = run_dir("serve");
            let report = crate::serve_mode::run(&ctx, &templates.base, options, &dir);
            if report.as_ref().is_ok_and(Report::passed) {
                let _ = std::fs::remove_dir_all(&dir);
            }
            report
        }
    };
    let stall = stall.longest();
    if let Ok(report) = &mut report {
        report.stall_ms = stall.as_secs_f64() * 1e3;
        for carrier in report.carriers.values_mut() {
            carrier.allow_stall(stall);
        }
    }
    if let Some(dir) = &journal {
        let _ = std::fs::remove_dir_all(dir);
    }
    report
}

/// A directory of this run's own under the temporary directory.
fn run_dir(what: &str) -> std::path::PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = format!("smsroute-loadtest-{what}-{}-{stamp}", std::process::id());
    std::env::temp_dir().join(name)
}

/// The simulated carriers of one mode, as the one driver of both modes uses them.
pub(crate) trait Fleet {
    /// The router's carrier type.
    type Carrier: Carrier;
    /// Starts the router on these carriers, ready for load.
    fn router(&self, ctx: &Context<'_>) -> Result<(Router<Self::Carrier>, EventStream), RunError>;
    /// Message `n` (id n + 1), made from `template`.
    fn message(&self, template: &Message, n: u64) -> Message;
    /// Each carrier's own figures, read before the router shuts down.
    fn reports(
        &self,
        ctx: &Context<'_>,
        router: &Router<Self::Carrier>,
    ) -> BTreeMap<String, CarrierReport>;
    /// The router just crashed (abandoned): what the process's death does to the carriers'
    /// connections. In-process carriers survive; SMPP sessions die with their sockets.
    fn crashed(&self, ctx: &Context<'_>, router: &Router<Self::Carrier>) {
        let _ = (ctx, router);
    }
    /// Every carrier sends the receipts it holds now (in-process carriers only: a scenario
    /// over SMPP cannot ask for it).
    fn release_receipts(&self, ctx: &Context<'_>, router: &Router<Self::Carrier>) {
        let _ = (ctx, router);
    }
    /// A recipient's reply, arriving through `carrier`.
    fn inject(
        &self,
        ctx: &Context<'_>,
        router: &Router<Self::Carrier>,
        carrier: &str,
        reply: Inbound,
    );
}

/// Starts the router on the fleet, sends the load, drains, shuts down and builds the report:
/// the same for every mode.
fn drive<F: Fleet>(
    ctx: &Context<'_>,
    fleet: F,
    templates: &Templates,
    options: RunOptions,
) -> Result<Report, RunError> {
    let mut lives = Lives::start(ctx, &fleet)?;
    let prepared = ctx.prepared;
    let scenario = &prepared.scenario;
    let profile = &scenario.rate;
    let books = &ctx.books;
    let planned = ctx.planned;
    let total = planned as u64 - 1;
    let duration_us = (scenario.duration_s * 1e6) as u64;
    let recipients: Vec<(Box<str>, Box<str>)> = {
        let all = books.destinations.get().cloned().unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        all.into_iter().filter(|d| seen.insert(d.clone())).collect()
    };
    let mut progress = Progress::new(options.progress);
    let mut markers = fault_markers(prepared);
    let mut reloads = prepared.reloads.iter().peekable();
    let mut replies = prepared.replies.iter().peekable();
    let mut downtimes = Downtimes::new(&prepared.crashes);
    let mut releases = prepared.releases.iter().peekable();
    let mut release_due = |now: u64, router: &Router<F::Carrier>, markers: &mut Vec<Marker>| {
        while let Some(at) = releases.next_if(|at| (**at * 1e6) as u64 <= now) {
            fleet.release_receipts(ctx, router);
            markers.push(Marker::at(*at, "receipts released".into()));
        }
    };
    let mut next: u64 = 0;
    loop {
        let now = ctx.now_us();
        if let Some(marker) = downtimes.goes_down(now, "crash") {
            lives.crash(ctx, &fleet);
            markers.push(marker);
        }
        if downtimes.comes_back(now) {
            lives.restart(ctx, &fleet)?;
        }
        let router = &lives.router;
        release_due(now, router, &mut markers);
        while let Some((at, config)) = reloads.next_if(|(at, _)| (*at * 1e6) as u64 <= now) {
            let label = match router.reload(config) {
                Ok(r) => format!("reload → generation {}", r.generation),
                Err(e) => format!("reload refused: {e}"),
            };
            markers.push(Marker::at(*at, label));
        }
        while let Some((at, carrier, text, count)) =
            replies.next_if(|(at, ..)| (*at * 1e6) as u64 <= now)
        {
            for (number, sender) in recipients.iter().take(*count) {
                let reply = Inbound {
                    from: number.to_string(),
                    to: sender.to_string(),
                    text: text.clone(),
                };
                fleet.inject(ctx, router, carrier, reply);
            }
            markers.push(Marker::at(*at, format!("{count} × {text} via {carrier}")));
        }
        // Messages 0..=floor(count(now)) are due by now; the run sends ceil(count(duration)).
        let due = (profile.count_until(now as f64 / 1e6) as u64 + 1).min(total);
        while next < due {
            let (intended, second) = ctx.intend(next);
            let template = templates.pick(next, intended);
            match lives
                .router
                .try_submit(fleet.message(template, next))
                .map_err(|r| r.reason)
            {
                Ok(id) => {
                    lives.accepted(id.0);
                    books.accepted[second].fetch_add(1, Ordering::Relaxed)
                }
                Err(refusal) => {
                    let reason = smsroute_metrics::Label::index(&refusal);
                    books.rejected_by_reason[reason].fetch_add(1, Ordering::Relaxed);
                    books.rejected[second].fetch_add(1, Ordering::Relaxed)
                }
            };
            if ctx.now_us().saturating_sub(intended) > LATE_US {
                books.late[second].fetch_add(1, Ordering::Relaxed);
            }
            next += 1;
        }
        if now >= duration_us {
            break;
        }
        progress.tick(now, books);
        std::thread::sleep(Duration::from_micros(100));
    }

    if downtimes.is_down() {
        lives.restart(ctx, &fleet)?;
    }

    // Drain: wait for every accepted message to finish, within drain_s. After a crash, some
    // accepted by `try_submit` were never durable and never finish: the router owing nothing
    // more ends the drain too.
    let accepted = Books::total(&books.accepted);
    let drain_end = ctx.now_us() + (scenario.drain_s * 1e6) as u64;
    let owes = |router: &Router<F::Carrier>| {
        let stats = router.stats();
        // Parked messages (awaiting receipts out of memory) are owed too.
        lives.crashes == 0 || stats.outstanding > 0 || stats.parked > 0
    };
    while books.terminal.load(Ordering::Relaxed) < accepted
        && owes(&lives.router)
        && ctx.now_us() < drain_end
    {
        std::thread::sleep(Duration::from_millis(10));
        let now = ctx.now_us();
        release_due(now, &lives.router, &mut markers);
        progress.tick(now, books);
    }
    progress.finish();
    let router = &lives.router;
    let carrier_reports = fleet.reports(ctx, router);
    let carrier_names: Vec<String> = router.carriers().iter().map(|c| c.id.to_string()).collect();
    let shutdown = ctx.runtime.block_on(router.shutdown(Duration::ZERO));
    let crashes = lives.crashes;
    let (tally, unconfirmed) = lives.finish();

    let in_flight_at_end = shutdown
        .unfinished
        .iter()
        .filter(|id| !tally.is_terminal(id.0))
        .count() as u64;
    let terminal: u64 = tally.terminal.iter().sum();
    let timeline = Timeline::build(&tally, books, &carrier_names, markers, progress.rss_mb);
    Ok(Report::new(
        prepared,
        books,
        &tally,
        accepted,
        terminal,
        in_flight_at_end,
        Crashes {
            crashes,
            unconfirmed,
        },
        carrier_reports,
        timeline,
    ))
}

/// A carrier's report: its contract and what its simulator counted (`max_rate_1s` in
/// segments, as the simulator metered it).
pub(crate) fn carrier_report(
    prepared: &Prepared,
    id: &str,
    stats: &smsroute_sim::SimStats,
    max_rate_1s: u64,
    contract_use: impl FnOnce(u32) -> f64,
) -> CarrierReport {
    let contract = std::iter::once(&prepared.config)
        .chain(prepared.reloads.iter().map(|(_, c)| c))
        .flat_map(|c| c.carriers.iter())
        .find(|c| c.id == id);
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let (tps, burst) = contract.map_or((0, 0), |c| (c.tps, c.burst));
    CarrierReport {
        tps,
        burst,
        submitted: load(&stats.submits),
        acked: load(&stats.accepted),
        throttled: load(&stats.throttled),
        temp_errors: load(&stats.system_errors) + load(&stats.temporary_errors),
        perm_errors: load(&stats.permanent_errors),
        timeouts: load(&stats.hung),
        max_rate_1s: max_rate_1s as f64,
        rate_bound: CarrierReport::rate_bound(tps, burst),
        contract_use: contract_use(tps),
    }
}

/// Every carrier id the run may see: configured at start or added by a reload.
pub(crate) fn carrier_ids(prepared: &Prepared) -> Vec<String> {
    let mut ids: Vec<String> = prepared
        .config
        .carriers
        .iter()
        .map(|c| c.id.clone())
        .collect();
    for (_, config) in &prepared.reloads {
        for c in &config.carriers {
            if !ids.contains(&c.id) {
                ids.push(c.id.clone());
            }
        }
    }
    ids
}

fn fault_markers(prepared: &Prepared) -> Vec<Marker> {
    prepared
        .scenario
        .faults
        .iter()
        .filter_map(|f| match f {
            Fault::Reload { .. } => None,
            Fault::Inbound { carrier, .. } => Some(Marker {
                at_s: f.at_s(),
                until_s: Some(f.at_s()),
                label: format!("{} {carrier}", f.kind()),
            }),
            _ => f.window().map(|(carrier, duration_s, _)| Marker {
                at_s: f.at_s(),
                until_s: Some(f.at_s() + duration_s),
                label: format!("{} {carrier}", f.kind()),
            }),
        })
        .collect()
}

/// FNV-1a, to give each carrier its own seed.
pub(crate) fn hash(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Messages to numbers the configuration routes, in the scenario's mix.
/// The messages the run sends, made from templates: one set, or with `[mix.classes]` one
/// per class, picked by whether a message falls within the base class's rate.
pub(crate) struct Templates {
    pub base: Vec<Message>,
    /// The burst class's templates and the base rate, with classes.
    burst: Option<(Vec<Message>, f64)>,
    /// Base messages picked so far (the generator's thread only).
    base_sent: std::cell::Cell<u64>,
}

impl Templates {
    fn new(config: &Config, mix: &Mix, seed: u64) -> Result<Self, RunError> {
        let Some(classes) = &mix.classes else {
            return Ok(Templates {
                base: templates(config, mix, seed, None)?,
                burst: None,
                base_sent: Default::default(),
            });
        };
        Ok(Templates {
            base: templates(config, mix, seed, Some(&classes.base))?,
            burst: Some((
                templates(config, mix, seed, Some(&classes.burst))?,
                classes.base_rate,
            )),
            base_sent: Default::default(),
        })
    }

    /// The template of message `n`, intended at `intended_us`.
    fn pick(&self, n: u64, intended_us: u64) -> &Message {
        let set = match &self.burst {
            Some((burst, base_rate)) => {
                let due = (base_rate * intended_us as f64 / 1e6) as u64 + 1;
                if self.base_sent.get() < due {
                    self.base_sent.set(self.base_sent.get() + 1);
                    &self.base
                } else {
                    burst
                }
            }
            None => &self.base,
        };
        &set[n as usize % set.len()]
    }
}

fn templates(
    config: &Config,
    mix: &Mix,
    seed: u64,
    class: Option<&str>,
) -> Result<Vec<Message>, RunError> {
    let mut prefixes: Vec<&str> = config.routes.iter().map(|r| r.prefix.as_str()).collect();
    prefixes.sort_unstable();
    prefixes.dedup();
    if prefixes.is_empty() {
        return Err(RunError::NoRoutes);
    }
    let mut rng = SplitMix64::new(seed ^ 0x7E3D);
    let max_segments = config.limits.max_segments;
    let mut out = Vec::with_capacity(TEMPLATES);
    while out.len() < TEMPLATES {
        let prefix = prefixes[rng.below(prefixes.len() as u64) as usize];
        let mut number = prefix.to_string();
        while number.len() < 11.max(prefix.len() + 1).min(15) {
            number.push(char::from(b'0' + rng.below(10) as u8));
        }
        let code = rng.below(1_000_000);
        let long = rng.chance(mix.multipart);
        let text = match (rng.chance(mix.ucs2), long) {
            (false, false) => format!("Your code is {code:06}"),
            (false, true) => format!("Order {code:06} has shipped. ").repeat(8),
            (true, false) => format!("Ваш код {code:06}"),
            (true, true) => format!("Заказ {code:06} отправлен. ").repeat(4),
        };
        let sender = &mix.senders[out.len() % mix.senders.len()];
        // A template the config's limits refuse is skipped, not sent.
        let mut builder = Message::builder(&number, sender, &text);
        if let Some(class) = class {
            builder = builder.tag("class", class);
        }
        let built = builder.build();
        if let Ok(m) = built
            && m.segments() <= max_segments
        {
            out.push(m);
        } else if out.is_empty() && rng.below(1000) == 0 {
            return Err(RunError::NoRoutes);
        }
    }
    Ok(out)
}
