// Draws a job (as GET /v1/jobs/{id} and its events give it) into the job panel.

import { ipfsPath } from "./api.js";
import { el } from "./form.js";

export const STAGES = [
  ["queued", "Queued"], ["rendering", "Rendering"], ["rendered", "Rendered"], ["pinning", "Pinning"],
  ["pinned", "Ready to mint"], ["minted", "Minted"],
];
const WORDS = {
  queued: "Waiting for a free renderer…",
  rendering: "Rendering every frame of your loop…",
  rendered: "Rendered. Handing it to IPFS…",
  pinning: "Pinning the GIF, the video and the metadata to IPFS…",
  pinned: "Ready to mint: your files are pinned on IPFS.",
  minted: "Minted. The NFT is in the wallet.",
};

const $ = (id) => document.getElementById(id);

export function tokenIdOf(job) {
  return job?.token_id ?? job?.mint?.token_id ?? job?.minted?.token_id ?? null;
}

export function showJob(job) {
  $("job").hidden = false;
  const link = `/jobs/${job.job_id}`;
  $("job-link").href = link;
  $("job-link").textContent = `${location.host}${link}`;
  const at = STAGES.findIndex(([s]) => s === job.stage);
  const list = $("stages");
  list.replaceChildren(...STAGES.map(([stage, label], i) => {
    const stop = failedAt(job);
    const state = job.stage === "failed" ? (i < stop ? "done" : i === stop ? "failed" : "todo")
      : i < at ? "done" : i === at ? (stage === "minted" || stage === "pinned" ? "done" : "now") : "todo";
    const item = el("li", { class: state }, el("span", { class: "dot", "aria-hidden": "true" }),
      el("span", { text: label }));
    if (i === at) item.setAttribute("aria-current", "step");
    const note = { done: " (done)", now: " (in progress)", failed: " (failed here)" }[state] || "";
    item.append(el("span", { class: "visually-hidden", text: note }));
    return item;
  }));
  const progress = job.stage === "failed" ? job.progress : Math.max(0, Math.min(100, job.progress || 0));
  const bar = $("progress");
  bar.setAttribute("aria-valuenow", String(progress));
  bar.firstElementChild.style.width = `${progress}%`;
  bar.classList.toggle("failed", job.stage === "failed");
  $("progress-value").textContent = `${progress} %`;
  $("job-status").textContent = job.stage === "failed" ? "This job stopped before it was finished."
    : WORDS[job.stage] || job.stage;
  const error = $("job-error");
  error.hidden = job.stage !== "failed";
  error.textContent = job.stage === "failed"
    ? `${sentence(job.error) || "It failed without a reason."} Your settings are kept below: submit again to retry.`
    : "";

  const assets = job.assets || {};
  const ready = Boolean(assets.image && assets.animation);
  $("media").hidden = !ready;
  $("job").classList.toggle("has-media", ready);
  if (ready) {
    const gif = ipfsPath(assets.image);
    if ($("gif").getAttribute("src") !== gif) $("gif").src = gif;
    $("gif-link").href = gif;
    const mp4 = ipfsPath(assets.animation);
    if ($("mp4").getAttribute("src") !== mp4) {
      $("mp4").src = mp4;
      if (assets.preview) $("mp4").poster = ipfsPath(assets.preview);
    }
    $("mp4-link").href = mp4;
    $("metadata-link").href = ipfsPath(assets.metadata || job.token_uri) || "#";
  }
}

function failedAt(job) {
  // Where a failed job stopped, from its progress: rendering spans 1-70, pinning 71-99 (mintpipe.events).
  return job.progress >= 71 ? 3 : job.progress >= 1 ? 1 : 0;
}

// The server's reason as a sentence: "cancelled by an operator" -> "Cancelled by an operator."
function sentence(text) {
  const t = String(text || "").trim();
  if (!t) return "";
  return t.charAt(0).toUpperCase() + t.slice(1) + (/[.!?]$/.test(t) ? "" : ".");
}
