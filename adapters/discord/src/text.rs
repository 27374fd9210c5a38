//! Making text safe to echo in Discord. Every message elevate sends also carries
//! `allowed_mentions: {"parse": []}`, so nothing it says can ping anyone; escaping on top keeps
//! typed text from *looking* like a mention, a masked link or formatting that hides part of it.

/// Backslash-escapes Discord's markdown and mention characters.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '*' | '_' | '~' | '`' | '|' | '>' | '<' | '[' | ']' | '@') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A user mention, for ids Discord gave us or the policy holds (never typed text).
pub fn mention(user_id: &str) -> String {
    if user_id.bytes().all(|b| b.is_ascii_digit()) { format!("<@{user_id}>") } else { escape(user_id) }
}

/// A channel link, for configured channel ids.
pub fn channel(channel_id: &str) -> String {
    if channel_id.bytes().all(|b| b.is_ascii_digit()) { format!("<#{channel_id}>") } else { escape(channel_id) }
}

/// 32 bytes from 64 hex digits (a public key).
pub(crate) fn hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_links_and_formatting_become_literal_text() {
        assert_eq!(escape("@everyone <@&1> [x](https://e)"), "\\@everyone \\<\\@&1\\> \\[x\\](https://e)");
        assert_eq!(mention("123"), "<@123>");
        assert_eq!(mention("<@&1>"), "\\<\\@&1\\>");
    }
}
