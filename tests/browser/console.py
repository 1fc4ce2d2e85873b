"""What a page reports going wrong: console errors, uncaught exceptions, and same-origin
requests that failed or answered HTTP 400 or more (a missing script, stylesheet or icon)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

#: A request the page itself cancelled (a newer preview replaced it, or it navigated away).
ABORTED = "net::ERR_ABORTED"


@dataclass
class Problems:
    origin: str
    seen: list[str] = field(default_factory=list)

    def watch(self, page: Any) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self._add(page, f"uncaught: {error}"))
        page.on("response", self._response)
        page.on("requestfailed", self._failed)

    def take(self) -> list[str]:
        """The problems seen since the last call."""
        found, self.seen = self.seen, []
        return found

    def _same_origin(self, url: str) -> bool:
        return urlsplit(url)[:2] == urlsplit(self.origin)[:2]

    def _add(self, page: Any, text: str) -> None:
        self.seen.append(f"{urlsplit(page.url).path or page.url}: {text}")

    def _console(self, message: Any) -> None:
        if message.type == "error":
            where = message.location.get("url", "") if message.location else ""
            self._add(message.page, f"console error: {message.text} ({where})")

    def _response(self, response: Any) -> None:
        if response.status >= 400 and self._same_origin(response.url):
            self._add(response.frame.page, f"HTTP {response.status} for {response.url}")

    def _failed(self, request: Any) -> None:
        if request.failure != ABORTED and self._same_origin(request.url):
            self._add(request.frame.page, f"request failed ({request.failure}): {request.url}")
