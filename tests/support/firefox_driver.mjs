// Drives one Firefox (Debian firefox-esr) over WebDriver BiDi with puppeteer-core,
// for tests/support/firefox.py. One JSON command a line on stdin, one JSON
// answer a line on stdout, in order:
//
//   {"id": 1, "op": "goto", "url": "..."}          -> {"id": 1, "ok": true, "value": null}
//   {"id": 2, "op": "click", "testid": "check-in"}
//   {"id": 3, "op": "wait_state", "state": "in-call", "timeout": 20000}
//   {"id": 4, "op": "wait_attribute", "testid": "e2ee-status", "name": "data-state",
//    "value": "encrypted", "timeout": 20000}
//   {"id": 5, "op": "text", "testid": "safety-code"}
//   {"id": 6, "op": "attribute", "testid": "...", "name": "..."}
//   {"id": 7, "op": "evaluate", "expression": "() => 1 + 1"}
//   {"id": 8, "op": "wait_function", "expression": "() => ...", "timeout": 20000}
//   {"id": 9, "op": "errors"}                       -> the page's errors so far
//   {"id": 10, "op": "close"}
//
// A failed command answers {"id", "ok": false, "error": "..."}; the driver
// goes on. Firefox starts before the first line is read; the first line out is
// {"ready": true, "version": "..."} (or {"ready": false, "error": "..."}).
// Settings come from the environment: FIREFOX (the binary), FIREFOX_PREFS (JSON).

import { createInterface } from "node:readline";

import puppeteer from "puppeteer-core";

const DEFAULT_TIMEOUT_MS = 20_000;

function write(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}

function byTestId(testid) {
  return `[data-testid="${testid}"]`;
}

async function launch() {
  const prefs = JSON.parse(process.env.FIREFOX_PREFS || "{}");
  return puppeteer.launch({
    browser: "firefox",
    executablePath: process.env.FIREFOX,
    headless: true,
    protocol: "webDriverBiDi",
    extraPrefsFirefox: prefs,
    args: ["--no-remote"],
  });
}

class Driver {
  constructor(browser) {
    this.browser = browser;
    this.page = null;
    this.errors = [];
  }

  async ensurePage() {
    if (this.page) return this.page;
    const page = await this.browser.newPage();
    page.setDefaultTimeout(DEFAULT_TIMEOUT_MS);
    page.on("pageerror", (error) => this.errors.push(String(error && error.message ? error.message : error)));
    page.on("console", (message) => {
      if (message.type() === "error") this.errors.push(message.text());
    });
    this.page = page;
    return page;
  }

  async run(command) {
    const page = await this.ensurePage();
    const timeout = command.timeout || DEFAULT_TIMEOUT_MS;
    switch (command.op) {
      case "goto":
        await page.goto(command.url, { waitUntil: "load" });
        return null;
      case "click": {
        const element = await page.waitForSelector(byTestId(command.testid), { visible: true, timeout });
        await element.click();
        return null;
      }
      case "wait_state":
        await page.waitForFunction(
          (state) => document.body && document.body.dataset.state === state,
          { timeout },
          command.state,
        );
        return null;
      case "wait_attribute":
        await page.waitForFunction(
          (selector, name, value) => {
            const element = document.querySelector(selector);
            return element !== null && element.getAttribute(name) === value;
          },
          { timeout },
          byTestId(command.testid),
          command.name,
          command.value,
        );
        return null;
      case "text":
        return page.$eval(byTestId(command.testid), (element) => element.textContent);
      case "attribute":
        return page.$eval(
          byTestId(command.testid),
          (element, name) => element.getAttribute(name),
          command.name,
        );
      case "evaluate":
        // A function's source: evaluated by the browser, not by the page, so the CSP allows it.
        return page.evaluate(`(${command.expression})()`);
      case "wait_function":
        await page.waitForFunction(`(${command.expression})()`, { timeout });
        return null;
      case "errors":
        return this.errors;
      case "close":
        await this.browser.close();
        return null;
      default:
        throw new Error(`unknown op ${command.op}`);
    }
  }
}

async function main() {
  let browser;
  try {
    browser = await launch();
  } catch (error) {
    write({ ready: false, error: String(error && error.message ? error.message : error) });
    process.exit(1);
  }
  write({ ready: true, version: await browser.version() });
  const driver = new Driver(browser);
  const lines = createInterface({ input: process.stdin });
  // One command at a time, answered in order.
  for await (const line of lines) {
    if (!line.trim()) continue;
    let command;
    try {
      command = JSON.parse(line);
    } catch {
      write({ id: null, ok: false, error: "not JSON" });
      continue;
    }
    try {
      write({ id: command.id, ok: true, value: (await driver.run(command)) ?? null });
    } catch (error) {
      write({ id: command.id, ok: false, error: String(error && error.message ? error.message : error) });
    }
    if (command.op === "close") break;
  }
  // stdin closed without "close": do not leave Firefox behind.
  await browser.close().catch(() => {});
  process.exit(0);
}

main();
