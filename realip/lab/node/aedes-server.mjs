// The real aedes broker for realip's live lab and tests (realip/lab/drivers/aedes.py).
//
// Started as aedes-protocol-decoder's README shows: aedes-server-factory's createServer with
// trustProxy: true and the decoder's protocolDecoder, plus a preConnect that copies
// connDetails.ipAddress to client.ip.  One broker, one server per --listen KIND:HOST:PORT
// (KIND tcp or ws).  Every event is one JSON line on stdout, so a driver can read what aedes
// recorded and notice that the process died:
//   {"event":"listening", ...}  {"event":"client", "id", "connDetails"}  {"event":"clientDisconnect"}
//   {"event":"clientError"|"connectionError", "error", "connDetails"}  {"event":"crash", "error"}
// The crash line comes from 'uncaughtExceptionMonitor', which observes without catching: the
// process still dies exactly as it would without this script.
import { readFileSync } from 'node:fs'
import { Aedes } from 'aedes'
import { createServer } from 'aedes-server-factory'
import { protocolDecoder } from 'aedes-protocol-decoder'

function version (name) {
  // read from node_modules: aedes' "exports" does not list package.json
  const url = new URL(`./node_modules/${name}/package.json`, import.meta.url)
  return JSON.parse(readFileSync(url, 'utf8')).version
}

function emit (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function num (v) {
  // NaN / Infinity are not JSON: keep their text
  return (typeof v === 'number' && !Number.isFinite(v)) ? String(v) : v
}

function details (client) {
  const d = client && client.connDetails
  if (!d) return null
  return {
    ipAddress: d.ipAddress === undefined ? null : d.ipAddress,
    port: d.port === undefined ? null : num(d.port),
    isProxy: d.isProxy,
    isWebsocket: d.isWebsocket,
    ipFamily: d.ipFamily === undefined ? null : d.ipFamily,
    serverIpAddress: d.serverIpAddress === undefined ? null : d.serverIpAddress,
    serverPort: d.serverPort === undefined ? null : num(d.serverPort)
  }
}

function text (err) {
  if (err === null || err === undefined) return String(err)
  const name = (err.constructor && err.constructor.name) || typeof err
  return `${name}: ${err.message === undefined ? String(err) : err.message}`
}

process.on('uncaughtExceptionMonitor', (err, origin) => {
  emit({ event: 'crash', origin, error: text(err) })
})

const listens = []
// --options JSON: the createServer options to use instead of the lab's trustProxy: true
// (an options file as a user writes it: realip/programs/aedes/config.py reads the same file;
// ws still follows each --listen KIND)
let options = null
for (let i = 2; i < process.argv.length; i++) {
  if (process.argv[i] === '--options') {
    options = JSON.parse(process.argv[++i])
    if (options === null || typeof options !== 'object' || Array.isArray(options)) {
      process.stderr.write('--options takes a JSON object\n')
      process.exit(2)
    }
  } else if (process.argv[i] === '--listen') {
    const spec = process.argv[++i]
    const m = /^(tcp|ws):(.+):(\d+)$/.exec(spec || '')
    if (!m) {
      process.stderr.write(`--listen KIND:HOST:PORT (KIND tcp or ws), not ${spec}\n`)
      process.exit(2)
    }
    listens.push({ kind: m[1], host: m[2].replace(/^\[|\]$/g, ''), port: Number(m[3]) })
  }
}
if (listens.length === 0) {
  process.stderr.write('usage: node aedes-server.mjs --listen tcp:127.0.0.1:1883 [--listen ws:HOST:PORT]\n')
  process.exit(2)
}

const broker = await Aedes.createBroker({
  preConnect (client, packet, done) {
    if (client.connDetails && client.connDetails.ipAddress) {
      client.ip = client.connDetails.ipAddress
    }
    return done(null, true)
  }
})
broker.on('client', (client) => emit({ event: 'client', id: client.id, connDetails: details(client) }))
broker.on('clientDisconnect', (client) => emit({ event: 'clientDisconnect', id: client.id }))
broker.on('clientError', (client, err) => emit({ event: 'clientError', id: client.id || null, error: text(err), connDetails: details(client) }))
broker.on('connectionError', (client, err) => emit({ event: 'connectionError', id: client.id || null, error: text(err), connDetails: details(client) }))

const versions = {
  node: process.versions.node,
  aedes: version('aedes'),
  'aedes-protocol-decoder': version('aedes-protocol-decoder'),
  'aedes-server-factory': version('aedes-server-factory'),
  ws: version('ws')
}

let pending = listens.length
for (const l of listens) {
  const server = createServer(broker, options === null
    ? { trustProxy: true, protocolDecoder, ws: l.kind === 'ws' }
    : { ...options, ws: l.kind === 'ws' })
  server.on('error', (err) => {
    emit({ event: 'error', listen: l, error: text(err) })
    process.exit(3)
  })
  server.listen(l.port, l.host, () => {
    if (--pending === 0) emit({ event: 'listening', pid: process.pid, listens, versions })
  })
}
