"""API errors with Toxiproxy's exact messages and status codes."""

from __future__ import annotations


class ApiError(Exception):
    """Answered as `{"error": message, "status": status}` with HTTP status `status`."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def joined(self, detail: str) -> ApiError:
        """Toxiproxy's joinError: `<message>: <detail>` with the same status."""
        return ApiError(f"{self.message}: {detail}", self.status)

    def to_json(self) -> dict[str, object]:
        return {"error": self.message, "status": self.status}


BAD_REQUEST_BODY = ApiError("bad request body", 400)
MISSING_FIELD = ApiError("missing required field", 400)
PROXY_NOT_FOUND = ApiError("proxy not found", 404)
PROXY_ALREADY_EXISTS = ApiError("proxy already exists", 409)
INVALID_STREAM = ApiError("stream was invalid, can be either upstream or downstream", 400)
INVALID_TOXIC_TYPE = ApiError("invalid toxic type", 400)
TOXIC_ALREADY_EXISTS = ApiError("toxic already exists", 409)
TOXIC_NOT_FOUND = ApiError("toxic not found", 404)
ADDRESS_REFUSED = ApiError("address refused", 403)

MAX_NAME = 256  # characters: a proxy or toxic name must fit in a URL path to be deleted again


def check_name(name: str, what: str) -> str:
    """`name` if it can be addressed in a URL path again; else a 400 bad request body."""
    if len(name) > MAX_NAME:
        raise BAD_REQUEST_BODY.joined(f"{what} name is {len(name)} characters long: at most {MAX_NAME}")
    if "/" in name or not name.isprintable():
        raise BAD_REQUEST_BODY.joined(f"{what} name must not contain '/' or control characters")
    return name
