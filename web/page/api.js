// The bridge's public HTTP API, and nothing else: every screen of this page is built from these calls.

export class ApiError extends Error {
  constructor(status, body, headers) {
    const error = (body && body.error) || {};
    super(error.message || `The server answered ${status}.`);
    this.status = status;
    this.code = error.code || "error";
    this.field = error.field || null;
    this.body = body;
    const retry = headers && headers.get("Retry-After");
    this.retryAfter = retry ? Number(retry) : null;
  }
}

export class NetworkError extends Error {
  constructor() {
    super("The server could not be reached. Check your connection; trying again is safe.");
    this.code = "network";
  }
}

async function call(path, { method = "GET", body, headers = {}, signal, accept = "application/json" } = {}) {
  let response;
  try {
    response = await fetch(path, {
      method,
      signal,
      headers: { Accept: accept, ...(body !== undefined ? { "Content-Type": "application/json" } : {}), ...headers },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new NetworkError();
  }
  return response;
}

export async function json(path, options = {}) {
  const response = await call(path, options);
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, data, response.headers);
  return { status: response.status, data, headers: response.headers };
}

export const getScenes = () => json("/v1/scenes").then((r) => r.data.scenes);
export const getJob = (id) => json(`/v1/jobs/${encodeURIComponent(id)}`).then((r) => r.data);
export const listJobs = (wallet, limit = 24) =>
  json(`/v1/jobs?wallet=${encodeURIComponent(wallet)}&limit=${limit}`).then((r) => r.data);
export const getChain = () => json("/v1/chain").then((r) => r.data);
export const reportMint = (id, body) => json(`/v1/jobs/${encodeURIComponent(id)}/mint`, { method: "POST", body });

export function submitJob(body, idempotencyKey) {
  return json("/v1/jobs", { method: "POST", body, headers: { "Idempotency-Key": idempotencyKey } });
}

// A still of the settings as a PNG blob (POST /v1/preview; its JSON twin is the same call with Accept: JSON).
export async function preview(body, signal) {
  const response = await call("/v1/preview", { method: "POST", body, signal, accept: "image/png" });
  if (!response.ok) {
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    throw new ApiError(response.status, data, response.headers);
  }
  return response.blob();
}

// "ipfs://<cid>" or a bare CID -> this server's gateway path.
export const ipfsPath = (uriOrCid) => (uriOrCid ? `/ipfs/${String(uriOrCid).replace(/^ipfs:\/\//, "")}` : null);
