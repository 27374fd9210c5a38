//! Audit anchors: copies of the chain head kept outside the database.
//!
//! The hash chain finds an edited or deleted row, but not a tail cut off (delete the newest
//! rows) nor a chain rewritten from some point on with every hash recomputed: both leave a
//! chain that verifies. What catches them is a head recorded somewhere a database admin cannot
//! rewrite. Each periodic checkpoint (`[scheduler] audit_checkpoint`) therefore also writes its
//! `{seq, hash}` (signed when `[audit]` has a key) as one JSON line to the places `[audit]`
//! names: an append-only file (`anchor_file`) and/or stdout (`anchor_stdout`, for a log
//! shipper); the audit feed posts the same checkpoint to chat. `elevate audit verify --anchor`
//! then checks the chain against the newest anchor: the chain must reach its `seq` and hold its
//! `hash` there.

use chrono::{DateTime, Utc};
use elevate_core::ports::Store;
use serde::{Deserialize, Serialize};
use std::{io::Write, path::PathBuf};

/// What marks an anchor line (a log shipper's stream holds other lines too).
pub const KIND: &str = "elevate.audit.anchor";

/// One anchor: the chain head at a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anchor {
    pub kind: String,
    pub seq: i64,
    pub hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

impl Anchor {
    /// The anchor of a checkpoint's details (`seq`, `hash`, and the signature when signed).
    pub fn of_checkpoint(details: &serde_json::Value, at: DateTime<Utc>) -> Option<Anchor> {
        let text = |k: &str| details[k].as_str().map(String::from);
        Some(Anchor {
            kind: KIND.into(),
            seq: details["seq"].as_i64()?,
            hash: text("hash")?,
            at: Some(at),
            signature: text("signature"),
            public_key: text("public_key"),
        })
    }
}

/// Where checkpoints are anchored, from `[audit]`.
#[derive(Debug, Clone, Default)]
pub struct AnchorSinks {
    pub file: Option<PathBuf>,
    pub stdout: bool,
}

impl AnchorSinks {
    /// Appends the anchor to each sink; every sink is tried, and the error names those that
    /// failed.
    pub fn write(&self, a: &Anchor) -> Result<(), String> {
        let line = serde_json::to_string(a).map_err(|e| e.to_string())?;
        let mut failed = Vec::new();
        if let Some(path) = &self.file {
            let r = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()).and_then(|_| f.sync_data()));
            if let Err(e) = r {
                failed.push(format!("cannot append to the anchor file {}: {e}", path.display()));
            }
        }
        if self.stdout {
            let mut out = std::io::stdout().lock();
            if let Err(e) = writeln!(out, "{line}").and_then(|_| out.flush()) {
                failed.push(format!("cannot write the anchor to stdout: {e}"));
            }
        }
        if failed.is_empty() { Ok(()) } else { Err(failed.join("; ")) }
    }
}

/// Where an anchor given to `audit verify --anchor` came from, for messages.
#[derive(Debug, Clone)]
pub struct Given {
    pub anchor: Anchor,
    pub from: String,
}

/// `--anchor`: `SEQ:HASH` (as posted to chat), or a file of anchor lines (the newest, by seq,
/// counts). Lines that are not anchors are errors naming their number, except blank ones.
pub fn parse_arg(arg: &str) -> Result<Given, String> {
    if let Some((seq, hash)) = arg.split_once(':')
        && let Ok(seq) = seq.trim().parse::<i64>()
    {
        let hash = hash.trim().to_ascii_lowercase();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("--anchor {seq}:…: the hash must be 64 hex digits"));
        }
        let anchor = Anchor { kind: KIND.into(), seq, hash, at: None, signature: None, public_key: None };
        return Ok(Given { anchor, from: format!("--anchor {arg}") });
    }
    let text = std::fs::read_to_string(arg)
        .map_err(|e| format!("--anchor `{arg}` is neither SEQ:HASH nor a readable anchor file: {e}"))?;
    let mut newest: Option<Given> = None;
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let a: Anchor = serde_json::from_str(line)
            .ok()
            .filter(|a: &Anchor| a.kind == KIND)
            .ok_or_else(|| format!("line {} of {arg} is not an anchor (a cut-off write?)", i + 1))?;
        if newest.as_ref().is_none_or(|n| a.seq >= n.anchor.seq) {
            newest = Some(Given { anchor: a, from: format!("line {} of {arg}", i + 1) });
        }
    }
    newest.ok_or_else(|| format!("{arg} holds no anchor"))
}

/// Checks the chain in `store` against an anchor; the chain itself must already have been
/// walked (`head` is where it ends). Ok says how the two relate; Err names what is missing or
/// rewritten.
pub async fn check(
    store: &dyn Store,
    head: Option<(i64, String)>,
    given: &Given,
    public_key: Option<&str>,
) -> Result<String, String> {
    let a = &given.anchor;
    let when = a.at.map(|t| format!(", written {}", t.to_rfc3339())).unwrap_or_default();
    match (&a.signature, public_key) {
        (Some(sig), Some(pk)) if !elevate_core::audit::verify_checkpoint(pk, a.seq, &a.hash, sig) => {
            return Err(format!(
                "the anchor ({}) is not signed by the checkpoint key: it cannot be trusted",
                given.from
            ));
        }
        (None, Some(_)) if a.at.is_some() => {
            return Err(format!("the anchor ({}) is unsigned, but a checkpoint key is configured", given.from));
        }
        _ => {}
    }
    let end = head.as_ref().map(|(s, _)| *s).unwrap_or(0);
    if end < a.seq {
        let missing =
            if end + 1 == a.seq { format!("event {}", a.seq) } else { format!("events {}..={}", end + 1, a.seq) };
        return Err(format!(
            "the chain ends at seq {end}, but the anchor ({}{when}) names seq {}: {missing} are missing \
             (deleted, or the database was restored from an older backup)",
            given.from, a.seq
        ));
    }
    let page = store.events(a.seq - 1, 1).await.map_err(|e| format!("cannot read the audit log: {e}"))?;
    let stored = page.into_iter().next().filter(|e| e.seq == a.seq);
    match stored {
        Some(ev) if ev.hash == a.hash => Ok(format!(
            "anchor ({}{when}): seq {} hash {} matches the chain; {} event(s) after it",
            given.from,
            a.seq,
            a.hash,
            end - a.seq
        )),
        Some(ev) => Err(format!(
            "seq {} has hash {} in the chain, but the anchor ({}{when}) names {}: the chain was rewritten at or before seq {}",
            a.seq, ev.hash, given.from, a.hash, a.seq
        )),
        None => Err(format!(
            "seq {} is not in the chain, but the anchor ({}{when}) names it: events are missing",
            a.seq, given.from
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_anchor_argument_is_a_seq_and_hash_or_a_file_whose_newest_line_counts() {
        let h = "ab".repeat(32);
        let g = parse_arg(&format!("41:{h}")).unwrap();
        assert_eq!((g.anchor.seq, g.anchor.hash.as_str()), (41, h.as_str()));
        assert!(parse_arg("41:abc").unwrap_err().contains("64 hex digits"));
        assert!(parse_arg("/nonexistent/anchors").unwrap_err().contains("neither SEQ:HASH nor a readable anchor file"));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("anchors.jsonl");
        let line = |seq: i64| format!("{{\"kind\":\"{KIND}\",\"seq\":{seq},\"hash\":\"{h}\"}}\n");
        std::fs::write(&file, line(7) + &line(12) + "\n" + &line(9)).unwrap();
        let g = parse_arg(file.to_str().unwrap()).unwrap();
        assert_eq!(g.anchor.seq, 12);
        assert_eq!(g.from, format!("line 2 of {}", file.display()));
        std::fs::write(&file, line(7) + "{\"kind\":\"elevate.audit.anch").unwrap();
        assert!(parse_arg(file.to_str().unwrap()).unwrap_err().contains("line 2 of"));
    }
}
