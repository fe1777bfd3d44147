// The unsupseg page: plain JavaScript over the JSON routes of unsupseg.app.server.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { image: null, width: 0, height: 0, job: null, result: null, seq: 0, drawn: false, timer: null };

function showMessage(text) {
  const box = $("message");
  box.textContent = text;
  box.hidden = !text;
}

async function api(url, options = {}) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (err) {
    throw new Error("the server cannot be reached: is unsupseg app still running?");
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch (err) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

function postJSON(url, body) {
  return api(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
}

async function guarded(action) {
  showMessage("");
  try { await action(); } catch (err) { showMessage(err.message); }
}

function setImage(info) {
  state.image = info.image;
  state.width = info.width;
  state.height = info.height;
  state.result = null;
  const view = $("view");
  view.src = `/api/image/${info.image}.png`;
  const canvas = $("scribble");
  canvas.width = info.width;
  canvas.height = info.height;
  clearScribble();
  $("result").disabled = true;
  $("regions").textContent = "";
  $("run").disabled = false;
  $("run-scribble").disabled = false;
  $("status").textContent = `${info.name}: ${info.width}x${info.height} pixels`;
}

function clearScribble() {
  const canvas = $("scribble");
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  state.drawn = false;
}

function settings() {
  return {
    image: state.image,
    method: $("method").value,
    max_iter: $("max-iter").value,
    max_side: $("max-side").value,
    fine_iter: $("fine-iter").value,
    seed: $("seed").value,
  };
}

async function run(withScribble) {
  const body = settings();
  if (withScribble) {
    body.method = "tip2020";
    $("method").value = "tip2020";
    body.scribble = $("scribble").toDataURL("image/png");
  }
  const job = await (await postJSON("/api/run", body)).json();
  state.job = job.job;
  $("result").disabled = true;
  $("regions").textContent = "";
  $("cancel").disabled = false;
  $("progress").removeAttribute("value");
  $("status").textContent = `${job.method}: running`;
  clearInterval(state.timer);
  state.timer = setInterval(() => guarded(poll), 250);
}

async function poll() {
  const id = state.job;
  const job = await (await api(`/api/job/${id}`)).json();
  if (id !== state.job) return;
  if (job.total) {
    $("progress").max = job.total;
    $("progress").value = job.step;
  }
  const labels = job.n_labels === null ? "" : `, ${job.n_labels} labels`;
  const steps = job.total ? ` ${job.step}/${job.total} iterations` : "";
  $("status").textContent = `${job.method}: ${job.state}${steps}${labels} (${job.seconds} s)`;
  if (job.state === "running") return;
  clearInterval(state.timer);
  $("cancel").disabled = true;
  $("progress").max = 1;
  $("progress").value = job.state === "done" ? 1 : 0;
  if (job.state === "done") {
    state.result = job.result;
    $("k").value = "";
  }
  if (state.result) {
    $("result").disabled = false;
    await refreshView(job.state === "done");
  }
  if (job.state === "failed") throw new Error(job.message);
}

function viewQuery(useDefault) {
  const query = new URLSearchParams({ mode: $("mode").value });
  const k = $("k").value.trim();
  if (k) query.set("k", k);
  else if (!useDefault) query.set("threshold", $("scale").value);
  return query;
}

async function refreshView(useDefault = false) {
  if (!state.result) return;
  const seq = ++state.seq;
  const query = viewQuery(useDefault);
  const response = await api(`/api/result/${state.result}/view.png?${query}`);
  const blob = await response.blob();
  if (seq !== state.seq) return; // a later slider position is on its way
  const view = $("view");
  const old = view.src;
  view.src = URL.createObjectURL(blob);
  if (old.startsWith("blob:")) URL.revokeObjectURL(old);
  const threshold = response.headers.get("X-Threshold");
  if (threshold !== null) $("scale").value = threshold;
  const regions = response.headers.get("X-Regions");
  const labels = response.headers.get("X-Labels");
  const shown = $("regions");
  shown.dataset.regions = regions;
  shown.dataset.labels = labels;
  shown.textContent = `${regions} connected regions` + (labels !== regions ? ` with ${labels} labels` : "");
  const files = new URLSearchParams(query);
  if (threshold !== null && !files.has("k")) files.set("threshold", threshold);
  for (const link of document.querySelectorAll("a.download")) {
    link.href = `/api/result/${state.result}/${link.dataset.kind}?${files}`;
  }
}

// Scribbles: strokes drawn on a canvas the image's size, over the picture.
function canvasPoint(event) {
  const canvas = $("scribble");
  const box = canvas.getBoundingClientRect();
  return [(event.clientX - box.left) * canvas.width / box.width,
          (event.clientY - box.top) * canvas.height / box.height];
}

function setupDrawing() {
  const canvas = $("scribble");
  let last = null;
  canvas.addEventListener("pointerdown", (event) => {
    if (!state.image) return;
    canvas.setPointerCapture(event.pointerId);
    last = canvasPoint(event);
    stroke(last, last);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!last) return;
    const point = canvasPoint(event);
    stroke(last, point);
    last = point;
  });
  const end = () => { last = null; };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
}

function stroke(from, to) {
  const canvas = $("scribble");
  const context = canvas.getContext("2d");
  const colour = document.querySelector("input[name=colour]:checked").dataset.colour;
  const scale = canvas.width / canvas.getBoundingClientRect().width;
  context.strokeStyle = colour;
  context.lineWidth = Number($("brush").value) * scale;
  context.lineCap = "round";
  context.beginPath();
  context.moveTo(from[0], from[1]);
  context.lineTo(to[0], to[1]);
  context.stroke();
  state.drawn = true;
}

$("load-sample").addEventListener("click", () => guarded(async () => {
  setImage(await (await postJSON("/api/sample", { name: $("sample").value })).json());
}));
$("upload").addEventListener("change", () => guarded(async () => {
  const file = $("upload").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file);
  setImage(await (await api("/api/upload", { method: "POST", body: form })).json());
}));
$("run").addEventListener("click", () => guarded(() => run(false)));
$("run-scribble").addEventListener("click", () => guarded(() => run(true)));
$("cancel").addEventListener("click", () => guarded(async () => {
  if (state.job) await api(`/api/job/${state.job}/cancel`, { method: "POST" });
}));
$("clear-scribble").addEventListener("click", clearScribble);
$("scale").addEventListener("input", () => { $("k").value = ""; guarded(() => refreshView()); });
$("k").addEventListener("change", () => guarded(() => refreshView()));
$("mode").addEventListener("change", () => guarded(() => refreshView()));
setupDrawing();
