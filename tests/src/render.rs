//! What a person sees, as one readable text per message, for whole-message snapshot tests
//! (`insta`). Every part of the message is shown: text, each block or component with its kind,
//! buttons with their style, id and value, confirm dialogs, form inputs. A part this renderer
//! does not know is printed as JSON rather than dropped, so nothing a person sees can change
//! without a snapshot changing.

use serde_json::Value;

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn rest_as_json(v: &Value, known: &[&str]) -> String {
    let Some(obj) = v.as_object() else { return String::new() };
    let extra: serde_json::Map<String, Value> =
        obj.iter().filter(|(k, _)| !known.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
    if extra.is_empty() { String::new() } else { format!(" {}", Value::Object(extra)) }
}

fn slack_text(t: &Value) -> String {
    match t["type"].as_str() {
        Some("mrkdwn") | Some("plain_text") => s(&t["text"]).to_string(),
        _ => t.to_string(),
    }
}

fn slack_element(e: &Value) -> String {
    match e["type"].as_str() {
        Some("button") => {
            let mut out = format!("[{}] {}={}", slack_text(&e["text"]), s(&e["action_id"]), s(&e["value"]));
            if let Some(style) = e["style"].as_str() {
                out.push_str(&format!(" ({style})"));
            }
            if !e["confirm"].is_null() {
                let c = &e["confirm"];
                out.push_str(&format!(
                    "\n    confirm: {} / {} [{}] [{}]",
                    slack_text(&c["title"]),
                    slack_text(&c["text"]),
                    slack_text(&c["confirm"]),
                    slack_text(&c["deny"])
                ));
            }
            out + &rest_as_json(e, &["type", "text", "action_id", "value", "style", "confirm"])
        }
        Some("mrkdwn") | Some("plain_text") => slack_text(e),
        _ => e.to_string(),
    }
}

/// Slack Block Kit blocks, one line (or a few) per block.
pub fn slack_blocks(blocks: &Value) -> String {
    let mut out = Vec::new();
    for b in blocks.as_array().into_iter().flatten() {
        let line = match b["type"].as_str() {
            Some("section") if !b["fields"].is_null() => {
                let fields: Vec<String> = b["fields"].as_array().into_iter().flatten().map(slack_text).collect();
                format!("section fields: {}", fields.join(" | "))
            }
            Some("section") => format!("section: {}", slack_text(&b["text"])),
            Some("context") => {
                let e: Vec<String> = b["elements"].as_array().into_iter().flatten().map(slack_element).collect();
                format!("context: {}", e.join(" "))
            }
            Some("actions") => {
                let e: Vec<String> = b["elements"].as_array().into_iter().flatten().map(slack_element).collect();
                format!("actions: {}", e.join("\n         "))
            }
            Some("input") => {
                let el = &b["element"];
                let mut line = format!(
                    "input {} \"{}\"{}: {}",
                    s(&b["block_id"]),
                    slack_text(&b["label"]),
                    if b["optional"] == true { " (optional)" } else { "" },
                    s(&el["type"])
                );
                if let Some(p) = el["placeholder"].as_object() {
                    line.push_str(&format!(" placeholder \"{}\"", s(&p["text"].clone())));
                }
                if let Some(opts) = el["options"].as_array() {
                    let o: Vec<String> = opts.iter().map(|o| s(&o["value"]).to_string()).collect();
                    line.push_str(&format!(" options [{}]", o.join(", ")));
                }
                if el["multiline"] == true {
                    line.push_str(" multiline");
                }
                if let Some(v) = el["initial_value"].as_str() {
                    line.push_str(&format!(" value \"{v}\""));
                }
                line
            }
            _ => b.to_string(),
        };
        out.push(
            line + &rest_as_json(
                b,
                &["type", "text", "fields", "elements", "block_id", "label", "optional", "element"],
            ),
        );
    }
    out.join("\n")
}

/// A Slack message as posted: its notification text, then its blocks.
pub fn slack_message(text: &str, blocks: &Value) -> String {
    let body = slack_blocks(blocks);
    if body.is_empty() { format!("text: {text}") } else { format!("text: {text}\n{body}") }
}

/// A Slack modal view.
pub fn slack_view(v: &Value) -> String {
    let mut out = format!(
        "modal {} \"{}\" [{}] [{}]",
        s(&v["callback_id"]),
        slack_text(&v["title"]),
        slack_text(&v["submit"]),
        slack_text(&v["close"])
    );
    if let Some(m) = v["private_metadata"].as_str() {
        out.push_str(&format!(" metadata={m}"));
    }
    out + &rest_as_json(v, &["type", "callback_id", "title", "submit", "close", "private_metadata", "blocks"])
        + "\n"
        + &slack_blocks(&v["blocks"])
}

/// Discord message components (action rows of buttons or text inputs).
pub fn discord_components(rows: &Value) -> String {
    let mut out = Vec::new();
    for row in rows.as_array().into_iter().flatten() {
        let items: Vec<String> = row["components"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| match c["type"].as_u64() {
                Some(2) => format!(
                    "[{}] {} (style {}){}",
                    s(&c["label"]),
                    s(&c["custom_id"]),
                    c["style"],
                    rest_as_json(c, &["type", "label", "custom_id", "style"])
                ),
                Some(4) => format!(
                    "input {} \"{}\" (style {}){}{}{}",
                    s(&c["custom_id"]),
                    s(&c["label"]),
                    c["style"],
                    if c["required"] == false { " (optional)" } else { "" },
                    c["placeholder"].as_str().map(|p| format!(" placeholder \"{p}\"")).unwrap_or_default(),
                    rest_as_json(c, &["type", "label", "custom_id", "style", "required", "placeholder"])
                ),
                _ => c.to_string(),
            })
            .collect();
        out.push(format!("row: {}", items.join(" ")));
    }
    out.join("\n")
}

/// A Discord message: its content, then its components.
pub fn discord_message(content: &str, components: &Value) -> String {
    let rows = discord_components(components);
    if rows.is_empty() { content.to_string() } else { format!("{content}\n{rows}") }
}

/// A Discord interaction response: its type, flags and data.
pub fn discord_response(body: &Value) -> String {
    let d = &body["data"];
    match body["type"].as_u64() {
        Some(4) => format!(
            "message (flags {}, mentions {}):\n{}",
            d["flags"],
            d["allowed_mentions"],
            discord_message(s(&d["content"]), &d["components"])
        ),
        Some(9) => {
            format!("modal {} \"{}\"\n{}", s(&d["custom_id"]), s(&d["title"]), discord_components(&d["components"]))
        }
        Some(6) => "acknowledged (no message)".into(),
        _ => body.to_string(),
    }
}
