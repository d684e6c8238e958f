"""The user's conversations and their message history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from server.api.deps import CountDeletion, OwnerId, RuntimeDep, SessionDep
from server.api.openapi import error_responses
from server.db import conversations
from server.errors import InvalidInputError
from server.fields import Cursor, DbId, Offset
from server.schemas import ConversationPublic, ConversationsPublic, MessagePublic, MessagesPublic

router = APIRouter(prefix="/api/{user_id}/conversations", tags=["conversations"], responses=error_responses(401, 403))


@router.get("", response_model=ConversationsPublic)
async def list_conversations(
    user_id: OwnerId,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[Offset, Query()] = 0,
) -> ConversationsPublic:
    """Most recently active first."""
    rows, count = await conversations.list_for_user(session, user_id, limit=limit, offset=offset)
    return ConversationsPublic(data=[ConversationPublic.model_validate(row) for row in rows], count=count)


@router.get("/{conversation_id}/messages", response_model=MessagesPublic, responses=error_responses(404))
async def list_messages(
    user_id: OwnerId,
    conversation_id: DbId,
    session: SessionDep,
    before: Annotated[DbId | None, Query(description="Page backwards: messages with a smaller id.")] = None,
    after: Annotated[Cursor | None, Query(description="Page forwards: messages with a larger id.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> MessagesPublic:
    """A page of messages, oldest first. Without `before` or `after`: the newest page."""
    if before is not None and after is not None:
        raise InvalidInputError("Give `before` or `after`, not both")
    rows, has_more = await conversations.list_messages(
        session, user_id, conversation_id, before=before, after=after, limit=limit
    )
    return MessagesPublic(data=[MessagePublic.model_validate(row) for row in rows], has_more=has_more)


@router.delete(
    "/{conversation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(404, 429),
    dependencies=[CountDeletion],  # a destructive change: the lower RATE_LIMIT_DESTRUCTIVE_CALLS budget
)
async def delete_conversation(user_id: OwnerId, conversation_id: DbId, runtime: RuntimeDep) -> Response:
    async with runtime.transaction() as outbox:
        ended = await conversations.delete(outbox, user_id, conversation_id)
    for turn_id in ended:  # stop the reply wherever it runs; it finds its turn ended and writes nothing
        runtime.turns.cancel(user_id, turn_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
