"""status: the job store, the events consumer, the gRPC read API and the HTTP bridge, in rooms.

- jobs/      the domain: records, transitions, store, history, service, bus, mints, claims, view
- workers/   the events consumer, the dead-letter watch, the sweepers (ack after commit: see its docstring)
- replicas/  what several replicas share: leadership, the change feed, shared limits
- bridge/    the front end's HTTP routes (jobs, submit, preview, pages, ipfs, chain)
- ops/       the operators' dashboard and API (views, actions, mint, overview, auth, pages)
- grpc_api   StatusService over gRPC
- minting    what status asks of the minter (verify a reported mint, ask for a relay)
- clients    outbound gRPC lines (the minter, the renderers' previews)
- app        the HTTP app: bridge and ops meet here
- settings, metrics, errors: leaves
- __main__   the composition root: the only module that wires every room
"""
