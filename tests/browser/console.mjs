// The console in a real browser: Debian's chromium, headless, driven by playwright-core.
// Run by tests/tests/console.rs against a real server with --auth and a group `customers`:
//
//   node tests/browser/console.mjs BASE_URL ACCESS_KEY_ID SECRET SCREENSHOT_DIR
//
// with QUIVER_BROWSER_MODULES naming the directory whose node_modules holds playwright-core
// (tests/run-all.sh installs it there from tests/browser/package-lock.json). Signs in, searches
// the catalog, opens the group, looks up a record and edits a description (htmx), opens its
// lineage graph and clicks an entity in it, runs a query
// and pages it, looks at a narrow screen, signs out; a screenshot of each page goes to
// SCREENSHOT_DIR. Fails on any script error, refused request or policy violation the browser
// reports. Prints a JSON summary.
import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";

const [base, keyId, secret, shots] = process.argv.slice(2);
if (!base || !keyId || !secret || !shots) {
  console.error("usage: node console.mjs BASE_URL ACCESS_KEY_ID SECRET SCREENSHOT_DIR");
  process.exit(2);
}
const modules = process.env.QUIVER_BROWSER_MODULES;
if (!modules) {
  console.error("QUIVER_BROWSER_MODULES must name the directory where playwright-core is installed");
  process.exit(2);
}
const { chromium } = createRequire(`${modules}/package.json`)("playwright-core");
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
const problems = [];
const screenshots = [];
const steps = [];
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console error on ${page.url()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`script error on ${page.url()}: ${e}`));
  page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));

  const expect = (condition, message) => {
    if (!condition) throw new Error(`${message} (at ${page.url()})`);
  };
  const shot = async (name) => {
    const path = `${shots}/${name}.png`;
    await page.screenshot({ path, fullPage: true });
    screenshots.push(path);
  };
  const step = (name) => steps.push(name);

  // Signing in: the console sends a visitor without a session to the form, then back.
  await page.goto(`${base}/console/groups/customers`);
  expect(page.url().startsWith(`${base}/console/sign-in`), "no session: sent to sign in");
  await shot("sign-in");
  await page.fill("#access_key_id", "AKNOTAKEY");
  await page.fill("#secret_access_key", "wrong");
  await page.click("button:has-text('Sign in')");
  await page.waitForSelector("[role=alert]:has-text('Sign-in failed')");
  problems.length = 0; // the refused sign-in's 401 is reported by the browser as an error
  await page.fill("#access_key_id", keyId);
  await page.fill("#secret_access_key", secret);
  await Promise.all([
    page.waitForURL(`${base}/console/groups/customers`),
    page.click("button:has-text('Sign in')"),
  ]);
  step("sign in, back to the page asked for");

  // Home.
  await page.click("nav >> text=Home");
  await page.waitForSelector(".card:has-text('Healthy')");
  expect(await page.isVisible("table >> text=customers"), "home lists the group");
  await shot("home");
  step("home");

  // Catalog.
  await page.click("nav >> text=Catalog");
  await page.fill("#q", "cust");
  await Promise.all([page.waitForURL(/\/console\/catalog\?/), page.click("form[role=search] button")]);
  await page.waitForSelector("table >> text=customers");
  await page.selectOption("#kind", "features");
  await page.fill("#q", "cit");
  await Promise.all([page.waitForURL(/kind=features/), page.click("form[role=search] button")]);
  await page.waitForSelector("table code:has-text('city')");
  await shot("catalog");
  step("catalog: groups and features");

  // The group: a lookup and an edit, each swapped in by htmx without leaving the page.
  await page.click("table >> text=customers");
  await page.waitForSelector("h1:has-text('customers')");
  await page.fill("#record-id", "c2");
  await page.click("form[hx-get] button");
  await page.waitForSelector("#record table");
  const record = await page.textContent("#record");
  expect(record.includes("Lima") && record.includes("45"), `the lookup shows c2: ${record}`);
  expect(page.url().endsWith("/console/groups/customers"), "the lookup stayed on the page");
  await page.fill("#d-age", "age in years <b>not bold</b>");
  await page.click("form:has(#d-age) button");
  await page.waitForSelector("form:has(#d-age) [role=status]:has-text('Saved')");
  await shot("group");
  await page.reload();
  expect(
    (await page.inputValue("#d-age")) === "age in years <b>not bold</b>",
    "the description was saved, as text",
  );
  step("group: lookup and description edit");

  // Lineage: from the group's page, the graph drawn, then a click on an entity opens its page.
  await Promise.all([page.waitForURL(/\/console\/lineage\?start=customers/), page.click("main a:has-text('Lineage')")]);
  await page.waitForSelector("#graph[data-drawn]");
  const drawn = await page.getAttribute("#graph", "data-drawn");
  expect(Number(drawn) >= 3, `the graph drew the group's contexts: ${drawn}`);
  await shot("lineage");
  const target = await page.evaluate(() => {
    const node = window.quiverLineage.nodes("[start = 1]")[0];
    const at = node.renderedPosition();
    const box = document.getElementById("graph").getBoundingClientRect();
    return { x: box.left + at.x, y: box.top + at.y };
  });
  await Promise.all([page.waitForURL(/\/console\/lineage\/entity\?arn=/), page.mouse.click(target.x, target.y)]);
  await page.waitForSelector("dl.settings");
  expect((await page.textContent("dl.settings")).includes("FeatureGroup"), "the entity page of the group's context");
  await shot("lineage-entity");
  step("lineage: graph drawn, node clicked");

  // Query: a result, then its next page.
  await page.click("nav >> text=Query");
  await page.fill("#sql", "SELECT customer_id, city FROM customers ORDER BY customer_id");
  await Promise.all([page.waitForURL(/\/console\/query\?sql=/), page.click("main button:has-text('Run')")]);
  await page.waitForSelector("tbody tr");
  const first = await page.$$eval("tbody tr td:first-child", (cells) => cells.map((c) => c.textContent));
  expect(first.length === 100 && first[0] === "c000", `the first page: ${first.slice(0, 3)}`);
  await shot("query");
  await Promise.all([page.waitForURL(/page=1/), page.click(".pager >> text=Next")]);
  const second = await page.$$eval("tbody tr td:first-child", (cells) => cells.map((c) => c.textContent));
  expect(second.length === 21 && second[0] === "c100", `the second page: ${second.slice(0, 3)}`);
  const download = await page.getAttribute("a:has-text('Download CSV')", "href");
  expect(download.startsWith("/console/query/download?format=csv"), "a download link");
  step("query: pages");

  // A narrow screen: nothing overflows the page sideways.
  await page.setViewportSize({ width: 390, height: 844 });
  for (const [name, path] of [["home-narrow", "/console/"], ["group-narrow", "/console/groups/customers"]]) {
    await page.goto(`${base}${path}`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow <= 1, `${path} overflows a 390 px screen by ${overflow} px`);
    await shot(name);
  }
  step("narrow screen");

  // Signing out ends the session.
  await page.setViewportSize({ width: 1280, height: 800 });
  await Promise.all([page.waitForURL(/\/console\/sign-in/), page.click("button:has-text('Sign out')")]);
  await page.goto(`${base}/console/`);
  expect(page.url().startsWith(`${base}/console/sign-in`), "signed out");
  step("sign out");

  if (problems.length) throw new Error(`the browser reported:\n${problems.join("\n")}`);
  console.log(JSON.stringify({ ok: true, steps, screenshots }));
} catch (e) {
  console.error(`failed after: ${steps.join(" / ") || "nothing"}`);
  console.error(String(e.stack || e));
  if (problems.length) console.error(`the browser also reported:\n${problems.join("\n")}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
