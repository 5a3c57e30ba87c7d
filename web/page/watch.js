// Follows a job live: Server-Sent Events first (the browser reconnects by itself and sends Last-Event-ID), a
// poll of GET /v1/jobs/{id} when the stream cannot be used (no EventSource, or it keeps failing).

import { getJob } from "./api.js";

export const TERMINAL = new Set(["pinned", "minted", "failed"]);
const POLL_MS = 2000;
const STREAM_FAILURES_BEFORE_POLLING = 3;

export function watchJob(id, onJob, { onMode, until = TERMINAL } = {}) {
  let stopped = false;
  let source = null;
  let timer = null;
  let failures = 0;
  let last = null;

  const deliver = (job) => {
    if (stopped || !job) return;
    last = job;
    onJob(job);
    if (until.has(job.stage)) stop();
  };

  const poll = async () => {
    onMode?.("polling");
    while (!stopped) {
      try {
        deliver(await getJob(id));
      } catch (e) {
        if (e.status === 404) {
          onJob(null, e);
          stop();
          return;
        }
        /* a network blip: the next poll tries again */
      }
      if (stopped) return;
      await new Promise((resolve) => (timer = setTimeout(resolve, POLL_MS)));
    }
  };

  const stream = () => {
    onMode?.("live");
    const untilMinted = until.has("minted") && !until.has("pinned");
    source = new EventSource(`/v1/jobs/${encodeURIComponent(id)}/events${untilMinted ? "?until=minted" : ""}`);
    source.addEventListener("job", (event) => {
      failures = 0;
      try {
        deliver(JSON.parse(event.data));
      } catch {
        /* a malformed event is skipped; the next one carries the whole job again */
      }
    });
    source.onerror = () => {
      if (stopped) return;
      failures += 1;
      // CLOSED: the browser gave up (e.g. a 404 or a proxy that buffers); otherwise it is reconnecting itself.
      if (source.readyState === EventSource.CLOSED || failures >= STREAM_FAILURES_BEFORE_POLLING) {
        source.close();
        source = null;
        poll();
      }
    };
  };

  const stop = () => {
    stopped = true;
    source?.close();
    clearTimeout(timer);
  };

  if (typeof EventSource === "function" && !window.__mintpipeForcePolling) stream();
  else poll();
  return { stop, last: () => last };
}
