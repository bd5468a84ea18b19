// Drag-and-drop upload: each file is sent on its own; its row (with a live progress bar
// that htmx polls) is added to the table as soon as the server has stored the file.
(function () {
  "use strict";
  function init() {
    const form = document.getElementById("upload-form");
    if (!form) return;
    const input = document.getElementById("upload-files");
    const messages = document.getElementById("upload-messages");
    const rows = document.querySelector(form.dataset.rowTarget);
    const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;

    function note(text, isError) {
      const item = document.createElement("li");
      item.textContent = text;
      if (isError) item.className = "error";
      messages.prepend(item);
    }

    async function send(file) {
      const body = new FormData();
      body.append("file", file);
      body.append("collection", document.getElementById("upload-collection").value);
      let response;
      try {
        response = await fetch(form.action, {
          method: "POST", body: body, headers: { "X-CSRFToken": csrf }, credentials: "same-origin",
        });
      } catch (error) {
        note(file.name + ": the upload did not reach the server. Check your connection and try again.", true);
        return;
      }
      const text = await response.text();
      if (!response.ok) {
        note(file.name + ": " + text, true);
        return;
      }
      const holder = document.createElement("tbody");
      holder.innerHTML = text.trim();
      const row = holder.firstElementChild;
      const existing = document.getElementById(row.id);
      if (existing) existing.replaceWith(row); else rows.prepend(row);
      const empty = rows.querySelector("tr.empty");
      if (empty) empty.remove();
      window.htmx.process(row);
      note(file.name + (response.headers.get("X-Duplicate-Of") ? ": already in the knowledge base." : ": uploaded, ingesting…"), false);
    }

    function sendAll(files) { Array.from(files).forEach(send); }

    input.addEventListener("change", function () { sendAll(input.files); input.value = ""; });
    ["dragenter", "dragover"].forEach(function (name) {
      form.addEventListener(name, function (event) { event.preventDefault(); form.classList.add("dragging"); });
    });
    ["dragleave", "drop"].forEach(function (name) {
      form.addEventListener(name, function (event) { event.preventDefault(); form.classList.remove("dragging"); });
    });
    form.addEventListener("drop", function (event) { sendAll(event.dataTransfer.files); });
    form.addEventListener("submit", function (event) { event.preventDefault(); sendAll(input.files); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
