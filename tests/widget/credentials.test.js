// A tab's tokens (client_demo/widget/credentials.js) and the REST calls that use them (api.js),
// under node --test: real BroadcastChannels between "tabs", stand-ins for the clock, the timers and the lock.
import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";

import { ApiError, UserApi } from "../../client_demo/widget/api.js";
import {
  ALREADY_USED,
  Credentials,
  PEER_ANSWER_MS,
  PEER_WAIT_MS,
  REST_MARGIN_MS,
  refreshMargin,
  sessionFromAuth,
  tokenTimes,
} from "../../client_demo/widget/credentials.js";

const SERVER = "http://127.0.0.1:9";
const MINUTE = 60_000;

const base64url = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
/** An unsigned JWT with these times (seconds); the widget never verifies one, it only times refreshes. */
const jwt = (iat, exp, jti = Math.random().toString(36)) => `${base64url({ alg: "HS256" })}.${base64url({ iat, exp, jti })}.sig`;

/** The tokens of session "s1", issued at `now` (ms) for `minutes`. */
function sessionAt(now, { minutes = 15, refreshToken = "r0" } = {}) {
  const iat = Math.floor(now / 1000);
  return {
    token: jwt(iat, iat + minutes * 60),
    refreshToken,
    expiresAt: now + minutes * MINUTE,
    sessionId: "s1",
    userId: 7,
    email: "ada@example.com",
  };
}

/** What POST /api/auth/refresh answers. */
function authBody(now, refreshToken, minutes = 15) {
  const iat = Math.floor(now / 1000);
  return {
    id: "7",
    email: "ada@example.com",
    token: jwt(iat, iat + minutes * 60),
    refresh_token: refreshToken,
    expires_in: minutes * 60,
    session_id: "s1",
  };
}

/** Timers that fire only when the test says. */
class FakeTimers {
  next = 1;
  pending = new Map();
  set = (callback, ms) => {
    const id = this.next++;
    this.pending.set(id, { callback, ms });
    return id;
  };
  clear = (id) => this.pending.delete(id);
  delays() {
    return Array.from(this.pending.values(), (timer) => timer.ms);
  }
  fire(ms) {
    for (const [id, timer] of [...this.pending]) {
      if (timer.ms !== ms) continue;
      this.pending.delete(id);
      timer.callback();
    }
  }
}

/** navigator.locks, in one process: one holder per name, the others queued in order. */
function makeLocks() {
  const tails = new Map();
  return {
    request(name, _options, callback) {
      const previous = tails.get(name) || Promise.resolve();
      const run = previous.then(() => callback());
      tails.set(
        name,
        run.catch(() => {}),
      );
      return run;
    },
  };
}

/** A deferred promise, settled by the test. */
function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const open = [];
afterEach(() => {
  for (const credentials of open.splice(0)) credentials.close();
});

/**
 * A tab's credentials, and what it did: `calls` (refresh tokens presented), `log` (saves, tokens, ends in order).
 * @param {object} options
 */
function tab({ now = 0, session = sessionAt(now), exchange, locks = null, channel = false, clock } = {}) {
  const timers = new FakeTimers();
  const calls = [];
  const log = [];
  const time = clock || { now };
  const credentials = new Credentials(
    session,
    {
      exchange: (refreshToken) => {
        calls.push(refreshToken);
        return exchange ? exchange(refreshToken) : Promise.resolve(authBody(time.now, `${refreshToken}+`));
      },
      save: (saved) => log.push(["save", saved.refreshToken]),
      onTokens: (fresh) => log.push(["tokens", fresh.refreshToken]),
      onEnded: (reason) => log.push(["ended", reason]),
    },
    {
      server: SERVER,
      locks,
      channel: channel ? new BroadcastChannel(`todo-chat:${SERVER}`) : null,
      now: () => time.now,
      setTimer: timers.set,
      clearTimer: timers.clear,
    },
  );
  open.push(credentials);
  return { credentials, calls, log, timers, time };
}

/** Until `check` holds, letting channel messages (macrotasks) through. */
async function until(check) {
  for (let i = 0; i < 200 && !check(); i += 1) await new Promise((resolve) => setImmediate(resolve));
  assert.ok(check(), "condition not met");
}

// ------------------------------------------------------------------------------- timing

describe("timing", () => {
  test("a token is refreshed a minute before it expires, or a fifth of its life if that is shorter", () => {
    assert.equal(refreshMargin(15 * MINUTE), MINUTE);
    assert.equal(refreshMargin(MINUTE), 12_000);
    assert.equal(refreshMargin(-5), 0);
  });

  test("a JWT's iat and exp are read without verifying it; anything else has none", () => {
    assert.deepEqual(tokenTimes(jwt(100, 1000)), { issuedAt: 100, expiresAt: 1000 });
    assert.equal(tokenTimes("not-a-token"), null);
    assert.equal(tokenTimes(`a.${base64url({ exp: 5 })}.c`), null);
  });

  test("the stored record of a signup, login or refresh", () => {
    const body = authBody(0, "r1");
    assert.deepEqual(sessionFromAuth(body, 5000), {
      token: body.token,
      refreshToken: "r1",
      expiresAt: 5000 + 15 * MINUTE,
      sessionId: "s1",
      userId: "7",
      email: "ada@example.com",
    });
  });

  test("the timer fires at expiry minus the margin, and follows an earlier socket expiry", () => {
    const { credentials, timers } = tab({ now: 0, session: sessionAt(0, { minutes: 1 }) });
    credentials.start();
    assert.deepEqual(timers.delays(), [48_000]); // 60 s less a fifth
    credentials.socketExpiry(30); // the socket's token runs out at 30 s (the server's clock, here ours)
    assert.deepEqual(timers.delays(), [18_000]);
    credentials.socketExpiry(null);
    assert.deepEqual(timers.delays(), [48_000]);
  });

  test("the server's clock ahead of ours shifts the socket's expiry into ours", () => {
    const session = { ...sessionAt(0), token: jwt(120, 120 + 900) }; // the server is two minutes ahead
    const { credentials, timers } = tab({ now: 0, session });
    credentials.socketExpiry(120 + 600); // ten minutes from now, on its clock
    assert.deepEqual(timers.delays(), [600_000 - MINUTE]);
  });

  test("when the timer fires, the token is refreshed; when only the socket's is due, the socket gets the tokens", async () => {
    const clock = { now: 0 };
    const { credentials, calls, log } = tab({ clock });
    credentials.socketExpiry(5 * 60); // the socket authenticated with an older token
    clock.now = 4 * MINUTE;
    credentials.check();
    assert.deepEqual(calls, []);
    assert.deepEqual(log, [["tokens", "r0"]]);
    clock.now = 14.5 * MINUTE;
    credentials.check();
    await until(() => calls.length === 1);
    assert.deepEqual(calls, ["r0"]);
  });

  test("a REST call with under 10 s left refreshes first", async () => {
    const clock = { now: 0 };
    const { credentials, calls } = tab({ clock });
    clock.now = 15 * MINUTE - REST_MARGIN_MS - 1;
    assert.equal(await credentials.fresh(), credentials.token);
    assert.deepEqual(calls, []);
    clock.now += 2;
    const before = credentials.token;
    const token = await credentials.fresh();
    assert.deepEqual(calls, ["r0"]);
    assert.notEqual(token, before);
  });
});

// ------------------------------------------------------------------------------- one tab

describe("refresh", () => {
  test("callers at the same moment share one refresh; the tokens are saved before anything uses them", async () => {
    const { credentials, calls, log } = tab();
    const outcomes = await Promise.all([credentials.refresh(), credentials.refresh(), credentials.fresh()]);
    assert.deepEqual(outcomes.slice(0, 2), ["ok", "ok"]);
    assert.deepEqual(calls, ["r0"]);
    assert.deepEqual(log, [
      ["save", "r0+"],
      ["tokens", "r0+"],
    ]);
    assert.equal(credentials.session.refreshToken, "r0+");
    assert.equal(credentials.userId, 7); // the same session keeps the id the tab had
  });

  test("a refresh for a token already replaced is done already", async () => {
    const { credentials, calls } = tab();
    assert.equal(await credentials.refresh({ stale: "an older access token" }), "ok");
    assert.deepEqual(calls, []);
  });

  test("refused: the session ends once, with the server's reason, and the token is never presented again", async () => {
    const { credentials, calls, log, timers } = tab({
      exchange: () => Promise.reject(new ApiError(401, "unauthorized", "Session ended")),
    });
    credentials.start();
    assert.equal(await credentials.refresh(), "ended");
    assert.equal(await credentials.refresh(), "ended");
    assert.equal(await credentials.fresh(), credentials.token);
    assert.deepEqual(calls, ["r0"]);
    assert.deepEqual(log, [["ended", "Session ended"]]);
    assert.deepEqual(timers.delays(), []);
  });

  test("no answer, a 5xx or a 429: the tokens are kept and the refresh is retried with backoff", async () => {
    const failures = [new ApiError(0, "network", "offline"), new ApiError(503, "unavailable", "later")];
    const { credentials, calls, log, timers } = tab({
      session: sessionAt(0, { minutes: 1 }),
      exchange: () => Promise.reject(failures.shift()),
      clock: { now: 50_000 }, // due: 12 s before the minute is up
    });
    const token = credentials.token;
    assert.equal(await credentials.refresh(), "unavailable");
    const [first] = timers.delays();
    assert.ok(first >= 500 && first <= 1000, `first retry after ${first} ms`);
    assert.equal(await credentials.refresh(), "unavailable");
    const [second] = timers.delays();
    assert.ok(second >= 1000 && second <= 2000, `second retry after ${second} ms`);
    assert.deepEqual(calls, ["r0", "r0"]);
    assert.equal(credentials.token, token);
    assert.deepEqual(log, []);
  });

  test("a session stored without a refresh token ends when it is due", async () => {
    const { credentials, calls, log } = tab({ session: { ...sessionAt(0), refreshToken: "" } });
    assert.equal(await credentials.refresh(), "ended");
    assert.deepEqual(calls, []);
    assert.deepEqual(log, [["ended", ""]]);
  });

  test("after close, a refresh still under way keeps nothing", async () => {
    const answer = deferred();
    const { credentials, log } = tab({ exchange: () => answer.promise });
    const outcome = credentials.refresh();
    credentials.close();
    answer.resolve(authBody(0, "r1"));
    assert.equal(await outcome, "ended");
    assert.deepEqual(log, []);
  });
});

// ------------------------------------------------------------------------------- tabs of one session

describe("tabs sharing a session", () => {
  test("new tokens reach the other tabs of the session, and only those", async () => {
    const first = tab({ channel: true });
    const second = tab({ channel: true });
    const stranger = tab({ channel: true, session: { ...sessionAt(0), sessionId: "s2" } });
    assert.equal(await first.credentials.refresh(), "ok");
    await until(() => second.credentials.session.refreshToken === "r0+");
    assert.deepEqual(second.log, [
      ["save", "r0+"],
      ["tokens", "r0+"],
    ]);
    assert.deepEqual(second.calls, []);
    assert.equal(stranger.credentials.session.refreshToken, "r0");
  });

  test("older tokens are never taken back", async () => {
    const newer = tab({ channel: true, session: sessionAt(MINUTE, { refreshToken: "r1" }) });
    const older = tab({ channel: true, session: sessionAt(0, { refreshToken: "r0" }) });
    older.credentials.start(); // asks; the newer tab answers
    newer.credentials.start(); // asks; the older tab answers, and is ignored
    await until(() => older.credentials.session.refreshToken === "r1");
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(newer.credentials.session.refreshToken, "r1");
    assert.deepEqual(newer.log, []);
  });

  test("a tab that waited for the lock takes the tokens of the tab that held it, without refreshing", async () => {
    const locks = makeLocks();
    const answer = deferred();
    const first = tab({ channel: true, locks, exchange: () => answer.promise });
    const second = tab({ channel: true, locks });
    first.credentials.start();
    second.credentials.start();
    const firstOutcome = first.credentials.refresh();
    const secondOutcome = second.credentials.refresh(); // queued behind the first tab's lock
    await until(() => first.calls.length === 1);
    answer.resolve(authBody(0, "r1"));
    assert.deepEqual(await Promise.all([firstOutcome, secondOutcome]), ["ok", "ok"]);
    assert.deepEqual(second.calls, []);
    assert.equal(second.credentials.token, first.credentials.token);
    assert.equal(second.credentials.session.refreshToken, "r1");
  });

  test("without an answer from the other tabs, the tab refreshes itself", async () => {
    const locks = makeLocks();
    const alone = tab({ channel: true, locks });
    alone.credentials.start(); // nobody answers: for PEER_ANSWER_MS, tabs may still be on their way
    const outcome = alone.credentials.refresh();
    await until(() => alone.timers.delays().includes(PEER_ANSWER_MS));
    alone.timers.fire(PEER_ANSWER_MS);
    assert.equal(await outcome, "ok");
    assert.deepEqual(alone.calls, ["r0"]);
  });

  test("'already used': another tab refreshed a moment ago, and its tokens are taken", async () => {
    const holder = tab({ channel: true, session: sessionAt(0, { refreshToken: "r0" }) });
    const late = tab({
      channel: true,
      exchange: () => Promise.reject(new ApiError(401, "unauthorized", ALREADY_USED)),
    });
    const outcome = late.credentials.refresh();
    await until(() => late.timers.delays().includes(PEER_WAIT_MS));
    // The holder's refresh lands now (its broadcast had not arrived before).
    assert.equal(await holder.credentials.refresh(), "ok");
    assert.equal(await outcome, "ok");
    assert.equal(late.credentials.session.refreshToken, "r0+");
    assert.deepEqual(late.calls, ["r0"]);
    assert.ok(!late.log.some(([kind]) => kind === "ended"));
  });

  test("'already used' and no tab has newer tokens: the session is gone for this tab", async () => {
    const late = tab({
      channel: true,
      exchange: () => Promise.reject(new ApiError(401, "unauthorized", ALREADY_USED)),
    });
    const outcome = late.credentials.refresh();
    await until(() => late.timers.delays().includes(PEER_WAIT_MS));
    late.timers.fire(PEER_WAIT_MS);
    assert.equal(await outcome, "ended");
    assert.deepEqual(late.log, [["ended", ALREADY_USED]]);
  });
});

// ------------------------------------------------------------------------------- REST

describe("UserApi", () => {
  /** The REST calls of a user whose tokens refresh to "t1"; `answers` are what the server says, in turn. */
  function userApi(answers, outcome = "ok") {
    const sent = [];
    const tokens = {
      userId: 7,
      token: "t0",
      refreshes: 0,
      fresh: async () => tokens.token,
      refresh: async () => {
        tokens.refreshes += 1;
        if (outcome === "ok") tokens.token = "t1";
        return outcome;
      },
    };
    const api = {
      request: async (method, path, { token }) => {
        sent.push([method, path, token]);
        const answer = answers.shift();
        if (answer instanceof Error) throw answer;
        return answer;
      },
    };
    return { user: new UserApi(api, tokens), sent, tokens };
  }
  const unauthorized = () => new ApiError(401, "unauthorized", "Token expired");

  test("a 401 is answered by one refresh and one retry with the new token", async () => {
    const { user, sent, tokens } = userApi([unauthorized(), { data: [], count: 0 }]);
    assert.deepEqual(await user.tasks(), { data: [], count: 0 });
    assert.deepEqual(sent, [
      ["GET", "/api/7/tasks?limit=500", "t0"],
      ["GET", "/api/7/tasks?limit=500", "t1"],
    ]);
    assert.equal(tokens.refreshes, 1);
  });

  test("only a refused refresh lets the 401 through; an unreachable server is a network error", async () => {
    const ended = userApi([unauthorized()], "ended");
    await assert.rejects(ended.user.tasks(), (error) => error.status === 401);
    const unavailable = userApi([unauthorized()], "unavailable");
    await assert.rejects(unavailable.user.tasks(), (error) => error.status === 0 && error.code === "network");
    assert.equal(unavailable.sent.length, 1);
  });

  test("the session calls go to /api/auth", async () => {
    const { user, sent } = userApi([{ data: [], count: 0 }, null, null, null]);
    await user.sessions();
    await user.endSession("a/b");
    await user.logoutAll();
    await user.logout();
    assert.deepEqual(
      sent.map(([method, path]) => `${method} ${path}`),
      [
        "GET /api/auth/sessions",
        "DELETE /api/auth/sessions/a%2Fb",
        "POST /api/auth/logout-all",
        "POST /api/auth/logout",
      ],
    );
  });
});
