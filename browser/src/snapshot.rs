//! A page as the model reads it: its accessibility tree as text, one element a
//! line, indented by depth, `- <role> "<name>"`, and ` [ref=e<n>]` on each
//! element that can be acted on. A ref is the element's DOM backend node id:
//! it names that element for as long as it lives, and the host accepts only
//! refs of the last snapshot it gave (a ref of a page since replaced is
//! refused with a word to take a new one).

use std::collections::{HashMap, HashSet};

use serde_json::Value;
use stewrd_shared::domain::agent::MAX_TOOL_OUTPUT_BYTES;

/// Roles a model can act on (click, type into, select in).
const ACTIONABLE: &[&str] = &[
    "button",
    "link",
    "textbox",
    "searchbox",
    "checkbox",
    "radio",
    "combobox",
    "listbox",
    "option",
    "menuitem",
    "menuitemcheckbox",
    "menuitemradio",
    "tab",
    "switch",
    "slider",
    "spinbutton",
    "treeitem",
    "PopUpButton",
];

/// Roles that carry nothing of their own: their children are shown in their place.
const HIDDEN: &[&str] = &[
    "none",
    "generic",
    "presentation",
    "InlineTextBox",
    "LineBreak",
    "RootWebArea",
    "WebArea",
    "Ignored",
];

/// The most characters of one element's name shown.
const MAX_NAME: usize = 300;

/// A snapshot: its text, and the refs it holds.
pub struct Snapshot {
    pub text: String,
    pub refs: HashSet<String>,
}

/// The text of `nodes` (Chromium's `Accessibility.getFullAXTree`), headed by
/// the page's URL and title.
pub fn render(url: &str, title: &str, nodes: &[Value]) -> Snapshot {
    let by_id: HashMap<&str, &Value> = nodes
        .iter()
        .filter_map(|n| Some((n.get("nodeId")?.as_str()?, n)))
        .collect();
    let mut out = format!("Page URL: {url}\nPage title: {title}\n");
    let mut refs = HashSet::new();
    if let Some(root) = nodes.first() {
        let mut walk = Walk {
            by_id: &by_id,
            out: &mut out,
            refs: &mut refs,
        };
        walk.node(root, 0, false, 0);
    }
    Snapshot {
        text: cut(out),
        refs,
    }
}

struct Walk<'a> {
    by_id: &'a HashMap<&'a str, &'a Value>,
    out: &'a mut String,
    refs: &'a mut HashSet<String>,
}

impl Walk<'_> {
    /// Writes `node` (if shown) and its children. `named_above`: the nearest
    /// shown ancestor has a name, which already holds this node's text.
    fn node(&mut self, node: &Value, depth: usize, named_above: bool, hops: usize) {
        // A tree deeper than this is a page built to exhaust us.
        if hops > 512 || self.out.len() > MAX_TOOL_OUTPUT_BYTES * 2 {
            return;
        }
        let role = text_of(node, "role");
        let name = text_of(node, "name");
        let ignored = node.get("ignored").and_then(Value::as_bool) == Some(true);
        let text_node = role == "StaticText";
        let shown = !ignored
            && !HIDDEN.contains(&role.as_str())
            && !(text_node && (named_above || name.trim().is_empty()));
        let (child_depth, child_named) = if shown {
            self.line(node, depth, &role, &name);
            (depth + 1, !name.trim().is_empty())
        } else {
            (depth, named_above)
        };
        let children = node
            .get("childIds")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for child in children {
            if let Some(child) = child.as_str().and_then(|id| self.by_id.get(id)) {
                self.node(child, child_depth, child_named, hops + 1);
            }
        }
    }

    fn line(&mut self, node: &Value, depth: usize, role: &str, name: &str) {
        let role = if role == "StaticText" { "text" } else { role };
        self.out.push_str(&"  ".repeat(depth));
        self.out.push_str("- ");
        self.out.push_str(role);
        let name = quoted(name);
        if !name.is_empty() {
            self.out.push(' ');
            self.out.push_str(&name);
        }
        let value = text_of(node, "value");
        if !value.is_empty() && role != "text" {
            self.out.push_str(" value=");
            self.out.push_str(&quoted(&value));
        }
        if let Some(backend) = node.get("backendDOMNodeId").and_then(Value::as_i64)
            && ACTIONABLE.contains(&role)
        {
            let reference = format!("e{backend}");
            self.out.push_str(&format!(" [ref={reference}]"));
            self.refs.insert(reference);
        }
        self.out.push('\n');
    }
}

/// `node[field].value` as text.
fn text_of(node: &Value, field: &str) -> String {
    match node.get(field).and_then(|f| f.get("value")) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// A name in quotes, on one line, at most [`MAX_NAME`] characters.
fn quoted(name: &str) -> String {
    let flat: String = name.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.is_empty() {
        return String::new();
    }
    let mut short: String = flat.chars().take(MAX_NAME).collect();
    if short.len() < flat.len() {
        short.push('…');
    }
    format!("\"{}\"", short.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The snapshot, cut at a line to fit the model's 64 KiB.
pub fn cut(text: String) -> String {
    if text.len() <= MAX_TOOL_OUTPUT_BYTES {
        return text;
    }
    let note = "\n[the snapshot was cut at 64 KiB]";
    let room = MAX_TOOL_OUTPUT_BYTES - note.len();
    let mut end = room;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let end = text[..end].rfind('\n').unwrap_or(end);
    format!("{}{note}", &text[..end])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(id: &str, role: &str, name: &str, backend: i64, children: &[&str]) -> Value {
        json!({"nodeId": id, "ignored": false, "role": {"value": role},
               "name": {"value": name}, "backendDOMNodeId": backend, "childIds": children})
    }

    #[test]
    fn a_tree_reads_as_indented_lines_with_refs_on_what_can_be_acted_on() {
        let nodes = [
            node("1", "RootWebArea", "Shop", 1, &["2", "5"]),
            node("2", "form", "Sign in", 2, &["3", "4"]),
            node("3", "textbox", "Email", 7, &[]),
            node("4", "button", "Submit \"now\"", 12, &["6"]),
            node("5", "StaticText", "Welcome", 9, &[]),
            node("6", "StaticText", "Submit", 13, &[]),
        ];
        let snapshot = render("http://shop/", "Shop", &nodes);
        assert_eq!(
            snapshot.text,
            "Page URL: http://shop/\nPage title: Shop\n- form \"Sign in\"\n  - textbox \"Email\" \
             [ref=e7]\n  - button \"Submit \\\"now\\\"\" [ref=e12]\n- text \"Welcome\"\n"
        );
        assert_eq!(snapshot.refs.len(), 2);
        assert!(snapshot.refs.contains("e12"));
    }

    #[test]
    fn a_long_snapshot_is_cut_at_a_line() {
        let long = "- text \"x\"\n".repeat(10_000);
        let cut = cut(long);
        assert!(cut.len() <= MAX_TOOL_OUTPUT_BYTES);
        assert!(cut.ends_with("[the snapshot was cut at 64 KiB]"));
    }
}
