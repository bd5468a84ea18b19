// Starts Redoc on the API schema (templates/drf_spectacular/redoc.html): an external
// script, so the site's Content Security Policy needs no inline script for it.
const container = document.getElementById("redoc-container");
window.Redoc.init(container.dataset.schemaUrl, { hideDownloadButton: false }, container);
