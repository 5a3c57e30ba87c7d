# One image for every service; compose picks the service with the command (python -m <service>).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY protos ./protos
COPY libs ./libs
COPY services ./services
COPY tools ./tools
RUN pip install . && useradd --create-home --uid 10001 mintpipe && mkdir -p /data && chown mintpipe /data
USER mintpipe
ENV MINTPIPE_DATA_DIR=/data
