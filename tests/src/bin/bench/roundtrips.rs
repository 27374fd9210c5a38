//! Statements and round trips per lifecycle on PostgreSQL, counted on the wire: the server's
//! database URL points at a proxy in the bench that forwards every byte and reads the
//! messages the client sends (PostgreSQL's protocol: after the start-up, each message is a
//! type byte and a length). A round trip is a `Sync` (the end of an extended-protocol
//! exchange: parse, bind, execute) or a simple `Query`; a statement is an `Execute`, or one
//! statement of a simple `Query` (their text is split on `;`); a `Sync` alone is a ping. The proxy costs time, so this
//! runs apart from the throughput rows, with fewer lifecycles. It also prints the statements
//! per lifecycle by text, to show where the round trips go.

use crate::{
    lifecycle,
    report::{Bench, Row},
};
use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// What the proxy counted.
#[derive(Default)]
struct Counts {
    round_trips: AtomicU64,
    statements: AtomicU64,
    transactions: AtomicU64,
    /// Round trips that carried nothing but a `Sync`: sqlx's check of a pooled connection
    /// (when it goes back to the pool, and before use unless switched off).
    pings: AtomicU64,
    /// Statements by the start of their text, to show where the round trips go.
    by_text: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

impl Counts {
    fn count(&self, text: &str) {
        let key: String = text.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(90).collect();
        *self.by_text.lock().unwrap().entry(key).or_default() += 1;
    }
}

pub async fn run(b: &mut Bench) -> anyhow::Result<()> {
    let n = if b.quick { 300 } else { 1_000 };
    let Some(url) = b.pg_url("roundtrips").await? else { return Ok(()) };
    // Migrations first, straight to the database, so that only lifecycles are counted.
    elevate_sql::SqlStore::connect(&url).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let (proxied, counts) = proxy(&url).await?;
    let t = lifecycle::measure_counted(b, &proxied, &url, "roundtrips", n).await?;
    let per = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64 / n as f64;
    let (rt, st, tx) = (per(&counts.round_trips), per(&counts.statements), per(&counts.transactions));
    let pings = per(&counts.pings);
    println!(
        "    {rt:.1} round trips ({pings:.1} of them pings), {st:.1} statements, {tx:.1} explicit transactions per lifecycle"
    );
    let mut by: Vec<(String, u64)> = counts.by_text.lock().unwrap().clone().into_iter().collect();
    by.sort_by_key(|(_, k)| std::cmp::Reverse(*k));
    for (text, k) in by.iter().take(20) {
        println!("    {:>6.2}  {text}", *k as f64 / n as f64);
    }
    b.row(Row {
        scenario: "round trips",
        figure: format!(
            "PostgreSQL, per lifecycle, counted on the wire ({n} lifecycles, {:.0} / s through the proxy): \
             statements; explicit transactions (`BEGIN`)",
            t.per_sec
        ),
        measured: format!(
            "{rt:.1} round trips ({pings:.1} of them sqlx's pings), {st:.1} statements, {tx:.1} transactions"
        ),
        target: "report".into(),
        floor: "31 round trips, 31 statements (`BEGIN`, `COMMIT` included), 5 transactions + 2 single statements"
            .into(),
        met: None,
    });
    Ok(())
}

/// A proxy in front of the server of `url`; returns the URL through it.
async fn proxy(url: &str) -> anyhow::Result<(String, Arc<Counts>)> {
    let rest = url.split_once('@').map(|(_, r)| r).unwrap_or(url);
    let (hostport, _) = rest.split_once('/').unwrap_or((rest, ""));
    let upstream = hostport.to_string();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let proxied = url.replacen(hostport, &format!("127.0.0.1:{port}"), 1);
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (upstream, counts) = (upstream.clone(), c.clone());
            tokio::spawn(async move {
                if let Ok(server) = TcpStream::connect(&upstream).await {
                    let _ = pipe(client, server, counts).await;
                }
            });
        }
    });
    Ok((proxied, counts))
}

async fn pipe(client: TcpStream, server: TcpStream, counts: Arc<Counts>) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let down = tokio::spawn(async move { tokio::io::copy(&mut sr, &mut cw).await });
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut started = false;
    // Prepared statements of this connection by name (a `Bind` names the one it runs).
    let mut prepared: std::collections::HashMap<String, String> = Default::default();
    // Messages since the last `Sync`: none means the `Sync` was a ping.
    let mut since_sync = 0u32;
    loop {
        let n = cr.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        sw.write_all(&buf[..n]).await?;
        pending.extend_from_slice(&buf[..n]);
        // Read whole messages off the front of what the client sent.
        loop {
            if !started {
                // Untyped: an SSL or GSS request (answered, then the start-up follows) or the
                // start-up message itself.
                if pending.len() < 8 {
                    break;
                }
                let len = u32::from_be_bytes([pending[0], pending[1], pending[2], pending[3]]) as usize;
                if pending.len() < len {
                    break;
                }
                let code = u32::from_be_bytes([pending[4], pending[5], pending[6], pending[7]]);
                started = code != 80_877_103 && code != 80_877_104;
                pending.drain(..len);
                continue;
            }
            if pending.len() < 5 {
                break;
            }
            let len = u32::from_be_bytes([pending[1], pending[2], pending[3], pending[4]]) as usize;
            if pending.len() < 1 + len {
                break;
            }
            match pending[0] {
                b'S' => {
                    counts.round_trips.fetch_add(1, Ordering::Relaxed);
                    if since_sync == 0 {
                        counts.pings.fetch_add(1, Ordering::Relaxed);
                    }
                    since_sync = 0;
                }
                b'E' => {
                    counts.statements.fetch_add(1, Ordering::Relaxed);
                }
                b'P' => {
                    // Parse: the statement's name, then its text.
                    let mut fields = pending[5..1 + len].split(|c| *c == 0);
                    let name = String::from_utf8_lossy(fields.next().unwrap_or_default()).to_string();
                    let text = String::from_utf8_lossy(fields.next().unwrap_or_default()).to_string();
                    if text.trim_start().to_ascii_uppercase().starts_with("BEGIN") {
                        counts.transactions.fetch_add(1, Ordering::Relaxed);
                    }
                    prepared.insert(name, text);
                }
                b'B' => {
                    // Bind: the portal's name, then the statement's.
                    let mut fields = pending[5..1 + len].split(|c| *c == 0);
                    let _portal = fields.next();
                    let name = String::from_utf8_lossy(fields.next().unwrap_or_default()).to_string();
                    counts.count(prepared.get(&name).map(String::as_str).unwrap_or("(unknown statement)"));
                }
                b'Q' => {
                    let text = String::from_utf8_lossy(&pending[5..1 + len]).to_string();
                    counts.round_trips.fetch_add(1, Ordering::Relaxed);
                    let parts = text.trim_end_matches(['\0', ' ', ';']).split(';').count();
                    counts.statements.fetch_add(parts as u64, Ordering::Relaxed);
                    if text.trim_start().to_ascii_uppercase().starts_with("BEGIN") {
                        counts.transactions.fetch_add(1, Ordering::Relaxed);
                    }
                    counts.count(&text);
                }
                _ => {}
            }
            if pending[0] != b'S' && pending[0] != b'Q' {
                since_sync += 1;
            }
            pending.drain(..1 + len);
        }
    }
    down.abort();
    Ok(())
}
