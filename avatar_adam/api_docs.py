"""The API's documentation pages (Swagger UI and Redoc, self-hosted by
drf-spectacular-sidecar) under the site's strict Content Security Policy.

- Swagger UI: the split view serves its initialiser as a script of our origin.
- Redoc: started by static/js/redoc-init.js; it writes its styles into style elements as
  it renders, runs its search in a worker made from a blob and shows its maker's logo
  from cdn.redoc.ly, so its page alone allows inline styles, blob workers and that one
  image origin (never inline or foreign scripts).
- A person who is not signed in is sent to the sign-in page and back, not shown a bare
  401; a client with credentials (a token or an API key) is served as before.
"""

from __future__ import annotations

from typing import Any

from csp.decorators import csp_update
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView


def _signed_out_person(request: HttpRequest) -> bool:
    return not request.user.is_authenticated and not (
        request.headers.get("Authorization") or request.headers.get("X-API-Key")
    )


class _ToSignIn:
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if _signed_out_person(request) and "script" not in request.GET:
            return redirect_to_login(request.get_full_path())
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]


class SwaggerDocs(_ToSignIn, SpectacularSwaggerSplitView):
    pass


@method_decorator(
    csp_update(
        {
            "style-src": ["'unsafe-inline'"],
            "worker-src": ["'self'", "blob:"],
            "img-src": ["https://cdn.redoc.ly"],  # the "powered by" badge's logo
        }
    ),
    name="dispatch",
)
class RedocDocs(_ToSignIn, SpectacularRedocView):
    pass
