"""The self-contained offline review form (``review.html``): one page, no network, autosave in the browser.
``__TITLE__`` and ``__DATA__`` are filled by ``diq.practice.review.render_html``."""

HTML = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
body{font-family:system-ui,sans-serif;max-width:60rem;margin:0 auto;padding:1rem;line-height:1.45;color:#222}
header{position:sticky;top:0;background:#fff;border-bottom:1px solid #ccc;padding:.5rem 0;z-index:1}
.item{border:1px solid #ddd;border-radius:6px;padding:1rem;margin:1rem 0}
.item.done{border-color:#6a6}
pre{white-space:pre-wrap;background:#f7f7f7;padding:.6rem;border-radius:4px;max-height:24rem;overflow:auto}
fieldset{border:0;padding:.2rem 0;margin:0}
legend{font-weight:600}
label.r{margin-right:.9rem}
details{font-size:.9em;color:#444}
textarea{width:100%}
button{font-size:1rem;padding:.4rem 1rem}
</style></head>
<body>
<header>
<h1 style="font-size:1.3rem;margin:.2rem 0">__TITLE__</h1>
<label>Rater (name or initials): <input id="rater" autocomplete="off"></label>
<span id="progress"></span>
<button id="save" type="button">Save ratings (CSV)</button>
<span id="status" role="status"></span>
</header>
<p>Rate each answer from 1 (poor) to 5 (excellent) on the three dimensions. Ratings are kept in this browser as you
go; <b>Save ratings</b> downloads a CSV file to send back. You do not need all items at once.</p>
<details><summary>Rubric</summary><div id="rubric"></div></details>
<main id="items"></main>
<script id="data" type="application/json">__DATA__</script>
<script>
"use strict";
const DATA = JSON.parse(document.getElementById("data").textContent);
const STORE = "expert-review-" + DATA.pack_id;
const state = JSON.parse(localStorage.getItem(STORE) || '{"rater":"","ratings":{}}');
const esc = s => String(s).replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}[c]));
document.getElementById("rubric").innerHTML = DATA.dimensions.map(d =>
  `<p><b>${esc(DATA.titles[d])}</b>: ${esc(DATA.rubrics[d]).replace(/\n/g, "<br>")}</p>`).join("");
const main = document.getElementById("items");
for (const it of DATA.items) {
  const sec = document.createElement("section");
  sec.className = "item"; sec.id = "item-" + it.item_id; sec.dataset.item = it.item_id;
  const iid = esc(it.item_id);
  let h = `<h2 style="font-size:1.05rem">Item ${it.position} <small style="color:#888">(${esc(it.item_id)})</small></h2>
    <div><b>Question</b><pre>${esc(it.question)}</pre></div><div><b>Answer</b><pre>${esc(it.answer)}</pre></div>`;
  for (const d of DATA.dimensions) {
    h += `<fieldset data-dim="${d}"><legend>${esc(DATA.titles[d])}</legend>`;
    for (let v = 1; v <= 5; v++)
      h += `<label class="r"><input type="radio" name="${iid}-${d}" value="${v}" data-item="${iid}" data-dim="${d}"> ${v}</label>`;
    h += `</fieldset>`;
  }
  h += `<label>Comment (optional)<textarea rows="2" data-item="${iid}" data-dim="comment"></textarea></label>`;
  sec.innerHTML = h; main.appendChild(sec);
}
function restore() {
  document.getElementById("rater").value = state.rater || "";
  for (const [iid, r] of Object.entries(state.ratings)) for (const [d, v] of Object.entries(r)) {
    if (d === "comment") { const t = document.querySelector(`textarea[data-item="${CSS.escape(iid)}"]`); if (t) t.value = v; }
    else { const el = document.querySelector(`input[name="${CSS.escape(iid + "-" + d)}"][value="${v}"]`); if (el) el.checked = true; }
  }
}
function progress() {
  let n = 0;
  for (const it of DATA.items) {
    const r = state.ratings[it.item_id] || {};
    const done = DATA.dimensions.every(d => r[d]);
    document.getElementById("item-" + it.item_id).classList.toggle("done", done);
    n += done ? 1 : 0;
  }
  document.getElementById("progress").textContent = `${n} / ${DATA.items.length} rated`;
}
function persist() { localStorage.setItem(STORE, JSON.stringify(state)); progress(); }
main.addEventListener("change", e => {
  const t = e.target, iid = t.dataset.item, d = t.dataset.dim;
  if (!iid) return;
  state.ratings[iid] = state.ratings[iid] || {};
  state.ratings[iid][d] = d === "comment" ? t.value : Number(t.value);
  persist();
});
document.getElementById("rater").addEventListener("input", e => { state.rater = e.target.value.trim(); persist(); });
function csvCell(v) { v = v == null ? "" : String(v); if (/^[=+\-@\t\r]/.test(v)) v = "'" + v; return /[",\n\r]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v; }
function toCSV() {
  const cols = ["item_id", "rater", ...DATA.dimensions, "comment"];
  const lines = [cols.join(",")];
  for (const it of DATA.items) {
    const r = state.ratings[it.item_id];
    if (!r || !DATA.dimensions.some(d => r[d])) continue;
    lines.push([it.item_id, state.rater, ...DATA.dimensions.map(d => r[d] || ""), r.comment || ""].map(csvCell).join(","));
  }
  return lines.join("\r\n") + "\r\n";
}
document.getElementById("save").addEventListener("click", () => {
  const st = document.getElementById("status");
  if (!state.rater) { st.textContent = "Enter your name or initials first."; document.getElementById("rater").focus(); return; }
  const blob = new Blob([toCSV()], {type: "text/csv"});
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = "ratings-" + state.rater.replace(/[^A-Za-z0-9_-]+/g, "_") + ".csv";
  document.body.appendChild(a); a.click(); a.remove();
  st.textContent = "Saved " + a.download;
});
restore(); progress();
</script></body></html>
"""
