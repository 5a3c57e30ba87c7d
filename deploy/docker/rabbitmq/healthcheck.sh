#!/bin/bash
# Healthy = the node answers an AMQP 0-9-1 protocol header with a frame (Connection.Start, type 1): a real
# handshake, not just an open port, at a fraction of rabbitmq-diagnostics' cost (an Erlang VM per check, ~1 s
# of CPU every interval on a 2-core host).
exec 3<>/dev/tcp/127.0.0.1/5672 || exit 1
printf 'AMQP\x00\x00\x09\x01' >&3
frame=$(timeout 5 head -c 1 <&3 | od -An -tx1 | tr -d ' ')
[ "$frame" = 01 ] || { echo "port 5672 open but no AMQP Connection.Start (got '${frame}')"; exit 1; }
