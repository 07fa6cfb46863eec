//! The suppression list: recipients who opted out, of one sender or of all.
//!
//! Concurrent (a sharded map: submitters read it on every message while inbound STOPs write
//! it), with a generation counter that moves on every change so a queued message need only be
//! checked again when something changed. Persistent when opened on a file: every change is
//! appended to it as a line (`out NUMBER SENDER`, `out NUMBER *`, `in NUMBER`), replayed on the
//! next open. Bulk import reads `NUMBER[,SENDER]` lines; export writes the same.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;
use parking_lot::Mutex;
use smallvec::SmallVec;
use smsroute_types::E164;

use crate::Keyword;

/// Why a file could not be read as opt-outs; the line names what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A line is not an opt-out.
    #[error("line {line}: {message}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
}

/// A number as one word: its packed digits and its length (so 44 and 440 differ).
fn key(number: &E164) -> u64 {
    number.packed() ^ ((number.len() as u64) << 60)
}

#[derive(Clone, Debug, Default)]
struct OptOut {
    /// The number, for export.
    number: Box<str>,
    /// Opted out of every sender.
    all: bool,
    /// Opted out of these senders.
    senders: SmallVec<[Box<str>; 2]>,
}

/// Called with the change line of every change made here (not of those applied from another
/// node).
type Observer = Box<dyn Fn(&str) + Send + Sync>;

/// Recipients who opted out. See the module docs.
pub struct Suppression {
    /// Keyed by [`key`] of the number; the number itself is kept for export.
    map: DashMap<u64, OptOut, ahash::RandomState>,
    entries: AtomicUsize,
    generation: AtomicU64,
    log: Option<Mutex<BufWriter<File>>>,
    observer: OnceLock<Observer>,
}

impl std::fmt::Debug for Suppression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Suppression")
            .field("entries", &self.entries)
            .field("generation", &self.generation)
            .field("persistent", &self.log.is_some())
            .field("observed", &self.observer.get().is_some())
            .finish()
    }
}

impl Suppression {
    /// An empty list kept in memory only.
    pub fn in_memory() -> Self {
        Suppression {
            map: DashMap::with_hasher(ahash::RandomState::new()),
            entries: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            log: None,
            observer: OnceLock::new(),
        }
    }

    /// The list persisted in `path`: replays it (creating it when missing) and appends every
    /// change from now on.
    pub fn open(path: &Path) -> Result<Self, ImportError> {
        let mut list = Suppression::read(path)?;
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        list.log = Some(Mutex::new(BufWriter::new(file)));
        Ok(list)
    }

    /// The list as persisted in `path` (empty when missing), in memory only: for tools that
    /// look without changing it.
    pub fn read(path: &Path) -> Result<Self, ImportError> {
        let list = Suppression::in_memory();
        if path.exists() {
            let reader = BufReader::new(File::open(path)?);
            for (i, line) in reader.lines().enumerate() {
                let line = line?;
                list.replay(&line).map_err(|message| ImportError::Line {
                    line: i + 1,
                    message,
                })?;
            }
        }
        Ok(list)
    }

    /// Applies a change line; whether the list changed. The sender is the rest of the line
    /// (an alphanumeric sender may hold spaces).
    fn replay(&self, line: &str) -> Result<bool, String> {
        let mut words = line.trim().splitn(3, ' ');
        let (op, number) = (words.next().filter(|w| !w.is_empty()), words.next());
        let Some(op) = op else {
            return Ok(false);
        };
        let number = E164::parse(number.unwrap_or("")).map_err(|e| format!("{e} in {line:?}"))?;
        let changed = match (op, words.next().map(str::trim)) {
            ("out", Some("*")) => self.set(&number, None),
            ("out", Some(sender)) if !sender.is_empty() => self.set(&number, Some(sender)),
            ("in", None) => self.clear(&number),
            _ => {
                return Err(format!(
                    "expected `out NUMBER SENDER|*` or `in NUMBER`: {line:?}"
                ));
            }
        };
        Ok(changed)
    }

    /// Applies a change line another node made (`out NUMBER SENDER|*`, `in NUMBER`): persisted
    /// here like a local change, not passed to the [`on_change`](Self::on_change) observer.
    /// Returns whether the list changed; a line that is not a change is an error naming it.
    pub fn apply_line(&self, line: &str) -> Result<bool, String> {
        let changed = self.replay(line)?;
        if changed {
            self.append(line.trim()).map_err(|e| e.to_string())?;
        }
        Ok(changed)
    }

    /// Calls `observer` with the change line of every change made here from now on (opt-outs,
    /// opt-ins, imports; not [`apply_line`](Self::apply_line)). One observer per list:
    /// `false` if one is already set.
    pub fn on_change(&self, observer: impl Fn(&str) + Send + Sync + 'static) -> bool {
        self.observer.set(Box::new(observer)).is_ok()
    }

    /// Whether a message from `sender` to `number` must not be sent.
    #[inline]
    pub fn is_suppressed(&self, number: &E164, sender: &str) -> bool {
        if self.entries.load(Ordering::Acquire) == 0 {
            return false;
        }
        self.map
            .get(&key(number))
            .is_some_and(|o| o.all || o.senders.iter().any(|s| &**s == sender))
    }

    /// Moves on every change: a message checked at generation g needs no second look while
    /// it is still g.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Recipients with an opt-out.
    pub fn len(&self) -> usize {
        self.entries.load(Ordering::Acquire)
    }

    /// No opt-outs at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies a keyword `number` sent in reply to `sender`; returns whether the list changed.
    /// HELP changes nothing.
    pub fn apply(&self, keyword: Keyword, number: &E164, sender: &str) -> std::io::Result<bool> {
        match keyword {
            Keyword::Stop => self.opt_out(number, Some(sender)),
            Keyword::StopAll => self.opt_out(number, None),
            Keyword::Start => self.opt_in(number),
            Keyword::Help => Ok(false),
        }
    }

    /// Opts `number` out of `sender` (`None`: of every sender).
    pub fn opt_out(&self, number: &E164, sender: Option<&str>) -> std::io::Result<bool> {
        let changed = self.set(number, sender);
        if changed {
            self.changed(&format!(
                "out {} {}",
                number.as_str(),
                sender.unwrap_or("*")
            ))?;
        }
        Ok(changed)
    }

    /// Opts `number` back in to everything.
    pub fn opt_in(&self, number: &E164) -> std::io::Result<bool> {
        let changed = self.clear(number);
        if changed {
            self.changed(&format!("in {}", number.as_str()))?;
        }
        Ok(changed)
    }

    /// A change made here: persisted, then shown to the observer.
    fn changed(&self, line: &str) -> std::io::Result<()> {
        self.append(line)?;
        if let Some(observer) = self.observer.get() {
            observer(line);
        }
        Ok(())
    }

    fn set(&self, number: &E164, sender: Option<&str>) -> bool {
        let mut entry = self.map.entry(key(number)).or_insert_with(|| {
            self.entries.fetch_add(1, Ordering::AcqRel);
            OptOut {
                number: number.as_str().into(),
                ..OptOut::default()
            }
        });
        let changed = match sender {
            None => !std::mem::replace(&mut entry.all, true),
            Some(s) if entry.senders.iter().any(|x| &**x == s) => false,
            Some(s) => {
                entry.senders.push(s.into());
                true
            }
        };
        drop(entry);
        if changed {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        changed
    }

    fn clear(&self, number: &E164) -> bool {
        let removed = self.map.remove(&key(number)).is_some();
        if removed {
            self.entries.fetch_sub(1, Ordering::AcqRel);
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        removed
    }

    fn append(&self, line: &str) -> std::io::Result<()> {
        if let Some(log) = &self.log {
            let mut log = log.lock();
            writeln!(log, "{line}")?;
            log.flush()?;
        }
        Ok(())
    }

    /// Adds opt-outs from `NUMBER[,SENDER]` lines (blank lines and `#` comments skipped; no
    /// sender: every sender). Nothing is added when a line is wrong.
    pub fn import(&self, reader: impl BufRead) -> Result<usize, ImportError> {
        let mut rows = Vec::new();
        for (i, line) in reader.lines().enumerate() {
            let line = line?;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (number, sender) = match line.split_once(',') {
                Some((n, s)) => (
                    n.trim(),
                    Some(s.trim()).filter(|s| !s.is_empty() && *s != "*"),
                ),
                None => (line, None),
            };
            let number = E164::parse(number).map_err(|e| ImportError::Line {
                line: i + 1,
                message: format!("{e}"),
            })?;
            rows.push((number, sender.map(str::to_string)));
        }
        let mut added = 0;
        for (number, sender) in rows {
            added += usize::from(self.opt_out(&number, sender.as_deref())?);
        }
        Ok(added)
    }

    /// Writes every opt-out as `NUMBER,SENDER` (`*` for all senders), sorted.
    pub fn export(&self, mut writer: impl Write) -> std::io::Result<usize> {
        let mut rows: Vec<String> = Vec::with_capacity(self.len());
        for entry in self.map.iter() {
            if entry.all {
                rows.push(format!("{},*", entry.number));
            }
            for s in &entry.senders {
                rows.push(format!("{},{s}", entry.number));
            }
        }
        rows.sort();
        for row in &rows {
            writeln!(writer, "{row}")?;
        }
        Ok(rows.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> E164 {
        E164::parse(s).unwrap()
    }

    #[test]
    fn changes_made_here_are_observed_and_lines_from_elsewhere_applied() {
        let here = Suppression::in_memory();
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        assert!(here.on_change(move |line| sink.lock().push(line.to_string())));
        assert!(!here.on_change(|_| {}), "one observer");
        here.opt_out(&n("447700900001"), Some("My Shop")).unwrap();
        here.opt_out(&n("447700900002"), None).unwrap();
        here.opt_in(&n("447700900002")).unwrap();
        assert_eq!(
            *seen.lock(),
            [
                "out 447700900001 My Shop",
                "out 447700900002 *",
                "in 447700900002"
            ]
        );
        let there = Suppression::in_memory();
        for line in seen.lock().iter() {
            assert_eq!(there.apply_line(line), Ok(true), "{line}");
        }
        assert!(there.is_suppressed(&n("447700900001"), "My Shop"));
        assert!(!there.is_suppressed(&n("447700900002"), "ACME"));
        assert_eq!(there.apply_line("out 447700900001 My Shop"), Ok(false));
        assert!(there.apply_line("out 447700900001").is_err());
        assert!(there.apply_line("drop 447700900001 x").is_err());
        assert!(there.apply_line("in nonsense").is_err());
        assert_eq!(seen.lock().len(), 3, "applied lines are not observed");
    }

    #[test]
    fn opt_outs_persist_across_opens() {
        let dir = std::env::temp_dir().join(format!("smsroute-optouts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("optouts.log");
        let _ = std::fs::remove_file(&path);
        {
            let list = Suppression::open(&path).unwrap();
            let g0 = list.generation();
            assert!(
                list.apply(Keyword::Stop, &n("447700900001"), "ACME")
                    .unwrap()
            );
            assert!(
                !list
                    .apply(Keyword::Stop, &n("447700900001"), "ACME")
                    .unwrap(),
                "again"
            );
            assert!(
                list.apply(Keyword::StopAll, &n("447700900002"), "ACME")
                    .unwrap()
            );
            assert!(
                list.apply(Keyword::Stop, &n("447700900003"), "ACME")
                    .unwrap()
            );
            assert!(
                list.apply(Keyword::Start, &n("447700900003"), "ACME")
                    .unwrap()
            );
            assert!(
                !list
                    .apply(Keyword::Help, &n("447700900004"), "ACME")
                    .unwrap()
            );
            assert_eq!(list.generation(), g0 + 4);
        }
        let list = Suppression::open(&path).unwrap();
        assert!(list.is_suppressed(&n("447700900001"), "ACME"));
        assert!(!list.is_suppressed(&n("447700900001"), "SHOP"));
        assert!(list.is_suppressed(&n("447700900002"), "SHOP"));
        assert!(
            !list.is_suppressed(&n("447700900003"), "ACME"),
            "opted back in"
        );
        assert_eq!(list.len(), 2);
        std::fs::write(&path, "out 4477 ACME\n").unwrap();
        let err = Suppression::open(&path).unwrap_err().to_string();
        assert!(err.starts_with("line 1:"), "{err}");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn import_and_export_roundtrip_and_bad_lines_add_nothing() {
        let list = Suppression::in_memory();
        let text = "# opt-outs\n+44 7700 900001,ACME\n447700900002\n\n447700900003,*\n";
        assert_eq!(list.import(text.as_bytes()).unwrap(), 3);
        let mut out = Vec::new();
        assert_eq!(list.export(&mut out).unwrap(), 3);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "447700900001,ACME\n447700900002,*\n447700900003,*\n"
        );
        let other = Suppression::in_memory();
        let err = other
            .import("447700900009\nnot a number\n".as_bytes())
            .unwrap_err();
        assert!(err.to_string().starts_with("line 2:"), "{err}");
        assert!(other.is_empty(), "nothing added from a bad file");
    }

    #[test]
    fn concurrent_readers_see_every_change() {
        let list = std::sync::Arc::new(Suppression::in_memory());
        let number = n("447700900123");
        std::thread::scope(|s| {
            for _ in 0..2 {
                let list = list.clone();
                s.spawn(move || {
                    for i in 0..1000 {
                        let _ = list.is_suppressed(&n(&format!("4477009{i:05}")), "ACME");
                    }
                });
            }
            list.opt_out(&number, None).unwrap();
        });
        assert!(list.is_suppressed(&number, "ANY"));
    }
}
