//! What a database error means for a grant: worth retrying (the server is unreachable, busy or
//! shutting down) or not (no such role or login, not allowed), and its message with elevate's
//! connection URL and password taken out, since errors reach logs, audit events and chat.

use elevate_core::ports::ProviderError;

/// Strings that must never appear in a message: the connection URL and its password.
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub fn new(url: &str, password: Option<&str>) -> Redactor {
        let mut secrets: Vec<String> = vec![url.to_string()];
        if let Some(p) = password.filter(|p| !p.is_empty()) {
            secrets.push(p.to_string());
            // As it may appear percent-encoded in the URL, or in a message quoting the URL.
            let encoded: String = p
                .bytes()
                .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
                .collect();
            secrets.push(encoded);
        }
        // Longest first, so that the URL goes as a whole before its password inside it.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Redactor { secrets }
    }

    pub fn clean(&self, message: &str) -> String {
        let mut out: String = message.chars().filter(|c| !c.is_control()).take(500).collect();
        for s in &self.secrets {
            out = out.replace(s.as_str(), "***");
        }
        out
    }
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redactor(***)")
    }
}

/// The password in a `postgres://user:password@host/db` URL, percent-decoded, if there is one
/// (a key-value connection string's `password=` too).
pub(crate) fn password_in(url: &str) -> Option<String> {
    if let Some(rest) = url.split_once("://").map(|(_, r)| r) {
        let userinfo = rest.split(['/', '?']).next()?.rsplit_once('@')?.0;
        let raw = userinfo.split_once(':')?.1;
        return Some(percent_decode(raw));
    }
    url.split_whitespace().find_map(|kv| kv.strip_prefix("password=")).map(|p| p.trim_matches('\'').to_string())
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Classifies an sqlx error. Connection trouble, timeouts, server shutdowns, lack of resources,
/// serialization failures and lock timeouts are transient; everything the server refused for a
/// reason a retry does not change (no such role, not allowed, invalid grant) is permanent and
/// carries the server's own message, shown to the requester.
pub(crate) fn classify(e: sqlx::Error, r: &Redactor) -> ProviderError {
    match e {
        sqlx::Error::Database(db) => {
            let sqlstate = db.code().map(|c| c.to_string()).unwrap_or_default();
            let message = r.clean(db.message());
            match permanent_code(&sqlstate) {
                Some(code) => ProviderError::permanent(code, message),
                None => ProviderError::transient(format!("database error {sqlstate}: {message}")),
            }
        }
        sqlx::Error::PoolTimedOut => ProviderError::transient("no connection to the database server in time"),
        sqlx::Error::Io(e) => {
            ProviderError::transient(format!("cannot reach the database server: {}", r.clean(&e.to_string())))
        }
        sqlx::Error::Tls(e) => {
            ProviderError::transient(format!("TLS with the database server failed: {}", r.clean(&e.to_string())))
        }
        other => ProviderError::transient(format!("database connection failed: {}", r.clean(&other.to_string()))),
    }
}

/// The code shown for a permanent SQLSTATE, `None` for one worth retrying.
fn permanent_code(sqlstate: &str) -> Option<String> {
    let named = match sqlstate {
        "42704" => "UndefinedObject",
        "42501" => "InsufficientPrivilege",
        "0LP01" => "InvalidGrantOperation",
        "0P000" => "InvalidRoleSpecification",
        "28000" | "28P01" => "LoginFailed",
        "3D000" => "UndefinedDatabase",
        _ => "",
    };
    if !named.is_empty() {
        return Some(named.to_string());
    }
    // Connection exceptions (08), insufficient resources (53), operator intervention such as a
    // shutdown or a cancelled statement (57), transaction rollbacks such as deadlocks (40), a
    // lock not available (55P03), system errors (58): the next attempt may well succeed.
    let class = sqlstate.get(..2).unwrap_or("");
    if ["08", "53", "57", "40", "58", "XX"].contains(&class) || sqlstate == "55P03" || sqlstate.is_empty() {
        return None;
    }
    Some(format!("SQLSTATE {sqlstate}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_found_in_either_form_of_connection_string() {
        assert_eq!(password_in("postgres://elevate:s3cr%21t@db:5432/app").as_deref(), Some("s3cr!t"));
        assert_eq!(password_in("postgresql://el:p@ss@db/app?sslmode=require").as_deref(), Some("p@ss"));
        assert_eq!(password_in("postgres://elevate@db/app"), None);
        assert_eq!(password_in("host=db user=elevate password='pw1'").as_deref(), Some("pw1"));
    }

    #[test]
    fn the_url_and_password_never_survive_in_a_message() {
        let r = Redactor::new("postgres://elevate:s3cr%21t@db:5432/app", Some("s3cr!t"));
        let m = r.clean("cannot connect to postgres://elevate:s3cr%21t@db:5432/app (password s3cr!t, s3cr%21t)");
        assert!(!m.contains("s3cr"), "{m}");
        assert!(m.contains("***"));
    }

    #[test]
    fn sqlstates_are_sorted_into_retry_or_not() {
        assert_eq!(permanent_code("42704").as_deref(), Some("UndefinedObject"));
        assert_eq!(permanent_code("42501").as_deref(), Some("InsufficientPrivilege"));
        assert_eq!(permanent_code("42601").as_deref(), Some("SQLSTATE 42601"));
        for transient in ["08006", "57P01", "57014", "53300", "40001", "40P01", "55P03", ""] {
            assert_eq!(permanent_code(transient), None, "{transient}");
        }
    }
}
