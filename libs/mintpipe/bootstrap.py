"""What settings name, built: a service's database and its object stores (the factory; mintpipe.config parses).

Entry points call these after `load_settings`. Kept out of mintpipe.config so that config stays a leaf: the
stores import config (ObjectStoreConfigError), never the reverse. The engines are imported inside the functions,
so a service loads only the ones it uses (boto3 only with MINTPIPE_ARTIFACTS_URL=s3://...).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from mintpipe.config import ObjectStoreConfigError, ServiceSettings

if TYPE_CHECKING:
    from mintpipe.db.core import Database


def store_database(settings: ServiceSettings, sqlite_name: str) -> Database:
    """Where this service's tables live: PostgreSQL (database_url) or the SQLite file <data_dir>/<sqlite_name>."""
    from mintpipe.db.core import database_for  # the engines load only in services that keep tables

    return database_for(settings.database_url, settings.data_dir / sqlite_name)


def open_stores_or_exit(settings: ServiceSettings, ipfs: bool = False):
    """The artifact store (and with `ipfs`, the local IPFS store) the settings name, or exit at once with a message
    naming the variable to fix (MINTPIPE_ARTIFACTS_URL, AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...), never a secret."""
    from mintpipe.objects.artifacts import open_artifacts
    from mintpipe.objects.ipfs import LocalIpfsStore

    try:
        artifacts = open_artifacts(settings.artifacts_url, settings.data_dir)
        if not ipfs:
            return artifacts
        if not settings.artifacts_url:
            return artifacts, LocalIpfsStore(settings.data_dir / "ipfs")
        # the artifacts' bucket (client, pool, counters), not a second one
        from mintpipe.objects.ipfs_s3 import S3IpfsStore

        return artifacts, S3IpfsStore(artifacts.bucket)
    except ObjectStoreConfigError as exc:
        print(f"{type(settings).__name__}: invalid configuration\n  {exc}", file=sys.stderr)
        raise SystemExit(2) from None
