//! Provider error texts end up in audit events, in chat (the audit channel, the requester's
//! DM) and in logs. They often quote what the provider was called with: a webhook URL with a
//! token in its query string, a connection URL with a password, an `Authorization` header.
//! `scrub` takes those out before the text goes anywhere, whatever the provider.

/// The text with URL credentials (`user:pass@`), URL query strings and bearer/basic
/// credentials replaced by `***`.
pub fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        // Everything up to and including `://` is kept; the URL after it is scrubbed.
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '>' | '<' | ',' | '`'))
            .unwrap_or(after.len());
        out.push_str(&scrub_url(&after[..end]));
        rest = &after[end..];
    }
    out.push_str(rest);
    scrub_auth(&out)
}

/// One URL without its scheme: credentials before `@` in the authority, and the query.
fn scrub_url(url: &str) -> String {
    let (authority, path) = match url.find(['/', '?', '#']) {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    let authority = match authority.rfind('@') {
        Some(i) => format!("***{}", &authority[i..]),
        None => authority.to_string(),
    };
    let path = match path.find('?') {
        Some(i) => format!("{}?***", &path[..i]),
        None => path.to_string(),
    };
    authority + &path
}

/// The word after `Bearer` or `Basic` (an `Authorization` header quoted in an error).
fn scrub_auth(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut hide_next = false;
    for w in text.split_inclusive(char::is_whitespace) {
        let word = w.trim_end();
        let space = &w[word.len()..];
        if hide_next && !word.is_empty() {
            out.push_str("***");
            out.push_str(space);
            hide_next = false;
            continue;
        }
        let lower = word.to_ascii_lowercase();
        if matches!(lower.as_str(), "bearer" | "basic") {
            hide_next = true;
        }
        out.push_str(w);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::scrub;

    #[test]
    fn credentials_and_query_strings_are_taken_out_of_error_texts() {
        for (text, secret) in [
            ("error sending request for url (https://hooks.example.com/grant?token=s3cr3t&x=1)", "s3cr3t"),
            ("cannot connect to postgres://elevate:pa55word@db.internal:5432/app: refused", "pa55word"),
            ("POST https://user:hunter2@receiver/elevate failed", "hunter2"),
            ("401 from upstream: Authorization: Bearer abc.def.ghi rejected", "abc.def.ghi"),
            ("sent basic dXNlcjpwYXNz to the proxy", "dXNlcjpwYXNz"),
            ("redirected to 'https://x.example/cb?code=0a0a0a'", "0a0a0a"),
        ] {
            let out = scrub(text);
            assert!(!out.contains(secret), "{text} → {out}");
            assert!(out.contains("***"), "{out}");
        }
        assert_eq!(
            scrub("error sending request for url (https://hooks.example.com/grant?token=s3cr3t)"),
            "error sending request for url (https://hooks.example.com/grant?***)"
        );
        assert_eq!(scrub("postgres://elevate:pw@db/app"), "postgres://***@db/app");
        let plain = "AccessDenied: user alice may not assume role Admin (see https://docs.example/iam)";
        assert_eq!(scrub(plain), plain, "nothing secret, nothing changed");
    }
}
