//! A real browser for the helpdesk pages' end-to-end tests: Debian's headless Chromium driven over
//! the DevTools protocol (chromiumoxide), with what the tests assert on: every console error,
//! uncaught exception, CSP violation and failed request a page caused; text and attributes by CSS
//! selector; typing and clicking; JavaScript off; the layout at 1366 px; the print stylesheet;
//! full-page screenshots.
//!
//! One browser and one tab serve a whole test (launching costs a second or two); [`Browser::close`]
//! ends the browser and the task driving its connection.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chromiumoxide::browser::{Browser as Chromium, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::emulation::SetScriptExecutionDisabledParams;
use chromiumoxide::cdp::browser_protocol::input::InsertTextParams;
use chromiumoxide::cdp::browser_protocol::log::{EventEntryAdded, LogEntryLevel};
use chromiumoxide::cdp::browser_protocol::network::EventLoadingFailed;
use chromiumoxide::cdp::js_protocol::runtime::{
    ConsoleApiCalledType, EventConsoleApiCalled, EventExceptionThrown,
};
use chromiumoxide::handler::viewport::Viewport;
use chromiumoxide::page::{MediaTypeParams, ScreenshotParams};
use chromiumoxide::Page;
use futures::StreamExt;
use serde_json::Value;

/// The window every page must fit.
pub const WIDTH: u32 = 1366;
pub const HEIGHT: u32 = 768;

/// Debian's Chromium on the PATH, if installed. `None` (after saying so) lets a test skip when
/// it is missing outside CI; under CI=true a missing Chromium fails: scripts/test installs it.
pub fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("chromium"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is missing: scripts/test installs Debian's chromium"
        );
        eprintln!(
            "SKIPPING the browser test: chromium is not installed (apt-get install chromium)"
        );
    }
    found
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// What a page did wrong, as the browser reported it.
type Problems = Arc<Mutex<Vec<String>>>;

/// A headless Chromium with one tab; everything a page logs as an error is collected.
pub struct Browser {
    browser: Chromium,
    handler: tokio::task::JoinHandle<()>,
    listeners: Vec<tokio::task::JoinHandle<()>>,
    pub page: Page,
    problems: Problems,
    /// The document last opened: its own HTTP status is not a "failed request".
    current: Arc<Mutex<String>>,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Launches `chromium` headless, 1366×768, with a throwaway profile.
    pub async fn launch(chromium: &Path) -> Browser {
        let profile = tempfile::tempdir().expect("a profile directory");
        let mut config = BrowserConfig::builder()
            .chrome_executable(chromium)
            .new_headless_mode()
            .user_data_dir(profile.path())
            .window_size(WIDTH, HEIGHT)
            .viewport(Viewport {
                width: WIDTH,
                height: HEIGHT,
                device_scale_factor: Some(1.0),
                emulating_mobile: false,
                is_landscape: true,
                has_touch: false,
            })
            .launch_timeout(Duration::from_secs(30))
            .request_timeout(Duration::from_secs(30))
            .args(["--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]);
        if running_as_root() {
            // Chromium's sandbox refuses to run as root; anyone else keeps it.
            config = config.no_sandbox();
        }
        let (browser, mut handler) = Chromium::launch(config.build().expect("a browser config"))
            .await
            .expect("chromium starts");
        let handler = tokio::spawn(async move {
            while let Some(event) = handler.next().await {
                if event.is_err() {
                    // A message the crate does not know is no reason to stop driving the browser.
                    continue;
                }
            }
        });
        let page = browser.new_page("about:blank").await.expect("a tab");
        page.enable_log().await.expect("Log.enable");
        page.enable_runtime().await.expect("Runtime.enable");
        let problems: Problems = Arc::default();
        let current = Arc::new(Mutex::new(String::new()));
        let mut listeners = Vec::new();

        let mut console = page
            .event_listener::<EventConsoleApiCalled>()
            .await
            .expect("console events");
        let sink = problems.clone();
        listeners.push(tokio::spawn(async move {
            while let Some(e) = console.next().await {
                if matches!(
                    e.r#type,
                    ConsoleApiCalledType::Error | ConsoleApiCalledType::Assert
                ) {
                    let args: Vec<String> = e
                        .args
                        .iter()
                        .map(|a| {
                            a.value
                                .as_ref()
                                .map(|v| v.to_string())
                                .or_else(|| a.description.clone())
                                .unwrap_or_default()
                        })
                        .collect();
                    push(&sink, format!("console.error: {}", args.join(" ")));
                }
            }
        }));
        let mut thrown = page
            .event_listener::<EventExceptionThrown>()
            .await
            .expect("exception events");
        let sink = problems.clone();
        listeners.push(tokio::spawn(async move {
            while let Some(e) = thrown.next().await {
                let d = &e.exception_details;
                let what = d
                    .exception
                    .as_ref()
                    .and_then(|x| x.description.clone())
                    .unwrap_or_else(|| d.text.clone());
                push(
                    &sink,
                    format!(
                        "uncaught exception: {what} at {}:{}",
                        d.url.clone().unwrap_or_default(),
                        d.line_number
                    ),
                );
            }
        }));
        let mut log = page
            .event_listener::<EventEntryAdded>()
            .await
            .expect("log events");
        let sink = problems.clone();
        let doc = current.clone();
        listeners.push(tokio::spawn(async move {
            while let Some(e) = log.next().await {
                let entry = &e.entry;
                if entry.level != LogEntryLevel::Error {
                    continue;
                }
                let url = entry.url.clone().unwrap_or_default();
                // "Failed to load resource: 404" for the document itself: a 404 page is meant.
                let own = !url.is_empty() && url == *doc.lock().unwrap_or_else(|e| e.into_inner());
                let network = format!("{:?}", entry.source)
                    .to_lowercase()
                    .contains("network");
                if own && network {
                    continue;
                }
                push(
                    &sink,
                    format!("log {:?}: {} {url}", entry.source, entry.text),
                );
            }
        }));
        let mut failed = page
            .event_listener::<EventLoadingFailed>()
            .await
            .expect("network events");
        let sink = problems.clone();
        listeners.push(tokio::spawn(async move {
            while let Some(e) = failed.next().await {
                if e.canceled == Some(true) {
                    continue;
                }
                let blocked = e
                    .blocked_reason
                    .as_ref()
                    .map(|r| format!(" (blocked: {r:?})"))
                    .unwrap_or_default();
                push(
                    &sink,
                    format!("request failed: {:?} {}{blocked}", e.r#type, e.error_text),
                );
            }
        }));

        Browser {
            browser,
            handler,
            listeners,
            page,
            problems,
            current,
            _profile: profile,
        }
    }

    /// Opens `url` and waits for its `load` event; returns the document's HTTP status.
    pub async fn open(&self, url: &str) -> u16 {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = url.to_string();
        self.page
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
        self.settle().await;
        self.status().await
    }

    /// The HTTP status of the document shown (0 when the browser does not say).
    pub async fn status(&self) -> u16 {
        self.json("performance.getEntriesByType('navigation')[0]?.responseStatus ?? 0")
            .await
            .as_u64()
            .unwrap_or(0) as u16
    }

    /// The document's URL.
    pub async fn url(&self) -> String {
        self.json("location.href")
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Waits until the document has loaded and the events it caused have arrived.
    async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.json("document.readyState").await == "complete" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    /// Every error reported since the last call (console, exceptions, CSP, failed requests).
    pub async fn take_problems(&self) -> Vec<String> {
        tokio::time::sleep(Duration::from_millis(100)).await;
        std::mem::take(&mut *self.problems.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Panics, naming `what` and the errors, unless the page reported none.
    pub async fn assert_clean(&self, what: &str) {
        let problems = self.take_problems().await;
        assert!(
            problems.is_empty(),
            "{what}: the browser reported {problems:#?}"
        );
    }

    /// The value of a JavaScript expression, as JSON (`null` when it has none).
    pub async fn json(&self, expression: &str) -> Value {
        let wrapped = format!("JSON.stringify(({expression}) ?? null)");
        // While a document replaces another its context is gone for a moment: try again.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let tried = tokio::time::timeout(
                Duration::from_secs(10),
                self.page.evaluate_expression(wrapped.clone()),
            )
            .await;
            match tried {
                Ok(Ok(result)) => {
                    let text: String = result.into_value().unwrap_or_default();
                    return serde_json::from_str(&text).unwrap_or(Value::Null);
                }
                Ok(Err(e)) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(Err(e)) => panic!("evaluating {expression}: {e}"),
                Err(_) => panic!("evaluating {expression}: no answer in 10 s"),
            }
        }
    }

    /// The `textContent` (trimmed) of the first element matching `selector`, if any.
    pub async fn text(&self, selector: &str) -> Option<String> {
        self.json(&format!(
            "document.querySelector({})?.textContent?.trim()",
            js(selector)
        ))
        .await
        .as_str()
        .map(str::to_string)
    }

    /// The trimmed `textContent` of every element matching `selector`.
    pub async fn texts(&self, selector: &str) -> Vec<String> {
        strings(
            self.json(&format!(
                "[...document.querySelectorAll({})].map(e => e.textContent.trim())",
                js(selector)
            ))
            .await,
        )
    }

    /// Attribute `name` of the first element matching `selector`.
    pub async fn attr(&self, selector: &str, name: &str) -> Option<String> {
        self.json(&format!(
            "document.querySelector({})?.getAttribute({})",
            js(selector),
            js(name)
        ))
        .await
        .as_str()
        .map(str::to_string)
    }

    /// Attribute `name` of every element matching `selector` (those without it left out).
    pub async fn attrs(&self, selector: &str, name: &str) -> Vec<String> {
        strings(
            self.json(&format!(
                "[...document.querySelectorAll({})].map(e => e.getAttribute({})).filter(v => v !== null)",
                js(selector),
                js(name)
            ))
            .await,
        )
    }

    /// How many elements match `selector`.
    pub async fn count(&self, selector: &str) -> usize {
        self.json(&format!(
            "document.querySelectorAll({}).length",
            js(selector)
        ))
        .await
        .as_u64()
        .unwrap_or(0) as usize
    }

    /// Waits (up to 10 s) until `selector` matches something; false if it never did.
    pub async fn wait_for(&self, selector: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.count(selector).await > 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Types `text` into the input `selector` (after emptying and focusing it), as keystrokes.
    pub async fn type_into(&self, selector: &str, text: &str) {
        let focused = self
            .json(&format!(
                "(() => {{ const e = document.querySelector({}); if (!e) return false; \
                 e.value = ''; e.focus(); return document.activeElement === e; }})()",
                js(selector)
            ))
            .await;
        assert_eq!(
            focused, true,
            "{selector} is on the page and takes the focus"
        );
        let input = self
            .page
            .find_element(selector)
            .await
            .unwrap_or_else(|e| panic!("{selector}: {e}"));
        for c in text.chars() {
            if c.is_ascii() {
                input
                    .type_str(c.to_string())
                    .await
                    .unwrap_or_else(|e| panic!("typing {c:?} into {selector}: {e}"));
            } else {
                // No key on the crate's US keyboard: entered as an input method would.
                self.page
                    .execute(InsertTextParams::new(c.to_string()))
                    .await
                    .unwrap_or_else(|e| panic!("entering {c:?} into {selector}: {e}"));
            }
        }
    }

    /// Presses Enter in `selector` and waits until the document's URL contains `expect` and
    /// has loaded.
    pub async fn submit(&self, selector: &str, expect: &str) {
        self.page
            .find_element(selector)
            .await
            .unwrap_or_else(|e| panic!("{selector}: {e}"))
            .press_key("Enter")
            .await
            .unwrap_or_else(|e| panic!("pressing Enter in {selector}: {e}"));
        self.wait_for_url(expect).await;
    }

    /// Clicks the first element matching `selector` (a DOM click, which follows a link or
    /// submits a form with JavaScript off too) and waits until the URL contains `expect`.
    pub async fn click(&self, selector: &str, expect: &str) {
        let found = self
            .json(&format!(
                "(() => {{ const e = document.querySelector({}); if (!e) return false; \
                 e.click(); return true; }})()",
                js(selector)
            ))
            .await;
        assert_eq!(found, true, "{selector} is on the page");
        self.wait_for_url(expect).await;
    }

    async fn wait_for_url(&self, expect: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let url = self.url().await;

            if url.contains(expect) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the page went to {url}, not {expect}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = self.url().await;
        self.settle().await;
    }

    /// Turns the page's JavaScript off (`true`) or on again; applies to what is opened next.
    pub async fn disable_javascript(&self, off: bool) {
        self.page
            .execute(SetScriptExecutionDisabledParams::new(off))
            .await
            .expect("Emulation.setScriptExecutionDisabled");
    }

    /// Whether the page's own scripts run (false with JavaScript off). HTML's parser reads a
    /// `<noscript>`'s content as text when scripting is on and as elements when it is off.
    pub async fn scripts_run(&self) -> bool {
        self.json(
            "(() => { const d = document.createElement('div'); \
             d.innerHTML = '<noscript><p></p></noscript>'; \
             return d.querySelector('noscript p') === null; })()",
        )
        .await
            == Value::Bool(true)
    }

    /// The document's width and the window's (the page fits when the first is at most the second).
    pub async fn widths(&self) -> (u64, u64) {
        let v = self
            .json("[document.documentElement.scrollWidth, window.innerWidth]")
            .await;
        (
            v[0].as_u64().unwrap_or(u64::MAX),
            v[1].as_u64().unwrap_or(0),
        )
    }

    /// Panics unless the page fits the window's width (no horizontal scrolling).
    pub async fn assert_fits(&self, what: &str) {
        let (scroll, inner) = self.widths().await;
        assert!(
            scroll <= inner,
            "{what}: {scroll} px wide in a {inner} px window (wider than the screen)"
        );
    }

    /// Renders with the print stylesheet (`true`) or the screen's again.
    pub async fn print_media(&self, on: bool) {
        let media = if on {
            MediaTypeParams::Print
        } else {
            MediaTypeParams::Null
        };
        self.page
            .emulate_media_type(media)
            .await
            .expect("Emulation.setEmulatedMedia");
    }

    /// Whether every element matching `selector` is hidden (`display: none` or in a hidden
    /// ancestor) and at least one matches.
    pub async fn hidden(&self, selector: &str) -> bool {
        self.json(&format!(
            "(() => {{ const all = [...document.querySelectorAll({})]; \
             return all.length > 0 && all.every(e => e.getClientRects().length === 0); }})()",
            js(selector)
        ))
        .await
            == Value::Bool(true)
    }

    /// A PNG of the whole page (not only the window) at `path`, its directory made if missing.
    pub async fn screenshot(&self, path: &Path) {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("the screenshot's directory");
        }
        self.page
            .save_screenshot(ScreenshotParams::builder().full_page(true).build(), path)
            .await
            .unwrap_or_else(|e| panic!("screenshot {}: {e}", path.display()));
    }

    /// Closes the browser, waits for its process, and ends the tasks that listened to it.
    pub async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.browser.wait()).await;
        for l in &self.listeners {
            l.abort();
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.handler).await;
        self.handler.abort();
    }
}

fn push(sink: &Problems, problem: String) {
    sink.lock().unwrap_or_else(|e| e.into_inner()).push(problem);
}

/// `s` as a JavaScript string literal.
pub fn js(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

fn strings(v: Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| x.to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}
