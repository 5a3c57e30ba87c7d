// Independent reference for mintpipe.cid: prints the CID that the js UnixFS importer (through the
// ipfs-only-hash package) gives each file, with the options `ipfs add --cid-version=1` implies
// (CIDv1, raw leaves; the importer's defaults: fixed 262144-byte chunks, balanced tree of 174 links a node).
// Usage: node tests/support/ipfs_hash.mjs [--chunk BYTES] [--links N] FILE...
//   one CID per line, in argument order; --chunk/--links change the tree's shape so tests can build
//   deep trees from little data.
import { createReadStream } from 'node:fs'
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'

const require = createRequire(import.meta.url)
const Hash = require('ipfs-only-hash')

const { values, positionals } = parseArgs({
  options: { chunk: { type: 'string' }, links: { type: 'string' } },
  allowPositionals: true
})
const options = { cidVersion: 1, rawLeaves: true }
if (values.chunk) options.maxChunkSize = Number(values.chunk)
if (values.links) options.maxChildrenPerNode = Number(values.links)

for (const path of positionals) {
  // A stream, so a 50 MB file is never held whole in memory here either.
  const cid = await Hash.of(createReadStream(path, { highWaterMark: 1 << 20 }), { ...options })
  console.log(cid)
}
