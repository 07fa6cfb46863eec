//! `report.json` (the contract in DESIGN.md, plus extensions after its fields) and the data
//! behind `report.html`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::ledger::{Books, REASONS, Tally};
use crate::scenario::Prepared;

/// One carrier, as its simulator saw it.
#[derive(Clone, Debug, Serialize)]
pub struct CarrierReport {
    /// Contracted segments per second.
    pub tps: u32,
    /// Bucket depth.
    pub burst: u32,
    /// Submits received.
    pub submitted: u64,
    /// Submits accepted.
    pub acked: u64,
    /// Answered ESME_RTHROTTLED.
    pub throttled: u64,
    /// Refused with a system or temporary error.
    pub temp_errors: u64,
    /// Refused with a permanent error.
    pub perm_errors: u64,
    /// Never answered.
    pub timeouts: u64,
    /// The most segments received in any one second (sliding, 10 ms steps).
    pub max_rate_1s: f64,
    /// The most `max_rate_1s` may be with the contract kept ([`CarrierReport::rate_bound`]).
    pub rate_bound: f64,
    /// Segments received over `tps` × the time from the first to the last: how much of the
    /// contract was used while the carrier was sent anything (1.0: all of it).
    pub contract_use: f64,
}

impl CarrierReport {
    /// The most segments the carrier may receive in one second with the contract kept:
    /// `tps + burst` admitted by the router's bucket, plus one meter step (10 ms) of `tps`,
    /// since a submit reaches the simulator a few scheduling delays after the bucket admitted
    /// it and those delays vary (a window at the carrier spans a little more than a second of
    /// admissions on a loaded machine). [`allow_stall`](Self::allow_stall) widens it by the
    /// stalls measured in the run.
    pub fn rate_bound(tps: u32, burst: u32) -> f64 {
        f64::from(tps) + f64::from(burst) + f64::from(tps.div_ceil(100))
    }

    /// Widens `rate_bound` by `2 × tps × stall`, `stall` being the longest the harness's
    /// runtime fell behind ([`Report::stall_ms`]). While it is behind, the simulators read
    /// nothing and submits the router sent apart are metered together when it catches up;
    /// the router's processes, on the same machine and scheduler, fall behind alike between
    /// its bucket and the wire, so the same lag is allowed once more for the sending side.
    pub fn allow_stall(&mut self, stall: std::time::Duration) {
        self.rate_bound = Self::rate_bound(self.tps, self.burst)
            + (2.0 * f64::from(self.tps) * stall.as_secs_f64()).ceil();
    }

    /// Whether the carrier received more than its contract allows in some second.
    pub fn over_contract(&self) -> bool {
        self.max_rate_1s > self.rate_bound
    }
}

/// Terminal statuses.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Terminal {
    /// Delivered.
    pub delivered: u64,
    /// Sent.
    pub sent: u64,
    /// Failed.
    pub failed: u64,
    /// Expired.
    pub expired: u64,
}

/// Latency quantiles, µs.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Quantiles {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Maximum.
    pub max: u64,
}

impl Quantiles {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Quantiles::default();
        }
        Quantiles {
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// A run's report. Field order follows the contract; extensions come after it.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// `inproc` or `smpp`.
    pub mode: String,
    /// Seconds of load.
    pub duration_s: f64,
    /// Mean intended messages per second.
    pub target_rate: f64,
    /// Accepted messages per second of load.
    pub achieved_rate: f64,
    /// Accepted by the router.
    pub accepted: u64,
    /// Refused by the router.
    pub rejected: u64,
    /// Terminal statuses, from the harness's own ledger.
    pub terminal: Terminal,
    /// Accepted, not terminal, and still held by the router at the end.
    pub in_flight_at_end: u64,
    /// accepted − terminal − in_flight_at_end: must be 0.
    pub lost: u64,
    /// Extra acceptances of one message by simulated carriers.
    pub duplicates: u64,
    /// Retries (same carrier).
    pub retries: u64,
    /// Failovers (another carrier).
    pub failovers: u64,
    /// Intended send → terminal, µs (after the warm-up).
    pub latency_us: Quantiles,
    /// Per carrier.
    pub carriers: BTreeMap<String, CarrierReport>,
    // Extensions.
    /// Intended send → first carrier acceptance, µs (after the warm-up).
    pub ack_latency_us: Quantiles,
    /// Refusals by reason.
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Messages sent more than 10 ms after their intended time.
    pub late_sends: u64,
    /// Second terminal events for one message (must be 0).
    pub double_terminal: u64,
    /// Acceptances by a carrier of a message to a number after its STOP was processed (must
    /// be 0).
    pub sent_after_opt_out: u64,
    /// Router crashes (fault `crash`).
    pub crashes: u64,
    /// Accepted by `try_submit` in a life that crashed before their acceptance was durable:
    /// no `Accepted` event and no terminal status (never accepted, so not lost).
    pub unconfirmed: u64,
    /// Terminal events emitted again after a restart, identical to the first.
    pub replays: u64,
    /// Messages a carrier accepted more than once whose terminal event did not say
    /// `possible_duplicate` (must be 0).
    pub duplicates_unflagged: u64,
    /// The highest accepted rate over one second with no refusal, no late send, at least 99 %
    /// of the intended rate, and terminal statuses within 1 % of acceptances over the 5 s
    /// ending with it (the backlog not growing).
    pub max_sustainable_rate: f64,
    /// Peak resident memory, MiB (sampled each second).
    pub peak_rss_mb: f64,
    /// The longest the harness's runtime fell behind, ms (a 1 ms ticker task's latest
    /// wake-up); the carriers' `rate_bound` allows for it ([`CarrierReport::allow_stall`]).
    pub stall_ms: f64,
    /// Mode `serve` only: what the client saw of the process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serve: Option<ServeFigures>,
    /// With `[mix.classes]`: per class, first submits after the warm-up and their wait from
    /// the intended send to the submit, µs.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub classes: BTreeMap<String, ClassFigures>,
    /// What routing made of the contracts (modes `inproc` and `smpp`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing: Option<crate::spend::SpendReport>,
    /// Per-second series and markers for `report.html`.
    #[serde(skip)]
    pub timeline: Timeline,
}

/// One message class's figures (`[mix.classes]`).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct ClassFigures {
    /// First submits to a carrier after the warm-up.
    pub submitted: u64,
    /// Intended send → first submit, µs.
    pub submit_wait_us: Quantiles,
}

/// Mode `serve`: the client's view of the `smsroute serve` process.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct ServeFigures {
    /// SIGKILLs sent to it (fault `kill`).
    pub kills: u64,
    /// It exited 0 on the SIGTERM at the end (a run passes only then).
    pub clean_stop: bool,
    /// Submits that got no answer (in flight at a kill, or `ESME_RSYSERR`: the process could
    /// not say in time whether it took the message): each message flagged a possible
    /// duplicate and sent again.
    pub unanswered: u64,
    /// Receipts the process flagged possible duplicate (its vendor TLV 0x1501).
    pub flagged_by_hub: u64,
    /// Messages the client gave up on 30 s after their first try, the process unreachable
    /// (counted rejected, `shutting_down`).
    pub given_up: u64,
    /// Messages the process took whose `submit_sm_resp` never reached the client (it died
    /// with the process, or the client gave up), counted by the first-part ids their receipts
    /// named.
    pub receipts_for_unknown_ids: u64,
    /// With `nodes` above 1: lease round trips to Redis, all nodes
    /// (`smsroute_cluster_round_trips_total` at the end; a killed node's count restarts).
    pub lease_round_trips: u64,
}

/// What the run's crashes left.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Crashes {
    /// How many.
    pub crashes: u64,
    /// Accepted by `try_submit`, never durable (see [`Report::unconfirmed`]).
    pub unconfirmed: u64,
}

/// A marker on the charts: an instant or a span.
#[derive(Clone, Debug, Serialize)]
pub struct Marker {
    /// Start, seconds.
    pub at_s: f64,
    /// End of a span.
    pub until_s: Option<f64>,
    /// What happened.
    pub label: String,
}

impl Marker {
    /// An instant.
    pub fn at(at_s: f64, label: String) -> Self {
        Marker {
            at_s,
            until_s: None,
            label,
        }
    }
}

/// Per-second series of the run.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// Carrier names by slot.
    pub carriers: Vec<String>,
    /// Submits per second, per carrier.
    pub submits: Vec<Vec<f64>>,
    /// p99 accept → terminal per second, per carrier, ms.
    pub p99_ms: Vec<Vec<f64>>,
    /// Terminal statuses per second: delivered, sent, failed, expired.
    pub outcomes: [Vec<f64>; crate::ledger::OUTCOMES],
    /// Accepted and rejected per second.
    pub accepted: Vec<f64>,
    /// Refused per second.
    pub rejected: Vec<f64>,
    /// Failovers per second.
    pub failovers: Vec<f64>,
    /// Resident memory per second, MiB.
    pub rss_mb: Vec<f64>,
    /// Faults and reloads.
    pub markers: Vec<Marker>,
}

impl Timeline {
    pub(crate) fn build(
        tally: &Tally,
        books: &Books,
        carriers: &[String],
        markers: Vec<Marker>,
        rss_mb: Vec<f64>,
    ) -> Self {
        let n = tally.seconds.len();
        let per_carrier = |f: &dyn Fn(&crate::ledger::Second, usize) -> f64| {
            (0..carriers.len())
                .map(|c| tally.seconds.iter().map(|s| f(s, c)).collect())
                .collect()
        };
        let column = |c: &[std::sync::atomic::AtomicU64]| {
            c.iter()
                .take(n.max(1))
                .map(|v| v.load(Ordering::Relaxed) as f64)
                .collect()
        };
        Timeline {
            carriers: carriers.to_vec(),
            submits: per_carrier(&|s, c| s.submits.get(c).copied().unwrap_or(0) as f64),
            p99_ms: per_carrier(&|s, c| {
                s.latency
                    .get(c)
                    .filter(|h| !h.is_empty())
                    .map_or(0.0, |h| h.value_at_quantile(0.99) as f64 / 1e3)
            }),
            outcomes: std::array::from_fn(|k| {
                tally.seconds.iter().map(|s| s.terminal[k] as f64).collect()
            }),
            accepted: column(&books.accepted),
            rejected: column(&books.rejected),
            failovers: tally.seconds.iter().map(|s| s.failovers as f64).collect(),
            rss_mb,
            markers,
        }
    }
}

/// One second of the run, as the sustained-rate figure needs it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SecondCounts {
    /// Messages the profile intended.
    pub intended: f64,
    /// Accepted by the router.
    pub accepted: u64,
    /// Terminal statuses that came.
    pub terminal: u64,
    /// No refusal and no late send.
    pub clean: bool,
}

/// Seconds over which terminal statuses must keep up with acceptances.
pub(crate) const SUSTAIN_WINDOW_S: usize = 5;

/// The highest accepted rate of a second, from `warmup` on, that was sustained: no refusal, no
/// late send, at least 99 % of the intended rate, and the router keeping up: over the
/// [`SUSTAIN_WINDOW_S`] seconds ending with it, terminal statuses came within 1 % of the
/// acceptances (the in-flight count did not grow).
pub(crate) fn sustainable_rate(seconds: &[SecondCounts], warmup: usize) -> f64 {
    (warmup..seconds.len())
        .filter(|&sec| {
            let s = &seconds[sec];
            let window = &seconds[(sec + 1).saturating_sub(SUSTAIN_WINDOW_S).max(warmup)..=sec];
            let accepted: u64 = window.iter().map(|w| w.accepted).sum();
            let terminal: u64 = window.iter().map(|w| w.terminal).sum();
            s.clean
                && s.accepted as f64 >= 0.99 * s.intended
                && terminal as f64 >= 0.99 * accepted as f64
        })
        .map(|sec| seconds[sec].accepted as f64)
        .fold(0.0, f64::max)
}

impl Report {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        prepared: &Prepared,
        books: &Books,
        tally: &Tally,
        accepted: u64,
        terminal: u64,
        in_flight_at_end: u64,
        crashes: Crashes,
        carriers: BTreeMap<String, CarrierReport>,
        timeline: Timeline,
    ) -> Self {
        let s = &prepared.scenario;
        let profile = &s.rate;
        let warmup = s.warmup_s.floor() as usize;
        let end = s.duration_s.floor() as usize;
        let seconds: Vec<SecondCounts> = (0..end)
            .map(|sec| SecondCounts {
                intended: profile.count_until(sec as f64 + 1.0) - profile.count_until(sec as f64),
                accepted: books.accepted[sec].load(Ordering::Relaxed),
                terminal: tally
                    .seconds
                    .get(sec)
                    .map_or(0, |t| t.terminal.iter().sum()),
                clean: books.rejected[sec].load(Ordering::Relaxed) == 0
                    && books.late[sec].load(Ordering::Relaxed) == 0,
            })
            .collect();
        let max_sustainable_rate = sustainable_rate(&seconds, warmup);
        Report {
            scenario: s.name.clone(),
            mode: s.mode.as_str().to_string(),
            duration_s: s.duration_s,
            target_rate: profile.count_until(s.duration_s) / s.duration_s,
            achieved_rate: accepted as f64 / s.duration_s,
            accepted,
            rejected: Books::total(&books.rejected),
            terminal: Terminal {
                delivered: tally.terminal[0],
                sent: tally.terminal[1],
                failed: tally.terminal[2],
                expired: tally.terminal[3],
            },
            in_flight_at_end,
            lost: accepted.saturating_sub(terminal + in_flight_at_end + crashes.unconfirmed),
            duplicates: books.duplicates(),
            retries: tally.retries,
            failovers: tally.failovers,
            latency_us: Quantiles::of(&tally.latency),
            carriers,
            ack_latency_us: Quantiles::of(&tally.ack_latency),
            rejected_by_reason: REASONS
                .iter()
                .zip(&books.rejected_by_reason)
                .map(|(r, n)| (r.to_string(), n.load(Ordering::Relaxed)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            late_sends: Books::total(&books.late),
            double_terminal: tally.double_terminal,
            sent_after_opt_out: books.sent_after_opt_out.load(Ordering::Relaxed),
            crashes: crashes.crashes,
            unconfirmed: crashes.unconfirmed,
            replays: tally.replays,
            duplicates_unflagged: tally.unflagged_duplicates(books),
            max_sustainable_rate,
            peak_rss_mb: timeline.rss_mb.iter().copied().fold(0.0, f64::max),
            stall_ms: 0.0,
            serve: None,
            routing: tally.spend.as_ref().and_then(crate::spend::Spend::report),
            classes: tally
                .classes
                .iter()
                .flatten()
                .map(|(name, (submitted, waits))| {
                    let figures = ClassFigures {
                        submitted: *submitted,
                        submit_wait_us: Quantiles::of(waits),
                    };
                    (name.clone(), figures)
                })
                .collect(),
            timeline,
        }
    }

    /// Whether the run kept every promise: nothing lost, nothing left in flight, no double
    /// terminal status.
    pub fn passed(&self) -> bool {
        self.lost == 0
            && self.in_flight_at_end == 0
            && self.double_terminal == 0
            && self.sent_after_opt_out == 0
            && self.duplicates_unflagged == 0
            && self.serve.is_none_or(|s| s.clean_stop)
    }

    /// Writes `report.json` and `report.html` into `dir` (created if missing).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("report.json"), json + "\n")?;
        std::fs::write(dir.join("report.html"), crate::html::render(self))
    }

    /// A few lines for the terminal.
    pub fn summary(&self) -> String {
        let t = &self.terminal;
        let routing = self.routing.as_ref().map_or(String::new(), |r| {
            format!(
                "\ncontracted rate used {:.1} %; cost {:.6} per segment, floor {:.6}",
                r.contracted_use * 100.0,
                r.cost_per_segment,
                r.cost_floor_per_segment
            )
        });
        let lines = format!(
            "{}: {:.0} msg/s of {:.0} target over {} s; accepted {}, rejected {}\n\
             terminal: delivered {}, sent {}, failed {}, expired {}; in flight at end {}, lost {}\n\
             retries {}, failovers {}, duplicates {}; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.scenario,
            self.achieved_rate,
            self.target_rate,
            self.duration_s,
            self.accepted,
            self.rejected,
            t.delivered,
            t.sent,
            t.failed,
            t.expired,
            self.in_flight_at_end,
            self.lost,
            self.retries,
            self.failovers,
            self.duplicates,
            self.latency_us.p50 as f64 / 1e3,
            self.latency_us.p99 as f64 / 1e3,
            self.latency_us.max as f64 / 1e3,
        );
        lines + &routing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (CI on e9db4fa: 466 segments in a second against a bound of 444, three
    /// `serve` nodes on a busy 2-core machine): the bound allows for the lag measured.
    #[test]
    fn a_carriers_rate_bound_allows_the_lag_measured_on_both_sides() {
        let mut carrier = CarrierReport {
            tps: 400,
            burst: 40,
            submitted: 0,
            acked: 0,
            throttled: 0,
            temp_errors: 0,
            perm_errors: 0,
            timeouts: 0,
            max_rate_1s: 466.0,
            rate_bound: CarrierReport::rate_bound(400, 40),
            contract_use: 1.0,
        };
        assert_eq!(carrier.rate_bound, 444.0);
        assert!(carrier.over_contract());
        // A 30 ms lag: up to 30 ms of admissions on each side of the wire metered at once.
        carrier.allow_stall(std::time::Duration::from_millis(30));
        assert_eq!(carrier.rate_bound, 468.0);
        assert!(!carrier.over_contract());
        // Set from the contract, not added to what was there.
        carrier.allow_stall(std::time::Duration::ZERO);
        assert_eq!(carrier.rate_bound, 444.0);
    }

    fn second(accepted: u64, terminal: u64) -> SecondCounts {
        SecondCounts {
            intended: accepted as f64,
            accepted,
            terminal,
            clean: true,
        }
    }

    /// Regression (issue 14, defect 5): a ramp whose acceptances ran far ahead of the terminal
    /// statuses counted as sustained at its peak.
    #[test]
    fn a_second_is_sustained_only_while_terminal_statuses_keep_up() {
        // Accepts climb to 176,750/s while terminal statuses stay near 40,000/s.
        let ramp: Vec<SecondCounts> = (1..=10)
            .map(|k| second(17_675 * k, 40_000.min(17_675 * k)))
            .collect();
        assert_eq!(
            sustainable_rate(&ramp, 0),
            35_350.0,
            "only the seconds it kept up"
        );
        // Steady: every second counts.
        let steady = vec![second(20_000, 20_000); 8];
        assert_eq!(sustainable_rate(&steady, 2), 20_000.0);
        // A terminal lag inside the window's 1 % still counts.
        let lagging = vec![second(20_000, 19_900); 8];
        assert_eq!(sustainable_rate(&lagging, 0), 20_000.0);
        // Refusals or late sends disqualify a second, as before.
        let mut refused = steady.clone();
        for s in &mut refused {
            s.clean = false;
        }
        assert_eq!(sustainable_rate(&refused, 0), 0.0);
    }
}
