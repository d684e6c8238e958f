"""Accounts and their sessions: signup, login, refresh, logout, the session list, password change, account deletion.

Every response that carries a token is `Cache-Control: no-store` (RFC 6749 section 5.1): no
proxy or browser cache keeps a copy. Ending a session takes effect on every worker at once
(`server/auth/sessions.py`).
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response, status

from server.api.deps import CurrentUser, RuntimeDep, SessionDep
from server.api.openapi import error_responses
from server.auth.policy import WeakPasswordError, validate_new_password
from server.auth.sessions import SESSION_ENDED, Issued, device_label
from server.db import sessions as session_rows, users
from server.db.models import SESSION_ID_MAX, User, utcnow
from server.errors import AuthError, ForbiddenError, InvalidInputError, NotFoundError, RateLimitedError
from server.fields import NoNul
from server.runtime import Runtime
from server.schemas import (
    AuthResponse,
    Credentials,
    ErrorResponse,
    LoginRequest,
    PasswordChange,
    PasswordConfirmation,
    RefreshRequest,
    SessionPublic,
    SessionsPublic,
    UserPublic,
    UserUpdate,
)

router = APIRouter(prefix="/api/auth", tags=["auth"])

WRONG_PASSWORD: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorResponse, "description": "The password is not the account's"}
}


def client_host(request: Request) -> str | None:
    """The client's address: the peer's, or what a trusted proxy says it is (TRUSTED_PROXIES, see app.py)."""
    return request.client.host if request.client else None


def _issued(response: Response, email: str, issued: Issued) -> AuthResponse:
    response.headers["Cache-Control"] = "no-store"
    return AuthResponse(
        id=str(issued.user_id),
        email=email,
        token=issued.tokens.access_token,
        refresh_token=issued.tokens.refresh_token,
        expires_in=issued.tokens.expires_in,
        session_id=issued.session_id,
    )


@router.post(
    "/signup", status_code=status.HTTP_201_CREATED, response_model=AuthResponse, responses=error_responses(409, 429)
)
async def signup(body: Credentials, request: Request, response: Response, runtime: RuntimeDep) -> AuthResponse:
    """Create an account and its first session. 429 past RATE_LIMIT_SIGNUP_IP signups from one address."""
    client = client_host(request)
    await runtime.limits.signup(client)
    password_hash = await runtime.passwords.hash(body.password)
    device = device_label(body.device, request.headers.get("user-agent"))
    async with runtime.db() as session, session.begin():
        user = await users.create(session, email=body.email, password_hash=password_hash)
        assert user.id is not None
        issued = await runtime.sessions.start(session, user.id, device=device)
    runtime.audit.record("signup", client=client, user_id=user.id, session_id=issued.session_id)
    return _issued(response, user.email, issued)


@router.post("/login", response_model=AuthResponse, responses=error_responses(401, 429))
async def login(body: LoginRequest, request: Request, response: Response, runtime: RuntimeDep) -> AuthResponse:
    """Exchange email and password for a new session.

    An unknown email and a wrong password get the same answer in about the same time: the
    unknown case verifies against a dummy hash. Failures are limited per account and per
    address, checked before the password is (429 with `Retry-After`; see the README).
    """
    client = client_host(request)
    try:
        await runtime.limits.login_attempt(body.email, client)
    except RateLimitedError:
        runtime.audit.record("login.rate_limited", client=client, email=body.email)
        raise
    # A short read: the connection is back in the pool before bcrypt's ~250 ms, so a burst of
    # logins cannot take every connection from everyone else (and SQLite's lock is free for the
    # write below).
    async with runtime.reads() as session:
        user = await users.get_by_email(session, body.email)
    if not await runtime.passwords.verify(body.password, user.password_hash if user else None) or user is None:
        await runtime.limits.login_failed(body.email, client)
        runtime.audit.record(
            "login.failed",
            client=client,
            user_id=user.id if user else None,
            email=body.email,
            reason="wrong_password" if user else "unknown_account",
        )
        raise AuthError("Incorrect email or password")
    assert user.id is not None
    await runtime.limits.login_succeeded(body.email, client)
    new_hash = None
    if runtime.passwords.needs_rehash(user.password_hash):
        # The cost went up since this hash was made: upgrade it while we know the password (or at
        # a later login, if every hashing thread is busy now).
        with contextlib.suppress(RateLimitedError):
            new_hash = await runtime.passwords.hash(body.password)
    device = device_label(body.device, request.headers.get("user-agent"))
    async with runtime.db() as tx, tx.begin():
        if new_hash is not None:
            await users.set_password_hash(tx, user.id, new_hash)
        issued = await runtime.sessions.start(tx, user.id, device=device)
    runtime.audit.record("login.succeeded", client=client, user_id=user.id, session_id=issued.session_id)
    return _issued(response, user.email, issued)


@router.post("/refresh", response_model=AuthResponse, responses=error_responses(401, 429))
async def refresh(body: RefreshRequest, request: Request, response: Response, runtime: RuntimeDep) -> AuthResponse:
    """New tokens for the session; the refresh token sent is used up.

    A refresh token that was already used is refused: within `REFRESH_LEEWAY_SECONDS` of its use
    (two tabs refreshing at once) that is all; later, the whole session ends. A session older than
    `SESSION_MAX_DAYS` is refused with `Session expired, log in again`.
    """
    client = client_host(request)
    try:
        await runtime.limits.refresh_attempt(client)  # guessing refresh tokens costs like guessing passwords
    except RateLimitedError:
        runtime.audit.record("refresh.rate_limited", client=client)
        raise
    try:
        issued = await runtime.sessions.refresh(body.refresh_token, client=client)
    except AuthError as exc:
        await runtime.limits.refresh_failed(client)
        runtime.audit.record("refresh.failed", client=client, reason=exc.detail)
        raise
    async with runtime.reads() as session:
        user = await users.get(session, issued.user_id)
    if user is None or user.id is None:
        raise AuthError("Session ended")
    return _issued(response, user.email, issued)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(401))
async def logout(claims: CurrentUser, request: Request, runtime: RuntimeDep) -> None:
    """End this session: its tokens are refused everywhere and its sockets are closed (4401)."""
    await runtime.sessions.end(claims.user_id, [claims.session_id])
    runtime.audit.record("logout", client=client_host(request), user_id=claims.user_id, session_id=claims.session_id)


@router.post("/logout-all", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(401))
async def logout_all(claims: CurrentUser, request: Request, runtime: RuntimeDep) -> None:
    """End every session of the user, this one included."""
    ended = await runtime.sessions.end_all(claims.user_id)
    runtime.audit.record("logout.all", client=client_host(request), user_id=claims.user_id, sessions_ended=len(ended))


@router.get("/sessions", response_model=SessionsPublic, responses=error_responses(401))
async def list_sessions(claims: CurrentUser, runtime: RuntimeDep) -> SessionsPublic:
    """The user's sessions, most recently used first. `last_used_at` is exact to about a minute."""
    await runtime.sessions.flush_activity()
    async with runtime.reads() as session:
        rows = await session_rows.list_for(session, claims.user_id)
    data = [
        SessionPublic(
            id=row.id,
            device=row.device,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            current=row.id == claims.session_id,
        )
        for row in rows
    ]
    return SessionsPublic(data=data, count=len(data))


@router.delete("/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(401, 404))
async def end_session(
    claims: CurrentUser,
    request: Request,
    runtime: RuntimeDep,
    session_id: Annotated[str, Path(min_length=1, max_length=SESSION_ID_MAX), NoNul],
) -> None:
    """End one of the user's sessions (this one too, if named)."""
    if not await runtime.sessions.end(claims.user_id, [session_id]):
        raise NotFoundError("Session not found")
    runtime.audit.record("session.ended", client=client_host(request), user_id=claims.user_id, session_id=session_id)


@router.post("/password", response_model=AuthResponse, responses={**error_responses(401), **WRONG_PASSWORD})
async def change_password(
    body: PasswordChange, claims: CurrentUser, request: Request, response: Response, runtime: RuntimeDep
) -> AuthResponse:
    """Change the password: every other session ends; this one continues with the fresh tokens returned.

    This session's earlier refresh tokens are forgotten (a copy is refused, without ending the
    session); its access tokens already issued stay valid until they expire.
    """
    user = await _confirm_password(runtime, request, claims.user_id, body.current_password)
    try:
        validate_new_password(body.new_password, context=(user.email,))
    except WeakPasswordError as exc:
        raise InvalidInputError(str(exc)) from None
    new_hash = await runtime.passwords.hash(body.new_password)
    now = utcnow()
    async with runtime.db() as session, session.begin():
        started = await session_rows.started_at(session, claims.session_id)
        if started is None:
            raise AuthError(SESSION_ENDED)
        pair = runtime.tokens.issue_pair(claims.user_id, claims.session_id, now=now, started=started)
        await users.set_password_hash(session, claims.user_id, new_hash)
        ended = await session_rows.delete_all(session, claims.user_id, keep=claims.session_id)
        await session_rows.replace_refresh_tokens(session, claims.session_id, token_hash=pair.refresh_hash, now=now)
    await runtime.sessions.announce(claims.user_id, ended)
    runtime.audit.record(
        "password.changed", client=client_host(request), user_id=claims.user_id, sessions_ended=len(ended)
    )
    return _issued(response, user.email, Issued(claims.user_id, claims.session_id, pair))


@router.delete("/me", status_code=status.HTTP_204_NO_CONTENT, responses={**error_responses(401), **WRONG_PASSWORD})
async def delete_account(
    body: PasswordConfirmation, claims: CurrentUser, request: Request, runtime: RuntimeDep
) -> None:
    """Delete the account and everything of it: tasks, conversations, messages, events, sessions.

    Every session ends and every socket of the user is closed (4401). The email can sign up again.
    """
    await _confirm_password(runtime, request, claims.user_id, body.password)
    async with runtime.db() as session, session.begin():
        ended = await session_rows.delete_all(session, claims.user_id)
        await users.delete(session, claims.user_id)
    await runtime.sessions.announce(claims.user_id, ended)
    runtime.audit.record("account.deleted", client=client_host(request), user_id=claims.user_id)


@router.get("/me", response_model=UserPublic, responses=error_responses(401))
async def me(claims: CurrentUser, session: SessionDep) -> UserPublic:
    user = await users.get(session, claims.user_id)
    if user is None or user.id is None:
        # A valid token for a user that no longer exists.
        raise NotFoundError("User not found")
    return UserPublic(id=user.id, email=user.email, created_at=user.created_at, timezone=user.timezone)


@router.patch("/me", response_model=UserPublic, responses=error_responses(401))
async def update_me(body: UserUpdate, claims: CurrentUser, runtime: RuntimeDep) -> UserPublic:
    """Set the user's time zone (an IANA name, e.g. `Europe/Berlin`; 422 for one the tz database does not know).

    Repeating tasks keep their wall-clock time in it from their next occurrence on; instants
    already stored (due and reminder times) do not move.
    """
    async with runtime.db() as session, session.begin():
        await users.set_timezone(session, claims.user_id, body.timezone)
        user = await users.get(session, claims.user_id)
    if user is None or user.id is None:
        raise NotFoundError("User not found")
    return UserPublic(id=user.id, email=user.email, created_at=user.created_at, timezone=user.timezone)


async def _confirm_password(runtime: Runtime, request: Request, user_id: int, password: str) -> User:
    """The user, if `password` is theirs; `ForbiddenError` otherwise. No connection is held during bcrypt.

    Counted like a login (per account and address): a stolen access token buys no extra guesses.
    """
    async with runtime.reads() as session:
        user = await users.get(session, user_id)
    if user is None:
        raise AuthError("Session ended")
    client = client_host(request)
    try:
        await runtime.limits.login_attempt(user.email, client)
    except RateLimitedError:
        runtime.audit.record("login.rate_limited", client=client, user_id=user_id)
        raise
    if not await runtime.passwords.verify(password, user.password_hash):
        await runtime.limits.login_failed(user.email, client)
        runtime.audit.record("password.confirm_failed", client=client, user_id=user_id)
        raise ForbiddenError("Incorrect password")
    return user
