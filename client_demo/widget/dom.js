// @ts-check
/* Two DOM operations render.js and log.js share: a typed query, and a keyed list update. */

/**
 * The element matching `selector` under `root`, of the given type (the widget's own markup: a
 * missing one is a bug, not a condition to handle).
 * @template {Element} T
 * @param {ParentNode} root
 * @param {string} selector
 * @param {{ new (): T, prototype: T }} type
 * @returns {T}
 */
export function pick(root, selector, type) {
  const found = root.querySelector(selector);
  if (!(found instanceof type)) throw new Error(`chat widget: no ${type.name} matches ${selector}`);
  return found;
}

/**
 * @param {ParentNode} root
 * @param {string} selector
 * @returns {HTMLElement}
 */
export function part(root, selector) {
  return pick(root, selector, HTMLElement);
}

/**
 * Keyed update of a list: reuses elements (and so keeps focus and state), adds and removes the rest.
 * @template T
 * @param {HTMLElement} container
 * @param {T[]} items
 * @param {(item: T) => string | number} keyOf
 * @param {(item: T) => HTMLElement} create
 * @param {(element: HTMLElement, item: T) => void} update
 */
export function reconcile(container, items, keyOf, create, update) {
  /** @type {Map<string | undefined, HTMLElement>} */
  const existing = new Map();
  for (const child of container.children) if (child instanceof HTMLElement) existing.set(child.dataset.key, child);
  /** @type {HTMLElement | null} */
  let previous = null;
  for (const item of items) {
    const key = String(keyOf(item));
    let element = existing.get(key);
    if (element) existing.delete(key);
    else {
      element = create(item);
      element.dataset.key = key;
    }
    update(element, item);
    /** @type {ChildNode | null} */
    const next = previous ? previous.nextSibling : container.firstChild;
    if (next !== element) container.insertBefore(element, next);
    previous = element;
  }
  for (const element of existing.values()) element.remove();
}
