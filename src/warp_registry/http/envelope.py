"""The one place that builds Cloudflare v4 response bodies.

Every body the admin API sends, success or failure, comes from `success_body` or
`error_body`, so the four envelope keys are always present and always in the same order.
"""

from __future__ import annotations

from typing import Any

import orjson

_EMPTY_SUCCESS_PREFIX = b'{"success":true,"errors":[],"messages":[],"result":'


def success_body(result: Any, result_info: dict[str, Any] | None = None) -> bytes:
    """Serialise a successful response; `result_info` is added for lists."""
    if result_info is None:
        # Hot path: the GET of one registration. Splicing the result into a fixed prefix
        # saves building and walking an extra dict per request.
        return _EMPTY_SUCCESS_PREFIX + orjson.dumps(result) + b"}"

    return orjson.dumps(
        {
            "success": True,
            "errors": [],
            "messages": [],
            "result": result,
            "result_info": result_info,
        }
    )


def error_body(errors: list[dict[str, Any]]) -> bytes:
    """Serialise a failure: `result` is null and `errors` holds at least one entry."""
    return orjson.dumps({"success": False, "errors": errors, "messages": [], "result": None})


def document_body(document: dict[str, Any]) -> bytes:
    """Serialise a standard document that is not a v4 API response, bare.

    Only for formats other software reads as defined elsewhere: the JWKS of
    `/cdn-cgi/access/certs` is read by JWT libraries, which expect `{"keys": [...]}`.
    """
    return orjson.dumps(document)
