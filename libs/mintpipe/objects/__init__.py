"""Where files live: the artifact store (artifacts: the folder; artifacts_s3: the S3 object store) and the local
IPFS store (ipfs, was ipfs_store: the folder; ipfs_s3: the object store), over one S3 client (s3). Which one a
service gets is mintpipe.bootstrap's choice, from MINTPIPE_ARTIFACTS_URL."""
