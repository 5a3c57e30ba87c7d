// The claim token of each job this browser submitted: POST /v1/jobs answers it to the submitter only (never a
// GET), and a relayed mint needs it. Kept in localStorage as "mintpipe.claim.<job_id>" -> {"token", "at"} so
// it outlives the tab on this device; entries older than 30 days, and all but the newest 50, are dropped.
// Without storage (blocked, or a private window that refuses it) it lasts for this page view only.

const PREFIX = "mintpipe.claim.";
const MAX_AGE_MS = 30 * 24 * 3600 * 1000;
const MAX_KEPT = 50;
const memory = new Map(); // job id -> token, this page view

function read(key) {
  try {
    const kept = JSON.parse(localStorage.getItem(key) || "null");
    return typeof kept?.token === "string" && Date.now() - kept.at < MAX_AGE_MS ? kept : null;
  } catch {
    return null;
  }
}

function prune(newest) {
  const others = [];
  for (let i = 0; i < localStorage.length; i += 1) {
    const key = localStorage.key(i);
    if (key?.startsWith(PREFIX) && key !== newest) others.push([key, read(key)]);
  }
  others.sort((a, b) => (b[1]?.at || 0) - (a[1]?.at || 0));
  others.forEach(([key, entry], i) => {
    if (!entry || i >= MAX_KEPT - 1) localStorage.removeItem(key);
  });
}

export function keepClaim(jobId, token) {
  if (!jobId || typeof token !== "string" || !token) return;
  memory.set(jobId, token);
  try {
    localStorage.setItem(PREFIX + jobId, JSON.stringify({ token, at: Date.now() }));
    prune(PREFIX + jobId);
  } catch {
    /* storage unavailable or full: this page view still has it */
  }
}

export function claimFor(jobId) {
  return memory.get(jobId) || read(PREFIX + jobId)?.token || null;
}

export function forgetClaim(jobId) {
  memory.delete(jobId);
  try {
    localStorage.removeItem(PREFIX + jobId);
  } catch {
    /* nothing kept */
  }
}
