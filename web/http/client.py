"""Who is asking: the client's address, believed from X-Forwarded-For only behind TRUSTED_PROXIES."""

from __future__ import annotations

import os


def client_address(request, trusted: frozenset[str]) -> str:
    """The caller's IP; behind a trusted reverse proxy, the last address in X-Forwarded-For it did not add."""
    peer = getattr(getattr(request, "client", None), "host", None) or "-"
    if peer not in trusted:
        return peer
    headers = getattr(request, "headers", None) or {}
    hops = [h.strip() for h in (headers.get("x-forwarded-for") or "").split(",") if h.strip()]
    for hop in reversed(hops):
        if hop not in trusted:
            return hop
    return peer


def person(request, trusted: frozenset[str]) -> str:
    """Whom the per-person limits count this request for, as web.http.doors.Doors named it (the user, else the
    browser, else the address); the address where Doors did not run (a request built by hand)."""
    inner = getattr(request, "request", None) or request  # gr.Request wraps Starlette's
    scope = getattr(inner, "scope", None)
    state = scope.get("state") if isinstance(scope, dict) else None
    if isinstance(state, dict) and state.get("person"):
        return state["person"]
    return client_address(request, trusted)


def trust_no_proxy_headers() -> None:
    """uvicorn (under Gradio) rewrites the client address from X-Forwarded-For for any peer on 127.0.0.1 before
    the app sees the request: a local process could then pose as any client. Switch that off (before launch);
    HostGuard and client_address believe these headers from TRUSTED_PROXIES only."""
    os.environ["FORWARDED_ALLOW_IPS"] = ""
