"""Reading JSON request bodies strictly, with errors that name the field.

Litestar converts request data leniently (``"true"`` into a bool, say), and
its errors have their own shape. :class:`StrictJSON` takes over decoding for a
handler: the body must be ``application/json`` and is handed to the model's
own ``from_json``, which raises :class:`~app.errors.InvalidInput`. Litestar
still documents the model in the OpenAPI schema.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from typing import Any, Generic, Protocol, TypeVar, cast

import msgspec
from litestar import Request
from litestar.dto import AbstractDTO
from litestar.exceptions import ClientException
from litestar.status_codes import HTTP_415_UNSUPPORTED_MEDIA_TYPE
from litestar.typing import FieldDefinition

from app.errors import FieldProblem, InvalidInput

T = TypeVar("T")

# msgspec ends a validation message with " - at `$.path`" when not at the root.
_AT_PATH = re.compile(r"^(?P<message>.*?)(?: - at `(?P<path>[^`]*)`)?$", re.DOTALL)
_FIELD_NAMED = re.compile(r"Object (?:missing required|contains unknown) field `(.*)`")


class FromJSON(Protocol):
    @classmethod
    def from_json(cls, raw: bytes) -> Any: ...


def decode(raw: bytes, model: type[T]) -> T:
    """Decode JSON into ``model``; malformed or mistyped input is InvalidInput."""
    try:
        return msgspec.json.decode(raw, type=model)
    except msgspec.ValidationError as exc:
        raise InvalidInput([_problem(str(exc))]) from exc
    except msgspec.DecodeError as exc:
        raise InvalidInput.single(
            "$", "invalid_json", f"the body is not valid JSON: {exc}"
        ) from exc
    except RecursionError as exc:
        # msgspec decodes free-form members (filterConfig) recursively.
        raise InvalidInput.single(
            "$", "nested_too_deeply", "the body nests arrays or objects too deeply"
        ) from exc


def _problem(text: str) -> FieldProblem:
    match = _AT_PATH.match(text)
    message = match["message"] if match else text
    path = (match["path"] if match else None) or "$"
    named = _FIELD_NAMED.match(message)
    if named is None:
        return FieldProblem(path, "invalid_type", message)
    field = named[1]
    if message.startswith("Object missing"):
        return FieldProblem(f"{path}.{field}", "required", f"{field} is required")
    return FieldProblem(f"{path}.{field}", "unknown_field", f"unknown field {field}")


class StrictJSON(AbstractDTO[T], Generic[T]):
    """Decode the request body with the model's own strict ``from_json``."""

    @classmethod
    def generate_field_definitions(
        cls, model_type: type[Any]
    ) -> Generator[Any, None, None]:
        # Only needed by Litestar's own DTO backends, which this one bypasses.
        yield from ()

    @classmethod
    def detect_nested_field(cls, field_definition: FieldDefinition) -> bool:
        return False

    @classmethod
    def create_for_field_definition(
        cls, field_definition: FieldDefinition, handler_id: str, backend_cls: Any = None
    ) -> None:
        return None

    @classmethod
    def create_openapi_schema(
        cls, field_definition: FieldDefinition, handler_id: str, schema_creator: Any
    ) -> Any:
        model = FieldDefinition.from_annotation(cls.model_type)
        return schema_creator.for_field_definition(model)

    def decode_bytes(self, value: bytes) -> Any:
        request = cast("Request[Any, Any, Any]", self.asgi_connection)
        media_type, _ = request.content_type
        if media_type != "application/json":
            raise ClientException(
                status_code=HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                detail="send the body as JSON with Content-Type: application/json",
            )
        model = cast("type[FromJSON]", self.model_type)
        return model.from_json(value)

    def decode_builtins(self, value: dict[str, Any]) -> Any:
        raise ClientException(
            status_code=HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail="send the body as JSON with Content-Type: application/json",
        )
