//! Server-rendered HTML: one layout, escaping for every dynamic value, a little
//! inline CSS and JavaScript (no external assets: the page works offline).

use std::sync::LazyLock;

use axum::{
    http::{HeaderValue, header},
    response::{Html, IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use sha2::{Digest, Sha256};

/// Escapes text for HTML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
:root { --ink:#1d2433; --muted:#667085; --line:#e4e7ec; --bg:#f7f8fa; --accent:#3b5bdb; --ok:#2b8a3e; --bad:#c92a2a; --warn:#e67700; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif; color:var(--ink); background:var(--bg); }
header { background:#fff; border-bottom:1px solid var(--line); padding:12px 32px; display:flex; align-items:center; gap:24px; }
header .brand { font-weight:700; font-size:18px; letter-spacing:.3px; }
header a { color:var(--muted); text-decoration:none; } header a:hover { color:var(--ink); }
header form { margin-left:auto; }
main { max-width:1080px; margin:28px auto; padding:0 32px; }
h1 { font-size:24px; margin:0 0 18px; } h2 { font-size:17px; margin:0 0 12px; }
.card { background:#fff; border:1px solid var(--line); border-radius:10px; padding:20px 22px; margin-bottom:20px; }
table { width:100%; border-collapse:collapse; } th,td { text-align:left; padding:8px 10px; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-size:12px; text-transform:uppercase; letter-spacing:.5px; color:var(--muted); font-weight:600; }
tr:last-child td { border-bottom:none; }
a { color:var(--accent); }
code, .mono { font-family:ui-monospace,SFMono-Regular,Menlo,monospace; font-size:13px; }
.pill { display:inline-block; padding:1px 9px; border-radius:999px; font-size:12px; font-weight:600; background:#eef1f6; color:var(--muted); }
.pill.succeeded, .pill.valid, .pill.set { background:#e6f4ea; color:var(--ok); }
.pill.failed, .pill.invalid, .pill.quota_exhausted { background:#fdecec; color:var(--bad); }
.pill.running, .pill.queued, .pill.unchecked { background:#fff4e5; color:var(--warn); }
.grid { display:grid; grid-template-columns: 160px 1fr; gap:8px 16px; }
.grid div:nth-child(odd) { color:var(--muted); }
label { display:block; font-size:13px; color:var(--muted); margin:10px 0 4px; }
input, select { width:100%; padding:8px 10px; border:1px solid var(--line); border-radius:7px; font:inherit; background:#fff; }
button { padding:8px 16px; border:1px solid var(--accent); border-radius:7px; background:var(--accent); color:#fff; font:inherit; cursor:pointer; }
button.secondary { background:#fff; color:var(--accent); } button.danger { background:#fff; color:var(--bad); border-color:var(--bad); }
.row { display:flex; gap:10px; align-items:end; } .row > * { flex:1; } .row > button { flex:none; }
.notice { border-radius:8px; padding:12px 16px; margin-bottom:20px; background:#e7f5ff; border:1px solid #a5d8ff; }
.notice.error { background:#fdecec; border-color:#ffa8a8; }
.secret { font-family:ui-monospace,monospace; background:#fff; border:1px dashed var(--muted); padding:8px 10px; border-radius:6px; word-break:break-all; }
.hidden { display:none; } .muted { color:var(--muted); }
.message { padding:10px 14px; border-radius:8px; margin:8px 0; white-space:pre-wrap; }
.message.user { background:#eef1f6; } .message.assistant { background:#e6f4ea; }
"#;

const SCRIPT: &str = r#"
document.querySelectorAll('[data-toggle]').forEach(function (button) {
  button.addEventListener('click', function () {
    document.getElementById(button.dataset.toggle).classList.toggle('hidden');
  });
});
var live = document.getElementById('live');
if (live) {
  var texts = {}, order = [];
  var show = function () {
    live.textContent = order.map(function (k) { return texts[k]; }).filter(Boolean).join('\n\n');
  };
  var key = function (e) { var d = JSON.parse(e.data); return [d.run_id + ':' + d.step, d]; };
  var source = new EventSource(live.dataset.events);
  source.addEventListener('run.delta', function (e) {
    var k = key(e);
    if (!(k[0] in texts)) { texts[k[0]] = ''; order.push(k[0]); }
    texts[k[0]] += k[1].text;
    show();
  });
  source.addEventListener('run.reset', function (e) { texts[key(e)[0]] = ''; show(); });
  ['queued', 'running', 'requires_action', 'succeeded', 'failed', 'cancelled'].forEach(function (s) {
    source.addEventListener('session.' + s, function () {
      var status = document.getElementById('session-status');
      if (status) { status.innerHTML = '<span class="pill ' + s + '">' + s + '</span>'; }
      if (s === 'succeeded' || s === 'failed' || s === 'cancelled') { source.close(); }
    });
  });
}
"#;

/// The page's policy: only our own inline script runs, named by its hash, so an
/// injected `<script>` would not (`'unsafe-inline'` would let it).
static CSP: LazyLock<HeaderValue> = LazyLock::new(|| {
    let hash = STANDARD.encode(Sha256::digest(SCRIPT.as_bytes()));
    let policy = format!(
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{hash}'; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    );
    HeaderValue::from_str(&policy)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
});

/// A whole page. `signed_in` adds the navigation and the sign-out form.
pub fn page(title: &str, csrf: Option<&str>, body: &str) -> Response {
    let nav = match csrf {
        Some(csrf) => format!(
            r#"<a href="/dashboard">Projects</a>
<form method="post" action="/dashboard/logout"><input type="hidden" name="csrf" value="{}"><button class="secondary" type="submit">Sign out</button></form>"#,
            esc(csrf)
        ),
        None => String::new(),
    };
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · stewrd</title><style>{STYLE}</style></head>
<body><header><span class="brand">stewrd</span>{nav}</header>
<main>{body}</main><script>{SCRIPT}</script></body></html>"#,
        title = esc(title),
    );
    with_security_headers(Html(html).into_response())
}

/// Headers every dashboard answer carries: no framing, no caching, no referrer,
/// nothing loaded from elsewhere.
pub fn with_security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, CSP.clone());
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// A status as a coloured pill.
pub fn pill(text: &str) -> String {
    format!(r#"<span class="pill {0}">{0}</span>"#, esc(text))
}

/// A notice above the page content.
pub fn notice(text: &str, error: bool) -> String {
    format!(
        r#"<div class="notice{}">{}</div>"#,
        if error { " error" } else { "" },
        esc(text)
    )
}

/// The hidden CSRF field of a form.
pub fn csrf_field(csrf: &str) -> String {
    format!(r#"<input type="hidden" name="csrf" value="{}">"#, esc(csrf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_attributes() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
