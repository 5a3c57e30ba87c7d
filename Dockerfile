# One image for every service; compose picks the service with the command (python -m <service>).
# Built by scripts/build_images.sh, which needs no registry: BASE is a Debian bookworm made by debootstrap and
# imported locally, and the project comes from wheels built on the host (build/wheelhouse: the project's own
# wheel, with its C extensions, and every dependency), installed with --no-index.
ARG BASE=mintpipe/debian:bookworm-minbase
FROM ${BASE}
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# Debian's python3.11: the wheels are cp311 (scripts/build_images.sh checks the host builds for 3.11).
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* && python3 -m venv /opt/mintpipe \
    && useradd --create-home --uid 10001 mintpipe && mkdir -p /data && chown mintpipe /data
# Dependencies first, in their own layer: they change far less often than the project's wheel.
COPY build/wheelhouse/deps/ /wheels/
RUN /opt/mintpipe/bin/pip install -q --no-index --find-links /wheels /wheels/*.whl && rm -rf /wheels
COPY build/wheelhouse/project/ /wheels/
RUN /opt/mintpipe/bin/pip install -q --no-index --no-deps /wheels/*.whl && rm -rf /wheels
# The built web apps (web/build.mjs output, committed): the bridge serves them; it never builds them.
COPY web/dist /app/web/dist
# The collection's compiled artifact (contracts/build.mjs output, committed): its ABI for the minter, its bytecode for
# the compose file's chain-deploy. scripts/build_images.sh names it in the build context.
COPY contracts/build/MintpipeCollection.json /app/contracts/MintpipeCollection.json
WORKDIR /app
USER mintpipe
ENV PATH=/opt/mintpipe/bin:$PATH MINTPIPE_DATA_DIR=/data STATUS_WEB_DIR=/app/web/dist \
    MINTPIPE_CHAIN_ARTIFACT=/app/contracts/MintpipeCollection.json
