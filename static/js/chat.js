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
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
