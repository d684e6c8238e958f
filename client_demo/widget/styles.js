// @ts-check
/* The widget's stylesheet, adopted by its shadow root (render.js). Sizes are in px, never rem:
 * the host page's root font size must not resize the widget.
 */

export const STYLES = `
:host {
  all: initial !important;
  display: block !important;
  position: fixed !important;
  right: 0 !important; bottom: 0 !important; left: auto !important; top: auto !important;
  width: 0 !important; height: 0 !important;
  margin: 0 !important; padding: 0 !important; border: 0 !important;
  transform: none !important; filter: none !important; contain: none !important;
  z-index: 2147483000 !important;
  --accent: #4f46e5; --accent-strong: #4338ca; --accent-soft: #eef2ff;
  /* --muted is for small secondary text: at least 4.5:1 on every background it sits on, hover and
     current-conversation tints included (WCAG 1.4.3). --faint is for dots and marks, never text. */
  --text: #111827; --muted: #5f6673; --faint: #9ca3af;
  --line: #e5e7eb; --surface: #f8fafc; --bg: #ffffff; --bubble: #f1f5f9;
  --ok: #059669; --warn: #d97706; --bad: #dc2626;
  --radius: 14px;
  --shadow: 0 24px 48px -12px rgba(15, 23, 42, .28), 0 2px 6px rgba(15, 23, 42, .08);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif !important;
  color: var(--text) !important;
  -webkit-font-smoothing: antialiased !important;
}
*, *::before, *::after { box-sizing: border-box; }
[hidden] { display: none !important; }
button, input, textarea { font: inherit; color: inherit; letter-spacing: normal; text-transform: none; }
button { cursor: pointer; }
:focus { outline: none; }
:focus-visible { outline: 2px solid var(--accent); outline-offset: 2px; }
svg { width: 20px; height: 20px; fill: currentColor; stroke: currentColor; stroke-width: 0; flex: none; }
.sr-only { position: absolute !important; width: 1px; height: 1px; margin: -1px; padding: 0; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
h2, h3, p { margin: 0; }

.launcher {
  position: fixed; right: 20px; bottom: 20px; width: 56px; height: 56px; border-radius: 50%;
  border: 0; background: var(--accent); color: #fff; display: grid; place-items: center;
  box-shadow: var(--shadow); transition: transform .15s ease, background .15s ease;
}
.launcher:hover { background: var(--accent-strong); transform: translateY(-1px); }
.launcher svg { width: 26px; height: 26px; }

.panel {
  position: fixed; right: 20px; bottom: 20px;
  width: min(720px, calc(100vw - 40px)); height: min(640px, calc(100vh - 40px));
  display: flex; flex-direction: column; overflow: hidden;
  background: var(--bg); border: 1px solid var(--line); border-radius: var(--radius); box-shadow: var(--shadow);
}

.bar {
  display: flex; align-items: center; gap: 10px; padding: 10px 12px 10px 14px;
  border-bottom: 1px solid var(--line); background: var(--bg); flex: none;
}
.logo { width: 32px; height: 32px; border-radius: 10px; background: var(--accent); color: #fff; display: grid; place-items: center; flex: none; }
.logo svg { stroke: #fff; }
.heading { min-width: 0; flex: 1; }
.title { font-size: 15px; font-weight: 650; line-height: 1.2; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.panel:not(.signed-in) .conn { display: none; } /* no session, nothing to connect */
.conn { display: flex; align-items: center; gap: 6px; font-size: 12px; color: var(--muted); }
.dot { width: 8px; height: 8px; border-radius: 50%; background: var(--faint); }
.conn[data-state="online"] .dot { background: var(--ok); }
.conn[data-state="connecting"] .dot, .conn[data-state="reconnecting"] .dot { background: var(--warn); animation: pulse 1.2s ease-in-out infinite; }
.conn[data-state="offline"] .dot { background: var(--bad); }
.bar-actions { display: flex; align-items: center; gap: 4px; min-width: 0; }
.who { font-size: 12px; color: var(--muted); max-width: 180px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; margin-right: 4px; }
.icon-btn { width: 34px; height: 34px; border: 0; border-radius: 8px; background: transparent; color: var(--muted); display: grid; place-items: center; flex: none; }
.icon-btn:hover { background: var(--surface); color: var(--text); }
.icon-btn svg { stroke: currentColor; }
.menu-btn { display: none; }
.text-btn { border: 0; background: transparent; color: var(--muted); padding: 6px 8px; border-radius: 8px; font-size: 13px; }
.text-btn:hover { background: var(--surface); color: var(--text); }

.auth-view { flex: 1; overflow: auto; display: grid; place-items: center; padding: 24px; background: var(--surface); }
.auth { width: min(360px, 100%); display: flex; flex-direction: column; gap: 6px; background: var(--bg); padding: 24px; border: 1px solid var(--line); border-radius: var(--radius); }
.auth-title { font-size: 18px; font-weight: 650; }
.auth-lead { color: var(--muted); margin-bottom: 10px; }
.auth label { font-weight: 550; font-size: 13px; margin-top: 6px; }
.auth input { padding: 10px 12px; border: 1px solid #d1d5db; border-radius: 10px; background: var(--bg); }
.auth input:focus-visible { outline: 2px solid var(--accent); outline-offset: 0; border-color: var(--accent); }
.hint { color: var(--muted); font-size: 12px; }
.auth-error { color: var(--bad); font-size: 13px; min-height: 18px; }
.primary { margin-top: 4px; padding: 10px 14px; border: 0; border-radius: 10px; background: var(--accent); color: #fff; font-weight: 600; }
.primary:hover { background: var(--accent-strong); }
.primary:disabled { opacity: .6; cursor: progress; }
.auth-switch { color: var(--muted); font-size: 13px; text-align: center; margin-top: 6px; }
.link { border: 0; background: none; padding: 0; color: var(--accent); font-weight: 600; text-decoration: underline; text-underline-offset: 2px; }

.app-view { flex: 1; display: flex; min-height: 0; position: relative; }
.sidebar { width: 240px; flex: none; display: flex; flex-direction: column; border-right: 1px solid var(--line); background: var(--surface); min-height: 0; }
.side-section { display: flex; flex-direction: column; min-height: 0; padding: 12px 10px 8px; }
.convs { flex: 0 0 auto; max-height: 42%; border-bottom: 1px solid var(--line); }
/* The filter form and the list scroll together: an open form must not squeeze the list to nothing. */
.tasks { flex: 1 1 auto; overflow-y: auto; }
.tasks .task-list { overflow: visible; flex: none; }
.devices { flex: none; border-top: 1px solid var(--line); max-height: 40%; }
.disclosure { border: 0; background: none; padding: 0; font: inherit; letter-spacing: inherit; text-transform: inherit; color: inherit; display: flex; align-items: center; gap: 6px; }
.disclosure::before { content: "\\25B8"; font-size: 11px; transition: transform .12s; }
.disclosure[aria-expanded="true"]::before { transform: rotate(90deg); }
h3.section-head { font-size: 12px; font-weight: 650; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); }
.devices-body { display: flex; flex-direction: column; gap: 6px; min-height: 0; }
.device-list { list-style: none; margin: 0; padding: 0; overflow-y: auto; min-height: 0; }
.device { display: flex; align-items: center; gap: 8px; padding: 5px 6px; border-radius: 8px; }
.device-text { flex: 1; min-width: 0; }
.device-name { display: block; font-size: 13px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.device-meta { display: block; font-size: 12px; color: var(--muted); }
.logout-all { align-self: flex-start; margin: 0 6px; }
.section-head { display: flex; align-items: center; justify-content: space-between; padding: 0 4px 8px; }
.section-head h3 { font-size: 12px; font-weight: 650; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); }
.task-count { font-size: 12px; color: var(--muted); }
.small-btn { border: 1px solid var(--line); background: var(--bg); border-radius: 8px; padding: 3px 9px; font-size: 12px; font-weight: 600; color: var(--accent); }
.small-btn:hover { border-color: var(--accent); }
.conv-list, .task-list { list-style: none; margin: 0; padding: 0; overflow-y: auto; min-height: 0; }
.side-empty { color: var(--muted); font-size: 13px; padding: 2px 6px; }
.conv { width: 100%; display: flex; align-items: center; gap: 8px; text-align: left; border: 0; background: transparent; padding: 7px 8px; border-radius: 8px; }
.conv:hover { background: #eef0f4; }
.conv[aria-current="true"] { background: var(--accent-soft); color: var(--accent-strong); }
.conv-title { flex: 1; min-width: 0; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; font-size: 13px; }
.conv-time { font-size: 11px; color: var(--muted); flex: none; }
.unread { width: 8px; height: 8px; border-radius: 50%; background: var(--accent); flex: none; }
.task { display: flex; align-items: flex-start; gap: 8px; padding: 6px 6px; border-radius: 8px; }
.task:hover { background: #eef0f4; }
.task input { margin: 2px 0 0; width: 16px; height: 16px; accent-color: var(--accent); flex: none; cursor: pointer; }
.task label { flex: 1; min-width: 0; cursor: pointer; overflow-wrap: anywhere; font-size: 13px; }
.task-desc { display: block; color: var(--muted); font-size: 12px; }
.task-id { color: var(--muted); font-size: 11px; flex: none; margin-top: 2px; }
.task.done .task-title { text-decoration: line-through; color: var(--muted); }
.task.fresh { animation: flash 1.2s ease-out; }
.task.overdue { box-shadow: inset 3px 0 0 var(--bad); }
.task-meta { display: flex; flex-wrap: wrap; gap: 4px; margin-top: 3px; }
.task-meta > * { font-size: 11.5px; line-height: 1.5; padding: 0 6px; border-radius: 999px; background: var(--bg); border: 1px solid var(--line); color: var(--muted); white-space: nowrap; }
.task-meta .overdue-mark { color: #991b1b; background: #fef2f2; border-color: #fecaca; font-weight: 600; }
.task-meta .prio-high { color: #9a3412; background: #fff7ed; border-color: #fed7aa; font-weight: 600; }
.task-meta .tag { color: var(--accent-strong); background: var(--accent-soft); border-color: #c7d2fe; }
.task.done .task-meta { opacity: 1; }
.task-tools { display: flex; flex-wrap: wrap; gap: 6px; padding: 0 4px 8px; }
.task-filters { display: grid; grid-template-columns: auto 1fr; align-items: center; gap: 5px 8px; padding: 8px; margin: 0 2px 8px; border: 1px solid var(--line); border-radius: 10px; background: var(--bg); font-size: 12.5px; }
.task-filters .wide { grid-column: 1 / -1; }
.task-filters label { font-weight: 550; }
.task-filters input[type="search"], .task-filters select { min-width: 0; width: 100%; padding: 4px 6px; border: 1px solid #9ca3af; border-radius: 7px; background: var(--bg); font-size: 12.5px; }
.task-filters .check { display: flex; align-items: center; gap: 6px; }
.task-filters .check input { margin: 0; accent-color: var(--accent); }
.task-filters .link { justify-self: start; font-size: 12.5px; }
/* Reminders sit above the launcher, or inside the open panel just below its header: never over a control of the bar. */
.toasts { position: fixed; right: 20px; bottom: 88px; width: min(360px, calc(100vw - 40px)); max-height: calc(100vh - 120px); overflow-y: auto; display: flex; flex-direction: column; gap: 8px; z-index: 3; }
.panel:not([hidden]) ~ .toasts { right: 32px; bottom: auto; top: calc(100vh - 20px - min(640px, 100vh - 40px) + 64px); width: min(360px, calc(100vw - 64px)); max-height: calc(min(640px, 100vh - 40px) - 140px); }
.toast { position: relative; display: flex; flex-direction: column; gap: 8px; padding: 12px 40px 12px 14px; background: var(--bg); color: var(--text); border: 1px solid var(--line); border-left: 4px solid var(--accent); border-radius: 12px; box-shadow: var(--shadow); }
.toast-text { font-size: 13.5px; overflow-wrap: anywhere; }
.toast-label { display: inline-flex; align-items: center; gap: 5px; margin-right: 4px; color: var(--accent-strong); font-weight: 600; }
.toast-label svg { width: 15px; height: 15px; }
.toast-due { display: block; color: var(--muted); font-size: 12.5px; }
.toast-actions { display: flex; gap: 8px; }
.toast-actions .small-btn { padding: 5px 11px; font-size: 12.5px; }
.toast-close { position: absolute; top: 6px; right: 6px; width: 28px; height: 28px; font-size: 18px; }
.scrim { position: absolute; inset: 0; background: rgba(15, 23, 42, .25); z-index: 1; }

.chat { flex: 1; display: flex; flex-direction: column; min-width: 0; min-height: 0; }
.scroller { flex: 1; overflow-y: auto; padding: 16px 16px 8px; display: flex; flex-direction: column; gap: 8px; }
.load-earlier { align-self: center; }
.empty { margin: auto; text-align: center; max-width: 340px; padding: 12px; }
.empty-title { font-size: 17px; font-weight: 650; margin-bottom: 4px; }
.empty-lead { color: var(--muted); margin-bottom: 12px; }
.examples { display: flex; flex-wrap: wrap; gap: 8px; justify-content: center; }
.chip { border: 1px solid var(--line); background: var(--bg); border-radius: 999px; padding: 6px 12px; font-size: 13px; color: var(--text); }
.chip:hover { border-color: var(--accent); color: var(--accent-strong); background: var(--accent-soft); }
.log { display: flex; flex-direction: column; gap: 8px; }
.msg { display: flex; flex-direction: column; max-width: 85%; }
.msg.user { align-self: flex-end; align-items: flex-end; }
.msg.assistant { align-self: flex-start; align-items: flex-start; }
.bubble { padding: 9px 13px; border-radius: 16px; white-space: pre-wrap; overflow-wrap: anywhere; }
.msg.user .bubble { background: var(--accent); color: #fff; border-bottom-right-radius: 5px; }
.msg.assistant .bubble { background: var(--bubble); border-bottom-left-radius: 5px; }
/* Not sent yet: told apart by its colours and outline, not by fading (which lowers the contrast). */
.msg.pending .bubble { background: var(--accent-soft); color: var(--accent-strong); box-shadow: inset 0 0 0 1px var(--accent); }
.msg.failed .bubble { background: #fee2e2; color: #7f1d1d; }
.meta { font-size: 11px; color: var(--muted); margin: 3px 6px 0; }
.msg.failed .meta, .msg .meta.bad { color: var(--bad); }
.typing { display: inline-flex; gap: 4px; padding: 4px 0; }
.typing i { width: 6px; height: 6px; border-radius: 50%; background: var(--faint); animation: bounce 1s infinite ease-in-out; }
.typing i:nth-child(2) { animation-delay: .15s; }
.typing i:nth-child(3) { animation-delay: .3s; }
.tool { align-self: flex-start; display: inline-flex; align-items: center; gap: 7px; max-width: 90%; font-size: 12.5px; color: #374151; background: var(--bg); border: 1px solid var(--line); border-radius: 999px; padding: 3px 11px 3px 4px; }
.tool-icon { width: 18px; height: 18px; border-radius: 50%; display: grid; place-items: center; font-size: 11px; font-weight: 700; color: #fff; background: var(--ok); flex: none; }
.tool.pending .tool-icon { background: var(--faint); }
.tool.error .tool-icon { background: var(--bad); }
.tool-text { overflow-wrap: anywhere; }
.choices { display: flex; flex-wrap: wrap; gap: 6px; padding: 4px 16px 8px; }
.notice { display: flex; align-items: center; gap: 8px; margin: 0 16px 8px; padding: 7px 8px 7px 12px; border-radius: 10px; background: #fffbeb; color: #92400e; border: 1px solid #fde68a; font-size: 13px; }
.notice-text { flex: 1; }
.notice .icon-btn { width: 26px; height: 26px; font-size: 18px; color: inherit; }
.composer { display: flex; align-items: flex-end; gap: 8px; padding: 10px 12px 12px; border-top: 1px solid var(--line); flex: none; }
.composer textarea {
  flex: 1; resize: none; min-height: 42px; max-height: 140px; padding: 10px 13px; line-height: 20px;
  border: 1px solid #d1d5db; border-radius: 12px; background: var(--bg); overflow-y: auto;
}
.composer textarea:focus-visible { outline: 2px solid var(--accent); outline-offset: 0; border-color: var(--accent); }
.send { width: 42px; height: 42px; border: 0; border-radius: 12px; background: var(--accent); color: #fff; display: grid; place-items: center; flex: none; }
.send:hover { background: var(--accent-strong); }
.stop { height: 42px; display: inline-flex; align-items: center; gap: 6px; padding: 0 12px; border: 1px solid var(--line); border-radius: 12px; background: var(--bg); font-weight: 600; flex: none; }
.stop:hover { border-color: var(--bad); color: var(--bad); }
.stop svg { width: 14px; height: 14px; }
.stop:disabled { opacity: .6; cursor: progress; }

@keyframes pulse { 50% { opacity: .35; } }
@keyframes bounce { 0%, 80%, 100% { transform: translateY(0); opacity: .5; } 40% { transform: translateY(-4px); opacity: 1; } }
@keyframes flash { from { background: #dcfce7; } to { background: transparent; } }
@media (prefers-reduced-motion: reduce) { *, *::before, *::after { animation: none !important; transition: none !important; } }

/* Narrow panels: conversations and tasks move into a drawer. */
@media (max-width: 820px) {
  .panel { width: min(440px, calc(100vw - 40px)); }
  .panel.signed-in .menu-btn { display: grid; }
  .sidebar {
    position: absolute; top: 0; bottom: 0; left: 0; z-index: 2; width: min(300px, 85%);
    transform: translateX(-100%); visibility: hidden; transition: transform .18s ease, visibility .18s;
    box-shadow: var(--shadow);
  }
  .panel.drawer-open .sidebar { transform: none; visibility: visible; }
  .who { display: none; }
}
@media (min-width: 821px) { .scrim { display: none !important; } }
/* Phones: the panel takes the whole screen. */
@media (max-width: 600px) {
  .panel { inset: 0; width: auto; height: auto; border: 0; border-radius: 0; box-shadow: none; }
  .launcher { right: 16px; bottom: 16px; }
  .msg { max-width: 90%; }
  .composer textarea { font-size: 16px; } /* 16px stops iOS from zooming into the field */
  .panel:not([hidden]) ~ .toasts { top: 64px; right: 12px; width: calc(100vw - 24px); max-height: calc(100vh - 160px); }
}`;
