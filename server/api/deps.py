"""FastAPI dependencies as `Annotated` aliases that chain: runtime -> session -> current user -> owner -> limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import structlog
from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel.ext.asyncio.session import AsyncSession

from server.auth.bearer import bearer_token
from server.auth.tokens import TokenClaims
from server.errors import ForbiddenError
from server.fields import DbId
from server.runtime import Runtime

bearer_scheme = HTTPBearer(auto_error=False, description="The access `token` from signup, login or refresh.")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    async with runtime.reads() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_claims(
    runtime: RuntimeDep,
    request: Request,
    _documented: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> TokenClaims:
    """A valid access token of a live session: the same check as the WebSocket's and MCP's."""
    # `bearer_scheme` puts the scheme in the OpenAPI document; the header is read as everywhere else.
    claims = await runtime.sessions.authenticate(bearer_token(request.headers.get("authorization")))
    structlog.contextvars.bind_contextvars(user_id=claims.user_id)  # on the request's lines from here on
    return claims


CurrentUser = Annotated[TokenClaims, Depends(get_claims)]


def get_owner_id(
    claims: CurrentUser, user_id: Annotated[DbId, Path(description="Must be the token's subject.")]
) -> int:
    """The path's `user_id`, which must be the caller: another user's URL is a 403."""
    if user_id != claims.user_id:
        raise ForbiddenError("You can only access your own resources")
    return user_id


OwnerId = Annotated[int, Depends(get_owner_id)]


async def _count_change(runtime: RuntimeDep, user_id: OwnerId) -> None:
    """A task change over REST counts as a tool call, like the assistant's and MCP's (429 over budget)."""
    await runtime.limits.tool_call(user_id)


async def _count_deletion(runtime: RuntimeDep, user_id: OwnerId) -> None:
    await runtime.limits.tool_call(user_id, destructive=True)


#: For a route's `dependencies=[...]`: checked before the handler opens its transaction.
CountChange = Depends(_count_change)
CountDeletion = Depends(_count_deletion)
