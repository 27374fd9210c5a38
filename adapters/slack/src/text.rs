//! Making text safe to echo in Slack. Slack reads `<…>` as mentions, channel pings and links and
//! `&` as the start of an entity; escaping these three turns `<!channel>` or
//! `<https://evil|docs>` in a reason into literal text. Formatting (backticks, `*`) is left
//! alone: it cannot ping anyone or hide a link.

/// Escapes `&`, `<` and `>` as Slack's message formatting documents.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// A user mention, for ids Slack gave us (never for typed text).
pub fn mention(user_id: &str) -> String {
    format!("<@{}>", escape(user_id))
}

/// A channel link, for configured channel ids.
pub fn channel(channel_id: &str) -> String {
    format!("<#{}>", escape(channel_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_and_links_become_literal_text() {
        assert_eq!(escape("<!channel> & <@U1>"), "&lt;!channel&gt; &amp; &lt;@U1&gt;");
        assert_eq!(escape("`code` *bold*"), "`code` *bold*");
    }
}
