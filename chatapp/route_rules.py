"""The front door's table of routes: each (method, path) of the app → who may call it (`Access`)."""

from __future__ import annotations

from chatapp.gradio_compat import Access, gradio_routes, route_pattern

# The light streaming route for API clients (chatapp.api_stream), beside Gradio's queue.
API_CHAT = "/api/chat"
# This app's own routes (server.py); every Gradio route is in `gradio_compat`.
OWN_ROUTES = {
    ("GET", "/healthz"): Access.OPEN,
    ("GET", "/readyz"): Access.OPEN,
    ("GET", "/media/{conversation_id}/{image_id}"): Access.CALLER,
    ("POST", API_CHAT): Access.CALLER,  # the light streaming route (chatapp.api_stream); it checks the rest
}
# Health checks (Google's and the kubelet's) carry no credentials in any mode.
HEALTH_PATHS = frozenset({"/healthz", "/readyz"})


class RouteTable:
    """(method, path) → the route's rule and the values of its path parameters; None for an unknown route."""

    def __init__(self, routes: dict[tuple[str, str], Access]) -> None:
        self.routes = routes
        self._exact = {key: (access, path) for key, access in routes.items() if "{" not in (path := key[1])}
        self._patterns = [(m, route_pattern(p), p, a) for (m, p), a in routes.items() if "{" in p]

    def lookup(self, method: str, path: str) -> tuple[Access, str, dict[str, str]] | None:
        for candidate in (method, "GET") if method == "HEAD" else (method,):
            if (found := self._exact.get((candidate, path))) is not None:
                return found[0], found[1], {}
            for route_method, pattern, template, access in self._patterns:
                if route_method == candidate and (match := pattern.match(path)):
                    return access, template, match.groupdict()
        return None


def route_table() -> RouteTable:
    """Every route the app serves: Gradio's (`chatapp.gradio_compat`) and its own."""
    return RouteTable({**gradio_routes(), **OWN_ROUTES})
