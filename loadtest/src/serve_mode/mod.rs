//! `mode = "serve"`: `smsroute serve` runs as a child process with a journal, in front of the
//! scenario's carriers as SMSC simulators in this process, and the harness drives it as an
//! SMPP client (several binds, windowed). A message counts accepted at its `submit_sm_resp`
//! and terminal at the receipt for its first part. A `kill` fault sends the process SIGKILL
//! and starts it again on its journal after a delay; the binds reconnect, and a submit that
//! got no answer is sent again (flagged: the hub may have had it). At the end, each accepted
//! message without a receipt is looked up in the hub (`GET /v1/messages/{id}`): one the hub
//! still holds unfinished is in flight; one it finished (its receipt never came), does not
//! know, or does not answer for is lost.
//!
//! With `nodes` above 1 the harness starts a `redis-server` (or, with `redis = "cluster"`, a
//! Redis Cluster of three) and that many `smsroute serve` processes with `[cluster]`
//! (`docs/cluster.md`), each with its own journal and its own client binds; messages go to
//! the nodes in turn. A `kill` fault kills node 0; a `redis_down` fault kills the
//! `redis-server` (which persists every write) and restarts it.
//!
//! An `inbound` fault has the carrier's simulator send the replies to the processes' binds
//! (one of them takes each). A STOP counts from a second after it was sent: a message the
//! carrier accepts for that recipient and sender (any sender after STOPALL) later is
//! `sent_after_opt_out`, whichever node sent it.

mod client;
mod process;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use smsroute_cluster::testing::{RedisCluster, RedisServer};
use smsroute_types::Message;

use crate::ledger::{Books, Tally};
use crate::report::{Crashes, Report, ServeFigures, Timeline};
use crate::run::{Context, Downtimes, Progress, RunError, RunOptions};
use crate::scenario::SharedRedis;
use crate::smpp_mode::{SmppFleet, marked_message};

use client::Client;
use process::{Hub, Lookup};

/// The longest the end-of-run lookups may take together: what is left after it counts lost.
const LOOKUPS_FOR: Duration = Duration::from_secs(30);

/// How long after a STOP is sent the processes may still send to its recipient: the
/// cluster's promise (an opt-out on one node blocks the others within a second).
const OPT_OUT_GRACE_US: u64 = 1_000_000;

/// The client's window over all its binds.
const WINDOW: u32 = 4096;

/// Runs the scenario through a `smsroute serve` process.
pub(crate) fn run(
    ctx: &Context<'_>,
    templates: &[Message],
    options: RunOptions,
    dir: &std::path::Path,
) -> Result<Report, RunError> {
    let prepared = ctx.prepared;
    let scenario = &prepared.scenario;
    let fleet = SmppFleet::start(ctx)?;
    let config =
        process::render_config(&prepared.config_text, &fleet.ports()).map_err(RunError::Serve)?;
    let nodes = scenario.nodes.max(1) as usize;
    // It persists every write (appendfsync always), so a `redis_down` fault is a restart
    // that keeps what it acknowledged, as a production Redis with AOF does.
    let needs = |e| RunError::Serve(format!("nodes > 1 needs redis-server on the PATH: {e}"));
    let (mut redis, redis_cluster) = match (nodes > 1, scenario.redis) {
        (false, _) => (None, None),
        (true, SharedRedis::Server) => (
            Some(RedisServer::start_persistent(&dir.join("redis")).map_err(needs)?),
            None,
        ),
        (true, SharedRedis::Cluster) => (None, Some(RedisCluster::launch().map_err(needs)?)),
    };
    let redis_lines = match (&redis, &redis_cluster) {
        (Some(server), _) => Some(format!("url = \"{}\"", server.url)),
        (_, Some(cluster)) => Some(format!("redis_cluster = {:?}", cluster.urls)),
        _ => None,
    };
    let mut hubs = Vec::with_capacity(nodes);
    for node in 0..nodes {
        let (config, dir) = match &redis_lines {
            None => (config.clone(), dir.to_path_buf()),
            Some(redis) => (
                format!("{config}\n[cluster]\n{redis}\nnode_id = \"node-{node}\"\n"),
                dir.join(format!("node-{node}")),
            ),
        };
        let mut hub = Hub::new(&dir, &config)?;
        hub.start()?;
        hubs.push(hub);
    }
    let tally = Arc::new(parking_lot::Mutex::new(Tally::new(
        ctx.planned,
        0,
        (scenario.warmup_s * 1e6) as u64,
    )));
    let clients: Vec<_> = hubs
        .iter()
        .map(|hub| {
            let _guard = ctx.runtime.enter();
            Client::start(
                hub.smpp.port(),
                WINDOW,
                ctx.books.clone(),
                tally.clone(),
                ctx.origin,
                scenario.mix.receipts,
            )
        })
        .collect();
    ctx.runtime.block_on(async {
        for _ in 0..500 {
            if clients.iter().all(|c| c.bound() > 0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });

    let books = &ctx.books;
    let profile = &scenario.rate;
    let planned = ctx.planned;
    let total = planned as u64 - 1;
    let duration_us = (scenario.duration_s * 1e6) as u64;
    let mut progress = Progress::new(options.progress);
    let mut markers = Vec::new();
    let recipients: Vec<(Box<str>, Box<str>)> = {
        let all = books.destinations.get().cloned().unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        all.into_iter().filter(|d| seen.insert(d.clone())).collect()
    };
    let mut replies = prepared.replies.iter().peekable();
    let mut downtimes = Downtimes::new(&prepared.crashes);
    let mut redis_downtimes = Downtimes::new(&prepared.redis_downs);
    let mut killed = 0;
    let mut next: u64 = 0;
    loop {
        let now = ctx.now_us();
        for hub in &mut hubs {
            if let Some(exit) = hub.exited() {
                return Err(RunError::Serve(format!(
                    "the process exited on its own ({exit}) at {:.1} s: see {}",
                    now as f64 / 1e6,
                    hub.log().display()
                )));
            }
        }
        if let Some(marker) = downtimes.goes_down(now, "kill -9") {
            hubs[0].kill();
            killed += 1;
            markers.push(marker);
        }
        if downtimes.comes_back(now) {
            hubs[0].start()?;
        }
        while let Some((at, carrier, text, count)) =
            replies.next_if(|(at, ..)| (*at * 1e6) as u64 <= now)
        {
            let keyword = smsroute_policy::Keyword::parse(text);
            for (number, sender) in recipients.iter().take(*count) {
                let reply = smsroute_carrier::Inbound {
                    from: number.to_string(),
                    to: sender.to_string(),
                    text: text.clone(),
                };
                fleet.send_mo(ctx, carrier, process::SIMULATOR_LOGIN.0, &reply);
                let from = now + OPT_OUT_GRACE_US;
                match keyword {
                    Some(smsroute_policy::Keyword::Stop) => books.stopped(number, sender, from),
                    Some(smsroute_policy::Keyword::StopAll) => books.stopped(number, "*", from),
                    Some(smsroute_policy::Keyword::Start) => books.started(number),
                    _ => {}
                }
            }
            markers.push(crate::report::Marker::at(
                *at,
                format!("{count} × {text} via {carrier}"),
            ));
        }
        if let Some(redis) = redis.as_mut() {
            if let Some(marker) = redis_downtimes.goes_down(now, "redis-server killed") {
                redis.kill();
                markers.push(marker);
            }
            if redis_downtimes.comes_back(now) {
                redis
                    .restart()
                    .map_err(|e| RunError::Serve(format!("redis-server: {e}")))?;
            }
        }
        let due = (profile.count_until(now as f64 / 1e6) as u64 + 1).min(total);
        while next < due {
            let (_, second) = ctx.intend(next);
            let template = &templates[next as usize % templates.len()];
            let message = Arc::new(marked_message(template, next));
            let client = &clients[next as usize % nodes];
            ctx.runtime
                .spawn(client.clone().send(message, next + 1, second));
            next += 1;
        }
        if now >= duration_us {
            break;
        }
        progress.tick(now, books);
        std::thread::sleep(Duration::from_micros(200));
    }
    if downtimes.is_down() {
        hubs[0].start()?;
    }
    if let Some(redis) = redis.as_mut().filter(|_| redis_downtimes.is_down()) {
        redis
            .restart()
            .map_err(|e| RunError::Serve(format!("redis-server: {e}")))?;
    }

    // Drain: every message answered, and every accepted one's receipt, within drain_s.
    let drain_end = ctx.now_us() + (scenario.drain_s * 1e6) as u64;
    let settled = || {
        let answered = Books::total(&books.accepted) + Books::total(&books.rejected);
        answered >= total && books.terminal.load(Ordering::Relaxed) >= Books::total(&books.accepted)
    };
    while !settled() && ctx.now_us() < drain_end {
        std::thread::sleep(Duration::from_millis(10));
        progress.tick(ctx.now_us(), books);
    }
    progress.finish();
    let carrier_reports = fleet.carrier_reports(ctx);
    // The clients stop first, so that the figures below are one snapshot.
    for client in &clients {
        ctx.runtime.block_on(client.close());
    }
    let tally = {
        let mut tally = tally.lock();
        tally.cover(total);
        std::mem::replace(&mut *tally, Tally::new(0, 0, 0))
    };
    let accepted = tally.accepted_count();
    let terminal: u64 = tally.terminal.iter().sum();
    // Accepted without a receipt: in flight if the process still holds it unfinished.
    let unfinished: Vec<u64> = (1..=total)
        .filter(|id| tally.was_accepted(*id) && !tally.is_terminal(*id))
        .collect();
    // Each node is asked about the messages its client sent it.
    let lookups_end = std::time::Instant::now() + LOOKUPS_FOR;
    let mut in_flight_at_end = 0;
    for (client, hub) in clients.iter().zip(&hubs) {
        let hub_ids = client.hub_ids(&unfinished);
        in_flight_at_end += hub_ids
            .values()
            .filter(|hub_id| {
                std::time::Instant::now() < lookups_end && hub.lookup(hub_id) == Lookup::Unfinished
            })
            .count() as u64;
    }
    let lease_round_trips = hubs
        .iter()
        .map(|hub| hub.counter("smsroute_cluster_round_trips_total"))
        .sum();
    // Every node is stopped, whatever the others did.
    let stopped: Vec<bool> = hubs.iter_mut().map(Hub::stop).collect();
    let clean_stop = stopped.iter().all(|clean| *clean);

    let sum = |figure: fn(&Client) -> u64| clients.iter().map(|c| figure(c)).sum::<u64>();
    let figures = ServeFigures {
        kills: killed,
        clean_stop,
        unanswered: sum(|c| c.figures.unanswered.load(Ordering::Relaxed)),
        flagged_by_hub: sum(|c| c.figures.flagged_by_hub.load(Ordering::Relaxed)),
        given_up: sum(|c| c.figures.given_up.load(Ordering::Relaxed)),
        receipts_for_unknown_ids: sum(|c| c.receipts_for_unknown_ids()),
        lease_round_trips,
    };
    let timeline = Timeline::build(&tally, books, &[], markers, progress.rss_mb);
    let mut report = Report::new(
        prepared,
        books,
        &tally,
        accepted,
        terminal,
        in_flight_at_end,
        Crashes {
            crashes: killed,
            unconfirmed: 0,
        },
        carrier_reports,
        timeline,
    );
    report.serve = Some(figures);
    if !report.passed() {
        for hub in &hubs {
            eprintln!(
                "smsroute loadtest: the run failed; a serve process's log is {}",
                hub.log().display()
            );
        }
    }
    Ok(report)
}
