// Wallets: discovered with EIP-6963 (every injected wallet announces itself), with window.ethereum (EIP-1193)
// as the fallback for wallets that predate it. The page only ever asks a wallet for accounts, the chain, and to
// send the ready transaction the server prepared (the job's mint.tx).

const KNOWN_CHAINS = {
  1: "Ethereum", 10: "OP Mainnet", 137: "Polygon", 8453: "Base", 42161: "Arbitrum One",
  11155111: "Sepolia", 84532: "Base Sepolia", 31337: "Local test chain", 1337: "Local test chain",
};
const EXPLORERS = {
  1: "https://etherscan.io", 10: "https://optimistic.etherscan.io", 137: "https://polygonscan.com",
  8453: "https://basescan.org", 42161: "https://arbiscan.io", 11155111: "https://sepolia.etherscan.io",
  84532: "https://sepolia.basescan.org",
};
export const chainName = (id) => KNOWN_CHAINS[Number(id)] || `chain ${Number(id)}`;
export const explorer = (id) => EXPLORERS[Number(id)] || null;
export const toHex = (n) => "0x" + BigInt(n ?? 0).toString(16);

// A wallet error as a sentence a person can act on, and a kind the page can branch on.
export class WalletError extends Error {
  constructor(kind, message, cause) {
    super(message);
    this.kind = kind;
    this.cause = cause;
  }
}

const errorCode = (e) => e?.code ?? e?.data?.originalError?.code ?? e?.error?.code;

export function explain(e, action = "request") {
  if (e instanceof WalletError) return e;
  const code = errorCode(e);
  const text = String(e?.message || e?.data?.message || "");
  if (code === 4001 || /reject|denied|cancel/i.test(text)) {
    return new WalletError("rejected", `You declined the ${action} in your wallet, so nothing was sent and nothing ` +
      "was charged. Press the button again when you are ready.", e);
  }
  if (code === 4100) {
    return new WalletError("unauthorized", "Your wallet has not allowed this page to use the account. Connect " +
      "again and approve access.", e);
  }
  if (code === -32002) {
    return new WalletError("pending", "Your wallet already has a request from this page waiting. Open the wallet " +
      "and answer it, then try again.", e);
  }
  if (/insufficient funds/i.test(text)) {
    return new WalletError("funds", "This account does not hold enough to pay the network fee. Add funds to it, " +
      "or choose “Mint it for me” to have the NFT sent for free.", e);
  }
  return new WalletError("other", `Your wallet could not complete the ${action}${text ? `: ${text}` : "."}`, e);
}

export class Wallets {
  constructor(onChange) {
    this.onChange = onChange;
    this.found = new Map(); // uuid -> { info, provider }
    this.current = null; // { info, provider, account, chainId }
    window.addEventListener("eip6963:announceProvider", (event) => {
      const { info, provider } = event.detail || {};
      if (!info?.uuid || !provider?.request) return;
      this.found.set(info.uuid, { info, provider });
      queueMicrotask(() => this.onChange()); // a wallet may announce while the page is still being set up
    });
    window.dispatchEvent(new Event("eip6963:requestProvider"));
    // Wallets that do not speak EIP-6963 still inject window.ethereum; give the others a moment to announce.
    this.ready = new Promise((resolve) => setTimeout(() => {
      if (this.found.size === 0 && window.ethereum?.request) {
        const name = window.ethereum.isMetaMask ? "MetaMask" : window.ethereum.isCoinbaseWallet ? "Coinbase Wallet"
          : "Browser wallet";
        this.found.set("window.ethereum", { info: { uuid: "window.ethereum", name, icon: "", rdns: "injected" },
          provider: window.ethereum });
        this.onChange();
      }
      resolve();
    }, 400));
  }

  list() {
    return [...this.found.values()];
  }

  async connect(entry, { silent = false } = {}) {
    const { provider } = entry;
    let accounts;
    try {
      accounts = await provider.request({ method: silent ? "eth_accounts" : "eth_requestAccounts" });
    } catch (e) {
      throw explain(e, "connection");
    }
    if (!accounts?.length) {
      if (silent) return null;
      throw new WalletError("no_account", "Your wallet did not share an account. Unlock it, choose an account, and " +
        "connect again.");
    }
    const chainId = Number(await provider.request({ method: "eth_chainId" }));
    if (this.current?.provider !== provider) {
      provider.on?.("accountsChanged", (list) => {
        if (this.current?.provider !== provider) return;
        if (list?.length) this.current.account = list[0];
        else this.current = null;
        this.onChange();
      });
      provider.on?.("chainChanged", (id) => {
        if (this.current?.provider !== provider) return;
        this.current.chainId = Number(id);
        this.onChange();
      });
    }
    this.current = { ...entry, account: accounts[0], chainId };
    try {
      localStorage.setItem("mintpipe.wallet", entry.info.rdns || entry.info.uuid);
    } catch {
      /* private browsing: the wallet is simply not remembered */
    }
    this.onChange();
    return this.current;
  }

  // Reconnects the wallet used last time without a prompt (eth_accounts answers only if already allowed).
  async restore() {
    await this.ready;
    let last = null;
    try {
      last = localStorage.getItem("mintpipe.wallet");
    } catch {
      last = null;
    }
    const entry = this.list().find((w) => (w.info.rdns || w.info.uuid) === last);
    if (entry) {
      try {
        await this.connect(entry, { silent: true });
      } catch {
        /* not allowed any more: the visitor connects again by hand */
      }
    }
  }

  disconnect() {
    this.current = null;
    try {
      localStorage.removeItem("mintpipe.wallet");
    } catch {
      /* nothing remembered */
    }
    this.onChange();
  }

  // Switches the wallet to the collection's chain, adding it when the wallet does not know it.
  async ensureChain(chain) {
    const { provider } = this.current;
    const want = Number(chain.chain_id);
    const current = Number(await provider.request({ method: "eth_chainId" }));
    if (current === want) return;
    const chainId = toHex(want);
    const wrong = (e) => new WalletError("wrong_network", `Your wallet is on ${chainName(current)}, and this ` +
      `collection lives on ${chainName(want)}. Approve the switch in your wallet (or choose ${chainName(want)} ` +
      "there yourself), then press Mint again.", e);
    try {
      await provider.request({ method: "wallet_switchEthereumChain", params: [{ chainId }] });
    } catch (e) {
      if (errorCode(e) !== 4902 && !/unrecognized|not been added|unknown chain/i.test(String(e?.message))) throw wrong(e);
      try {
        await provider.request({
          method: "wallet_addEthereumChain",
          params: [{ chainId, chainName: chain.chain_name || chainName(want), rpcUrls: [chain.rpc_url],
            nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
            ...(explorer(want) ? { blockExplorerUrls: [explorer(want)] } : {}) }],
        });
      } catch (e2) {
        throw wrong(e2);
      }
    }
    const now = Number(await provider.request({ method: "eth_chainId" }));
    if (now !== want) throw wrong();
    this.current.chainId = now;
  }

  // Sends the server-prepared transaction; answers its hash.
  async send(tx) {
    const { provider, account } = this.current;
    try {
      return await provider.request({
        method: "eth_sendTransaction",
        params: [{ from: account, to: tx.to, data: tx.data, value: toHex(tx.value || 0) }],
      });
    } catch (e) {
      throw explain(e, "transaction");
    }
  }

  // Would the transaction go through? A revert here (voucher expired, already minted) costs the collector nothing.
  async simulate(tx) {
    const { provider, account } = this.current;
    try {
      await provider.request({ method: "eth_call",
        params: [{ from: account, to: tx.to, data: tx.data, value: toHex(tx.value || 0) }, "latest"] });
      return null;
    } catch (e) {
      return e;
    }
  }
}

// Links that open this page inside a wallet app's own browser (where a wallet is injected).
export function deepLinks(url) {
  const u = new URL(url);
  const bare = `${u.host}${u.pathname}${u.search}`;
  return [
    { name: "MetaMask", href: `https://metamask.app.link/dapp/${bare}` },
    { name: "Coinbase Wallet", href: `https://go.cb-w.com/dapp?cb_url=${encodeURIComponent(url)}` },
    { name: "Trust Wallet", href: `https://link.trustwallet.com/open_url?coin_id=60&url=${encodeURIComponent(url)}` },
  ];
}
