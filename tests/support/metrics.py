"""Reading a Prometheus exposition in tests."""

from __future__ import annotations

import re

from tests.support.http import fetch


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of ``name{labels}`` in an exposition, None when absent."""
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(3) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(4))
    return None


def scrape(port: int, token: str | None = None) -> str | None:
    """The exposition at ``http://127.0.0.1:<port>/metrics`` (with the bearer ``token``);
    None while nothing answers there yet."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = fetch(f"http://127.0.0.1:{port}/metrics", headers)
    if response is None:
        return None
    assert response.status == 200, f"/metrics on port {port} answered {response.status}"
    return response.text
