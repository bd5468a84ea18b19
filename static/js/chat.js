// The chat page: send with Enter, stream each reply over server-sent events, and keep the
// composer disabled while a reply is being written. The server replays a reply from its
// start, so after a reload (or a dropped connection) the text is rebuilt, never doubled.
(function () {
  "use strict";

  function composer() { return document.getElementById("composer"); }

  function setBusy(busy) {
    const form = composer();
    if (!form) return;
    form.querySelectorAll("textarea, button").forEach(function (el) { el.disabled = busy; });
    form.setAttribute("aria-busy", busy ? "true" : "false");
    if (!busy) { const box = form.querySelector("textarea"); if (box) box.focus(); }
  }

  function connect(item) {
    if (item.dataset.connected) return;
    item.dataset.connected = "1";
    setBusy(true);
    const text = item.querySelector(".text");
    const source = new EventSource(item.dataset.streamUrl);
    // Why a reply is slow to start, or that live streaming is unavailable (it still comes).
    function showStatus(message) {
      let note = item.querySelector(".reply-status");
      if (!note) {
        note = document.createElement("p");
        note.className = "reply-status small";
        note.setAttribute("role", "status");
        item.appendChild(note);
      }
      note.textContent = message;
    }
    source.addEventListener("start", function () { text.textContent = ""; });
    source.addEventListener("status", function (event) { showStatus(JSON.parse(event.data).text); });
    source.addEventListener("token", function (event) {
      const note = item.querySelector(".reply-status");
      if (note) note.remove();
      text.textContent += JSON.parse(event.data).text;
    });
    function finish(event) {
      source.close();
      const data = JSON.parse(event.data);
      item.outerHTML = data.html;
      setBusy(false);
      if (data.ended) window.location.reload();
    }
    source.addEventListener("done", finish);
    source.addEventListener("failed", finish);
  }

  function connectAll(root) {
    (root || document).querySelectorAll("li.message.streaming[data-stream-url]").forEach(connect);
  }

  function init() {
    connectAll(document);
    document.body.addEventListener("htmx:afterSwap", function (event) { connectAll(event.detail.target); });
    document.body.addEventListener("htmx:afterRequest", function (event) {
      const form = composer();
      if (!form || event.detail.elt !== form) return;
      const error = document.getElementById("composer-error");
      if (event.detail.successful) {
        form.querySelector("textarea").value = "";
        if (error) { error.textContent = ""; error.className = ""; }
      } else if (error) {
        error.textContent = event.detail.xhr.responseText
          ? new DOMParser().parseFromString(event.detail.xhr.responseText, "text/html").body.textContent.trim()
          : "The message could not be sent. Check your connection and try again.";
        error.className = "error";
        setBusy(false);
      }
    });
    const form = composer();
    if (form) {
      form.addEventListener("htmx:beforeRequest", function () { setBusy(true); });
      form.querySelector("textarea").addEventListener("keydown", function (event) {
        if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
          event.preventDefault();
          if (this.value.trim()) form.requestSubmit();
        }
      });
    }
  }
  // The time left, counted down every second from the session's deadline; a warning two
  // minutes before the end (shown and announced once); at the end the page reloads to
  // show the session as the server ended it.
  function startTimer() {
    const timer = document.querySelector(".session-timer[data-expires-at]");
    if (!timer) return;
    const deadline = Date.parse(timer.dataset.expiresAt);
    const shown = timer.querySelector(".time-left");
    const announce = document.getElementById("timer-announcement");
    let warned = false;
    let reloading = false;
    let hadTime = false; // so the page reloads only if the time ran out while it was open
    function tick() {
      const left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
      if (left > 0) hadTime = true;
      shown.textContent = Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0");
      if (left <= 120 && !warned) {
        warned = true;
        timer.classList.add("warning");
        if (announce && left > 0) announce.textContent = "Two minutes left in this session.";
      }
      if (left === 0 && hadTime && !reloading) {
        reloading = true;
        if (announce) announce.textContent = "Time is up: the session ends now.";
        window.setTimeout(function () { window.location.reload(); }, 3000);
      }
    }
    tick();
    window.setInterval(tick, 1000);
  }

  // Forms that end something ask first (data-confirm holds the question).
  function confirmForms() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    });
  }

  function start() { init(); startTimer(); confirmForms(); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
