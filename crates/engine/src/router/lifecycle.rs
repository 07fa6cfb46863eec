//! A router's life after start: reloading its configuration, shutting down (a drain with a
//! grace period), abandoning (as a crash would), and waiting until its carriers are bound.

use super::*;

impl<C: Carrier> Router<C> {
    /// Swaps in a new configuration: compiled here, off the hot path, then published in one
    /// atomic store. Carriers keep their connection, bucket and health by id; new ones are
    /// connected; removed ones drain. Messages already accepted keep their candidates and
    /// retry policy; new messages use the new table.
    pub fn reload(&self, config: &Config) -> Result<ReloadReport, SetupError> {
        let answer = self.swap_in(config);
        let m = &self.shared.metrics;
        match &answer {
            Ok(report) => {
                tracing::info!(
                    generation = report.generation, added = ?report.added,
                    removed = ?report.removed, "route table reloaded"
                );
                m.reloads_ok.increment(1);
                m.table_generation.set(report.generation as f64);
                let wall = self.shared.wall_ms.load(Ordering::Relaxed);
                let prefixes = self.shared.snapshot.load().table(wall).stats().prefixes;
                m.table_prefixes.set(prefixes as f64);
            }
            Err(e) => {
                tracing::warn!(error = %e, "reload refused: the running table stays");
                m.reloads_failed.increment(1)
            }
        }
        answer
    }

    fn swap_in(&self, config: &Config) -> Result<ReloadReport, SetupError> {
        let mut factory = self.handle.factory.lock();
        let deck = RouteDeck::compile(config)?;
        let current = self.shared.snapshot.load_full();
        let mut slots = current.slots.clone();
        let mut slot_of = Vec::with_capacity(config.carriers.len());
        let mut added = Vec::new();
        for c in &config.carriers {
            if let Some(index) = slots.iter().position(|s| &*s.id == c.id.as_str()) {
                slot_of.push(CarrierSlot(index as u16));
                continue;
            }
            if slots.len() >= MAX_CARRIERS {
                return Err(SetupError::TooManyCarriers);
            }
            let mut slot = SlotEntry::new(&c.id, Arc::new(factory(c)), c.tps, c.burst, c.window)
                .map_err(|source| SetupError::Quota {
                    id: c.id.clone(),
                    source,
                })?;
            slot.lease = self.shared.options.leases.get(&c.id).cloned();
            slot_of.push(CarrierSlot(slots.len() as u16));
            slots.push(Arc::new(slot));
            added.push(c.id.clone());
        }
        let buckets = Buckets::build(
            config,
            &slot_of,
            &current.buckets,
            &self.shared.options.leases,
        )
        .map_err(bucket_quota)?;
        // Everything is valid: apply.
        for (c, &index) in config.carriers.iter().zip(&slot_of) {
            let slot = &slots[index.get()];
            slot.contract
                .store(pack_contract(c.tps, c.burst), Ordering::Release);
            slot.window.store(c.window, Ordering::Relaxed);
            slot.max_queue_wait
                .store(max_queue_wait(config, c), Ordering::Relaxed);
        }
        // Configured before, not now: retired (no new traffic; they drain).
        let removed = current
            .slot_of
            .iter()
            .filter(|old| !slot_of.contains(old))
            .map(|old| slots[old.get()].id.to_string())
            .collect();
        for (index, slot) in slots.iter().enumerate().skip(current.slots.len()) {
            self.attach_receipts(CarrierSlot(index as u16), slot);
        }
        let generation = current.generation + 1;
        self.shared.snapshot.store(Arc::new(Snapshot::new(
            generation, config, deck, slot_of, slots, buckets,
        )));
        for account in &config.policy.accounts {
            self.shared.add_account(account);
        }
        self.shared.generation.store(generation, Ordering::Release);
        self.shared.wake.notify_one();
        Ok(ReloadReport {
            generation,
            added,
            removed,
        })
    }

    /// Stops taking messages, lets those in flight finish until `grace` has passed, and
    /// reports what did not. The event stream ends once its last events are taken.
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        let started = tokio::time::Instant::now();
        let deadline = self.shared.now().saturating_add(grace.as_nanos() as Nanos);
        let (reply, report) = oneshot::channel();
        let sent = self.handle.control.send(Control::Shutdown {
            deadline,
            reply: Some(reply),
        });
        self.shared.wake.notify_one();
        let report = match sent {
            Ok(()) => report.await.unwrap_or_default(),
            Err(_) => ShutdownReport::default(),
        };
        // Then every connection the factory built, reloaded and retired ones included,
        // unbinds within what is left of the grace (at least a second for the peers' answers).
        let left = grace
            .saturating_sub(started.elapsed())
            .max(Duration::from_secs(1));
        let slots = self.shared.snapshot.load().slots.clone();
        futures::future::join_all(slots.iter().map(|slot| slot.carrier.close(left))).await;
        tracing::info!(
            drained = report.drained,
            unfinished = report.unfinished.len(),
            "router shut down"
        );
        report
    }

    /// Stops the router at once, as a crash of the process would, for fault injection (load
    /// tests, crash tests): `submit` refuses from now on, the dispatcher ends without
    /// finishing, reporting or handing out anything more, a journal loses what was not yet
    /// written, submits in flight are forgotten, receipts stop being read, and the event
    /// stream ends. Carriers are left as they are (a new router may attach to them). Returns
    /// once the dispatcher and the journal's threads have stopped, so a router started on the
    /// same journal directory then resumes what was durable.
    pub async fn abandon(&self) {
        self.shared.stopped.store(true, Ordering::Release);
        for pump in self.handle.pumps.lock().drain(..) {
            pump.abort();
        }
        let (reply, stopped) = oneshot::channel();
        if self.handle.control.send(Control::Abandon { reply }).is_ok() {
            self.shared.wake.notify_one();
            let _ = stopped.await;
        }
    }

    /// Waits until every configured carrier that has a connection can take submits (an SMPP
    /// carrier: a session is bound), at most `timeout`; else says which is not and why.
    /// Carriers without a connection (`LinkState::NotConfigured`) are not waited for.
    pub async fn ready(&self, timeout: Duration) -> Result<(), NotReady> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let snapshot = self.shared.snapshot.load();
            let down: Vec<(String, String)> = snapshot
                .slot_of
                .iter()
                .map(|&slot| &snapshot.slots[slot.get()])
                .filter_map(|slot| match slot.carrier.link() {
                    LinkState::Down { reason } => Some((slot.id.to_string(), reason)),
                    _ => None,
                })
                .collect();
            if down.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(NotReady { down });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
