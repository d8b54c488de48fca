"""JSON errors for every failure a client can cause: ``{"error": {"code", "message"}}``.

aiohttp's own HTTP errors (404, 405, 413 ...) and our ApiError are turned into that shape by every
route's wrapper (``endpoints.py``), so no client mistake ever reaches the user as HTML or a 500.
"""

from __future__ import annotations

import orjson
from aiohttp import web


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


#: What a client sees of a bug: the details go to the server log only.
INTERNAL_ERROR = (500, "internal_error", "internal error: see the server log")


def error_body(code: str, message: str) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message}})


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = error_body(code, message)
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


# aiohttp's exceptions carry a reason phrase; give each a stable machine-readable code.
_HTTP_CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
}


def _code_and_message(error: web.HTTPException) -> tuple[str, str]:
    code = _HTTP_CODES.get(error.status, "http_error")
    message = error.text if error.text and not error.text.startswith(str(error.status)) else error.reason
    return code, message


def http_error_response(error: web.HTTPException) -> web.Response:
    """An aiohttp HTTP error (status >= 400) as our JSON error, keeping its ``Allow`` header."""
    headers = {"Allow": error.headers["Allow"]} if "Allow" in error.headers else None
    return error_response(error.status, *_code_and_message(error), headers)


def http_error_body(error: web.HTTPException) -> bytes:
    """The JSON body of ``http_error_response(error)``, for rewriting aiohttp's own error in place."""
    return error_body(*_code_and_message(error))
