"""`POST /api/{user_id}/chat`: one non-streaming chat turn, the same turn the WebSocket runs."""

from __future__ import annotations

import asyncio
import secrets

from fastapi import APIRouter

from server.api.deps import OwnerId, RuntimeDep
from server.api.openapi import error_responses
from server.errors import UpstreamError
from server.schemas import ChatRequest, ChatResponse, ToolCallSummary

router = APIRouter(prefix="/api/{user_id}", tags=["chat"])


@router.post("/chat", response_model=ChatResponse, responses=error_responses(401, 403, 404, 409, 429))
async def chat(user_id: OwnerId, body: ChatRequest, runtime: RuntimeDep) -> ChatResponse:
    """Send a message and wait for the assistant's whole reply.

    The turn is the WebSocket's: it is persisted, streamed to the user's open sockets, and runs
    to the end even if this request is abandoned. 409 `busy` while another turn runs in the
    conversation; 502 when the model server fails (the partial reply is kept in the history).
    """
    client_msg_id = body.client_msg_id or f"rest-{secrets.token_hex(12)}"
    ack = await runtime.chat.submit(
        user_id, conversation_id=body.conversation_id, text=body.message, client_msg_id=client_msg_id
    )
    async with asyncio.timeout(runtime.settings.turn_timeout + 10):
        outcome = await runtime.chat.outcome(user_id, ack)
    if outcome.status == "failed":
        raise UpstreamError(f"The assistant could not answer: {outcome.reason or 'the model server failed'}")
    return ChatResponse(
        conversation_id=outcome.conversation_id,
        response=outcome.response,
        tool_calls=[ToolCallSummary(**call) for call in outcome.tool_calls],
    )
