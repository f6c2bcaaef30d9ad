"""Every failure becomes one JSON shape: ``{"error": {code, message, fields}}``.

Our own errors (:mod:`app.errors`) and Litestar's HTTP errors (unknown
route, wrong method, body too large...) map to 4xx with a stable code. The
database being unreachable is a 503. Anything else is a bug: it is logged as
``request_failed`` with its traceback and answered with a 500 that says
nothing about the cause.
"""

from __future__ import annotations

import traceback
from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_401_UNAUTHORIZED,
    HTTP_404_NOT_FOUND,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from litestar.types import ExceptionHandlersMap

from app.api.schemas import ErrorBody, ErrorDetail, FieldError
from app.errors import DatabaseError, InvalidInput, NotFound, Unauthorized

logger = structlog.get_logger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}

_HTTP_MESSAGES = {
    404: "no such route; the API is described at /schema",
    405: "this route does not accept that method",
    413: "the request body is larger than 64 KiB",
}


def error_response(
    status: int,
    code: str,
    message: str,
    fields: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[ErrorBody]:
    return Response(
        ErrorBody(ErrorDetail(code=code, message=message, fields=fields or [])),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def invalid_input(request: Request[Any, Any, Any], exc: InvalidInput) -> Response[Any]:
    fields = [FieldError(p.path, p.code, p.message) for p in exc.problems]
    return error_response(HTTP_400_BAD_REQUEST, _input_code(exc), str(exc), fields)


def not_found(request: Request[Any, Any, Any], exc: NotFound) -> Response[Any]:
    return error_response(HTTP_404_NOT_FOUND, "not_found", str(exc))


def unauthorized(request: Request[Any, Any, Any], exc: Unauthorized) -> Response[Any]:
    return error_response(
        HTTP_401_UNAUTHORIZED,
        "unauthorized",
        str(exc),
        headers={"WWW-Authenticate": "Bearer"},
    )


def database_unavailable(
    request: Request[Any, Any, Any], exc: DatabaseError
) -> Response[Any]:
    logger.error(
        "request_failed",
        method=request.method,
        path=request.url.path,
        error_type=type(exc).__name__,
        error=str(exc),
    )
    return error_response(
        HTTP_503_SERVICE_UNAVAILABLE,
        "service_unavailable",
        "the service cannot reach its database right now; try again shortly",
        headers={"Retry-After": "5"},
    )


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if exc.status_code >= HTTP_500_INTERNAL_SERVER_ERROR:
        return unexpected(request, exc)
    if isinstance(exc, ValidationException):
        fields = _validation_fields(exc)
        message = "; ".join(f"{f.path}: {f.message}" for f in fields)
        return error_response(HTTP_400_BAD_REQUEST, "invalid_input", message, fields)
    code = _HTTP_CODES.get(exc.status_code, "bad_request")
    message = _HTTP_MESSAGES.get(exc.status_code, exc.detail)
    return error_response(exc.status_code, code, message, headers=exc.headers)


def unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # The traceback goes as text: a console renderer shown exc_info would also
    # print the local variables of every frame, request headers included.
    logger.error(
        "request_failed",
        method=request.method,
        path=request.url.path,
        error_type=type(exc).__name__,
        traceback="".join(traceback.format_exception(exc)),
    )
    return error_response(
        HTTP_500_INTERNAL_SERVER_ERROR,
        "internal_error",
        "something went wrong on our side; it has been logged",
    )


def _validation_fields(exc: ValidationException) -> list[FieldError]:
    # Litestar reports what it parses itself (path and query parameters, an
    # absent body) as [{"key", "source", "message"}].
    fields = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        key, source = str(item.get("key", "")), str(item.get("source", ""))
        if key == "data" and source == "body":
            fields.append(FieldError("$", "required", "a JSON body is required"))
        else:
            message = str(item.get("message", "is not valid"))
            fields.append(FieldError(f"{source}.{key}", "invalid_value", message))
    return fields or [FieldError("$", "invalid_value", exc.detail)]


def _input_code(exc: InvalidInput) -> str:
    if any(p.code == "invalid_json" for p in exc.problems):
        return "invalid_json"
    return "invalid_input"


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    InvalidInput: invalid_input,
    NotFound: not_found,
    Unauthorized: unauthorized,
    DatabaseError: database_unavailable,
    HTTPException: http_error,
    Exception: unexpected,
}


def documented(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the error statuses a route can answer."""
    meanings = {
        400: "Invalid input: see error.fields for each offending field",
        401: "Missing, malformed, unknown or revoked API key",
        404: "No such subscription in this workspace",
        413: "Body larger than 64 KiB",
        415: "Body is not application/json",
        503: "The database is unreachable; retry later",
    }
    return {
        status: ResponseSpec(
            generate_examples=False,
            data_container=ErrorBody,
            description=meanings[status],
        )
        for status in statuses
    }
