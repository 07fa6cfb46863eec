//! `mode = "serve"`: `smsroute serve` runs as a child process with a journal, in front of the
//! scenario's carriers as SMSC simulators in this process, and the harness drives it as an
//! SMPP client (several binds, windowed). A message counts accepted at its `submit_sm_resp`
//! and terminal at the receipt for its first part. A `kill` fault sends the process SIGKILL
//! and starts it again on its journal after a delay; the binds reconnect, and a submit that
//! got no answer is sent again (flagged: the hub may have had it). At the end, each accepted
//! message without a receipt is looked up in the hub (`GET /v1/messages/{id}`): one the hub
//! still holds unfinished is in flight; one it finished (its receipt never came), does not
//! know, or does not answer for is lost.

mod client;
mod process;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use smsroute_types::Message;

use crate::ledger::{Books, Tally};
use crate::report::{Crashes, Report, ServeFigures, Timeline};
use crate::run::{Context, Downtimes, Progress, RunError, RunOptions};
use crate::smpp_mode::{SmppFleet, marked_message};

use client::Client;
use process::{Hub, Lookup};

/// The longest the end-of-run lookups may take together: what is left after it counts lost.
const LOOKUPS_FOR: Duration = Duration::from_secs(30);

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
    let mut hub = Hub::new(dir, &config)?;
    hub.start()?;
    let tally = Tally::new(ctx.planned, 0, (scenario.warmup_s * 1e6) as u64);
    let client = {
        let _guard = ctx.runtime.enter();
        let receipts = scenario.mix.receipts;
        Client::start(
            hub.smpp.port(),
            WINDOW,
            ctx.books.clone(),
            tally,
            ctx.origin,
            receipts,
        )
    };
    ctx.runtime.block_on(async {
        for _ in 0..500 {
            if client.bound() > 0 {
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
    let mut downtimes = Downtimes::new(&prepared.crashes);
    let mut killed = 0;
    let mut next: u64 = 0;
    loop {
        let now = ctx.now_us();
        if let Some(exit) = hub.exited() {
            return Err(RunError::Serve(format!(
                "the process exited on its own ({exit}) at {:.1} s: see {}",
                now as f64 / 1e6,
                hub.log().display()
            )));
        }
        if let Some(marker) = downtimes.goes_down(now, "kill -9") {
            hub.kill();
            killed += 1;
            markers.push(marker);
        }
        if downtimes.comes_back(now) {
            hub.start()?;
        }
        let due = (profile.count_until(now as f64 / 1e6) as u64 + 1).min(total);
        while next < due {
            let (_, second) = ctx.intend(next);
            let template = &templates[next as usize % templates.len()];
            let message = Arc::new(marked_message(template, next));
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
        hub.start()?;
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
    // The client stops first, so that the figures below are one snapshot.
    ctx.runtime.block_on(client.close());
    let tally = {
        let mut tally = client.tally.lock();
        tally.cover(total);
        std::mem::replace(&mut *tally, Tally::new(0, 0, 0))
    };
    let accepted = tally.accepted_count();
    let terminal: u64 = tally.terminal.iter().sum();
    // Accepted without a receipt: in flight if the process still holds it unfinished.
    let unfinished: Vec<u64> = (1..=total)
        .filter(|id| tally.was_accepted(*id) && !tally.is_terminal(*id))
        .collect();
    let hub_ids = client.hub_ids(&unfinished);
    let lookups_end = std::time::Instant::now() + LOOKUPS_FOR;
    let in_flight_at_end = unfinished
        .iter()
        .filter(|id| {
            std::time::Instant::now() < lookups_end
                && hub_ids
                    .get(id)
                    .is_some_and(|hub_id| hub.lookup(hub_id) == Lookup::Unfinished)
        })
        .count() as u64;
    let clean_stop = hub.stop();

    let figures = ServeFigures {
        kills: killed,
        clean_stop,
        unanswered: client.figures.unanswered.load(Ordering::Relaxed),
        flagged_by_hub: client.figures.flagged_by_hub.load(Ordering::Relaxed),
        given_up: client.figures.given_up.load(Ordering::Relaxed),
        receipts_for_unknown_ids: client.receipts_for_unknown_ids(),
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
        eprintln!(
            "smsroute loadtest: the run failed; the serve process's log is {}",
            hub.log().display()
        );
    }
    Ok(report)
}
