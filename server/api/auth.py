"""Signup, login and the current user."""

from __future__ import annotations

from fastapi import APIRouter, status

from server.api.deps import CurrentUser, RuntimeDep, SessionDep
from server.api.openapi import error_responses
from server.db import users
from server.errors import AuthError, NotFoundError
from server.schemas import AuthResponse, Credentials, LoginRequest, UserPublic

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post(
    "/signup", status_code=status.HTTP_201_CREATED, response_model=AuthResponse, responses=error_responses(409)
)
async def signup(body: Credentials, runtime: RuntimeDep) -> AuthResponse:
    """Create an account and return a token for it."""
    password_hash = await runtime.passwords.hash(body.password)
    async with runtime.db() as session, session.begin():
        user = await users.create(session, email=body.email, password_hash=password_hash)
    assert user.id is not None
    return AuthResponse(id=str(user.id), email=user.email, token=runtime.tokens.issue(user.id))


@router.post("/login", response_model=AuthResponse, responses=error_responses(401))
async def login(body: LoginRequest, runtime: RuntimeDep, session: SessionDep) -> AuthResponse:
    """Exchange email and password for a token.

    An unknown email and a wrong password get the same answer in about the same time: the
    unknown case verifies against a dummy hash.
    """
    user = await users.get_by_email(session, body.email)
    if not await runtime.passwords.verify(body.password, user.password_hash if user else None) or user is None:
        raise AuthError("Incorrect email or password")
    assert user.id is not None
    if runtime.passwords.needs_rehash(user.password_hash):
        # The cost went up since this hash was made: upgrade it while we know the password.
        new_hash = await runtime.passwords.hash(body.password)
        await users.set_password_hash(session, user.id, new_hash)
        await session.commit()
    return AuthResponse(id=str(user.id), email=user.email, token=runtime.tokens.issue(user.id))


@router.get("/me", response_model=UserPublic, responses=error_responses(401))
async def me(claims: CurrentUser, session: SessionDep) -> UserPublic:
    user = await users.get(session, claims.user_id)
    if user is None or user.id is None:
        # A valid token for a user that no longer exists.
        raise NotFoundError("User not found")
    return UserPublic(id=user.id, email=user.email, created_at=user.created_at)
