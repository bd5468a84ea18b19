// The recovery codes page: "Copy the codes" puts them on the clipboard, one a line (the
// button shows only where the browser allows it); the download link needs no script.
(function () {
  "use strict";
  function init() {
    const button = document.getElementById("copy-codes");
    const status = document.getElementById("copy-status");
    if (!button || !navigator.clipboard) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      const codes = Array.from(document.querySelectorAll("#recovery-codes code"), function (c) {
        return c.textContent.trim();
      });
      navigator.clipboard.writeText(codes.join("\n") + "\n").then(
        function () { status.textContent = "Copied " + codes.length + " codes."; },
        function () { status.textContent = "The browser did not allow copying: select the codes and copy them, or download them."; }
      );
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
