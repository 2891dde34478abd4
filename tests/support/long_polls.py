"""Long-polls held on a real server from threads, for tests of what a stop does to them."""

from __future__ import annotations

import threading

import httpx


class HeldLongPolls:
    """``count`` ``GET /status/{id}?wait=S`` requests, each from a thread of its own."""

    def __init__(self, url: str, job_id: str, count: int, wait_s: float = 25.0) -> None:
        self.answers: list[httpx.Response | Exception] = []
        self._request = (f"{url}/status/{job_id}", {"wait": wait_s}, wait_s + 5)
        self._threads = [threading.Thread(target=self._poll) for _ in range(count)]
        for thread in self._threads:
            thread.start()

    def _poll(self) -> None:
        url, params, timeout = self._request
        try:
            self.answers.append(httpx.get(url, params=params, timeout=timeout))
        except httpx.HTTPError as error:
            self.answers.append(error)

    def join(self, timeout_s: float = 10.0) -> list[httpx.Response | Exception]:
        for thread in self._threads:
            thread.join(timeout=timeout_s)
        return self.answers
