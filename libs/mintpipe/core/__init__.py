"""The pipeline's own vocabulary, with no I/O: job stages (stages), scenes and their settings (scenes), wallet
addresses (wallets) and IPFS content ids (cid). Imports no other mintpipe room."""
