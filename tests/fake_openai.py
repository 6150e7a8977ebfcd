"""A scripted OpenAI-compatible endpoint on 127.0.0.1 (aiohttp in a thread): the edge the unit
tests fake. Each request pops the next scripted reply; the last one repeats. A step is
``(status, body)``, ``"slow"`` (a perfect verdict after 1 s), or a function of the request body
returning ``(status, body)`` (an answer that depends on the question). ``GET /v1/models`` lists
``models``."""

from __future__ import annotations

import asyncio
import json
import threading

from aiohttp import web


def ok(content: str) -> tuple[int, str]:
    return 200, json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]})


class FakeOpenAI:
    def __init__(self, script: list, delay_s: float = 0.0, models: tuple[str, ...] = ("fake",)) -> None:
        self.script = list(script)
        self.delay_s = delay_s
        self.models = models
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.bodies.append(body)
        self.headers.append(dict(request.headers))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)
            step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
            if step == "slow":  # a reply the client's timeout must not wait for
                await asyncio.sleep(1.0)
                step = ok('{"conciseness": 3, "relevance": 3}')
            status, text = step(body) if callable(step) else step
            headers = {"Retry-After": "0"} if status == 429 else {}
            return web.Response(status=status, text=text, headers=headers, content_type="application/json")
        finally:
            self.in_flight -= 1

    async def _models(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"object": "list", "data": [{"id": name, "object": "model"} for name in self.models]})

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> "FakeOpenAI":
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
