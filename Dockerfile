# One image for every service; compose picks the service with the command (python -m <service>).
# The build stage has a C compiler for the GIF encoder's extension; the image keeps only the built wheel.
FROM python:3.11 AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY protos ./protos
COPY libs ./libs
COPY services ./services
COPY tools ./tools
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels && useradd --create-home --uid 10001 mintpipe && mkdir -p /data && chown mintpipe /data
# The built web apps (web/build.mjs output, committed): the bridge serves them; it never builds them.
COPY web/dist /app/web/dist
USER mintpipe
ENV MINTPIPE_DATA_DIR=/data STATUS_WEB_DIR=/app/web/dist
