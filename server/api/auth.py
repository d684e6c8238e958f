"""Signup, login and the current user."""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Request, status

from server.api.deps import CurrentUser, RuntimeDep, SessionDep
from server.api.openapi import error_responses
from server.db import users
from server.errors import AuthError, NotFoundError, RateLimitedError
from server.schemas import AuthResponse, Credentials, LoginRequest, UserPublic

router = APIRouter(prefix="/api/auth", tags=["auth"])


def client_host(request: Request) -> str | None:
    """The client's address: the peer's, or what a trusted proxy says it is (TRUSTED_PROXIES, see app.py)."""
    return request.client.host if request.client else None


@router.post(
    "/signup", status_code=status.HTTP_201_CREATED, response_model=AuthResponse, responses=error_responses(409, 429)
)
async def signup(body: Credentials, runtime: RuntimeDep, request: Request) -> AuthResponse:
    """Create an account and return a token for it. 429 past RATE_LIMIT_SIGNUP_IP signups from one address."""
    await runtime.limits.signup(client_host(request))
    password_hash = await runtime.passwords.hash(body.password)
    async with runtime.db() as session, session.begin():
        user = await users.create(session, email=body.email, password_hash=password_hash)
    assert user.id is not None
    return AuthResponse(id=str(user.id), email=user.email, token=runtime.tokens.issue(user.id))


@router.post("/login", response_model=AuthResponse, responses=error_responses(401, 429))
async def login(body: LoginRequest, runtime: RuntimeDep, request: Request) -> AuthResponse:
    """Exchange email and password for a token.

    An unknown email and a wrong password get the same answer in about the same time: the
    unknown case verifies against a dummy hash. Failures are limited per account and per
    address, checked before the password is (429 with `Retry-After`; see the README).
    """
    client = client_host(request)
    await runtime.limits.login_attempt(body.email, client)
    # A short read: the connection is back in the pool before bcrypt's ~250 ms, so a burst of
    # logins cannot take every connection from everyone else.
    async with runtime.reads() as session:
        user = await users.get_by_email(session, body.email)
    if not await runtime.passwords.verify(body.password, user.password_hash if user else None) or user is None:
        await runtime.limits.login_failed(body.email, client)
        raise AuthError("Incorrect email or password")
    assert user.id is not None
    await runtime.limits.login_succeeded(body.email, client)
    if runtime.passwords.needs_rehash(user.password_hash):
        # The cost went up since this hash was made: upgrade it while we know the password (or at
        # a later login, if every hashing thread is busy now).
        with contextlib.suppress(RateLimitedError):
            new_hash = await runtime.passwords.hash(body.password)
            async with runtime.db() as session, session.begin():
                await users.set_password_hash(session, user.id, new_hash)
    return AuthResponse(id=str(user.id), email=user.email, token=runtime.tokens.issue(user.id))


@router.get("/me", response_model=UserPublic, responses=error_responses(401))
async def me(claims: CurrentUser, session: SessionDep) -> UserPublic:
    user = await users.get(session, claims.user_id)
    if user is None or user.id is None:
        # A valid token for a user that no longer exists.
        raise NotFoundError("User not found")
    return UserPublic(id=user.id, email=user.email, created_at=user.created_at)
