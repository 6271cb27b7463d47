"""Refuse request bodies over a size limit before anything reads them (plain ASGI: cheap)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse


class BodyTooLarge(HTTPException):
    """Raised while reading a body sent without Content-Length that grows past the limit;
    FastAPI passes HTTPExceptions through its body parsing untouched."""

    def __init__(self, limit: int):
        super().__init__(413, f"request body over {limit} bytes")


class BodySizeLimit:
    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.max_bytes:
                response = JSONResponse(
                    {"error": f"request body over {self.max_bytes} bytes"}, status_code=413
                )
                return await response(scope, receive, send)
            return await self.app(scope, receive, send)
        return await self.app(scope, self._counting(receive), send)

    def _counting(self, receive):
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        return limited_receive
