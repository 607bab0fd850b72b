//! The browser tool's actions on a run's one page, and its state: what a new
//! browser needs to take the run on (URL, cookies, local storage).

use std::{collections::HashSet, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::{Value, json};
use stewrd_shared::{domain::browser::Action, runtime::ssrf};
use tokio::sync::broadcast;

use crate::{
    cdp::{Cdp, CdpError, Event},
    proxy::Egress,
    snapshot,
};

/// How long a page has to load after a navigation before it is read as it is.
const LOAD_PATIENCE: Duration = Duration::from_secs(15);
/// How long after an action a navigation it started may take to begin.
const NAVIGATION_START: Duration = Duration::from_millis(250);

/// Why an action gave no new snapshot.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// Said to the model (a ref not on the page, a refused URL).
    #[error("{0}")]
    Refused(String),
    /// The browser is gone or stuck.
    #[error(transparent)]
    Browser(#[from] CdpError),
}

/// What an action gave.
pub struct Done {
    pub snapshot: String,
    pub png: Option<Vec<u8>>,
}

/// A run's page: its DevTools session and the refs of its last snapshot.
pub struct Page {
    cdp: Cdp,
    session: String,
    refs: HashSet<String>,
}

impl Page {
    /// Attaches to the page Chromium opened.
    pub async fn attach(cdp: Cdp) -> Result<Self, CdpError> {
        let targets = cdp.call(None, "Target.getTargets", json!({})).await?;
        let target = targets["targetInfos"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["targetId"].as_str())
            .map(str::to_owned);
        let target = match target {
            Some(target) => target,
            None => cdp
                .call(None, "Target.createTarget", json!({"url": "about:blank"}))
                .await?["targetId"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        };
        let attached = cdp
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target, "flatten": true}),
            )
            .await?;
        let session = attached["sessionId"]
            .as_str()
            .ok_or_else(|| CdpError::Refused("no page session".into()))?
            .to_owned();
        let page = Self {
            cdp,
            session,
            refs: HashSet::new(),
        };
        for domain in ["Page.enable", "DOM.enable", "Accessibility.enable"] {
            page.call(domain, json!({})).await?;
        }
        Ok(page)
    }

    /// Whether the browser still answers.
    pub fn is_open(&self) -> bool {
        self.cdp.is_open()
    }

    /// Makes `action` and gives the page as it is after it.
    pub async fn act(
        &mut self,
        action: Action,
        arguments: &Value,
        egress: &Egress,
        allow_private: bool,
    ) -> Result<Done, ActionError> {
        let text = |name: &str| arguments.get(name).and_then(Value::as_str);
        let mut png = None;
        match action {
            Action::Navigate => {
                let url = text("url").unwrap_or_default();
                self.navigate(url, egress, allow_private).await?;
            }
            Action::Snapshot => {}
            Action::Screenshot => {
                let shot = self
                    .call("Page.captureScreenshot", json!({"format": "png"}))
                    .await?;
                let data = shot["data"].as_str().unwrap_or_default();
                png = Some(
                    STANDARD
                        .decode(data)
                        .map_err(|_| CdpError::Refused("the screenshot is not base64".into()))?,
                );
            }
            Action::Click => {
                let node = self.node(text("ref"))?;
                let mut events = self.cdp.events();
                self.click(node).await?;
                self.follow(&mut events).await;
            }
            Action::Type => {
                let node = self.node(text("ref"))?;
                let typed = text("text").unwrap_or_default();
                let submit = arguments.get("submit").and_then(Value::as_bool) == Some(true);
                let mut events = self.cdp.events();
                self.type_into(node, typed, submit).await?;
                self.follow(&mut events).await;
            }
            Action::Select => {
                let node = self.node(text("ref"))?;
                let values: Vec<String> = arguments
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|v| {
                        v.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                if values.is_empty() {
                    return Err(ActionError::Refused(
                        "`values` must list the options to select".into(),
                    ));
                }
                let mut events = self.cdp.events();
                self.select(node, &values).await?;
                self.follow(&mut events).await;
            }
            Action::Press => {
                let name = text("key").unwrap_or_default();
                let key = Key::named(name).ok_or_else(|| {
                    ActionError::Refused(format!("`{name}` is not a key this tool can press"))
                })?;
                let mut events = self.cdp.events();
                self.press(key).await?;
                self.follow(&mut events).await;
            }
            Action::Back => self.back().await?,
        }
        let snapshot = self.snapshot().await?;
        Ok(Done { snapshot, png })
    }

    /// The page as text; its refs become the ones actions accept.
    async fn snapshot(&mut self) -> Result<String, CdpError> {
        let about = self.evaluate("[location.href, document.title]").await?;
        let tree = self.call("Accessibility.getFullAXTree", json!({})).await?;
        let nodes = tree["nodes"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let rendered = snapshot::render(
            about[0].as_str().unwrap_or_default(),
            about[1].as_str().unwrap_or_default(),
            nodes,
        );
        self.refs = rendered.refs;
        Ok(rendered.text)
    }

    async fn navigate(
        &mut self,
        url: &str,
        egress: &Egress,
        allow_private: bool,
    ) -> Result<(), ActionError> {
        let checked = ssrf::parse_webhook_url(url, allow_private)
            .map_err(|refusal| ActionError::Refused(format!("refused: the URL {url} {refusal}")))?;
        let host = checked.host_str().unwrap_or_default().to_owned();
        egress.take_refused();
        let mut events = self.cdp.events();
        let navigated = self
            .call("Page.navigate", json!({"url": checked.as_str()}))
            .await?;
        let refused_here = |refused: Vec<String>| {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            refused.iter().any(|h| h == bare)
        };
        if let Some(error) = navigated["errorText"].as_str().filter(|e| !e.is_empty()) {
            if refused_here(egress.take_refused()) {
                return Err(refused(url));
            }
            return Err(ActionError::Refused(format!("cannot open {url}: {error}")));
        }
        if navigated.get("loaderId").is_some() {
            self.loaded(&mut events, LOAD_PATIENCE).await;
        }
        if refused_here(egress.take_refused()) {
            return Err(refused(url));
        }
        Ok(())
    }

    /// After an action that may start a navigation: waits for the page it
    /// leads to, if one starts within [`NAVIGATION_START`]. `events` were
    /// taken before the action.
    async fn follow(&self, events: &mut broadcast::Receiver<Event>) {
        let session = self.session.clone();
        let started = tokio::time::timeout(NAVIGATION_START, async {
            loop {
                match events.recv().await {
                    Ok(event) if mine(&event, &session) && starts_loading(&event) => return true,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return false,
                }
            }
        })
        .await
        .unwrap_or(false);
        if started {
            self.loaded(events, LOAD_PATIENCE).await;
        }
    }

    /// Waits for the page's load event, at most `patience` (a page still
    /// loading then is read as it is).
    async fn loaded(&self, events: &mut broadcast::Receiver<Event>, patience: Duration) {
        let session = self.session.clone();
        let _ = tokio::time::timeout(patience, async {
            loop {
                match events.recv().await {
                    Ok(event) if mine(&event, &session) && is_loaded(&event) => return,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        })
        .await;
    }

    /// The backend node a ref of the last snapshot names.
    fn node(&self, reference: Option<&str>) -> Result<i64, ActionError> {
        let reference = reference.unwrap_or_default();
        if !self.refs.contains(reference) {
            return Err(ActionError::Refused(format!(
                "`{reference}` is not a ref of the page's last snapshot; take a new snapshot"
            )));
        }
        reference[1..]
            .parse()
            .map_err(|_| ActionError::Refused(format!("`{reference}` is not a ref")))
    }

    async fn click(&self, node: i64) -> Result<(), ActionError> {
        self.on_node("DOM.scrollIntoViewIfNeeded", json!({"backendNodeId": node}))
            .await?;
        let Ok(model) = self
            .call("DOM.getBoxModel", json!({"backendNodeId": node}))
            .await
        else {
            // No box (hidden, zero-sized): the element's own click.
            self.call_on(node, "function() { this.click(); }", json!([]))
                .await?;
            return Ok(());
        };
        let quad: Vec<f64> = model["model"]["content"]
            .as_array()
            .map(|q| q.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        if quad.len() < 8 {
            return Err(ActionError::Refused(
                "the element has no place on the page".into(),
            ));
        }
        let x = (quad[0] + quad[2] + quad[4] + quad[6]) / 4.0;
        let y = (quad[1] + quad[3] + quad[5] + quad[7]) / 4.0;
        for (kind, buttons) in [("mouseMoved", 0), ("mousePressed", 1), ("mouseReleased", 0)] {
            let mut event = json!({"type": kind, "x": x, "y": y, "buttons": buttons});
            if kind != "mouseMoved" {
                event["button"] = json!("left");
                event["clickCount"] = json!(1);
            }
            self.call("Input.dispatchMouseEvent", event).await?;
        }
        Ok(())
    }

    async fn type_into(&self, node: i64, text: &str, submit: bool) -> Result<(), ActionError> {
        self.on_node("DOM.focus", json!({"backendNodeId": node}))
            .await?;
        // What the field held is replaced: select it all, then insert.
        self.call_on(
            node,
            "function() { if (typeof this.select === 'function') this.select(); \
             else if (this.isContentEditable) document.execCommand('selectAll'); }",
            json!([]),
        )
        .await?;
        if text.is_empty() {
            self.press(Key::named("Backspace").unwrap_or(Key::ENTER))
                .await?;
        } else {
            self.call("Input.insertText", json!({"text": text})).await?;
        }
        if submit {
            self.press(Key::ENTER).await?;
        }
        Ok(())
    }

    async fn select(&self, node: i64, values: &[String]) -> Result<(), ActionError> {
        let said = self
            .call_on(
                node,
                "function(values) {
                    if (this.tagName !== 'SELECT') return 'the element is not a select element';
                    const wanted = new Set(values);
                    let found = 0;
                    for (const option of this.options) {
                        const hit = wanted.has(option.value) || wanted.has(option.label)
                            || wanted.has(option.text.trim());
                        option.selected = hit && (this.multiple || found === 0);
                        if (hit) found++;
                    }
                    if (!found) return 'no option matches ' + JSON.stringify(values);
                    this.dispatchEvent(new Event('input', {bubbles: true}));
                    this.dispatchEvent(new Event('change', {bubbles: true}));
                    return '';
                }",
                json!([{"value": values}]),
            )
            .await?;
        match said.as_str() {
            Some(why) if !why.is_empty() => Err(ActionError::Refused(why.to_owned())),
            _ => Ok(()),
        }
    }

    async fn press(&self, key: Key) -> Result<(), ActionError> {
        let mut down = json!({"type": if key.text.is_empty() { "rawKeyDown" } else { "keyDown" },
            "key": key.key, "code": key.code, "windowsVirtualKeyCode": key.code_number,
            "nativeVirtualKeyCode": key.code_number});
        if !key.text.is_empty() {
            down["text"] = json!(key.text);
            down["unmodifiedText"] = json!(key.text);
        }
        self.call("Input.dispatchKeyEvent", down).await?;
        self.call(
            "Input.dispatchKeyEvent",
            json!({"type": "keyUp", "key": key.key, "code": key.code,
                   "windowsVirtualKeyCode": key.code_number,
                   "nativeVirtualKeyCode": key.code_number}),
        )
        .await?;
        Ok(())
    }

    async fn back(&mut self) -> Result<(), ActionError> {
        let history = self.call("Page.getNavigationHistory", json!({})).await?;
        let current = history["currentIndex"].as_u64().unwrap_or(0);
        if current == 0 {
            return Err(ActionError::Refused(
                "there is no earlier page to go back to".into(),
            ));
        }
        let entry = &history["entries"][usize::try_from(current - 1).unwrap_or(0)];
        let mut events = self.cdp.events();
        self.call(
            "Page.navigateToHistoryEntry",
            json!({"entryId": entry["id"]}),
        )
        .await?;
        self.loaded(&mut events, LOAD_PATIENCE).await;
        Ok(())
    }

    /// What a new browser needs to go on where this one is.
    pub async fn state(&self) -> Result<Value, CdpError> {
        let cookies = self.cdp.call(None, "Storage.getCookies", json!({})).await?;
        let local = self
            .evaluate(
                "(() => { try { return {origin: location.origin, url: location.href, \
                 items: Object.entries(localStorage)}; } \
                 catch (e) { return {origin: location.origin, url: location.href, items: []}; } })()",
            )
            .await?;
        Ok(json!({
            "url": local["url"],
            "cookies": cookies["cookies"],
            "local_storage": {"origin": local["origin"], "items": local["items"]},
        }))
    }

    /// Puts `state` into this (new) browser: cookies, local storage, and
    /// the page it was on.
    pub async fn restore(&mut self, state: &Value, egress: &Egress, allow_private: bool) {
        let cookies: Vec<Value> = state["cookies"]
            .as_array()
            .map(|c| c.iter().map(cookie_param).collect())
            .unwrap_or_default();
        if !cookies.is_empty() {
            let _ = self
                .cdp
                .call(None, "Storage.setCookies", json!({"cookies": cookies}))
                .await;
        }
        let origin = state["local_storage"]["origin"]
            .as_str()
            .unwrap_or_default();
        let items = &state["local_storage"]["items"];
        let script = match items.as_array() {
            Some(list) if !list.is_empty() && origin.starts_with("http") => {
                let source = format!(
                    "if (location.origin === {}) {{ try {{ for (const [k, v] of {}) \
                     localStorage.setItem(k, v); }} catch (e) {{}} }}",
                    json!(origin),
                    items
                );
                self.call(
                    "Page.addScriptToEvaluateOnNewDocument",
                    json!({"source": source}),
                )
                .await
                .ok()
                .and_then(|added| added["identifier"].as_str().map(str::to_owned))
            }
            _ => None,
        };
        if let Some(url) = state["url"].as_str().filter(|u| u.starts_with("http")) {
            let _ = self.navigate(url, egress, allow_private).await;
        }
        if let Some(identifier) = script {
            let _ = self
                .call(
                    "Page.removeScriptToEvaluateOnNewDocument",
                    json!({"identifier": identifier}),
                )
                .await;
        }
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, CdpError> {
        self.cdp.call(Some(&self.session), method, params).await
    }

    /// A command on a node of the last snapshot: a node gone since is said
    /// to the model.
    async fn on_node(&self, method: &str, params: Value) -> Result<Value, ActionError> {
        self.call(method, params).await.map_err(gone)
    }

    /// Calls `function` with `this` the node, giving its result's value.
    async fn call_on(
        &self,
        node: i64,
        function: &str,
        arguments: Value,
    ) -> Result<Value, ActionError> {
        let resolved = self
            .on_node("DOM.resolveNode", json!({"backendNodeId": node}))
            .await?;
        let object = resolved["object"]["objectId"].as_str().unwrap_or_default();
        let called = self
            .call(
                "Runtime.callFunctionOn",
                json!({"objectId": object, "functionDeclaration": function,
                       "arguments": arguments, "returnByValue": true, "awaitPromise": true}),
            )
            .await
            .map_err(gone)?;
        Ok(called["result"]["value"].clone())
    }

    async fn evaluate(&self, expression: &str) -> Result<Value, CdpError> {
        let evaluated = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
            )
            .await?;
        Ok(evaluated["result"]["value"].clone())
    }
}

/// A command refused about a node means the node is gone; the model is told.
fn gone(error: CdpError) -> ActionError {
    match error {
        CdpError::Refused(_) => {
            ActionError::Refused("the element is no longer on the page; take a new snapshot".into())
        }
        other => ActionError::Browser(other),
    }
}

fn refused(url: &str) -> ActionError {
    ActionError::Refused(format!(
        "refused: the URL {url} {}",
        ssrf::UrlRefusal::NotPublic
    ))
}

fn mine(event: &Event, session: &str) -> bool {
    event.session.as_deref() == Some(session)
}

/// The page is loaded: its load event, or a page restored whole from the
/// back-forward cache (which fires none).
fn is_loaded(event: &Event) -> bool {
    event.method == "Page.loadEventFired"
        || (event.method == "Page.frameNavigated"
            && event.params["type"] == "BackForwardCacheRestore"
            && event.params["frame"]["parentId"].is_null())
}

fn starts_loading(event: &Event) -> bool {
    matches!(
        event.method.as_str(),
        "Page.frameRequestedNavigation" | "Page.frameStartedLoading" | "Page.frameNavigated"
    ) && event.params["frame"]["parentId"].is_null()
        && event.params.get("parentId").is_none_or(Value::is_null)
}

/// A cookie as `Storage.getCookies` gave it, as `Storage.setCookies` takes it.
fn cookie_param(cookie: &Value) -> Value {
    let mut param = serde_json::Map::new();
    // The scheme and port that set it go back too (Chromium binds cookies to
    // them; a restored cookie without them is accepted as well, today).
    for field in [
        "name",
        "value",
        "domain",
        "path",
        "secure",
        "httpOnly",
        "sameSite",
        "sourceScheme",
        "sourcePort",
        "partitionKey",
    ] {
        if let Some(value) = cookie.get(field) {
            param.insert(field.to_owned(), value.clone());
        }
    }
    if cookie["session"] != json!(true)
        && let Some(expires) = cookie["expires"].as_f64().filter(|e| *e > 0.0)
    {
        param.insert("expires".to_owned(), json!(expires));
    }
    Value::Object(param)
}

/// A key as `Input.dispatchKeyEvent` takes it.
#[derive(Clone, Copy)]
struct Key {
    key: &'static str,
    code: &'static str,
    code_number: u32,
    text: &'static str,
}

impl Key {
    const ENTER: Self = Self {
        key: "Enter",
        code: "Enter",
        code_number: 13,
        text: "\r",
    };

    fn named(name: &str) -> Option<Self> {
        const KEYS: &[Key] = &[
            Key::ENTER,
            Key {
                key: "Tab",
                code: "Tab",
                code_number: 9,
                text: "",
            },
            Key {
                key: "Escape",
                code: "Escape",
                code_number: 27,
                text: "",
            },
            Key {
                key: "Backspace",
                code: "Backspace",
                code_number: 8,
                text: "",
            },
            Key {
                key: "Delete",
                code: "Delete",
                code_number: 46,
                text: "",
            },
            Key {
                key: "ArrowUp",
                code: "ArrowUp",
                code_number: 38,
                text: "",
            },
            Key {
                key: "ArrowDown",
                code: "ArrowDown",
                code_number: 40,
                text: "",
            },
            Key {
                key: "ArrowLeft",
                code: "ArrowLeft",
                code_number: 37,
                text: "",
            },
            Key {
                key: "ArrowRight",
                code: "ArrowRight",
                code_number: 39,
                text: "",
            },
            Key {
                key: "Home",
                code: "Home",
                code_number: 36,
                text: "",
            },
            Key {
                key: "End",
                code: "End",
                code_number: 35,
                text: "",
            },
            Key {
                key: "PageUp",
                code: "PageUp",
                code_number: 33,
                text: "",
            },
            Key {
                key: "PageDown",
                code: "PageDown",
                code_number: 34,
                text: "",
            },
            Key {
                key: " ",
                code: "Space",
                code_number: 32,
                text: " ",
            },
        ];
        let wanted = if name.eq_ignore_ascii_case("space") {
            " "
        } else {
            name
        };
        KEYS.iter()
            .find(|k| k.key.eq_ignore_ascii_case(wanted))
            .copied()
            .or_else(|| letter(wanted))
    }
}

/// A single letter or digit, pressed as it is typed.
fn letter(name: &str) -> Option<Key> {
    const LETTERS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let at = LETTERS.find(name).filter(|_| name.len() == 1)?;
    let text = &LETTERS[at..=at];
    let upper = text.to_ascii_uppercase();
    let code_number = u32::from(upper.as_bytes()[0]);
    Some(Key {
        key: text,
        code: "",
        code_number,
        text,
    })
}
