#!/bin/sh
# One SeaweedFS server (master, volume, filer and S3 gateway in one process) with a single S3 identity,
# S3_ACCESS_KEY / S3_SECRET_KEY, allowed everything; S3_BUCKET, when set, is created once the gateway answers.
set -eu
if [ -z "${S3_ACCESS_KEY:-}" ] || [ -z "${S3_SECRET_KEY:-}" ]; then
  echo "S3_ACCESS_KEY and S3_SECRET_KEY must be set" >&2; exit 2
fi
umask 077
mkdir -p /data /etc/seaweedfs
cat > /etc/seaweedfs/s3.json <<JSON
{"identities": [{"name": "mintpipe", "credentials": [{"accessKey": "${S3_ACCESS_KEY}", "secretKey": "${S3_SECRET_KEY}"}],
  "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
JSON
if [ -n "${S3_BUCKET:-}" ]; then
  (
    for _ in $(seq 1 120); do
      if echo "s3.bucket.create -name ${S3_BUCKET}" | weed shell -master=127.0.0.1:9333 >/tmp/bucket.log 2>&1 \
          && ! grep -qi error /tmp/bucket.log; then
        touch /tmp/bucket-ready; exit 0
      fi
      grep -qi "already exist" /tmp/bucket.log && { touch /tmp/bucket-ready; exit 0; }
      sleep 1
    done
    echo "could not create bucket ${S3_BUCKET}: $(cat /tmp/bucket.log)" >&2
  ) &
else
  touch /tmp/bucket-ready
fi
# -volume.max=0: volumes as disk space allows (the default 8 is too few for one bucket's collections).
exec weed server -dir=/data -ip.bind=0.0.0.0 -master.volumeSizeLimitMB=1024 -volume.max=0 \
  -s3 -s3.port=8333 -s3.config=/etc/seaweedfs/s3.json
