// mfa-auditor's pages work without this script; it only enhances them.
"use strict";

// Search as you type (the user search, /users?q=): on the search page, typing in the header's
// search box fetches /users?q=… after a short pause and swaps the results in place. The server
// renders (and escapes) the results; they are parsed with DOMParser and imported as nodes,
// never assigned as innerHTML. Without this script the form is a plain GET.
(function () {
  var DEBOUNCE_MS = 200;
  var input = document.getElementById("q");
  var form = input && input.form;
  if (!input || !form || !document.getElementById("search-results")) {
    return;
  }
  var timer = null;
  var controller = null;
  var shown = input.value.trim();

  function swap(q) {
    if (controller) {
      controller.abort();
    }
    controller = typeof AbortController === "function" ? new AbortController() : null;
    // The page's tenant (a hidden field of the form when the daemon audits several) goes too.
    var params = new URLSearchParams();
    var tenant = form.elements.namedItem("tenant");
    if (tenant && tenant.value) {
      params.set("tenant", tenant.value);
    }
    if (q) {
      params.set("q", q);
    }
    var query = params.toString();
    var url = "/users" + (query ? "?" + query : "");
    fetch(url, {
      headers: { Accept: "text/html" },
      credentials: "same-origin",
      signal: controller ? controller.signal : undefined
    })
      .then(function (r) {
        if (!r.ok) {
          throw new Error("search answered " + r.status);
        }
        return r.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("search-results");
        var current = document.getElementById("search-results");
        if (!fresh || !current) {
          return;
        }
        // Replace the region's children, not the region: it is the aria-live one.
        var nodes = Array.prototype.map.call(fresh.childNodes, function (n) {
          return document.importNode(n, true);
        });
        current.replaceChildren.apply(current, nodes);
        if (doc.title) {
          document.title = doc.title;
        }
        shown = q;
        if (window.history && history.replaceState) {
          history.replaceState(null, "", url);
        }
      })
      .catch(function (e) {
        if (e && e.name === "AbortError") {
          return;
        }
        // The form still works: pressing Find loads the page.
        if (window.console) {
          console.warn("search as you type:", e);
        }
      });
  }

  input.addEventListener("input", function () {
    if (timer) {
      clearTimeout(timer);
    }
    timer = setTimeout(function () {
      timer = null;
      var q = input.value.trim();
      if (q !== shown) {
        swap(q);
      }
    }, DEBOUNCE_MS);
  });
})();
