//! `[journal]`: where and how the router keeps its journal; `[tls]`: the certificate of
//! `smsroute serve`'s fronts.

use toml::Spanned;

use super::raw::{RawJournal, RawTls};
use super::validate::Checker;
use super::{JournalConfig, JournalSync, TlsConfig};

pub(super) fn journal(check: &mut Checker<'_>, raw: &Spanned<RawJournal>) -> JournalConfig {
    let j = raw.get_ref();
    let dir = match &j.dir {
        Some(dir) if !dir.get_ref().trim().is_empty() => dir.get_ref().clone(),
        Some(dir) => {
            check.error(dir.span(), "journal dir must name a directory");
            String::new()
        }
        None => {
            check.error(raw.span(), "[journal] needs dir");
            String::new()
        }
    };
    let sync = match j.sync.as_ref().map(|s| (s.get_ref().as_str(), s.span())) {
        None | Some(("batch", _)) => JournalSync::Batch,
        Some(("always", _)) => JournalSync::Always,
        Some(("none", _)) => JournalSync::None,
        Some((other, span)) => {
            check.error(
                span,
                format!("sync must be \"batch\", \"always\" or \"none\", not {other:?}"),
            );
            JournalSync::Batch
        }
    };
    JournalConfig {
        dir,
        sync,
        batch_interval_ms: check.int(
            j.batch_interval_ms.as_ref(),
            "batch_interval_ms",
            (0, 1_000),
            1,
        ),
        preallocate: j.preallocate.unwrap_or(true),
    }
}

pub(super) fn tls(check: &mut Checker<'_>, raw: &Spanned<RawTls>) -> TlsConfig {
    let t = raw.get_ref();
    let mut path = |field: &Option<Spanned<String>>, name: &str| match field {
        Some(p) if p.get_ref().trim().is_empty() => {
            check.error(p.span(), format!("tls {name} must name a PEM file"));
            String::new()
        }
        Some(p) => p.get_ref().clone(),
        None => {
            check.error(raw.span(), format!("[tls] needs {name} (a PEM file)"));
            String::new()
        }
    };
    let cert = path(&t.cert, "cert");
    let key = path(&t.key, "key");
    let (smpp, http) = (t.smpp.unwrap_or(true), t.http.unwrap_or(true));
    if !smpp && !http {
        check.error(
            raw.span(),
            "[tls] with smpp = false and http = false secures nothing",
        );
    }
    TlsConfig {
        cert,
        key,
        smpp,
        http,
    }
}
