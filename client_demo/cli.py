"""`chat-demo`: a command-line client for the Todo chatbot that speaks only the public protocol.

REST (signup, login, tasks, history) and the WebSocket `/api/ws` with a bearer header; see
docs/protocol.md. Errors end in one line on stderr and an exit code (`client_demo.errors`),
never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from getpass import getpass

from client_demo import errors
from client_demo.api import ApiClient, ws_url
from client_demo.config import DEFAULT_SERVER, Login, TokenStore, config_dir, normalize_server
from client_demo.credentials import Credentials
from client_demo.errors import ClientError, NotLoggedInError, SessionExpiredError
from client_demo.repl import Repl
from client_demo.session import ChatSession
from client_demo.terminal import Terminal, TerminalView
from client_demo.turns import Turn

EXIT_CODES = {"done": errors.EXIT_OK, "failed": errors.EXIT_TURN_FAILED, "cancelled": errors.EXIT_TURN_CANCELLED}
"""`send`'s exit code by turn status; anything else (a refused message) is EXIT_ERROR."""


def build_parser() -> argparse.ArgumentParser:
    # --server and --config work before or after the command: SUPPRESS keeps a later default
    # from overwriting an earlier value.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--server",
        default=argparse.SUPPRESS,
        metavar="URL",
        help=f"server URL; default $TODO_CHAT_SERVER, else the last one logged in to, else {DEFAULT_SERVER}",
    )
    common.add_argument(
        "--config",
        default=argparse.SUPPRESS,
        metavar="DIR",
        help="where the token is cached; default $TODO_CHAT_CONFIG, else $XDG_CONFIG_HOME/todo-chat",
    )
    parser = argparse.ArgumentParser(
        prog="chat-demo", description="Chat with the Todo assistant from a terminal.", parents=[common]
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, summary in (("signup", "create an account and log in"), ("login", "log in and cache the token")):
        auth = commands.add_parser(name, help=summary, description=summary, parents=[common])
        auth.add_argument("email", nargs="?", help="prompted for when left out")
        auth.add_argument(
            "--password-stdin", action="store_true", help="read the password from standard input (scripts)"
        )
    commands.add_parser("logout", help="end the session on the server and forget its tokens", parents=[common])
    chat = commands.add_parser("chat", help="interactive chat", parents=[common])
    chat.add_argument("--conversation", type=int, metavar="ID", help="continue this conversation")
    send = commands.add_parser("send", help="send one message and print the reply", parents=[common])
    send.add_argument("message")
    send.add_argument("--conversation", type=int, metavar="ID", help="continue this conversation")
    send.add_argument("--json", action="store_true", help="print one JSON object instead of the reply")
    send.add_argument(
        "--timeout", type=float, default=120.0, metavar="SECONDS", help="give up after this long (default 120)"
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(argv))


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    store = TokenStore(config_dir(getattr(args, "config", None)))
    server = normalize_server(
        getattr(args, "server", None) or os.environ.get("TODO_CHAT_SERVER") or store.default_server()
    )
    try:
        if args.command in ("signup", "login"):
            email, password = _credentials(args, confirm=args.command == "signup")
            return asyncio.run(_authenticate(args.command, store, server, email, password))
        if args.command == "logout":
            return asyncio.run(_logout(store, server))
        login = store.get(server)
        if login is None:
            raise NotLoggedInError(server)
        if args.command == "chat":
            asyncio.run(Repl(store=store, login=login, conversation_id=args.conversation).run())
            return errors.EXIT_OK
        return asyncio.run(_send(args, Credentials(store, login)))
    except ClientError as exc:
        _error(exc.message)
        return exc.exit_code
    except (KeyboardInterrupt, EOFError):
        _error("interrupted")
        return errors.EXIT_INTERRUPTED


def _error(message: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()


# --- signup, login, logout ----------------------------------------------------------------


def _credentials(args: argparse.Namespace, *, confirm: bool) -> tuple[str, str]:
    """The email from the command line or a prompt; the password never echoed (getpass)."""
    email = (args.email or input("Email: ")).strip()
    if not email:
        raise ClientError("an email is required")
    if args.password_stdin:
        return email, sys.stdin.readline().rstrip("\r\n")
    password = getpass("Password: ")
    if confirm and getpass("Repeat password: ") != password:
        raise ClientError("the passwords do not match")
    return email, password


async def _authenticate(command: str, store: TokenStore, server: str, email: str, password: str) -> int:
    async with ApiClient(server) as api:
        result = await (api.signup(email, password) if command == "signup" else api.login(email, password))
    login = Login.from_auth(server, result, now=time.time())
    store.save(login)
    action = "Signed up" if command == "signup" else "Logged in"
    print(f"{action} as {login.email} (user {login.user_id}) on {server}.")
    return errors.EXIT_OK


async def _logout(store: TokenStore, server: str) -> int:
    """End the session on the server, then forget it here (also when the server cannot be reached)."""
    login = store.get(server)
    if login is None:
        print(f"Not logged in to {server}.")
        return errors.EXIT_OK
    try:
        async with ApiClient(server, tokens=Credentials(store, login)) as api:
            await api.logout()
    except SessionExpiredError:
        pass  # already ended on the server
    except ClientError as exc:
        _error(f"{exc.message}; the session stays valid on the server until it expires")
    store.delete(server)
    print(f"Logged out of {server}.")
    return errors.EXIT_OK


# --- send -----------------------------------------------------------------------------------


async def _send(args: argparse.Namespace, credentials: Credentials) -> int:
    """One message: the reply streams to stdout (or one JSON object); status lines go to stderr."""
    login = credentials.login
    terminal = Terminal(out=sys.stdout, notes=sys.stderr)
    view = TerminalView(terminal, reply_prefix="", stream_reply=not args.json, details="off" if args.json else "notes")
    session = ChatSession(
        server=login.server,
        url=ws_url(login.server),
        token=login.token,
        view=view,
        give_up_after=args.timeout,
        credentials=credentials,
    )
    stop = asyncio.Event()
    turn: Turn | None = None
    background: set[asyncio.Task[None]] = set()

    def interrupt() -> None:
        # First Ctrl-C cancels the turn (it ends as cancelled); a second one quits at once.
        if turn is None or turn.cancel_requested:
            stop.set()
            return
        terminal.note("cancelling (Ctrl-C again to quit)")
        task = asyncio.create_task(session.cancel(turn))
        background.add(task)
        task.add_done_callback(background.discard)

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, interrupt)
    try:
        async with session:
            turn = await session.chat(args.message, args.conversation)
            async with asyncio.timeout(args.timeout):
                await session.wait_for(turn.ended.wait(), stop=stop)
    except TimeoutError:
        raise ClientError(f"no answer within {args.timeout:g} seconds") from None
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    if args.json:
        print(json.dumps(turn.summary(), ensure_ascii=False))
    else:
        terminal.end_line()
    return EXIT_CODES.get(turn.status or "", errors.EXIT_ERROR)


if __name__ == "__main__":
    main()
