// A wallet for the browser tests: an EIP-1193 provider announced through EIP-6963, as a wallet extension
// injects it, that forwards JSON-RPC to the test's anvil, where the account is one of anvil's unlocked dev
// accounts (anvil signs eth_sendTransaction for it). `window.__testWalletConfig` (set before this script) says
// which account, which chain it starts on, and how many switch / send requests the "user" rejects first.
(() => {
  const config = window.__testWalletConfig;
  const listeners = {};
  let chainId = config.startChainId ?? config.anvilChainId;
  const known = new Set([chainId]); // a wallet started elsewhere does not know the test chain until it is added
  let rejectSwitch = config.rejectSwitch || 0;
  let rejectSend = config.rejectSend || 0;
  const hex = (n) => "0x" + Number(n).toString(16);
  const emit = (event, value) => (listeners[event] || []).forEach((f) => f(value));
  const fail = (code, message, data) => Object.assign(new Error(message), { code, data });
  window.__testWalletLog = [];

  async function forward(method, params) {
    const response = await fetch(config.rpcUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: Date.now(), method, params: params || [] }),
    });
    const body = await response.json();
    if (body.error) throw fail(body.error.code, body.error.message, body.error.data);
    return body.result;
  }

  const provider = {
    isTestWallet: true,
    async request({ method, params }) {
      window.__testWalletLog.push(method);
      switch (method) {
        case "eth_requestAccounts":
        case "eth_accounts":
          return [config.account];
        case "eth_chainId":
          return hex(chainId);
        case "wallet_switchEthereumChain": {
          if (rejectSwitch > 0) {
            rejectSwitch -= 1;
            throw fail(4001, "User rejected the request.");
          }
          const want = Number(params[0].chainId);
          if (!known.has(want)) throw fail(4902, `Unrecognized chain ID ${params[0].chainId}.`);
          chainId = want;
          emit("chainChanged", hex(chainId));
          return null;
        }
        case "wallet_addEthereumChain": {
          const want = Number(params[0].chainId);
          if (want !== config.anvilChainId || params[0].rpcUrls[0] !== config.rpcUrl) {
            throw fail(-32602, "the test wallet only knows the test chain");
          }
          known.add(want);
          chainId = want;
          emit("chainChanged", hex(chainId));
          return null;
        }
        case "eth_sendTransaction":
          if (rejectSend > 0) {
            rejectSend -= 1;
            throw fail(4001, "User denied transaction signature.");
          }
          if (chainId !== config.anvilChainId) throw fail(-32000, "the wallet is on another chain");
          return forward(method, params);
        case "eth_call":
          if (config.expiredOnce) {
            // As the collection answers a voucher past its deadline: VoucherExpired(deadline, timestamp).
            config.expiredOnce = false;
            throw fail(3, "execution reverted", "0x3bd4ab41" + "0".repeat(128));
          }
          return forward(method, params);
        default:
          if (chainId !== config.anvilChainId) throw fail(-32000, "the wallet is on another chain");
          return forward(method, params);
      }
    },
    on(event, f) {
      (listeners[event] = listeners[event] || []).push(f);
    },
    removeListener(event, f) {
      listeners[event] = (listeners[event] || []).filter((g) => g !== f);
    },
  };
  const info = Object.freeze({
    uuid: "7f6a1f5e-5d1c-4a8e-9f3e-000000000001",
    name: "Test Wallet",
    icon: "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 8 8'%3E%3Crect width='8' height='8' rx='2' fill='%23f6851b'/%3E%3C/svg%3E",
    rdns: "org.mintpipe.testwallet",
  });
  const announce = () =>
    window.dispatchEvent(new CustomEvent("eip6963:announceProvider", { detail: Object.freeze({ info, provider }) }));
  window.addEventListener("eip6963:requestProvider", announce);
  announce();
})();
