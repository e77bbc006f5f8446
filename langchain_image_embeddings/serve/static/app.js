// The imgemb search page: talks to the JSON API of the same app (relative URLs, no CDN).
// One state (S) holds the view and the current query; the URL mirrors it (history.pushState),
// so back/forward, reload and a shared link give the same page. Every search bumps a
// sequence number and aborts the one before: an older response never overwrites a newer one.
"use strict";

const $ = (sel) => document.querySelector(sel);
const GROUPS_PER_PAGE = 10;
const MEMBERS_SHOWN = 4;
const PLACEHOLDER =
  "data:image/svg+xml," +
  encodeURIComponent(
    '<svg xmlns="http://www.w3.org/2000/svg" width="160" height="120"><rect width="160" height="120" fill="#e4e7eb"/>' +
      '<text x="80" y="66" font-family="sans-serif" font-size="13" text-anchor="middle" fill="#4a5563">no preview</text></svg>'
  );

const S = {
  info: null,
  view: "search",
  query: null, // {kind: "text", text} | {kind: "similar", id, label} | {kind: "image", file, name} | {kind: "browse", order, seed}
  k: 12,
  filters: [],
  page: 1,
  dup: { threshold: "0.9", method: "centroid", page: 1, ran: false },
  seq: 0,
  controller: null,
  results: null,
  choices: new Map(), // near-duplicates: record id -> remove (true) / keep (false), the user's own choices
  groups: [], // the groups of the page shown
};

// ---------------------------------------------------------------- helpers

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
    body = { error: "bad_response", message: `The server answered HTTP ${response.status}.` };
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

function thumbSizes() {
  return (S.info && S.info.thumbnail_sizes) || [256];
}

function nearestSize(want) {
  const sizes = thumbSizes();
  return sizes.reduce((best, s) => (Math.abs(s - want) < Math.abs(best - want) ? s : best), sizes[0]);
}

function setThumb(img, id, width) {
  img.addEventListener(
    "error",
    () => {
      img.classList.add("missing");
      img.removeAttribute("srcset");
      img.src = PLACEHOLDER;
    },
    { once: true }
  );
  // Phones get two columns at their own pixel density: the browser picks from the sizes.
  img.srcset = thumbSizes().map((s) => `${thumbUrl(id, s)} ${s}w`).join(", ");
  img.sizes = `(max-width: 600px) 50vw, ${width}px`;
  img.src = thumbUrl(id, nearestSize(256));
}

function readableBytes(n) {
  const value = Number(n);
  if (!Number.isFinite(value)) return String(n);
  const units = [["GB", 2 ** 30], ["MB", 2 ** 20], ["KB", 2 ** 10]];
  for (const [unit, scale] of units) {
    if (value >= scale) return `${(value / scale).toFixed(value / scale >= 10 ? 0 : 1)} ${unit}`;
  }
  return `${value} bytes`;
}

function readableValue(key, value) {
  if (key === "bytes") return readableBytes(value);
  if (key === "mtime" && Number.isFinite(Number(value))) {
    return new Date(Number(value) * 1000).toISOString().replace("T", " ").slice(0, 16) + " UTC";
  }
  if (Array.isArray(value)) return value.join(", ");
  if (value !== null && typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function describeSource(hit) {
  // PDF pages (metadata "page", 1-based, of a ".pdf" source or "document") read as such.
  const meta = hit.metadata || {};
  const file = String(meta.document || hit.source).split("#")[0];
  if (meta.page !== undefined && meta.page !== null && /\.pdf$/i.test(file)) {
    const where = `page ${meta.page} of ${basename(file)}`;
    return meta.kind === "figure" ? `a figure on ${where}` : where;
  }
  return basename(hit.source);
}

function facts(meta) {
  const parts = [];
  if (meta.width && meta.height) parts.push(`${meta.width}×${meta.height}`);
  if (meta.bytes !== undefined) parts.push(readableBytes(meta.bytes));
  if (meta.format) parts.push(String(meta.format));
  if (meta.mtime !== undefined) parts.push(readableValue("mtime", meta.mtime).slice(0, 10));
  return parts.join(" · ");
}

function fillMeta(dl, meta) {
  dl.replaceChildren();
  for (const [key, value] of Object.entries(meta || {})) {
    const dt = document.createElement("dt");
    dt.textContent = key;
    const dd = document.createElement("dd");
    dd.textContent = readableValue(key, value);
    dl.append(dt, dd);
  }
}

async function copyText(text, statusEl) {
  try {
    await navigator.clipboard.writeText(text);
    if (statusEl) setStatus(statusEl, `Copied ${text}`);
  } catch (err) {
    if (statusEl) setStatus(statusEl, `Copy failed: select the path and copy it (${text})`, true);
  }
}

function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function csv(rows, columns) {
  const cell = (v) => {
    const s = v === null || v === undefined ? "" : String(v);
    return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [columns.join(","), ...rows.map((r) => columns.map((c) => cell(r[c])).join(","))].join("\r\n") + "\r\n";
}

// ---------------------------------------------------------------- cards and lightbox

function card(hit, rankLabel, options = {}) {
  const node = $("#card").content.firstElementChild.cloneNode(true);
  node.dataset.id = hit.id;
  node.dataset.score = hit.score;
  const name = describeSource(hit);
  const img = node.querySelector("img");
  if (options.lazy) img.loading = "lazy";
  setThumb(img, hit.id, options.width || 240);
  img.alt = name;
  const open = node.querySelector(".open");
  open.setAttribute("aria-label", `Open ${name}${rankLabel ? ` (${rankLabel})` : ""} larger`);
  open.addEventListener("click", () => openLightbox(hit, open));
  node.querySelector(".rank").textContent = rankLabel;
  node.querySelector(".score").textContent = options.noScore ? "" : Number(hit.score).toFixed(4);
  const source = node.querySelector(".source");
  source.textContent = name;
  source.title = (hit.sources || [hit.source]).join("\n");
  node.querySelector(".facts").textContent = facts(hit.metadata || {});
  fillMeta(node.querySelector(".meta"), hit.metadata);
  const suffix = rankLabel ? ` (${rankLabel})` : "";
  const more = node.querySelector(".more");
  more.setAttribute("aria-label", `More like this: ${name}${suffix}`);
  more.addEventListener("click", () => moreLikeThis(hit));
  const copy = node.querySelector(".copy");
  copy.setAttribute("aria-label", `Copy path of ${name}${suffix}`);
  copy.addEventListener("click", () => copyText(hit.source, $("#status")));
  return node;
}

let lightboxOpener = null;

function openLightbox(hit, opener) {
  lightboxOpener = opener;
  const box = $("#lightbox");
  const img = $("#lb-image");
  img.src = thumbUrl(hit.id, nearestSize(1024));
  img.alt = describeSource(hit);
  $("#lb-title").textContent = describeSource(hit);
  $("#lb-path").textContent = (hit.sources || [hit.source]).join("\n");
  fillMeta($("#lb-meta"), hit.metadata);
  $("#lb-original").href = `api/originals/${encodeURIComponent(hit.id)}`;
  $("#lb-copy").onclick = () => copyText(hit.source, $("#lb-copied"));
  setStatus($("#lb-copied"), "");
  box.showModal();
  $("#lb-close").focus();
}

// ---------------------------------------------------------------- URL <-> state

function stateToParams() {
  const p = new URLSearchParams();
  if (S.view === "duplicates") {
    p.set("view", "duplicates");
    p.set("threshold", S.dup.threshold);
    if (S.dup.method !== "centroid") p.set("method", S.dup.method);
    if (S.dup.page > 1) p.set("page", String(S.dup.page));
    return p;
  }
  const q = S.query;
  if (q && q.kind === "text") p.set("q", q.text);
  if (q && q.kind === "similar") p.set("similar", q.id);
  if (q && q.kind === "browse") {
    p.set("browse", q.order);
    if (q.order === "random") p.set("seed", String(q.seed));
    if (S.page > 1) p.set("page", String(S.page));
  }
  if (String(S.k) !== String(defaultK())) p.set("k", String(S.k));
  for (const f of S.filters) p.append("filter", f);
  return p;
}

function defaultK() {
  return Math.min(12, S.info ? S.info.max_k : 12);
}

function stateFromUrl() {
  const p = new URLSearchParams(location.search);
  const hashView = location.hash.replace(/^#/, "");
  S.view = p.get("view") === "duplicates" || hashView === "duplicates" ? "duplicates" : "search";
  const k = parseInt(p.get("k"), 10);
  S.k = Number.isFinite(k) && k >= 1 ? Math.min(k, S.info ? S.info.max_k : k) : defaultK();
  S.filters = p.getAll("filter").filter(Boolean);
  const page = parseInt(p.get("page"), 10);
  S.page = S.view === "search" && Number.isFinite(page) && page > 1 ? page : 1;
  if (p.get("q")) S.query = { kind: "text", text: p.get("q") };
  else if (p.get("similar")) S.query = { kind: "similar", id: p.get("similar"), label: null };
  else if (p.get("browse") === "random" || p.get("browse") === "recent") {
    S.query = { kind: "browse", order: p.get("browse"), seed: parseInt(p.get("seed"), 10) || 0 };
  } else S.query = null;
  S.dup.threshold = p.get("threshold") || "0.9";
  S.dup.method = ["centroid", "complete", "single"].includes(p.get("method")) ? p.get("method") : "centroid";
  S.dup.page = S.view === "duplicates" && Number.isFinite(page) && page > 1 ? page : 1;
}

function syncControls() {
  $("#k").value = String(S.k);
  $("#filters").value = S.filters.join(" ");
  $("#q").value = S.query && S.query.kind === "text" ? S.query.text : "";
  $("#threshold").value = S.dup.threshold;
  $("#method").value = S.dup.method;
  if (!(S.query && S.query.kind === "image")) {
    const preview = $("#preview");
    if (preview.src.startsWith("blob:")) URL.revokeObjectURL(preview.src);
    preview.removeAttribute("src");
    preview.hidden = true;
  }
}

/** Write the state into the URL (a new history entry unless ``replace``) and show it. */
function commit(replace) {
  const params = stateToParams().toString();
  const url = `${location.pathname}${params ? `?${params}` : ""}`;
  if (url !== `${location.pathname}${location.search}` || location.hash) {
    history[replace ? "replaceState" : "pushState"](null, "", url);
  }
  syncControls();
  show();
}

function show() {
  showView(S.view);
  if (S.view === "duplicates") {
    if (S.dup.ran || new URLSearchParams(location.search).has("threshold")) findDuplicates();
  } else {
    runSearch();
  }
}

// ---------------------------------------------------------------- search

function queryLabel(q) {
  if (q.kind === "text") return `text: “${q.text}”`;
  if (q.kind === "similar") return `like ${q.label || q.id}`;
  if (q.kind === "image") return `image: ${q.name}`;
  return q.order === "recent" ? "browsing the newest images" : "browsing at random";
}

function showChip() {
  const q = S.query;
  $("#query-bar").hidden = !q;
  if (q) $("#chip-text").textContent = queryLabel(q);
  $("#share-note").hidden = !(q && q.kind === "image");
}

function filterParams(params) {
  params.set("k", String(S.k));
  for (const token of S.filters) params.append("filter", token);
  return params;
}

function request(q, signal) {
  const params = filterParams(new URLSearchParams());
  if (q.kind === "text") {
    params.set("q", q.text);
    return api(`api/search/text?${params}`, { signal });
  }
  if (q.kind === "similar") return api(`api/similar/${encodeURIComponent(q.id)}?${params}`, { signal });
  if (q.kind === "browse") {
    params.set("order", q.order);
    params.set("seed", String(q.seed));
    params.set("offset", String((S.page - 1) * S.k));
    return api(`api/browse?${params}`, { signal });
  }
  return q.upload.then((prepared) => {
    const body = new FormData();
    body.append("file", prepared.blob, prepared.name);
    return api(`api/search/image?${params}`, { method: "POST", body, signal }).then((r) => {
      r.note = prepared.note;
      return r;
    });
  });
}

function setBusy(el, busy) {
  el.setAttribute("aria-busy", String(busy));
  el.classList.toggle("busy", busy);
}

async function runSearch() {
  const seq = ++S.seq;
  if (S.controller) S.controller.abort();
  const controller = new AbortController();
  S.controller = controller;
  showChip();
  const q = S.query;
  $("#browse-pager").hidden = true;
  if (!q) {
    $("#results").replaceChildren();
    $("#export-row").hidden = true;
    S.results = null;
    setBusy($("#results"), false);
    setStatus($("#status"), "");
    return;
  }
  setBusy($("#results"), true);
  setStatus($("#status"), q.kind === "browse" ? "loading…" : "searching…");
  try {
    const result = await request(q, controller.signal);
    if (seq !== S.seq) return; // a newer query was asked meanwhile
    if (q.kind === "similar" && !q.label) {
      q.label = result.query && result.query.id ? await similarLabel(q.id) : q.id;
      if (seq !== S.seq) return;
      showChip();
    }
    render(result, q);
  } catch (err) {
    if (seq !== S.seq || err.name === "AbortError") return;
    $("#results").replaceChildren();
    $("#export-row").hidden = true;
    S.results = null;
    setStatus($("#status"), `Error: ${err.message}`, true);
  } finally {
    if (seq === S.seq) setBusy($("#results"), false);
  }
}

async function similarLabel(id) {
  try {
    return describeSource(await api(`api/records/${encodeURIComponent(id)}`));
  } catch (err) {
    return id;
  }
}

function render(result, q) {
  S.results = result;
  const browsing = q.kind === "browse";
  $("#results").replaceChildren(
    ...result.results.map((hit) => card(hit, `#${hit.rank}`, { noScore: browsing }))
  );
  $("#export-row").hidden = result.count === 0;
  const n = result.count;
  let text;
  if (browsing) {
    const first = (S.page - 1) * S.k + 1;
    text = n ? `images ${first}–${first + n - 1} of ${result.total} (${q.order === "recent" ? "newest first" : "random order"})` : "no images match the filters";
    const pages = Math.max(1, Math.ceil(result.total / S.k));
    $("#browse-pager").hidden = pages <= 1;
    $("#browse-page").textContent = `page ${S.page} of ${pages}`;
    $("#browse-prev").disabled = S.page <= 1;
    $("#browse-next").disabled = S.page >= pages;
  } else {
    const label = q.kind === "text" ? `for “${q.text}”` : `like ${q.kind === "image" ? q.name : q.label || q.id}`;
    text = `${n} result${n === 1 ? "" : "s"} ${label} (${result.seconds.toFixed(2)} s)`;
  }
  if (S.info && S.info.count === 0) text += " — the store is empty: index some images first.";
  else if (n === 0 && S.filters.length) text += " — no image matches the filters; see the metadata keys below the filter box.";
  if (result.note) text += ` ${result.note}`;
  setStatus($("#status"), text);
}

/** k and filters as typed (a box still focused has not fired "change"). */
function readControls() {
  const k = parseInt($("#k").value, 10);
  if (Number.isFinite(k) && k >= 1) S.k = Math.min(k, S.info ? S.info.max_k : k);
  S.filters = $("#filters").value.split(/\s+/).filter(Boolean);
}

function newQuery(query) {
  readControls();
  S.query = query;
  S.page = 1;
  commit();
}

function moreLikeThis(hit) {
  // Focus moves to the status line, which announces the new results (the button is replaced).
  $("#status").focus({ preventScroll: true });
  window.scrollTo(0, 0);
  newQuery({ kind: "similar", id: hit.id, label: describeSource(hit) });
}

/** The upload, reduced in the browser when it is over the server's byte or pixel limit. */
async function prepareUpload(file) {
  const name = file.name || "pasted-image.png";
  const info = S.info || {};
  const maxBytes = info.max_upload_bytes || Infinity;
  const maxPixels = info.max_upload_pixels || Infinity;
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch (err) {
    return { blob: file, name, note: "" }; // not decodable here: the server says why
  }
  const { width, height } = bitmap;
  if (file.size <= maxBytes && width * height <= maxPixels) {
    bitmap.close();
    return { blob: file, name, note: "" };
  }
  let scale = Math.min(1, Math.sqrt((0.9 * maxPixels) / (width * height)), 4096 / Math.max(width, height));
  for (let attempt = 0; attempt < 6; attempt++) {
    const w = Math.max(1, Math.round(width * scale));
    const h = Math.max(1, Math.round(height * scale));
    const canvas = document.createElement("canvas");
    canvas.width = w;
    canvas.height = h;
    canvas.getContext("2d").drawImage(bitmap, 0, 0, w, h);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
    if (blob && blob.size <= maxBytes) {
      bitmap.close();
      return {
        blob,
        name: name.replace(/\.[^.]*$/, "") + ".jpg",
        note: `(The image was reduced from ${width}×${height} to ${w}×${h} in your browser to fit the server's limits.)`,
      };
    }
    scale *= 0.7;
  }
  bitmap.close();
  return { blob: file, name, note: "" };
}

function searchImage(file) {
  const preview = $("#preview");
  if (preview.src.startsWith("blob:")) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  $("#q").value = "";
  readControls();
  S.query = { kind: "image", file, name: file.name || "the pasted image", upload: prepareUpload(file) };
  S.page = 1;
  // The URL loses the query (an upload cannot be put in a link) but keeps k and filters.
  const params = stateToParams().toString();
  history.pushState(null, "", `${location.pathname}${params ? `?${params}` : ""}`);
  showView("search");
  runSearch();
}

// ---------------------------------------------------------------- tabs

function showView(name) {
  S.view = name;
  for (const tab of document.querySelectorAll("[role=tab]")) {
    const selected = tab.dataset.view === name;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
  }
  $("#view-search").hidden = name !== "search";
  $("#view-duplicates").hidden = name !== "duplicates";
}

function selectTab(tab, focus) {
  if (focus) tab.focus();
  if (S.view !== tab.dataset.view) {
    S.view = tab.dataset.view;
    commit();
  }
}

function tabKeys(event) {
  const tabs = [...document.querySelectorAll("[role=tab]")];
  const i = tabs.indexOf(event.target);
  let next = null;
  if (event.key === "ArrowRight") next = tabs[(i + 1) % tabs.length];
  else if (event.key === "ArrowLeft") next = tabs[(i - 1 + tabs.length) % tabs.length];
  else if (event.key === "Home") next = tabs[0];
  else if (event.key === "End") next = tabs[tabs.length - 1];
  if (next) {
    event.preventDefault();
    selectTab(next, true);
  }
}

// ---------------------------------------------------------------- near-duplicates

function dupParams(offset, limit) {
  const p = new URLSearchParams();
  p.set("threshold", S.dup.threshold);
  p.set("method", S.dup.method);
  p.set("offset", String(offset));
  p.set("limit", String(limit));
  return p;
}

function removes(member, group) {
  return S.choices.has(member.id) ? S.choices.get(member.id) : member.id !== group.keeper;
}

async function findDuplicates() {
  S.dup.ran = true;
  const seq = ++S.seq;
  if (S.controller) S.controller.abort();
  const controller = new AbortController();
  S.controller = controller;
  const status = $("#dup-status");
  setBusy($("#groups"), true);
  setStatus(status, "comparing every image with every other…");
  try {
    const offset = (S.dup.page - 1) * GROUPS_PER_PAGE;
    const result = await api(`api/duplicates?${dupParams(offset, GROUPS_PER_PAGE)}`, { signal: controller.signal });
    if (seq !== S.seq) return;
    S.groups = result.groups;
    $("#groups").replaceChildren(...result.groups.map((g, i) => groupBox(g, offset + i + 1)));
    const n = result.total_groups;
    const pages = Math.max(1, Math.ceil(n / GROUPS_PER_PAGE));
    $("#dup-pager").hidden = pages <= 1;
    $("#dup-page").textContent = `page ${S.dup.page} of ${pages}`;
    $("#dup-prev").disabled = S.dup.page <= 1;
    $("#dup-next").disabled = S.dup.page >= pages;
    $("#dup-actions").hidden = n === 0;
    $("#dup-remove").hidden = !(S.info && S.info.allow_delete);
    updateSelected();
    const shown = n ? ` (groups ${offset + 1}–${offset + result.groups.length} shown)` : "";
    setStatus(
      status,
      `${n} group${n === 1 ? "" : "s"} of near-duplicates at ≥ ${result.threshold} among ${result.count} images${shown}` +
        (result.count === 0 ? " — the store is empty: index some images first." : "")
    );
  } catch (err) {
    if (seq !== S.seq || err.name === "AbortError") return;
    $("#groups").replaceChildren();
    setStatus(status, `Error: ${err.message}`, true);
  } finally {
    if (seq === S.seq) setBusy($("#groups"), false);
  }
}

function memberCard(member, group, number) {
  const node = card({ ...member, rank: 0 }, "", { lazy: true, noScore: false, width: 180 });
  node.classList.add("member");
  const keeper = member.id === group.keeper;
  const label = document.createElement("label");
  label.className = "pick";
  const box = document.createElement("input");
  box.type = "checkbox";
  box.className = "remove";
  box.checked = removes(member, group);
  box.addEventListener("change", () => {
    S.choices.set(member.id, box.checked);
    node.classList.toggle("marked", box.checked);
    updateSelected();
  });
  const text = document.createElement("span");
  text.textContent = "remove";
  box.setAttribute("aria-label", `Remove ${describeSource(member)} (group ${number})`);
  label.append(box, text);
  node.classList.toggle("marked", box.checked);
  if (keeper) {
    const badge = document.createElement("span");
    badge.className = "keeper";
    badge.textContent = "suggested keeper";
    node.querySelector(".line").append(badge);
  }
  node.querySelector("figcaption").prepend(label);
  return node;
}

function groupBox(group, number) {
  const box = document.createElement("section");
  box.className = "group";
  box.setAttribute("aria-labelledby", `group-${number}`);
  const title = document.createElement("h3");
  title.id = `group-${number}`;
  title.textContent =
    `Group ${number} · ${group.size} image${group.size === 1 ? "" : "s"}` +
    (group.images > group.size ? ` (${group.images} files)` : "") +
    ` · scores ${group.min_score.toFixed(3)}–${group.max_score.toFixed(3)}`;
  const grid = document.createElement("div");
  grid.className = "grid";
  const ordered = [...group.members].sort((a, b) => (b.id === group.keeper) - (a.id === group.keeper));
  const first = ordered.slice(0, MEMBERS_SHOWN);
  grid.append(...first.map((m) => memberCard(m, group, number)));
  box.append(title, grid);
  if (ordered.length > MEMBERS_SHOWN) {
    const more = document.createElement("button");
    more.type = "button";
    more.className = "secondary expand";
    more.textContent = `Show all ${ordered.length} images of group ${number}`;
    more.addEventListener("click", () => {
      grid.append(...ordered.slice(MEMBERS_SHOWN).map((m) => memberCard(m, group, number)));
      more.remove();
      grid.querySelectorAll(".result")[MEMBERS_SHOWN].querySelector("input").focus();
    });
    box.append(more);
  }
  return box;
}

function updateSelected() {
  let n = 0;
  for (const group of S.groups) for (const m of group.members) if (removes(m, group)) n++;
  $("#dup-selected").textContent = `${n} marked to remove on this page`;
}

/** Every group (all pages), with the user's choices over the suggested keepers. */
async function removalRows() {
  const rows = [];
  let offset = 0;
  for (;;) {
    const result = await api(`api/duplicates?${dupParams(offset, 1000)}`);
    result.groups.forEach((group, i) => {
      const ranked = [...group.members].sort((a, b) => (b.id === group.keeper) - (a.id === group.keeper));
      let kept = ranked.filter((m) => !removes(m, group));
      if (!kept.length) kept = ranked.slice(0, 1);
      const keeper = kept[0];
      for (const m of group.members) {
        if (kept.includes(m)) continue;
        const meta = m.metadata || {};
        rows.push({
          group: offset + i + 1,
          id: m.id,
          source: m.source,
          score: m.score,
          width: meta.width,
          height: meta.height,
          bytes: meta.bytes,
          keeper_id: keeper.id,
          keeper_source: keeper.source,
        });
      }
    });
    offset += result.groups.length;
    if (!result.groups.length || offset >= result.total_groups) return rows;
  }
}

const REMOVAL_COLUMNS = ["group", "id", "source", "score", "width", "height", "bytes", "keeper_id", "keeper_source"];

async function exportRemoval(kind) {
  try {
    const rows = await removalRows();
    if (kind === "csv") download("to-remove.csv", "text/csv", csv(rows, REMOVAL_COLUMNS));
    else download("to-remove.json", "application/json", JSON.stringify({ threshold: Number(S.dup.threshold), method: S.dup.method, remove: rows }, null, 2));
  } catch (err) {
    setStatus($("#dup-status"), `Error: ${err.message}`, true);
  }
}

async function removeSelected() {
  const rows = await removalRows();
  if (!rows.length) return;
  if (!window.confirm(`Remove ${rows.length} records from the index? The files on disk stay.`)) return;
  try {
    const result = await api("api/records/remove", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ ids: rows.map((r) => r.id) }),
    });
    S.choices.clear();
    S.info.count = result.count;
    showSummary(S.info);
    await findDuplicates();
    setStatus($("#dup-status"), `Removed ${result.removed.length} records from the index (files kept). ${$("#dup-status").textContent}`);
  } catch (err) {
    setStatus($("#dup-status"), `Error: ${err.message}`, true);
  }
}

// ---------------------------------------------------------------- results export

function exportResults(kind) {
  const result = S.results;
  if (!result) return;
  const rows = result.results.map((h) => ({
    rank: h.rank,
    id: h.id,
    score: h.score,
    source: h.source,
    width: (h.metadata || {}).width,
    height: (h.metadata || {}).height,
    bytes: (h.metadata || {}).bytes,
    format: (h.metadata || {}).format,
  }));
  if (kind === "csv") download("results.csv", "text/csv", csv(rows, ["rank", "id", "score", "source", "width", "height", "bytes", "format"]));
  else download("results.json", "application/json", JSON.stringify({ query: result.query, k: result.k, results: result.results }, null, 2));
}

// ---------------------------------------------------------------- summary, filter helper

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
  $("#text-row").hidden = !info.supports_text;
  $("#no-text").hidden = info.supports_text;
  $("#empty-store").hidden = info.count !== 0;
  $("#empty-command").textContent = `imgemb index PHOTOS --store ${info.store}`;
}

async function loadFilterHelp() {
  let result;
  try {
    result = await api("api/metadata");
  } catch (err) {
    return;
  }
  const rows = result.keys.map((key) => {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = key.key;
    const count = document.createElement("td");
    count.textContent = `${key.count} (${key.distinct} value${key.distinct === 1 ? "" : "s"})`;
    const samples = document.createElement("td");
    for (const value of key.samples) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "sample secondary";
      b.textContent = `${key.key}=${value}`;
      b.addEventListener("click", () => {
        const token = `${key.key}=${value}`;
        if (/\s/.test(token)) return;
        S.filters = [...S.filters.filter((f) => !f.startsWith(`${key.key}=`)), token];
        commit();
      });
      samples.append(b);
    }
    if (!key.samples.length) samples.textContent = "different for each image";
    tr.append(th, count, samples);
    return tr;
  });
  $("#filter-keys tbody").replaceChildren(...rows);
  $("#filter-help").hidden = rows.length === 0;
}

// ---------------------------------------------------------------- wiring

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
    if (text) newQuery({ kind: "text", text });
  });
  $("#choose").addEventListener("click", () => $("#file").click());
  $("#file").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) searchImage(file);
    event.target.value = "";
  });
  // A change of k or filters re-runs the last query (only when they really changed).
  const rerun = () => {
    const before = `${S.k} ${S.filters.join(" ")}`;
    readControls();
    if (`${S.k} ${S.filters.join(" ")}` === before) return;
    S.page = 1;
    if (S.query && S.query.kind === "image") {
      const params = stateToParams().toString();
      history.replaceState(null, "", `${location.pathname}${params ? `?${params}` : ""}`);
      runSearch();
    } else commit();
  };
  $("#k").addEventListener("change", rerun);
  $("#filters").addEventListener("change", rerun);
  $("#filters").addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      $("#filters").dispatchEvent(new Event("change"));
    }
  });
  $("#browse-random").addEventListener("click", () =>
    newQuery({ kind: "browse", order: "random", seed: Math.floor(Math.random() * 1e6) })
  );
  $("#browse-recent").addEventListener("click", () => newQuery({ kind: "browse", order: "recent", seed: 0 }));
  $("#browse-prev").addEventListener("click", () => { S.page -= 1; commit(); });
  $("#browse-next").addEventListener("click", () => { S.page += 1; commit(); });
  const clear = () => {
    S.query = null;
    S.page = 1;
    commit();
    $("#q").focus();
  };
  $("#chip-remove").addEventListener("click", clear);
  $("#clear").addEventListener("click", clear);
  $("#export-csv").addEventListener("click", () => exportResults("csv"));
  $("#export-json").addEventListener("click", () => exportResults("json"));
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
  for (const tab of document.querySelectorAll("[role=tab]")) {
    tab.addEventListener("click", () => selectTab(tab, false));
    tab.addEventListener("keydown", tabKeys);
  }
  $("#dup-form").addEventListener("submit", (event) => {
    event.preventDefault();
    S.dup.threshold = $("#threshold").value || "0.9";
    S.dup.method = $("#method").value;
    S.dup.page = 1;
    S.dup.ran = true;
    commit();
  });
  $("#dup-prev").addEventListener("click", () => { S.dup.page -= 1; commit(); $("#groups").focus(); });
  $("#dup-next").addEventListener("click", () => { S.dup.page += 1; commit(); $("#groups").focus(); });
  $("#dup-export-csv").addEventListener("click", () => exportRemoval("csv"));
  $("#dup-export-json").addEventListener("click", () => exportRemoval("json"));
  $("#dup-remove").addEventListener("click", removeSelected);
  $("#lb-close").addEventListener("click", () => $("#lightbox").close());
  $("#lightbox").addEventListener("close", () => {
    if (lightboxOpener && lightboxOpener.isConnected) lightboxOpener.focus();
  });
  window.addEventListener("popstate", () => {
    stateFromUrl();
    syncControls();
    show();
  });
}

/** The store's summary; while the server still loads the model, say so and ask again. */
async function loadInfo() {
  for (;;) {
    const info = await api("api/info");
    if (info.state === "loading") {
      $("#loading-note").hidden = false;
      await new Promise((resolve) => setTimeout(resolve, 1000));
      continue;
    }
    if (info.state === "failed") throw new Error(`the server could not load the store: ${info.message}`);
    $("#loading-note").hidden = true;
    S.info = info;
    showSummary(info);
    return;
  }
}

async function start() {
  wire();
  try {
    await loadInfo();
  } catch (err) {
    setStatus($("#status"), `Error: ${err.message}`, true);
    return;
  }
  $("#groups").tabIndex = -1;
  stateFromUrl();
  syncControls();
  // A link to the view (#duplicates or ?view=duplicates) becomes the canonical URL.
  if (location.hash) history.replaceState(null, "", `${location.pathname}?${stateToParams()}`);
  show();
  loadFilterHelp();
  document.body.dataset.ready = "true";
}

start();
