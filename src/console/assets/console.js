// channel-bridge console: live updates over the event stream, keyboard navigation, the
// reply box's helpers. No framework, no inline handlers (the CSP allows none). Markup
// only ever comes from this server's own pages, which escape everything; text from
// events is written with textContent.
"use strict";

(function () {
  // Replaces an element with the same one from a fresh copy of this page.
  function refresh(selector, then) {
    fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        const fresh = new DOMParser().parseFromString(html, "text/html").querySelector(selector);
        const here = document.querySelector(selector);
        if (fresh && here) { here.replaceWith(fresh); if (then) then(fresh); }
      })
      .catch(function () {});
  }

  function announce(text) {
    const live = document.getElementById("live");
    if (!live) return;
    live.textContent = text;
    setTimeout(function () { live.textContent = ""; }, 4000);
  }

  // Inbox: rows (the server marks them unread and waiting on us), j/k/Enter/r.
  function inbox() {
    const table = document.getElementById("inbox");
    if (!table) return;
    let selected = -1;
    function rows() { return Array.from(document.querySelectorAll("#rows tr.row")); }
    function select(i) {
      const all = rows();
      if (!all.length) return;
      selected = Math.max(0, Math.min(all.length - 1, i));
      all.forEach(function (r, n) { r.classList.toggle("selected", n === selected); });
      all[selected].scrollIntoView({ block: "nearest" });
    }
    document.addEventListener("click", function (e) {
      const row = e.target.closest && e.target.closest("tr.row");
      if (row && !e.target.closest("a")) location.href = row.dataset.href;
    });
    document.addEventListener("keydown", function (e) {
      if (e.target.closest("input, textarea, select") || e.metaKey || e.ctrlKey || e.altKey) return;
      const all = rows();
      if (e.key === "j") select(selected + 1);
      else if (e.key === "k") select(selected - 1);
      else if ((e.key === "Enter" || e.key === "r") && all[selected]) {
        // The fragment names the textarea itself: Chromium clears the focus after a
        // fragment navigation whose target cannot take it, so the target must be it.
        location.href = all[selected].dataset.href + (e.key === "r" ? "#reply-text" : "");
      }
    });
    return function onEvent(event) {
      if (/^(message|conversation|comment|ticket)\./.test(event.kind)) {
        const selectedId = selected >= 0 && rows()[selected] ? rows()[selected].dataset.id : null;
        const before = new Set(rows().map(function (r) { return r.dataset.id + ":" + r.dataset.last; }));
        refresh("#rows", function () {
          rows().forEach(function (r, n) {
            if (!before.has(r.dataset.id + ":" + r.dataset.last)) r.classList.add("fresh");
            if (r.dataset.id === selectedId) { selected = n; r.classList.add("selected"); }
          });
        });
        if (event.kind === "message.created" && event.data && event.data.preview) {
          announce((event.data.contact_name || "Someone") + ": " + event.data.preview);
        }
      }
    };
  }

  // Conversation: reply-to picker, conditional status, r to reply. Opening it (and each
  // refresh of its thread) marks it read on the server.
  function conversation() {
    const root = document.querySelector("[data-live=conversation]");
    if (!root) return;
    const id = root.dataset.conversation;
    const text = document.getElementById("reply-text");
    const replyTo = document.getElementById("reply-to");
    document.addEventListener("click", function (e) {
      const link = e.target.closest && e.target.closest("a.reply-to");
      if (link && replyTo) {
        e.preventDefault();
        replyTo.value = link.dataset.replyTo;
        text.focus();
      }
    });
    document.addEventListener("keydown", function (e) {
      if (e.key === "r" && !e.target.closest("input, textarea, select") && text) {
        e.preventDefault();
        text.focus();
      }
    });
    if (location.hash === "#reply-text" && text) text.focus();
    const status = document.getElementById("reply-status");
    const form = document.getElementById("reply-form");
    const hint = document.getElementById("reply-hint");
    function showRequired() {
      const chosen = status ? status.value : "";
      document.querySelectorAll("fieldset.requires").forEach(function (f) {
        f.hidden = f.dataset.status !== chosen;
      });
    }
    if (status) status.addEventListener("change", showRequired);
    if (form) form.addEventListener("submit", function (e) {
      // A conditional status asks for its properties before anything is sent.
      const open = Array.from(document.querySelectorAll("fieldset.requires")).find(function (f) { return !f.hidden; });
      if (!open) return;
      const missing = Array.from(open.querySelectorAll("input[data-required]")).filter(function (i) { return !i.value.trim(); });
      if (missing.length) {
        e.preventDefault();
        open.classList.add("asking");
        hint.hidden = false;
        hint.textContent = "Status " + open.dataset.status + " needs: " +
          missing.map(function (i) { return i.name.replace(/^prop\./, ""); }).join(", ") + ".";
        missing[0].focus();
      }
    });
    // A chosen file is uploaded at once (same origin, the session's CSRF token in a
    // header); the reply then carries its URL in the hidden attach_* fields.
    const file = document.getElementById("attach-file");
    const shown = document.getElementById("attach-status");
    if (file && form && shown) file.addEventListener("change", function () {
      const chosen = file.files && file.files[0];
      const fields = ["attach-url", "attach-type", "attach-name", "attach-mime"].map(function (n) { return document.getElementById(n); });
      fields.forEach(function (f) { f.value = ""; });
      delete shown.dataset.state;
      shown.textContent = "";
      if (!chosen) return;
      const send = form.querySelector("button[type=submit]");
      if (send) send.disabled = true;
      shown.textContent = "Uploading " + chosen.name + "…";
      fetch(file.dataset.upload + "?filename=" + encodeURIComponent(chosen.name), {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": chosen.type || "application/octet-stream", "X-CSRF-Token": form.elements._csrf.value },
        body: chosen
      })
        .then(function (r) { return r.json().then(function (b) { return r.ok ? b : Promise.reject(b); }); })
        .then(function (b) {
          fields[0].value = b.url;
          fields[1].value = b.part_type;
          fields[2].value = b.filename || chosen.name;
          fields[3].value = b.content_type;
          shown.textContent = "Attached: " + fields[2].value + " (" + b.size_bytes + " bytes, as " + b.part_type + ")";
          shown.dataset.state = "attached";
        }, function (b) {
          shown.textContent = "Not attached: " + ((b && b.error && b.error.message) || "the upload failed");
          shown.dataset.state = "refused";
        })
        .finally(function () { if (send) send.disabled = false; });
    });
    return function onEvent(event) {
      if (event.conversation_id === id) {
        refresh("#thread");
      }
    };
  }

  function start() {
    const handlers = [inbox(), conversation()].filter(Boolean);
    if (!handlers.length || !window.EventSource) return;
    // From the newest event before the page read its data: what happened while it loaded
    // arrives too (a reply's delivery can turn sent before the stream connects).
    const after = document.body.dataset.eventsAfter;
    const source = new EventSource("/console/events" +
      (after ? "?last_event_id=" + encodeURIComponent(after) : ""));
    ["message.created", "conversation.assigned", "conversation.status_changed", "ticket.status_changed",
     "delivery.updated", "comment.created", "comment.mentioned", "conversation.contact_merged"].forEach(function (kind) {
      source.addEventListener(kind, function (e) {
        let event;
        try { event = JSON.parse(e.data); } catch (_) { return; }
        handlers.forEach(function (h) { h(event); });
      });
    });
    // Connected once the stream answers: events from then on reach this page.
    source.addEventListener("open", function () { document.documentElement.dataset.live = "connected"; });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
