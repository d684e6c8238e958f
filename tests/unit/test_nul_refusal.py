"""Every text input refuses NUL: each `str` a route's body, query, path or header takes, and each of a
client frame's, inside lists and optionals too, carries `NoNul` (or a pattern that excludes U+0000).

Structural, so a field added later cannot forget it: PostgreSQL's `text` cannot store NUL, and a
value that reaches the database with one is a 500, not a 422.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterator, Sequence
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel, EmailStr, Field

from server import protocol
from server.app import create_app
from server.fields import NoNul
from tests.support.settings import make_settings

EXEMPT = {
    "Auth.token": "a JWT, verified before use: a NUL fails its signature (`unauthorized`); never stored",
    "AuthRefresh.token": "the same",
    "Ping.id": "echoed in the `pong`, never stored",
}
"""Text fields that may hold NUL, and why that is harmless. A new one needs a reason here."""

#: A pattern that is one character class, repeated: it excludes NUL when its class does.
_ONE_CLASS = re.compile(r"\^(\[(?:\\.|[^\]])*\])(?:[+*]|\{\d+(?:,\d*)?\})\$")


def _refuses_nul(metadata: Sequence[Any]) -> bool:
    for item in metadata:
        if item is NoNul:
            return True
        pattern = getattr(item, "pattern", None)
        if isinstance(pattern, str) and (match := _ONE_CLASS.fullmatch(pattern)):
            return re.fullmatch(match.group(1), "\x00") is None
    return False


def text_leaves(annotation: Any, metadata: Sequence[Any], where: str) -> Iterator[tuple[str, bool]]:
    """Each text value `annotation` can hold, by where it is, and whether it refuses NUL."""
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *extra = get_args(annotation)
        yield from text_leaves(base, (*metadata, *extra), where)
    elif origin in (Union, types.UnionType):
        for arg in get_args(annotation):
            yield from text_leaves(arg, (), where)  # a marker on the union itself would also see None
    elif origin is Literal:
        return
    elif origin is dict:
        key, value = get_args(annotation)
        yield from text_leaves(key, (), f"{where}[key]")
        yield from text_leaves(value, (), f"{where}[]")
    elif origin is not None:  # list, set, tuple, Sequence...
        for arg in get_args(annotation):
            if arg is not Ellipsis:
                yield from text_leaves(arg, (), f"{where}[]")
    elif annotation is EmailStr or (isinstance(annotation, type) and issubclass(annotation, str)):
        yield where, _refuses_nul(metadata)
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield from model_leaves(annotation)


def model_leaves(model: type[BaseModel]) -> Iterator[tuple[str, bool]]:
    for name, field in model.model_fields.items():
        yield from text_leaves(field.annotation, field.metadata, f"{model.__name__}.{name}")


def request_inputs() -> Iterator[tuple[str, bool]]:
    """Every text input of every route of the app: body models, query, path, header and cookie parameters."""
    app = create_app(make_settings(database_url="sqlite+aiosqlite:///:memory:"))
    routes: list[APIRoute] = []
    pending: list[Any] = list(app.routes)
    while pending:  # included routers hold their routes
        route = pending.pop()
        if isinstance(route, APIRoute):
            routes.append(route)
        elif (router := getattr(route, "original_router", None)) is not None:
            pending.extend(router.routes)
    assert len(routes) > 20  # the walk reaches the app's routes
    for route in routes:
        dependant = route.dependant
        stack = [dependant]
        while stack:
            current = stack.pop()
            stack.extend(current.dependencies)
            params = [*current.query_params, *current.path_params, *current.header_params, *current.cookie_params]
            for param in params:
                yield from text_leaves(
                    param.field_info.annotation, param.field_info.metadata, f"{route.path} {param.name}"
                )
            for body in current.body_params:
                yield from text_leaves(body.field_info.annotation, body.field_info.metadata, f"{route.path} body")


def frame_inputs() -> Iterator[tuple[str, bool]]:
    for frame in get_args(protocol.ClientFrameType):
        yield from model_leaves(frame)


def test_every_text_input_of_a_route_refuses_nul() -> None:
    leaves = dict(request_inputs())
    for expected in (
        "TaskCreate.tags[]",
        "TaskUpdate.recurrence",
        "PasswordChange.new_password",
        "LoginRequest.device",
    ):
        assert expected in leaves  # the walk goes into models, lists and optionals
    assert any(where.endswith(" q") for where in leaves) and any(where.endswith(" tag[]") for where in leaves)
    assert [where for where, refuses in leaves.items() if not refuses] == []


def test_every_text_field_of_a_client_frame_refuses_nul_or_is_exempt() -> None:
    leaves = dict(frame_inputs())
    assert "Chat.message" in leaves and "Cancel.turn_id" in leaves
    assert sorted(where for where, refuses in leaves.items() if not refuses) == sorted(EXEMPT)


class _Forgot(BaseModel):
    fine: Annotated[str, NoNul]
    patterned: Annotated[str, Field(pattern=r"^[a-z0-9]{32}$")]
    bare: str | None = None
    listed: list[Annotated[str, Field(max_length=3)]] = []
    loose_pattern: Annotated[str, Field(pattern=r"^.+$")] = "x"


@pytest.mark.parametrize(
    ("where", "refuses"),
    [
        ("_Forgot.fine", True),
        ("_Forgot.patterned", True),
        ("_Forgot.bare", False),
        ("_Forgot.listed[]", False),
        ("_Forgot.loose_pattern", False),
    ],
)
def test_the_walk_finds_a_forgotten_field(where: str, refuses: bool) -> None:
    assert dict(model_leaves(_Forgot))[where] is refuses
