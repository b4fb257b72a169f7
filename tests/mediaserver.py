"""A real media host on a loopback port, for the media fetch tests.

aiohttp.web on its own event loop in its own thread (like tests.fakebackend),
so the proxy under test fetches from it over real sockets. It records every
request's path and headers, and how many requests it was serving at once.

Routes:
    /image.png, /clip.mp4, /sound.wav, /paper.pdf   small files of each kind
    /page.html                                        text/html (a wrong type)
    /image.bin                                        a PNG as octet-stream
    /endless                                          never stops sending
    /declared-huge                                    Content-Length: 1 GB
    /slow                                             answers after 30 s
    /delayed/{ms}/{name}                              a file after a delay
    /status/{code}                                    that status, no body
    /hops/{n}                                         n redirects, then the image
    /to?location=URL                                  a redirect to URL
    /cookie                                           sets a cookie, redirects
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.threadedserver import ThreadedServer

# A valid 1x1 PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)
FILES = {
    "image.png": ("image/png", PNG),
    "clip.mp4": ("video/mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 16),
    "sound.wav": ("audio/wav", b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 16),
    "paper.pdf": ("application/pdf", b"%PDF-1.4\n%%EOF\n"),
    "page.html": ("text/html; charset=utf-8", b"<html>login</html>"),
    "image.bin": ("application/octet-stream", PNG),
}


@dataclass
class Seen:
    path: str
    headers: dict[str, str]  # names lower-cased


class MediaServer:
    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self._server = ThreadedServer(self._app, name="mediaserver")

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MediaServer:
        self._server.start()
        return self

    def close(self) -> None:
        self._server.close()

    def __enter__(self) -> MediaServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def paths(self) -> list[str]:
        return [seen.path for seen in self.seen]

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        routes = _Routes()
        app.router.add_get("/endless", routes.endless)
        app.router.add_get("/declared-huge", routes.declared_huge)
        app.router.add_get("/slow", routes.slow)
        app.router.add_get("/delayed/{ms}/{name}", routes.delayed)
        app.router.add_get("/status/{code}", routes.status)
        app.router.add_get("/hops/{n}", routes.hops)
        app.router.add_get("/to", routes.to)
        app.router.add_get("/cookie", routes.cookie)
        app.router.add_get("/{name}", routes.file)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.seen.append(
            Seen(request.path, {k.lower(): v for k, v in request.headers.items()})
        )
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return await handler(request)
        finally:
            self.in_flight -= 1


class _Routes:
    async def file(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in FILES:
            raise web.HTTPNotFound()
        content_type, body = FILES[name]
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def delayed(self, request: web.Request) -> web.Response:
        await asyncio.sleep(int(request.match_info["ms"]) / 1000)
        return await self.file(request)

    async def endless(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        await response.prepare(request)
        try:
            while True:  # until the client goes away
                await response.write(b"\x00" * 65536)
        except ConnectionResetError:
            return response

    async def declared_huge(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "image/png", "Content-Length": str(1 << 30)}
        )
        await response.prepare(request)
        await response.write(PNG)
        await asyncio.sleep(30)
        return response

    async def slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return await self.file(request)

    async def status(self, request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]))

    async def hops(self, request: web.Request) -> web.Response:
        left = int(request.match_info["n"])
        target = f"/hops/{left - 1}" if left > 1 else "/image.png"
        raise web.HTTPFound(target)

    async def to(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["location"])

    async def cookie(self, request: web.Request) -> web.Response:
        response = web.HTTPFound("/image.png")
        response.set_cookie("session", "media-host-secret")
        raise response
