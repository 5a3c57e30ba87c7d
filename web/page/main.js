// The mint page: shape the settings (a form made from the scene's JSON Schema) with a live preview, submit,
// follow the job live, and mint it, from a phone or a desktop. Built only on the public HTTP API.

import { ApiError, NetworkError, getChain, getJob, getScenes, ipfsPath, listJobs, preview, submitJob } from "./api.js";
import { keepClaim } from "./claims.js";
import { SettingsForm, el } from "./form.js";
import { STAGES, showJob, tokenIdOf } from "./jobview.js";
import { MintPanel } from "./mint.js";
import { Wallets, chainName, deepLinks } from "./wallet.js";
import { TERMINAL, watchJob } from "./watch.js";

const $ = (id) => document.getElementById(id);
const PREVIEW_SIZE = 384;
const PREVIEW_DEBOUNCE_MS = 180;
const ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const SUBMIT_RETRIES = 3;

const state = { scene: null, watcher: null, jobId: null, chain: null };
const form = new SettingsForm($("fields"), () => schedulePreview());
const wallets = new Wallets(() => walletChanged());
const mint = new MintPanel(wallets, { onJob: (job, untilMinted) => follow(job, untilMinted),
  openWallets: () => openWalletPanel() });

// ---- preview ---------------------------------------------------------------------------------------------
const stills = new Map(); // settings JSON -> object URL (this visit only)
let previewTimer = null;
let previewAbort = null;

function schedulePreview() {
  clearTimeout(previewTimer);
  previewTimer = setTimeout(refreshPreview, PREVIEW_DEBOUNCE_MS);
}

async function refreshPreview() {
  const settings = form.values();
  const key = JSON.stringify([state.scene?.name, settings]);
  const frame = $("preview-frame");
  const known = stills.get(key);
  if (known) return showStill(known, settings);
  previewAbort?.abort();
  previewAbort = new AbortController();
  frame.setAttribute("aria-busy", "true");
  frame.classList.add("loading");
  try {
    const blob = await preview({ scene: state.scene?.name, settings, size: PREVIEW_SIZE }, previewAbort.signal);
    const url = URL.createObjectURL(blob);
    stills.set(key, url);
    if (stills.size > 40) {
      const [oldKey, oldUrl] = stills.entries().next().value;
      if (oldUrl !== $("preview").src) URL.revokeObjectURL(oldUrl);
      stills.delete(oldKey);
    }
    showStill(url, settings);
  } catch (e) {
    if (e.name === "AbortError") return;
    frame.classList.add("stale");
    if (e instanceof ApiError && e.status === 400) {
      const shown = form.showErrors(e.field, e.message);
      $("preview-note").textContent = shown ? "Fix the highlighted setting to see the preview again."
        : e.message;
    } else if (e instanceof ApiError && e.status === 429) {
      $("preview-note").textContent = `Previews are busy; the picture will update in ${e.retryAfter || 1} s.`;
      setTimeout(schedulePreview, 1000 * (e.retryAfter || 1));
    } else {
      $("preview-note").textContent = `The preview is not available right now (${e.message}) You can still submit.`;
    }
  } finally {
    frame.setAttribute("aria-busy", "false");
    frame.classList.remove("loading");
  }
}

function showStill(url, settings) {
  $("preview").src = url;
  $("preview-frame").classList.remove("stale");
  form.showErrors(null);
  const frames = settings.frames || 100;
  $("preview-note").textContent = `Frame ${Math.floor(frames / 3) + 1} of ${frames} of your loop, as your NFT's ` +
    `preview image will show it. The art is ${settings.size} × ${settings.size} px.`;
}

// ---- submit ----------------------------------------------------------------------------------------------
function idempotencyKey(body) {
  // One key per attempt (these settings to this wallet): a retry after a network error, a reload or a double
  // tap finds the same job instead of making a second one.
  const text = JSON.stringify(body);
  try {
    const kept = JSON.parse(sessionStorage.getItem("mintpipe.attempt") || "null");
    if (kept?.body === text) return kept.key;
  } catch {
    /* storage unavailable: a key for this page view only */
  }
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  const key = "page-" + [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  try {
    sessionStorage.setItem("mintpipe.attempt", JSON.stringify({ body: text, key }));
  } catch {
    /* as above */
  }
  return key;
}

function remember(body, key, jobId) {
  try {
    sessionStorage.setItem("mintpipe.attempt", JSON.stringify({ body: JSON.stringify(body), key, job: jobId }));
  } catch {
    /* storage unavailable */
  }
}

function formError(text) {
  $("form-error").hidden = !text;
  $("form-error").textContent = text || "";
}

function walletError(text) {
  $("wallet-error").textContent = text || "";
  $("wallet").toggleAttribute("aria-invalid", Boolean(text));
  $("wallet").closest(".field").classList.toggle("invalid", Boolean(text));
}

async function submit(event) {
  event.preventDefault();
  formError("");
  walletError("");
  const wallet = $("wallet").value.trim();
  if (!ADDRESS.test(wallet)) {
    walletError(wallet ? "That is not an address: it should be 0x followed by 40 characters 0-9 and a-f."
      : "Enter the address the NFT should go to, or connect a wallet to fill it in.");
    $("wallet").focus();
    return;
  }
  const body = { scene: state.scene?.name, settings: form.values(), wallet };
  const key = idempotencyKey(body);
  const button = $("submit");
  button.disabled = true;
  button.textContent = "Sending…";
  try {
    for (let attempt = 0; ; attempt += 1) {
      try {
        const { data } = await submitJob(body, key);
        keepClaim(data.job_id, data.claim_token); // this browser's proof that it submitted the job (relayed mint)
        remember(body, key, data.job_id);
        history.pushState({ job: data.job_id }, "", `/jobs/${data.job_id}`);
        follow({ job_id: data.job_id, stage: data.stage, progress: 0, wallet, assets: {}, settings: body.settings });
        $("job").scrollIntoView({ behavior: "smooth", block: "start" });
        $("job-title").focus({ preventScroll: true });
        return;
      } catch (e) {
        const retryable = e instanceof NetworkError || (e instanceof ApiError && e.status === 503);
        if (retryable && attempt < SUBMIT_RETRIES) {
          button.textContent = "Retrying…";
          await new Promise((r) => setTimeout(r, 1000 * 2 ** attempt));
          continue;
        }
        throw e;
      }
    }
  } catch (e) {
    if (e instanceof ApiError && e.status === 400 && e.field === "wallet") {
      walletError(e.message);
      $("wallet").focus();
    } else if (e instanceof ApiError && e.status === 400 && form.showErrors(e.field, e.message)) {
      form.focusField(e.field);
    } else if (e instanceof ApiError && e.status === 429) {
      formError(`${e.message}${e.retryAfter ? "" : " Try again in a minute."}`);
    } else if (e instanceof ApiError && e.status === 409) {
      sessionStorage.removeItem("mintpipe.attempt");
      formError(`${e.message} Press Render again to start a new job.`);
    } else if (e instanceof NetworkError || e.status === 503) {
      formError(`${e.message} Press Render again when you are back online: it is safe, the same request never ` +
        "makes a second job.");
    } else {
      formError(e.message);
    }
  } finally {
    button.disabled = false;
    button.textContent = "Render my NFT";
  }
}

// ---- a job ------------------------------------------------------------------------------------------------
function follow(job, untilMinted = false) {
  if (state.jobId !== job.job_id || untilMinted) {
    state.watcher?.stop();
    state.jobId = job.job_id;
    // After a mint is sent the job stays pinned until the chain confirms it: watch on until minted.
    const until = untilMinted ? new Set(["minted", "failed"]) : TERMINAL;
    state.watcher = watchJob(job.job_id, onJob, { until });
  }
  onJob(job);
}

function onJob(job, error) {
  if (!job) {
    $("job").hidden = false;
    $("job-status").textContent = "";
    $("job-error").hidden = false;
    $("job-error").textContent = error?.status === 404
      ? "We could not find this job. Check the link, or make a new artwork below."
      : `This job could not be loaded: ${error?.message || "unknown error"}`;
    return;
  }
  showJob(job);
  mint.show(job);
  const label = (STAGES.find(([stage]) => stage === job.stage) || [job.stage, "Failed"])[1];
  document.title = `${job.stage === "minted" ? `Minted #${tokenIdOf(job) ?? ""}` : label} · mintpipe`;
  if (job.stage === "failed") {
    // "Submit again to retry" must make a new job: the kept key would only find this failed one.
    try {
      const kept = JSON.parse(sessionStorage.getItem("mintpipe.attempt") || "null");
      if (kept?.job === job.job_id) sessionStorage.removeItem("mintpipe.attempt");
    } catch {
      /* nothing kept */
    }
  }
  if (job.stage === "minted" && wallets.current) loadMints();
}

async function openJobFromPath() {
  const match = location.pathname.match(/^\/jobs\/([^/]+)\/?$/);
  if (!match) {
    state.watcher?.stop();
    state.jobId = null;
    $("job").hidden = true;
    return;
  }
  const id = decodeURIComponent(match[1]);
  try {
    const job = await getJob(id);
    if (job.settings && form.schema) form.set(job.settings);
    if (job.wallet && !$("wallet").value) $("wallet").value = job.wallet;
    follow(job);
  } catch (e) {
    onJob(null, e);
  }
}

// ---- wallet ------------------------------------------------------------------------------------------------
function openWalletPanel() {
  const panel = $("wallet-panel");
  const list = wallets.list();
  const current = wallets.current;
  $("wallet-connected").hidden = !current;
  $("wallet-panel-title").textContent = current ? "Your wallet" : "Choose a wallet";
  if (current) $("wallet-connected-text").textContent = `${current.info.name}: ${current.account}`;
  $("wallet-list").replaceChildren(...list.filter((w) => w.provider !== current?.provider).map((w) => {
    const b = el("button", { type: "button", class: "wallet-choice" });
    if (w.info.icon) b.append(el("img", { src: w.info.icon, alt: "", width: 28, height: 28 }));
    b.append(el("span", { text: current ? `Switch to ${w.info.name}` : w.info.name }));
    b.addEventListener("click", async () => {
      panel.querySelector(".field-error")?.remove();
      try {
        await wallets.connect(w);
        panel.hidden = true;
        $("connect").focus();
      } catch (e) {
        panel.insertBefore(el("p", { class: "field-error", role: "alert", text: e.message }), $("wallet-panel-close"));
      }
    });
    return el("li", {}, b);
  }));
  $("no-wallet").hidden = list.length > 0;
  $("disconnect").hidden = !current;
  $("deep-links").replaceChildren(...deepLinks(location.href).map((l) =>
    el("li", {}, el("a", { href: l.href, rel: "noopener" }, `Open in ${l.name}`))));
  panel.hidden = false;
  (panel.querySelector(".wallet-choice, #disconnect:not([hidden])") || $("wallet-panel-close")).focus();
}

function walletChanged() {
  const current = wallets.current;
  const button = $("connect");
  const network = $("network");
  if (current) {
    // The accessible name starts with the visible text (WCAG 2.5.3), then says what the button opens.
    button.replaceChildren(`${current.account.slice(0, 6)}…${current.account.slice(-4)}`,
      el("span", { class: "visually-hidden", text: ` (${current.info.name} wallet menu)` }));
    button.title = `${current.info.name}: ${current.account}`;
    network.hidden = false;
    const wrong = state.chain && Number(state.chain.chain_id) !== current.chainId;
    network.textContent = wrong ? `Wrong network: ${chainName(current.chainId)}` : chainName(current.chainId);
    network.classList.toggle("wrong", Boolean(wrong));
    if (!$("wallet").value) $("wallet").value = current.account;
    loadMints();
  } else {
    button.textContent = "Connect wallet";
    button.removeAttribute("title");
    network.hidden = true;
    $("my-mints").hidden = true;
  }
  if (mint.job) mint.show(mint.job);
}

async function loadMints() {
  const account = wallets.current?.account;
  if (!account) return;
  $("my-mints").hidden = false;
  $("mints-note").textContent = "Loading…";
  try {
    const page = await listJobs(account);
    if (wallets.current?.account !== account) return;
    $("mints-note").textContent = page.jobs.length ? `Newest first, for ${account}.`
      : "Nothing yet for this wallet: shape an artwork above and render it.";
    $("mints-list").replaceChildren(...page.jobs.map((job) => {
      const thumb = job.assets?.preview
        ? el("img", { src: ipfsPath(job.assets.preview), alt: "", width: 96, height: 96, loading: "lazy" })
        : el("span", { class: "thumb-empty", "aria-hidden": "true" });
      const token = tokenIdOf(job);
      const label = job.stage === "minted" ? `Minted, token #${token ?? "?"}` : job.stage === "pinned"
        ? "Ready to mint" : job.stage === "failed" ? "Failed" : `${job.stage} (${job.progress} %)`;
      const when = new Date(job.created_at).toLocaleString();
      return el("li", {}, el("a", { href: `/jobs/${job.job_id}`, class: "mint-card" }, thumb,
        el("span", { class: "mint-card-text" }, el("strong", { text: label }), el("span", { text: when }))));
    }));
  } catch (e) {
    $("mints-note").textContent = `Your mints could not be loaded: ${e.message}`;
  }
}

// ---- start ------------------------------------------------------------------------------------------------
async function start() {
  $("form").addEventListener("submit", submit);
  $("surprise").addEventListener("click", () => {
    form.surprise();
    schedulePreview();
  });
  $("defaults").addEventListener("click", () => {
    form.reset();
    schedulePreview();
  });
  $("wallet").addEventListener("input", () => walletError(""));
  $("connect").addEventListener("click", () => ($("wallet-panel").hidden ? openWalletPanel()
    : $("wallet-panel-close").click()));
  $("disconnect").addEventListener("click", () => {
    wallets.disconnect();
    $("wallet-panel").hidden = true;
    $("connect").focus();
  });
  $("wallet-panel-close").addEventListener("click", () => {
    $("wallet-panel").hidden = true;
    $("connect").focus();
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !$("wallet-panel").hidden) $("wallet-panel-close").click();
  });
  $("job-title").setAttribute("tabindex", "-1");
  $("copy-link").addEventListener("click", async () => {
    const url = new URL($("job-link").getAttribute("href"), location.href).href;
    const button = $("copy-link");
    try {
      await navigator.clipboard.writeText(url);
      button.textContent = "Copied";
    } catch {
      // No clipboard (an insecure origin, or refused): select the link's text for a manual copy.
      getSelection().selectAllChildren($("job-link"));
      button.textContent = "Selected: copy it";
    }
    setTimeout(() => (button.textContent = "Copy link"), 2500);
  });
  window.addEventListener("popstate", openJobFromPath);
  // Links to other jobs ("My mints") stay on this page.
  document.addEventListener("click", (e) => {
    const a = e.target.closest?.("a[href^='/jobs/']");
    if (!a || e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    history.pushState({}, "", a.getAttribute("href"));
    openJobFromPath().then(() => $("job").scrollIntoView({ behavior: "smooth" }));
  });

  try {
    const scenes = await getScenes();
    const choose = (scene) => {
      state.scene = scene;
      $("scene-description").textContent = `${scene.title}: ${scene.description}`;
      form.render(scene.schema);
    };
    choose(scenes[0]);
    if (scenes.length > 1) {
      // Several scenes: a choice above their settings (one scene needs none).
      const select = el("select", { id: "scene" }, ...scenes.map((sc) => el("option", { value: sc.name, text: sc.title })));
      select.addEventListener("change", () => {
        choose(scenes.find((sc) => sc.name === select.value));
        schedulePreview();
      });
      $("form").prepend(el("div", { class: "field" }, el("label", { for: "scene", text: "Scene" }), select));
    }
  } catch (e) {
    $("fields").replaceChildren(el("p", { class: "error-box", role: "alert",
      text: `The settings could not be loaded (${e.message}). Reload the page to try again.` }));
  }
  getChain().then((c) => {
    state.chain = c;
    walletChanged();
  }, () => {
    /* no chain on this server: the mint panel says so on a pinned job */
  });
  await openJobFromPath();
  schedulePreview();
  wallets.restore();
}

start();
