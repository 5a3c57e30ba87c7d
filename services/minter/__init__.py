"""The chain stage: signs vouchers, sends relayed mints, verifies reported ones, watches the collection."""
