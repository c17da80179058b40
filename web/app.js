// The page talks to the same JSON API as any client: GET /v1/models, the model's metadata, and
// POST /v1/models/{name}:classify-image with the photo as the raw body.
"use strict";

const state = { model: null };
const $ = (id) => document.getElementById(id);

// The error state: the message shown, no result card (it would belong to an earlier photo).
function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
  if (!message) return;
  $("result").hidden = true;
  document.body.dataset.state = "error";
}

function percent(p) { return (100 * p).toFixed(1) + " %"; }

function barRow(name, probability, extraClass, badge) {
  const row = document.createElement("li");
  row.className = "row " + extraClass;
  const label = document.createElement("span");
  label.className = "name";
  label.textContent = name;
  if (badge) {
    const b = document.createElement("span");
    b.className = "badge";
    b.textContent = badge;
    label.appendChild(b);
  }
  const bar = document.createElement("div");
  bar.className = "bar";
  const fill = document.createElement("span");
  fill.style.width = Math.max(0, Math.min(100, 100 * probability)) + "%";
  bar.appendChild(fill);
  const value = document.createElement("span");
  value.className = "probability";
  value.textContent = percent(probability);
  row.append(label, bar, value);
  return row;
}

async function loadModel() {
  try {
    const list = await (await fetch("/v1/models")).json();
    state.model = list.models[0];
    const response = await fetch(`/v1/models/${encodeURIComponent(state.model.name)}/metadata`);
    if (!response.ok) throw new Error((await response.json()).error);
    const metadata = await response.json();
    state.model.version = metadata.model_spec.version;
    $("model-info").textContent = `model “${state.model.name}”, version ${state.model.version}`;
    const classes = $("classes");
    classes.replaceChildren();
    for (const head of metadata.metadata.garmentnet.heads) {
      const p = document.createElement("p");
      p.textContent = `${head.name} (${head.kind === "softmax" ? "one of" : "tags"}): ${head.classes.join(", ")}`;
      classes.appendChild(p);
    }
  } catch (error) {
    $("model-info").textContent = "model not ready: " + error.message;
  }
}

async function classify(file) {
  showError("");
  if (!state.model) await loadModel();
  if (!state.model) return;
  document.body.dataset.state = "classifying";
  const headers = { "Content-Type": file.type || "application/octet-stream" };
  const key = $("api-key").value;
  if (key) headers.Authorization = "Bearer " + key;
  const response = await fetch(`/v1/models/${encodeURIComponent(state.model.name)}:classify-image`,
                               { method: "POST", headers, body: file });
  // Errors are JSON {"error": ...}; a proxy in front may answer something else.
  const text = await response.text();
  let answer = {};
  try { answer = JSON.parse(text); } catch { answer = { error: text.slice(0, 200) }; }
  if (response.status === 401) {
    $("api-key-row").hidden = false;
    showError("This server needs an API key: enter it above and pick the photo again.");
    return;
  }
  if (!response.ok) {
    showError(`The server answered ${response.status}: ${answer.error || "no reason given"}`);
    return;
  }
  $("preview").src = URL.createObjectURL(file);
  const categories = $("categories");
  categories.replaceChildren(...(answer.categories || []).map((c) => barRow(c.name, c.probability, "category")));
  const tags = $("tags");
  tags.replaceChildren(...(answer.tags || []).map((t) =>
    barRow(t.name, t.probability, "tag " + (t.present ? "present" : "absent"), t.present ? "present" : "absent")));
  $("latency").textContent = `model “${answer.model.name}” version ${answer.model.version}, ` +
                             `answered in ${answer.latency_ms.toFixed(1)} ms on the server`;
  $("result").hidden = false;
  document.body.dataset.state = "classified";
}

function setUp() {
  const zone = $("drop-zone");
  $("file-input").addEventListener("change", (event) => {
    if (event.target.files.length) classify(event.target.files[0]).catch((e) => showError(e.message));
  });
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("dragging"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    if (event.dataTransfer.files.length) classify(event.dataTransfer.files[0]).catch((e) => showError(e.message));
  });
  loadModel();
}

setUp();
