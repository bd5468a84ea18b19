// Live ingestion progress: the server pushes each document's stage and progress as
// server-sent events. A progress change moves the bar in place; a new stage (or the
// end) reloads the row from the server. An event for a row not on the page yet (an
// upload whose answer is still on its way) is kept and applied when the row appears.
// Rows also refresh every 20 s on their own, in case something between the browser and
// the server holds the event stream back.
(function () {
  "use strict";
  function init() {
    const rows = document.getElementById("document-rows");
    if (!rows || !window.EventSource) return;
    const latest = {};

    function apply(row, event) {
      const bar = row.querySelector("progress");
      if (row.dataset.status === event.status) {
        if (bar) { bar.value = event.progress; bar.textContent = event.progress + "%"; }
        return;
      }
      window.htmx.ajax("GET", row.dataset.rowUrl, { target: row, swap: "outerHTML" });
    }

    const source = new EventSource(rows.dataset.eventsUrl);
    source.addEventListener("progress", function (message) {
      const event = JSON.parse(message.data);
      latest[event.document_id] = event;
      const row = document.getElementById("document-" + event.document_id);
      if (row) apply(row, event);
    });
    new MutationObserver(function (changes) {
      changes.forEach(function (change) {
        change.addedNodes.forEach(function (node) {
          const id = node.id && node.id.replace("document-", "");
          if (id && latest[id]) apply(node, latest[id]);
        });
      });
    }).observe(rows, { childList: true });
    window.addEventListener("pagehide", function () { source.close(); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
