// @ts-check
/* The widget's static markup, cloned once into its shadow root (render.js). Static only: no
 * server data ever goes through innerHTML; render.js and log.js fill it in with textContent.
 */

import { MAX_MESSAGE_CHARS } from "./config.js";

const ICONS = {
  chat: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 5.5A2.5 2.5 0 0 1 6.5 3h11A2.5 2.5 0 0 1 20 5.5v8a2.5 2.5 0 0 1-2.5 2.5H10l-4.2 3.6c-.6.5-1.3.1-1.3-.6V16A2.5 2.5 0 0 1 4 13.5z"/></svg>',
  send: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M3.4 20.4 21 12 3.4 3.6l-.1 6.5L15 12 3.3 13.9z"/></svg>',
  stop: '<svg viewBox="0 0 24 24" aria-hidden="true"><rect x="6" y="6" width="12" height="12" rx="2"/></svg>',
  minimize: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M5 12h14" stroke-width="2.2" stroke-linecap="round"/></svg>',
  menu: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 7h16M4 12h16M4 17h16" stroke-width="2" stroke-linecap="round"/></svg>',
  logo: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="m6.5 12.5 3.5 3.5 7.5-8" stroke-width="2.6" stroke-linecap="round" stroke-linejoin="round" fill="none"/></svg>',
};

export const TEMPLATE = `
<button class="launcher" type="button" aria-label="Open the Todo assistant" aria-expanded="false" aria-controls="tc-panel">${ICONS.chat}</button>
<section class="panel" id="tc-panel" aria-labelledby="tc-title" hidden>
<header class="bar">
  <button class="icon-btn menu-btn" type="button" aria-label="Conversations and tasks" aria-expanded="false" aria-controls="tc-sidebar">${ICONS.menu}</button>
  <span class="logo">${ICONS.logo}</span>
  <div class="heading">
    <h2 class="title" id="tc-title"></h2>
    <p class="conn" role="status" aria-label="Connection" data-state="offline"><span class="dot" aria-hidden="true"></span><span class="conn-text">Offline</span></p>
  </div>
  <div class="bar-actions">
    <span class="who" hidden></span>
    <button class="text-btn logout" type="button" hidden>Log out</button>
    <button class="icon-btn minimize" type="button" aria-label="Minimize the chat">${ICONS.minimize}</button>
  </div>
</header>

<div class="auth-view" hidden>
  <form class="auth" novalidate>
    <h3 class="auth-title">Log in</h3>
    <p class="auth-lead">Your tasks, managed by chatting: add, list, complete and delete them in plain words.</p>
    <label for="tc-email">Email</label>
    <input id="tc-email" name="email" type="email" autocomplete="email" required>
    <label for="tc-password">Password</label>
    <input id="tc-password" name="password" type="password" autocomplete="current-password" required aria-describedby="tc-password-hint">
    <p class="hint" id="tc-password-hint" hidden>At least 8 characters.</p>
    <p class="auth-error" role="alert"></p>
    <button class="primary auth-submit" type="submit">Log in</button>
    <p class="auth-switch"><span class="auth-switch-text">New here?</span> <button class="link auth-toggle" type="button">Create an account</button></p>
  </form>
</div>

<div class="app-view" hidden>
  <aside class="sidebar" id="tc-sidebar" aria-label="Conversations and tasks">
    <section class="side-section convs" aria-labelledby="tc-convs-h">
      <div class="section-head">
        <h3 id="tc-convs-h">Conversations</h3>
        <button class="small-btn new-conv" type="button" aria-label="New conversation">+ New</button>
      </div>
      <ul class="conv-list"></ul>
      <p class="side-empty conv-empty">No conversations yet.</p>
    </section>
    <section class="side-section tasks" aria-labelledby="tc-tasks-h">
      <div class="section-head">
        <h3 id="tc-tasks-h">Tasks</h3>
        <span class="task-count"></span>
      </div>
      <div class="task-tools">
        <button class="small-btn filters-toggle" type="button" aria-expanded="false" aria-controls="tc-filters">Filter and sort</button>
        <button class="small-btn notify-btn" type="button" hidden>Enable notifications</button>
      </div>
      <form class="task-filters" id="tc-filters" role="search" aria-label="Filter tasks" hidden>
        <label class="wide" for="tc-q">Search</label>
        <input class="wide" id="tc-q" type="search" autocomplete="off" maxlength="200" placeholder="Words in title or notes">
        <label for="tc-status">Status</label>
        <select id="tc-status"><option value="all">All</option><option value="pending">Pending</option><option value="completed">Completed</option></select>
        <label for="tc-priority">Priority</label>
        <select id="tc-priority"><option value="">Any</option><option value="high">High</option><option value="normal">Normal</option><option value="low">Low</option></select>
        <label for="tc-tag">Tag</label>
        <select id="tc-tag"><option value="">Any</option></select>
        <span class="check wide"><input id="tc-overdue" type="checkbox"><label for="tc-overdue">Overdue only</label></span>
        <label for="tc-sort">Sort by</label>
        <select id="tc-sort"><option value="created">Created</option><option value="due">Due date</option><option value="priority">Priority</option><option value="title">Title</option></select>
        <label for="tc-order">Order</label>
        <select id="tc-order"><option value="asc">Ascending</option><option value="desc">Descending</option></select>
        <button class="link wide" type="reset">Clear filters</button>
      </form>
      <ul class="task-list" aria-labelledby="tc-tasks-h"></ul>
      <p class="side-empty task-empty">No tasks yet. Ask the assistant to add one.</p>
    </section>
    <section class="side-section devices" aria-labelledby="tc-devices-h">
      <h3 class="section-head" id="tc-devices-h"><button class="disclosure devices-toggle" type="button" aria-expanded="false" aria-controls="tc-devices">Signed-in devices</button></h3>
      <div class="devices-body" id="tc-devices" hidden>
        <ul class="device-list" aria-labelledby="tc-devices-h"></ul>
        <button class="small-btn logout-all" type="button">Log out everywhere</button>
      </div>
    </section>
  </aside>
  <div class="scrim" hidden></div>
  <div class="chat">
    <div class="scroller">
      <button class="load-earlier small-btn" type="button" hidden>Load earlier messages</button>
      <div class="empty" hidden>
        <p class="empty-title">What needs doing?</p>
        <p class="empty-lead">Tell the assistant in your own words. Try:</p>
        <div class="examples" role="group" aria-label="Example messages">
          <button class="chip example" type="button">Add a task to buy groceries</button>
          <button class="chip example" type="button">Show my tasks</button>
          <button class="chip example" type="button">Add a task to call the dentist</button>
        </div>
      </div>
      <div class="log" role="log" aria-live="polite" aria-relevant="additions text" aria-label="Messages"></div>
    </div>
    <div class="choices" role="group" aria-label="Which task?" hidden></div>
    <div class="notice" role="status" aria-label="Notice" hidden><span class="notice-text"></span><button class="icon-btn notice-close" type="button" aria-label="Dismiss">&times;</button></div>
    <form class="composer">
      <label class="sr-only" for="tc-input">Message</label>
      <textarea id="tc-input" rows="1" maxlength="${MAX_MESSAGE_CHARS}" placeholder="Message the assistant\u2026" aria-describedby="tc-input-hint"></textarea>
      <span class="sr-only" id="tc-input-hint">Enter sends, Shift+Enter starts a new line.</span>
      <button class="stop" type="button" hidden>${ICONS.stop}<span>Stop</span></button>
      <button class="send" type="submit" aria-label="Send">${ICONS.send}</button>
    </form>
  </div>
</div>
</section>
<div class="toasts" role="region" aria-label="Reminders" hidden></div>`;
