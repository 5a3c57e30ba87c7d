// The mint panel of a pinned job: what will happen (facts a collector can check), then either their wallet sends
// the job's ready transaction (mint.tx) and the page reports its hash, or the service relays the mint for them.
// A relay needs the job's claim token, which only the browser that submitted the job holds (claims.js): elsewhere
// "Mint it for me" is shown disabled with a note saying why, and the wallet stays the way to mint.
// Every way it can go wrong ends in a sentence saying what to do next, and no other button is ever dead.

import { getChain, getJob, ipfsPath, reportMint } from "./api.js";
import { claimFor, forgetClaim } from "./claims.js";
import { el } from "./form.js";
import { tokenIdOf } from "./jobview.js";
import { WalletError, chainName, deepLinks, explain, explorer } from "./wallet.js";

const $ = (id) => document.getElementById(id);
const short = (a) => (a ? `${a.slice(0, 6)}…${a.slice(-4)}` : "");
const wait = (s) => (s < 90 ? `${Math.max(1, Math.round(s))} s` : s < 3570 ? `${Math.round(s / 60)} min`
  : `${Math.round(s / 3600)} h`);
const EXPIRY_MARGIN_S = 60; // a voucher this close to its deadline is refreshed before it is sent
const REPORT_TRIES = 10; // the node may take a moment to know a just-sent transaction (404)
// The collection's custom errors by selector (the first 4 bytes of keccak256 of the signature; checked against
// the contract's ABI by tests/unit/test_page_reverts.py): a simulated mint that reverts says why.
const REVERTS = {
  "0x3bd4ab41": "expired", // VoucherExpired(uint256,uint256)
  "0xe495084f": "already", // JobAlreadyMinted(bytes32,uint256)
  "0x525f7ecc": "signature", // InvalidVoucherSignature(address)
};

function revertKind(error) {
  const texts = [error?.data, error?.data?.data, error?.error?.data, error?.data?.originalError?.data, error?.message]
    .filter((t) => typeof t === "string");
  for (const text of texts) {
    for (const [selector, kind] of Object.entries(REVERTS)) if (text.toLowerCase().includes(selector)) return kind;
  }
  return null;
}

let chainInfo = null;
async function chain() {
  if (!chainInfo) chainInfo = await getChain();
  return chainInfo;
}

export class MintPanel {
  constructor(wallets, { onJob, openWallets }) {
    this.wallets = wallets;
    this.onJob = onJob; // (job, untilMinted) => void: the page shows it (and watches it until minted)
    this.openWallets = openWallets;
    this.job = null;
    this.busy = false;
  }

  status(text) {
    $("mint-status").textContent = text || "";
  }

  error(text) {
    const box = $("mint-error");
    box.hidden = !text;
    box.textContent = text || "";
  }

  show(job) {
    this.job = job;
    const minted = job.stage === "minted";
    $("mint").hidden = job.stage !== "pinned" || !job.mint;
    $("minted").hidden = !minted;
    if (minted) this.showMinted(job);
    if (job.stage === "pinned" && !job.mint) {
      $("mint").hidden = false;
      $("mint-facts").replaceChildren();
      $("mint-actions").replaceChildren();
      this.status("");
      this.error("Minting is not available on this server yet: your files are pinned and stay ready. " +
        "Come back to this page's link later.");
      return;
    }
    if (job.stage !== "pinned") return;
    this.drawFacts(job);
    if (!this.busy) this.drawActions();
  }

  drawFacts(job) {
    const m = job.mint;
    const rows = [
      ["NFT goes to", m.voucher?.to || job.wallet],
      ["Collection", m.contract],
      ["Network", `${chainName(m.chain_id)} (chain id ${m.chain_id})`],
      ["Token URI", job.token_uri || m.voucher?.token_uri],
    ];
    $("mint-facts").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", { text: k }),
      el("dd", { class: "mono", text: v || "" })]));
  }

  drawActions() {
    const actions = $("mint-actions");
    const current = this.wallets.current;
    const items = [];
    if (current) {
      const b = el("button", { type: "button", class: "primary", id: "mint-wallet" },
        `Mint with ${current.info.name}`);
      b.addEventListener("click", () => this.mintWithWallet());
      items.push(b);
      const to = (this.job.mint.voucher?.to || this.job.wallet || "").toLowerCase();
      if (to && current.account.toLowerCase() !== to) {
        items.push(el("p", { class: "note", text: `The NFT goes to ${short(to)}, the address you gave, not to the ` +
          `connected account ${short(current.account)}; the connected account only pays the network fee.` }));
      }
    } else if (this.wallets.list().length) {
      const b = el("button", { type: "button", class: "primary", id: "mint-connect" }, "Connect a wallet to mint");
      b.addEventListener("click", () => this.openWallets());
      items.push(b);
    }
    const claimed = Boolean(claimFor(this.job.job_id));
    const relay = el("button", { type: "button", class: current || !claimed ? "secondary" : "primary",
      id: "mint-relay", disabled: !claimed, "data-unclaimed": !claimed, "aria-describedby": "mint-relay-note" },
    "Mint it for me (free)");
    relay.addEventListener("click", () => this.relay());
    items.push(relay);
    items.push(el("p", { class: "note", id: "mint-relay-note", text: claimed
      ? `“Mint it for me”: this service sends the mint and pays the fee; the NFT goes to ` +
        `${short(this.job.mint.voucher?.to || this.job.wallet)}.`
      : "“Mint it for me” is only for the browser that submitted this job: open this link there, or mint with " +
        "a wallet." }));
    if (!this.wallets.list().length && matchMedia("(pointer: coarse)").matches) {
      items.push(el("p", { class: "note", text: "Have a wallet app on this phone? Open this page inside it:" }),
        el("ul", { class: "deep-links" }, ...deepLinks(location.href).map((l) =>
          el("li", {}, el("a", { href: l.href, rel: "noopener" }, `Open in ${l.name}`)))));
    } else if (!this.wallets.list().length) {
      items.push(el("p", { class: "note", text: "No wallet in this browser. To mint from your own wallet, add a " +
        "wallet extension (such as MetaMask) and reload this page: the job and its link stay as they are." }));
    }
    actions.replaceChildren(...items);
  }

  setBusy(busy) {
    this.busy = busy;
    for (const b of $("mint-actions").querySelectorAll("button")) {
      b.disabled = busy || b.hasAttribute("data-unclaimed");
      b.setAttribute("aria-busy", String(busy));
    }
  }

  // A fresh look at the job: a voucher near its deadline is re-signed by the server on this read.
  async fresh() {
    const job = await getJob(this.job.job_id);
    this.job = job;
    return job;
  }

  async mintWithWallet() {
    if (this.busy) return;
    this.error("");
    this.setBusy(true);
    try {
      let job = this.job;
      if (job.stage === "minted") return this.alreadyMinted(job);
      this.status("Checking the network in your wallet…");
      const info = await chain();
      await this.wallets.ensureChain({ ...info, chain_id: job.mint.chain_id ?? info.chain_id });
      const deadline = Number(job.mint.voucher?.deadline || 0);
      if (deadline && deadline - Date.now() / 1000 < EXPIRY_MARGIN_S) {
        this.status("Your mint voucher was about to expire; fetching a fresh one…");
        job = await this.fresh();
        if (job.stage === "minted") return this.alreadyMinted(job);
      }
      const problem = await this.wallets.simulate(job.mint.tx);
      if (problem) {
        const kind = revertKind(problem);
        job = await this.fresh();
        if (job.stage === "minted") return this.alreadyMinted(job);
        const renewed = Number(job.mint?.voucher?.deadline) !== deadline;
        if (kind === "expired" || (kind === null && renewed)) {
          this.show(job);
          throw new WalletError("expired", "Your mint voucher had expired, so we fetched a fresh one. Press Mint " +
            "again to send it.");
        }
        if (kind === "already") {
          this.onJob(job, true); // minted from elsewhere: show the token when the chain watcher records it
          throw new WalletError("already", "This artwork has already been minted; its token will show here as soon " +
            "as the chain confirms it. Nothing was sent and nothing was charged.");
        }
        if (kind === "signature") {
          throw new WalletError("signature", "The collection does not accept this mint voucher (it was signed for " +
            "another network or by a retired key). Reload the page for a fresh one; nothing was charged.");
        }
        const words = String(problem.message || problem.data?.message || "");
        throw new WalletError("revert", `The mint would fail on chain, so it was not sent (nothing was charged)` +
          `${words ? `: ${words}` : "."} Reload the page and try again.`);
      }
      this.status("Confirm the mint in your wallet…");
      const hash = await this.wallets.send(job.mint.tx);
      await this.report({ tx_hash: hash }, `Sent (transaction ${short(hash)}). Waiting for the chain to confirm it…`);
    } catch (e) {
      this.status("");
      this.error((e instanceof WalletError ? e : e.code === "network" || e.status ? e : explain(e)).message);
    } finally {
      this.setBusy(false);
    }
  }

  async relay() {
    if (this.busy) return;
    this.error("");
    this.setBusy(true);
    try {
      if (this.job.stage === "minted") return this.alreadyMinted(this.job);
      const claim = claimFor(this.job.job_id);
      if (!claim) return this.drawActions(); // shows why it cannot be relayed from here
      await this.report({ relay: true, claim_token: claim }, "Minting it for you: the transaction is on its way…");
    } catch (e) {
      this.status("");
      // The server's own words; 403: the token is not this job's (forgotten here, so the button says why);
      // 429: a per-address limit or the day's relay budget, with when to try again.
      if (e.code === "claim_mismatch") {
        forgetClaim(this.job.job_id);
        this.drawActions();
      }
      let text = e.message;
      if (e.status === 429 && e.retryAfter) text += ` Try again in ${wait(e.retryAfter)}, or mint with a wallet.`;
      else if (e.status === 403 || e.status === 429) text += " You can still mint with a wallet.";
      this.error(text);
    } finally {
      this.setBusy(false);
    }
  }

  async report(body, waiting) {
    this.status(waiting);
    for (let attempt = 1; ; attempt += 1) {
      try {
        const { data } = await reportMint(this.job.job_id, body);
        const job = await this.fresh();
        if (data.state === "minted" || job.stage === "minted") {
          this.status("");
          this.onJob(job);
        } else {
          // Sent (or, relayed, queued to be sent: 202 with no hash yet): the job turns minted once the
          // confirmations are in (the page watches its events).
          this.status(data.state === "confirming"
            ? `Mined in block ${data.block}; waiting for ${data.required_confirmations} confirmations…`
            : data.state === "queued" || !data.tx_hash ? "Sent to the relayer; waiting for the chain…"
              : `Sent (transaction ${short(data.tx_hash)}); waiting for it to be mined…`);
          this.onJob(job, true);
        }
        return;
      } catch (e) {
        if (e.status === 404 && body.tx_hash && attempt < REPORT_TRIES) {
          await new Promise((r) => setTimeout(r, 1000));
          continue;
        }
        if (e.code === "already_minted") {
          const job = await this.fresh();
          if (job.stage === "minted") return this.alreadyMinted(job);
        }
        throw e; // the server's own words (403: no claim; 422: what did not match; 429: a cap; 503: try later)
      }
    }
  }

  alreadyMinted(job) {
    this.onJob(job);
    this.status("");
    this.error("");
  }

  showMinted(job) {
    const token = tokenIdOf(job);
    const m = job.mint || {};
    const contract = m.contract || chainInfo?.contract;
    const chainId = m.chain_id ?? chainInfo?.chain_id;
    const tx = job.tx_hash ?? m.tx_hash;
    if ((!contract || chainId === undefined) && !chainInfo) {
      // Minted without this page asking for the chain (a relayed mint, or a link opened later): fetch it once,
      // so the collection and network show as they do after a wallet mint.
      chain().then(() => {
        if (this.job?.job_id === job.job_id && this.job.stage === "minted") this.showMinted(this.job);
      }, () => {});
    }
    const scan = explorer(chainId);
    const parts = [
      el("h3", { text: token !== null ? `Minted: token #${token}` : "Minted" }),
      el("p", { text: `Owned by ${job.wallet}` + (chainId !== undefined ? ` on ${chainName(chainId)}.` : ".") }),
    ];
    const facts = [];
    if (contract) facts.push(["Collection", contract]);
    if (tx) facts.push(["Transaction", tx]);
    if (job.token_uri) facts.push(["Token URI", job.token_uri]);
    parts.push(el("dl", { class: "facts" }, ...facts.flatMap(([k, v]) => [el("dt", { text: k }),
      el("dd", { class: "mono", text: v })])));
    const links = el("p", { class: "links" });
    if (scan && contract && token !== null) {
      links.append(el("a", { href: `${scan}/nft/${contract}/${token}`, rel: "noopener" }, "View the token on the explorer"));
    } else if (scan && tx) {
      links.append(el("a", { href: `${scan}/tx/${tx}`, rel: "noopener" }, "View the transaction on the explorer"));
    }
    if (job.token_uri) {
      if (links.childNodes.length) links.append(" · ");
      links.append(el("a", { href: ipfsPath(job.token_uri) }, "Token metadata"));
    }
    parts.push(links);
    $("minted").replaceChildren(...parts);
  }
}
