#!/bin/sh
# The broker's only user is RABBITMQ_DEFAULT_USER / RABBITMQ_DEFAULT_PASS (written to rabbitmq.conf, which the
# node reads when it first creates its database); the node's name is fixed so a restarted container (another
# hostname) finds its own queues in the volume.
set -eu
if [ -z "${RABBITMQ_DEFAULT_PASS:-}" ]; then echo "RABBITMQ_DEFAULT_PASS is not set" >&2; exit 2; fi
umask 077
cat > /etc/rabbitmq/rabbitmq.conf <<CONF
default_user = ${RABBITMQ_DEFAULT_USER:-mintpipe}
default_pass = ${RABBITMQ_DEFAULT_PASS}
loopback_users = none
listeners.tcp.default = 5672
CONF
chown rabbitmq /etc/rabbitmq/rabbitmq.conf
ulimit -n 65536 2>/dev/null || true
chown -R rabbitmq /var/lib/rabbitmq
exec su rabbitmq -s /bin/sh -c 'RABBITMQ_NODENAME=rabbit@localhost HOME=/var/lib/rabbitmq exec /usr/lib/rabbitmq/bin/rabbitmq-server'
