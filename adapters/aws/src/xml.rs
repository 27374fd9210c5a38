//! A small XML tree for AWS query-API responses (IAM, STS). The responses are shallow and the
//! code only ever asks for a few named elements, so a tree with path look-ups is clearer than a
//! serde struct per response.

use quick_xml::Reader;
use quick_xml::events::Event;

/// One element: its local name, its text (entities resolved) and its child elements.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Node {
    pub name: String,
    pub text: String,
    pub children: Vec<Node>,
}

impl Node {
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Follows child names from this node.
    pub fn path(&self, names: &[&str]) -> Option<&Node> {
        names.iter().try_fold(self, |n, name| n.child(name))
    }

    pub fn text_at(&self, names: &[&str]) -> Option<&str> {
        self.path(names).map(|n| n.text.as_str())
    }

    /// The first element with this name anywhere below (depth first).
    pub fn find(&self, name: &str) -> Option<&Node> {
        self.children.iter().find_map(|c| if c.name == name { Some(c) } else { c.find(name) })
    }

    /// The texts of the `member` children of the element at `names` (the query API's lists).
    pub fn members(&self, names: &[&str]) -> Vec<&Node> {
        self.path(names).map(|n| n.children.iter().filter(|c| c.name == "member").collect()).unwrap_or_default()
    }
}

/// Parses a document into its root element.
pub fn parse(input: &str) -> Result<Node, String> {
    let mut reader = Reader::from_str(input);
    let mut stack: Vec<Node> = vec![Node::default()];
    loop {
        let ev = reader.read_event().map_err(|e| format!("unreadable XML: {e}"))?;
        match ev {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                stack.push(Node { name, ..Node::default() });
            }
            Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if let Some(top) = stack.last_mut() {
                    top.children.push(Node { name, ..Node::default() });
                }
            }
            Event::End(_) => {
                let mut done = stack.pop().ok_or("unbalanced XML")?;
                done.text = done.text.trim().to_string();
                stack.last_mut().ok_or("unbalanced XML")?.children.push(done);
            }
            Event::Text(t) => {
                let s = t.decode().map_err(|e| format!("bad XML text: {e}"))?;
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&s);
                }
            }
            Event::CData(t) => {
                let s = t.decode().map_err(|e| format!("bad XML text: {e}"))?;
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&s);
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(|e| format!("bad XML reference: {e}"))? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.decode().map_err(|e| format!("bad XML reference: {e}"))?;
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| format!("unknown XML entity &{name};"))?
                            .to_string()
                    }
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&resolved);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let mut doc = stack.pop().ok_or("empty XML")?;
    if !stack.is_empty() {
        return Err("truncated XML".into());
    }
    doc.children.pop().ok_or_else(|| "empty XML document".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_query_api_list_with_entities() {
        let doc = parse(
            r#"<?xml version="1.0"?><ListUsersResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">
            <ListUsersResult><IsTruncated>true</IsTruncated><Marker>a&amp;b&#x3D;</Marker>
            <Users><member><UserName>alice</UserName></member><member><UserName>bob</UserName></member></Users>
            </ListUsersResult></ListUsersResponse>"#,
        )
        .unwrap();
        assert_eq!(doc.name, "ListUsersResponse");
        assert_eq!(doc.text_at(&["ListUsersResult", "Marker"]), Some("a&b="));
        let users: Vec<_> =
            doc.members(&["ListUsersResult", "Users"]).iter().filter_map(|m| m.text_at(&["UserName"])).collect();
        assert_eq!(users, ["alice", "bob"]);
        assert_eq!(doc.find("IsTruncated").map(|n| n.text.as_str()), Some("true"));
    }

    #[test]
    fn refuses_truncated_documents() {
        assert!(parse("<a><b>x</b>").is_err());
    }
}
