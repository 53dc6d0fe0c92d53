// The words of the page, in French or English (docs/web_client.md,
// "Languages"). Catalogues are plain JSON in locales/, fetched at boot: no
// build step. Every text the page shows is bound to its element by key
// (`data-i18n`, `data-i18n-args`, `data-i18n-attrs`), so switching the
// language re-renders the whole page, the texts set while it ran included.

export const LOCALES = Object.freeze(["fr", "en"]);
const STORAGE_KEY = "teleconsult.locale";

let current = "fr";
let catalogues = {};
const listeners = new Set();

/** `fr` or `en` for a BCP 47 tag ("fr-FR" → "fr"), else null. */
export function supportedLocale(tag) {
  if (typeof tag !== "string") return null;
  const base = tag.trim().toLowerCase().split(/[-_]/)[0];
  return LOCALES.includes(base) ? base : null;
}

/**
 * The language to show: the person's own choice on this page (remembered),
 * then the one the booking system set for the appointment, then the
 * browser's languages in order, then the deployment's default.
 */
export function chooseLocale({ stored, forced, languages = [], fallback = "fr" }) {
  const chosen = supportedLocale(stored) || supportedLocale(forced);
  if (chosen) return chosen;
  for (const tag of languages || []) {
    const locale = supportedLocale(tag);
    if (locale) return locale;
  }
  return supportedLocale(fallback) || "fr";
}

export function storedLocale() {
  try {
    return window.localStorage.getItem(STORAGE_KEY);
  } catch {
    return null; // Storage blocked: the choice lasts as long as the page.
  }
}

export function rememberLocale(locale) {
  try {
    window.localStorage.setItem(STORAGE_KEY, locale);
  } catch {
    // As above.
  }
}

/** The appointment's language (session or refusal), unless the person chose one on the page. */
export function applyAppointmentLocale(locale) {
  const forced = supportedLocale(locale);
  if (forced && !supportedLocale(storedLocale()) && forced !== current) setLocale(forced);
}

/** Fetches both catalogues (same origin: the CSP allows it). */
export async function loadCatalogues(base = "/static/locales/") {
  const entries = await Promise.all(
    LOCALES.map(async (locale) => {
      const response = await fetch(`${base}${locale}.json`, { cache: "no-cache" });
      if (!response.ok) throw new Error(`catalogue ${locale}: HTTP ${response.status}`);
      return [locale, await response.json()];
    }),
  );
  catalogues = Object.fromEntries(entries);
}

export function currentLocale() {
  return current;
}

/** The deployment's default, written into the page by the server (`<html data-default-locale>`). */
export function deploymentLocale() {
  return supportedLocale(document.documentElement.dataset.defaultLocale) || "fr";
}

/** Runs `listener(locale)` after every language change (for texts not bound to an element). */
export function onLocaleChange(listener) {
  listeners.add(listener);
}

/** Switches the page to `locale`: `<html lang>`, every bound text, then the listeners. */
export function setLocale(locale) {
  current = supportedLocale(locale) || current;
  document.documentElement.lang = current;
  translateTree(document);
  for (const listener of listeners) listener(current);
}

function resolve(value) {
  if (value && typeof value === "object") {
    if (typeof value.time === "string") return formatTime(new Date(value.time));
    if (typeof value.moment === "string") return formatMoment(new Date(value.moment));
    if (typeof value.key === "string") return t(value.key, value.params);
  }
  return value === undefined || value === null ? "" : String(value);
}

/**
 * The text of `key` in the current language, `{name}` placeholders filled from
 * `params` (strings, numbers, `{time: iso}`, `{moment: iso}` or `{key, params}`).
 */
export function t(key, params = {}) {
  const catalogue = catalogues[current] || {};
  const template = typeof catalogue[key] === "string" ? catalogue[key] : key;
  return template.replace(/\{(\w+)\}/g, (whole, name) =>
    Object.prototype.hasOwnProperty.call(params || {}, name) ? resolve(params[name]) : whole,
  );
}

/** Sets the element's text from `key` and keeps it bound for the next language change. */
export function bindText(element, key, params) {
  if (!key) {
    delete element.dataset.i18n;
    delete element.dataset.i18nArgs;
    element.textContent = "";
    return;
  }
  element.dataset.i18n = key;
  if (params && Object.keys(params).length) element.dataset.i18nArgs = JSON.stringify(params);
  else delete element.dataset.i18nArgs;
  element.textContent = t(key, params);
}

/** Same for an attribute (`aria-label`, `placeholder`, `title`). */
export function bindAttr(element, attribute, key, params) {
  const bound = readAttrs(element);
  bound[attribute] = params ? [key, params] : [key];
  element.dataset.i18nAttrs = JSON.stringify(bound);
  element.setAttribute(attribute, t(key, params));
}

function readAttrs(element) {
  try {
    return JSON.parse(element.dataset.i18nAttrs || "{}");
  } catch {
    return {};
  }
}

function parseArgs(element) {
  try {
    return element.dataset.i18nArgs ? JSON.parse(element.dataset.i18nArgs) : {};
  } catch {
    return {};
  }
}

/** Renders every bound text and attribute under `root` in the current language. */
export function translateTree(root) {
  for (const element of root.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n, parseArgs(element));
  }
  for (const element of root.querySelectorAll("[data-i18n-attrs]")) {
    for (const [attribute, [key, params]] of Object.entries(readAttrs(element))) {
      element.setAttribute(attribute, t(key, params));
    }
  }
}

const TIME = { hour: "2-digit", minute: "2-digit" };
const DAY = { weekday: "long", day: "numeric", month: "long" };

function intlLocale() {
  // French reads 24-hour times ("14:05"); English follows the browser's region.
  return current === "fr" ? "fr-FR" : "en";
}

export function formatTime(date) {
  const options = current === "fr" ? { ...TIME, hourCycle: "h23" } : TIME;
  return new Intl.DateTimeFormat(intlLocale(), options).format(date);
}

export function formatDay(date) {
  return new Intl.DateTimeFormat(intlLocale(), DAY).format(date);
}

function sameDay(a, b) {
  return (
    a.getFullYear() === b.getFullYear() &&
    a.getMonth() === b.getMonth() &&
    a.getDate() === b.getDate()
  );
}

/** "today at 09:00", "tomorrow at 09:00" or "Monday 23 November at 09:00", in the language. */
export function formatMoment(date, now = new Date()) {
  const time = formatTime(date);
  if (sameDay(date, now)) return t("time.today_at", { time });
  const tomorrow = new Date(now);
  tomorrow.setDate(now.getDate() + 1);
  if (sameDay(date, tomorrow)) return t("time.tomorrow_at", { time });
  return t("time.day_at", { day: formatDay(date), time });
}
