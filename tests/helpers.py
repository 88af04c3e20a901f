"""Helpers shared by test modules (not fixtures)."""
from __future__ import annotations

import re

from sqlalchemy import func, select

CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
DEMO_PASSWORD = "demo-2026"


def csrf(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no csrf_token on the page"
    return match.group(1)


def client_for(app, username: str, password: str = DEMO_PASSWORD, expect: int = 302):
    """A new test client, logged in as ``username``."""
    client = app.test_client()
    page = client.get("/auth/login")
    response = client.post("/auth/login", data={"csrf_token": csrf(page.get_data(as_text=True)),
                                                "username": username, "password": password})
    assert response.status_code == expect, f"login as {username}: {response.status_code}"
    return client


def csrf_token(client, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    match = CSRF_RE.search(html)
    assert match, f"no csrf_token on {path}"
    return match.group(1)


def login(client, username: str, password: str = DEMO_PASSWORD):
    token = csrf_token(client, "/auth/login")
    response = client.post("/auth/login", data={"csrf_token": token, "username": username, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return response


def row_counts(db, *models) -> dict[str, int]:
    return {m.__name__: db.session.scalar(select(func.count()).select_from(m)) for m in models}
