// knowrec's page: reads this server's JSON API (docs/serving.md) and nothing else.
"use strict";

const $ = (id) => document.getElementById(id);
const runPath = (run, rest) => `/runs/${encodeURIComponent(run)}/${rest}`;
let runs = []; // GET /runs

// ------------------------------------------------------------------ helpers

/** An element with properties (dataset, className, …) and children (nodes or text). */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else node[key] = value;
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

/** A number as the reports print it: 4 significant digits, integers whole. */
function fmt(x) {
  if (typeof x !== "number") return String(x);
  return Number.isInteger(x) ? x.toLocaleString("en") : String(Number(x.toPrecision(4)));
}

const kilobytes = (bytes) => `${fmt(Math.ceil(bytes / 1024))} KB`;

/** GET a JSON route; an error answer throws its {"error"} text with the status. */
async function api(path, params = {}) {
  const url = new URL(path, location.origin);
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
  let response;
  try {
    response = await fetch(url, { headers: { Accept: "application/json" } });
  } catch (e) {
    throw new Error(`GET ${url.pathname}: no answer from the server (${e.message})`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: said below
  }
  if (!response.ok) {
    throw new Error(`${response.status}: ${body && body.error ? body.error : response.statusText}`);
  }
  if (body === null) throw new Error(`GET ${url.pathname}: the answer is not JSON`);
  return body;
}

/** Show an error in the alert paragraph `id` (none: hide it). */
function showError(id, error) {
  const p = $(id);
  p.textContent = error ? error.message || String(error) : "";
  p.hidden = !error;
}

function note(id, text) {
  $(id).textContent = text || "";
  $(id).hidden = !text;
}

/** Calls of `load` where only the latest call's answer is shown (a slower, older answer
 * is dropped): typing fast or clicking twice never shows a stale list. */
function latest(load) {
  let last = 0;
  return async (...args) => {
    const mine = ++last;
    return load(() => mine === last, ...args);
  };
}

function fillSelect(select, options, placeholder) {
  select.replaceChildren(
    ...(placeholder ? [el("option", { value: "", textContent: placeholder })] : []),
    ...options.map(([value, label]) => el("option", { value, textContent: label })),
  );
}

const runsOf = (...kinds) => runs.filter((r) => kinds.includes(r.kind));
const runLabel = (r) => `${r.name} (${r.kind}${r.state === "ready" ? "" : `, ${r.state}`})`;

/** "name value" chips, e.g. a recommendation's recall paths or stage scores. */
function chips(values) {
  return el(
    "span",
    { className: "chips" },
    ...Object.entries(values).map(([name, v]) =>
      el("span", { className: "chip" }, `${name} `, el("b", {}, fmt(v))),
    ),
  );
}

/** Knowledge as an answer carries it: text, a list (as chips) or named parts. */
function knowledge(value) {
  if (Array.isArray(value)) {
    const items = value.map((v) => el("span", { className: "chip" }, String(v)));
    return el("span", { className: "chips" }, ...items);
  }
  if (value && typeof value === "object") {
    const parts = Object.entries(value).map(([name, v]) =>
      el(
        "span",
        { className: "part" },
        el("b", {}, `${name}: `),
        typeof v === "string" ? v : JSON.stringify(v),
      ),
    );
    return el("span", {}, ...parts);
  }
  return el("span", {}, String(value));
}

/** One recommendation: rank, title, id and score, then the reasons (`why`: [label, node]). */
function card(item, scoreLabel, why) {
  const head = el(
    "div",
    { className: "head" },
    el("span", { className: "rank" }, String(item.rank)),
    el("span", { className: "title" }, item.title || "(no title)"),
    el("span", { className: "id" }, item.item_id),
    el("span", { className: "score", title: scoreLabel }, `${scoreLabel} ${fmt(item.score)}`),
  );
  const reasons = el("dl", { className: "why" });
  for (const [label, node] of why) {
    if (node !== null) reasons.append(el("dt", {}, label), el("dd", {}, node));
  }
  return el("li", { className: "rec", dataset: { itemId: item.item_id } }, head, reasons);
}

// ------------------------------------------------------------------ items (Explore)

const searchItems = latest(async (current, q) => {
  const run = $("explore-run").value;
  const list = $("search-results");
  if (!run || !q.trim()) {
    list.replaceChildren();
    return;
  }
  try {
    const answer = await api(runPath(run, "items"), { q, limit: 20 });
    if (!current()) return;
    showError("items-error", null);
    list.replaceChildren(
      ...answer.items.map((it) =>
        el(
          "li",
          {},
          el(
            "button",
            { type: "button", dataset: { itemId: it.item_id }, onclick: () => pick(it.item_id) },
            el("span", { className: "title" }, it.title),
            el("span", { className: "id" }, it.item_id),
          ),
        ),
      ),
    );
    if (!answer.items.length) list.append(el("li", { className: "muted" }, `no title contains “${q}”`));
  } catch (e) {
    if (current()) showError("items-error", e);
  }
});

/** Mark the chosen search result and show its recommendations. */
function pick(itemId) {
  for (const button of document.querySelectorAll("#search-results button")) {
    button.setAttribute("aria-pressed", String(button.dataset.itemId === itemId));
  }
  recommendItem(itemId);
}

const recommendItem = latest(async (current, itemId) => {
  const run = $("explore-run").value;
  try {
    const answer = await api(runPath(run, "recommend"), { item: itemId, k: $("explore-k").value });
    if (!current()) return;
    showError("items-error", null);
    $("trigger").replaceChildren(
      "Recommendations for ",
      el("q", {}, answer.trigger_title || answer.trigger_id),
      el("span", { className: "id" }, answer.trigger_id),
    );
    const sources = Object.entries(answer.sources).map(([s, n]) => `${s} ${n}`).join(", ");
    const failures = Object.entries(answer.failures).map(([p, why]) => `${p}: ${why}`).join("; ");
    $("explore-meta").textContent =
      `${answer.items.length} items in ${fmt(answer.latency_ms)} ms · scores ${answer.scoring}` +
      ` · candidates: ${sources}${failures ? ` · failed: ${failures}` : ""}`;
    $("explore-recs").replaceChildren(
      ...answer.items.map((item) => {
        const { quality, ...stages } = item.scores;
        return card(item, "score", [
          ["found by", chips(item.paths)],
          ["stage scores", chips(stages)],
          ["predicted quality", quality === undefined ? null : el("b", {}, fmt(quality))],
          ["judged (LLM, 0–4)", item.judged == null ? null : el("b", {}, fmt(item.judged))],
          ["knowledge", item.knowledge ? knowledge(item.knowledge) : null],
        ]);
      }),
    );
  } catch (e) {
    if (current()) showError("items-error", e);
  }
});

function setUpItems() {
  const explore = runsOf("explore");
  fillSelect($("explore-run"), explore.map((r) => [r.name, runLabel(r)]));
  $("search").disabled = !explore.length;
  note("items-note", explore.length ? "" : "No Explore Further run is served.");
  let timer;
  $("search").addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => searchItems($("search").value), 200);
  });
  $("explore-run").addEventListener("change", () => {
    $("explore-recs").replaceChildren();
    $("explore-meta").textContent = "";
    $("trigger").textContent = "Recommendations";
    searchItems($("search").value);
  });
}

// ------------------------------------------------------------------ users (HKNR, TRAWL)

/** The run whose users are listed and whose history is shown (HKNR or TRAWL). */
const userRun = () => $("user-run").value;

async function listUsers() {
  const run = userRun();
  if (!run) return;
  try {
    const answer = await api(runPath(run, "users"), { limit: 100 });
    const options = answer.users.map((u) => [u.user_id, `${u.user_id} (${fmt(u.clicks)} in history)`]);
    fillSelect($("user-select"), options, `choose one of ${options.length}…`);
    showError("users-error", null);
  } catch (e) {
    showError("users-error", e);
  }
}

const showHistory = latest(async (current, user) => {
  try {
    const answer = await api(runPath(userRun(), `users/${encodeURIComponent(user)}`));
    if (!current()) return;
    showError("history-error", null);
    const shown = answer.history.length;
    $("history-count").textContent =
      answer.clicks > shown ? `(${fmt(answer.clicks)} items, the latest ${shown})` : `(${shown} items)`;
    $("history").replaceChildren(
      ...answer.history.map((click) =>
        el(
          "li",
          { dataset: { itemId: click.item_id } },
          el("span", { className: "title" }, click.title || "(no title)"),
          el("span", { className: "id" }, click.item_id),
          click.rating == null ? null : el("span", { className: "rating" }, `★ ${fmt(click.rating)}`),
          click.time ? el("time", { dateTime: click.time }, click.time.replace("T", " ").slice(0, 16)) : null,
        ),
      ),
    );
    if (!shown) $("history").append(el("li", { className: "muted" }, "nothing before now"));
  } catch (e) {
    if (!current()) return;
    $("history").replaceChildren();
    $("history-count").textContent = "";
    showError("history-error", e);
  }
});

/** Recommendations for `user` from `run` into the column `prefix` (hknr, trawl). */
async function userRecs(current, prefix, route, user, render) {
  const run = $(`${prefix}-run`).value;
  if (!run) return;
  try {
    const answer = await api(runPath(run, route), { user, k: $("users-k").value });
    if (!current()) return;
    showError(`${prefix}-error`, null);
    const cold = answer.cold ? "no history to go on: popular items only · " : "";
    const latency = answer.latency_ms === undefined ? "" : ` in ${fmt(answer.latency_ms)} ms`;
    const model = answer.model ? ` · model ${answer.model}` : "";
    $(`${prefix}-meta`).textContent = `${cold}${answer.items.length} items${latency}${model}`;
    const about = $(`${prefix}-user`);
    if (about) {
      about.replaceChildren(...(answer.user_knowledge ? [el("b", {}, "the user: "), answer.user_knowledge] : []));
      about.hidden = !answer.user_knowledge;
    }
    $(`${prefix}-recs`).replaceChildren(...answer.items.map(render));
  } catch (e) {
    if (!current()) return;
    $(`${prefix}-recs`).replaceChildren();
    const unknown = e.message.startsWith("404: unknown user");
    $(`${prefix}-meta`).textContent = unknown ? `${user} is not a user of run ${run}.` : "";
    showError(`${prefix}-error`, unknown ? null : e);
  }
}

function shareBar(share) {
  const percent = Math.round(100 * share);
  return el(
    "span",
    { className: "share" },
    el("span", { className: "bar" }, el("span", { style: `width:${percent}%` })),
    `${percent}% of the article vector from knowledge`,
  );
}

const hknrRecs = latest((current, user) =>
  userRecs(current, "hknr", "news/recommend", user, (item) =>
    card(item, "p(click)", [
      ["found by", item.found_by],
      ["topic", item.topic || null],
      ["entities", item.entities.length ? knowledge(item.entities) : null],
      ["knowledge share", shareBar(item.knowledge_share)],
    ]),
  ),
);

const trawlRecs = latest((current, user) =>
  userRecs(current, "trawl", "ctr/recommend", user, (item) =>
    card(item, "p(click)", [
      ["found by", item.found_by ?? null],
      ["knowledge", item.knowledge ? knowledge(item.knowledge) : null],
    ]),
  ),
);

function showUser(user) {
  if (!user) return;
  $("user-input").value = user;
  const select = $("user-select"); // shows the user when listed, else the placeholder
  select.value = [...select.options].some((o) => o.value === user) ? user : "";
  if (userRun()) showHistory(user);
  hknrRecs(user);
  trawlRecs(user);
}

function setUpUsers() {
  const hknr = runsOf("hknr");
  const trawl = runsOf("trawl");
  fillSelect($("user-run"), [...hknr, ...trawl].map((r) => [r.name, runLabel(r)]));
  fillSelect($("hknr-run"), hknr.map((r) => [r.name, runLabel(r)]));
  fillSelect($("trawl-run"), trawl.map((r) => [r.name, runLabel(r)]));
  $("hknr-column").hidden = $("hknr-run").closest("label").hidden = !hknr.length;
  $("trawl-column").hidden = $("trawl-run").closest("label").hidden = !trawl.length;
  note("users-note", hknr.length || trawl.length ? "" : "No HKNR or TRAWL run is served.");
  $("user-select").addEventListener("change", () => showUser($("user-select").value));
  $("user-form").addEventListener("submit", (event) => {
    event.preventDefault();
    showUser($("user-input").value.trim());
  });
  $("user-run").addEventListener("change", () => {
    listUsers();
    showUser($("user-input").value.trim());
  });
  for (const id of ["hknr-run", "trawl-run"]) {
    $(id).addEventListener("change", () => showUser($("user-input").value.trim()));
  }
  listUsers();
}

// ------------------------------------------------------------------ report

const showReport = latest(async (current, run) => {
  const frame = $("report-frame");
  const text = $("report-text");
  const clear = () => {
    frame.hidden = text.hidden = true;
    frame.removeAttribute("src");
    text.textContent = "";
    $("report-files").replaceChildren();
    $("report-plots").replaceChildren();
  };
  try {
    const answer = await api(runPath(run, "report"));
    if (!current()) return;
    clear();
    showError("report-error", null);
    const files = Object.fromEntries(answer.files.map((f) => [f.name, f]));
    $("report-files").replaceChildren(
      ...answer.files.map((f) =>
        el("a", { href: f.url, target: "_blank", rel: "noopener" }, `${f.name} (${kilobytes(f.bytes)})`),
      ),
    );
    note("report-note", answer.files.length ? "" : "This run has no report yet.");
    if (files["report.html"]) {
      frame.src = files["report.html"].url;
      frame.hidden = false;
    } else if (files["results.md"]) {
      const response = await fetch(files["results.md"].url);
      if (!response.ok) throw new Error(`${response.status}: results.md could not be read`);
      text.textContent = await response.text();
      text.hidden = false;
    }
    $("report-plots").replaceChildren(
      ...answer.files
        .filter((f) => f.name.endsWith(".png"))
        .map((f) => el("figure", {}, el("img", { src: f.url, alt: f.name }), el("figcaption", {}, f.name))),
    );
  } catch (e) {
    if (!current()) return;
    clear();
    showError("report-error", e);
  }
});

function setUpReport() {
  fillSelect($("report-run"), runs.map((r) => [r.name, runLabel(r)]), "choose a run…");
  $("report-run").addEventListener("change", () => {
    if ($("report-run").value) showReport($("report-run").value);
  });
}

// ------------------------------------------------------------------ tabs and runs

function openTab(id) {
  for (const tab of document.querySelectorAll("[role=tab]")) {
    const selected = tab.getAttribute("aria-controls") === id;
    tab.setAttribute("aria-selected", String(selected));
    $(tab.getAttribute("aria-controls")).hidden = !selected;
  }
  history.replaceState(null, "", `#${id}`);
}

/** The runs' states in the header and in their selectors. */
function showRuns() {
  $("runs-summary").textContent = `runs: ${runs.map(runLabel).join(" · ")}`;
  for (const option of document.querySelectorAll("select[id$=-run] option")) {
    const run = runs.find((r) => r.name === option.value);
    if (run) option.textContent = runLabel(run);
  }
  if (runs.some((r) => r.state === "loading")) setTimeout(watchRuns, 3000);
}

/** GET /runs again while a run is loading. */
async function watchRuns() {
  try {
    runs = (await api("/runs")).runs;
    showError("page-error", null);
    showRuns();
  } catch (e) {
    showError("page-error", e);
  }
}

async function start() {
  for (const tab of document.querySelectorAll("[role=tab]")) {
    tab.addEventListener("click", () => openTab(tab.getAttribute("aria-controls")));
  }
  try {
    runs = (await api("/runs")).runs;
  } catch (e) {
    showError("page-error", e);
    $("runs-summary").textContent = "";
    return;
  }
  setUpItems();
  setUpUsers();
  setUpReport();
  showRuns();
  const asked = location.hash.slice(1);
  const fallback = runsOf("explore").length ? "items" : runsOf("hknr", "trawl").length ? "users" : "report";
  openTab(["items", "users", "report"].includes(asked) ? asked : fallback);
  document.body.dataset.ready = "true"; // for the browser test: the page is set up
}

start();
