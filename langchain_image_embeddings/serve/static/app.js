// The imgemb search page: talks to the JSON API of the same app (relative URLs, no CDN).
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { info: null, query: null };
const PLACEHOLDER =
  "data:image/svg+xml," +
  encodeURIComponent(
    '<svg xmlns="http://www.w3.org/2000/svg" width="160" height="120"><rect width="160" height="120" fill="#e4e7eb"/>' +
      '<text x="80" y="66" font-family="sans-serif" font-size="13" text-anchor="middle" fill="#5f6b7a">no preview</text></svg>'
  );

function setStatus(el, text, isError) {
  el.textContent = text;
  el.classList.toggle("error", Boolean(isError));
}

async function api(url, options) {
  const started = performance.now();
  const response = await fetch(url, options);
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    body = { error: "bad_response", message: `HTTP ${response.status}` };
  }
  if (!response.ok) {
    const error = new Error(body && body.message ? body.message : `HTTP ${response.status}`);
    error.code = body && body.error;
    throw error;
  }
  body.seconds = (performance.now() - started) / 1000;
  return body;
}

function basename(path) {
  const parts = String(path).split(/[\\/]/);
  return parts[parts.length - 1] || String(path);
}

function thumbUrl(id, size) {
  return `api/thumbnails/${encodeURIComponent(id)}?size=${size}`;
}

function formatValue(value) {
  if (Array.isArray(value)) return value.join(", ");
  if (value !== null && typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function card(hit, size, rankLabel) {
  const node = $("#card").content.firstElementChild.cloneNode(true);
  node.dataset.id = hit.id;
  node.dataset.score = hit.score;
  const img = node.querySelector("img");
  img.addEventListener("error", () => {
    img.classList.add("missing");
    img.src = PLACEHOLDER;
  }, { once: true });
  img.src = thumbUrl(hit.id, size);
  img.alt = basename(hit.source);
  node.querySelector(".rank").textContent = rankLabel;
  node.querySelector(".score").textContent = Number(hit.score).toFixed(4);
  const source = node.querySelector(".source");
  source.textContent = basename(hit.source);
  source.title = hit.sources.join("\n");
  const meta = node.querySelector(".meta");
  for (const [key, value] of Object.entries(hit.metadata || {})) {
    const dt = document.createElement("dt");
    dt.textContent = key;
    const dd = document.createElement("dd");
    dd.textContent = formatValue(value);
    meta.append(dt, dd);
  }
  node.querySelector(".more").addEventListener("click", () => moreLikeThis(hit));
  return node;
}

function searchParams() {
  const params = new URLSearchParams();
  params.set("k", $("#k").value || "12");
  for (const token of $("#filters").value.split(/\s+/)) {
    if (token) params.append("filter", token);
  }
  return params;
}

function render(result, label) {
  const grid = $("#results");
  grid.replaceChildren(...result.results.map((hit) => card(hit, 256, `#${hit.rank}`)));
  const n = result.count;
  setStatus($("#status"), `${n} result${n === 1 ? "" : "s"} ${label} (${result.seconds.toFixed(2)} s)`);
}

async function run(kind, label, request) {
  showView("search");
  state.query = kind;
  setStatus($("#status"), "searching…");
  try {
    render(await request(), label);
  } catch (err) {
    $("#results").replaceChildren();
    setStatus($("#status"), `error: ${err.message}`, true);
  }
}

function searchText(text) {
  const params = searchParams();
  params.set("q", text);
  return run("text", `for “${text}”`, () => api(`api/search/text?${params}`));
}

function searchImage(file) {
  const preview = $("#preview");
  if (preview.src.startsWith("blob:")) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  const body = new FormData();
  body.append("file", file, file.name || "pasted-image");
  const name = file.name || "the pasted image";
  return run("image", `like ${name}`, () =>
    api(`api/search/image?${searchParams()}`, { method: "POST", body })
  );
}

function moreLikeThis(hit) {
  window.scrollTo(0, 0);
  return run("similar", `like ${basename(hit.source)}`, () =>
    api(`api/similar/${encodeURIComponent(hit.id)}?${searchParams()}`)
  );
}

function showView(name) {
  for (const tab of document.querySelectorAll("nav [role=tab]")) {
    tab.setAttribute("aria-selected", String(tab.dataset.view === name));
  }
  $("#view-search").hidden = name !== "search";
  $("#view-duplicates").hidden = name !== "duplicates";
}

async function findDuplicates() {
  const threshold = $("#threshold").value || "0.9";
  const status = $("#dup-status");
  setStatus(status, "comparing every image with every other…");
  try {
    const result = await api(`api/duplicates?threshold=${encodeURIComponent(threshold)}`);
    const groups = result.groups.map((group, i) => {
      const box = document.createElement("section");
      box.className = "group";
      const title = document.createElement("h3");
      title.textContent =
        `Group ${i + 1} · ${group.size} image${group.size === 1 ? "" : "s"}` +
        (group.images > group.size ? ` (${group.images} files)` : "") +
        ` · scores ${group.min_score.toFixed(3)}–${group.max_score.toFixed(3)}`;
      const grid = document.createElement("div");
      grid.className = "grid";
      grid.append(...group.members.map((m) => card(m, 256, "")));
      box.append(title, grid);
      return box;
    });
    $("#groups").replaceChildren(...groups);
    const n = result.total_groups;
    setStatus(
      status,
      `${n} group${n === 1 ? "" : "s"} of near-duplicates at ≥ ${result.threshold} among ${result.count} images`
    );
  } catch (err) {
    $("#groups").replaceChildren();
    setStatus(status, `error: ${err.message}`, true);
  }
}

function showSummary(info) {
  const rows = [
    ["model", info.model],
    ["images", info.count],
    ["store", info.kind],
    ["index", info.index],
    ["dim", info.dim],
    ["text queries", info.supports_text ? "yes" : "no"],
  ];
  $("#summary").replaceChildren(
    ...rows.map(([key, value]) => {
      const div = document.createElement("div");
      const dt = document.createElement("dt");
      dt.textContent = key;
      const dd = document.createElement("dd");
      dd.textContent = value === null || value === undefined ? "–" : String(value);
      dd.dataset.key = key;
      div.append(dt, dd);
      return div;
    })
  );
  $("#k").max = String(info.max_k);
  // A server started with --max-k under the page's default would refuse every search (bad_k).
  if (Number($("#k").value) > info.max_k) $("#k").value = String(info.max_k);
  $("#text-row").hidden = !info.supports_text;
  $("#no-text").hidden = info.supports_text;
}

function imageFrom(items) {
  for (const item of items || []) {
    if (item.kind === "file" && item.type.startsWith("image/")) return item.getAsFile();
  }
  return null;
}

function wire() {
  $("#search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("#q").value.trim();
    if (text) searchText(text);
  });
  $("#file").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) searchImage(file);
    event.target.value = "";
  });
  const drop = $("#drop");
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = event.dataTransfer.files[0];
    if (file) searchImage(file);
  });
  document.addEventListener("dragover", (event) => event.preventDefault());
  document.addEventListener("drop", (event) => event.preventDefault());
  document.addEventListener("paste", (event) => {
    const file = imageFrom(event.clipboardData && event.clipboardData.items);
    if (file) {
      event.preventDefault();
      searchImage(file);
    }
  });
  for (const tab of document.querySelectorAll("nav [role=tab]")) {
    tab.addEventListener("click", () => showView(tab.dataset.view));
  }
  $("#dup-form").addEventListener("submit", (event) => {
    event.preventDefault();
    findDuplicates();
  });
}

async function start() {
  wire();
  try {
    state.info = await api("api/info");
    showSummary(state.info);
    document.body.dataset.ready = "true";
  } catch (err) {
    setStatus($("#status"), `error: ${err.message}`, true);
  }
}

start();
