#!/bin/bash
# Healthy = anvil answers JSON-RPC eth_chainId (a raw HTTP/1.0 request: the image has no curl).
body='{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}'
exec 3<>/dev/tcp/127.0.0.1/8545 || exit 1
printf 'POST / HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' \
  "${#body}" "$body" >&3
answer=$(timeout 5 cat <&3)
grep -q '"result":"0x' <<<"$answer" || { echo "port 8545 open but no eth_chainId answer: ${answer: -200}"; exit 1; }
