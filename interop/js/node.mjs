// A js-libp2p node (TCP, Noise, yamux; ping, identify and identify push,
// /echo/1.0.0) for the interop tests in ../tests/js_libp2p.rs. One JSON
// object per stdout line; errors go to stderr and exit with status 1.
//
//   node node.mjs listen
//       Listens on 127.0.0.1, prints {"addr", "peer"} and serves until stdin
//       closes. Echoes every /echo/1.0.0 stream (until the dialer's FIN,
//       then FIN back), resets every /interop/reset/1.0.0 stream once its
//       first bytes arrive, prints {"identified": ...} for each peer that
//       identify reports and {"updated": {"peer", "protocols"}} for each
//       change to a peer's record (an identify push, say).
//   node node.mjs dial ADDR BYTES STREAMS
//       Dials ADDR (with /p2p/), pings it three times, runs identify,
//       then echoes BYTES bytes on each of STREAMS concurrent /echo/1.0.0
//       streams (writing while reading, then FIN) and checks every byte.
//       Prints {"local_peer", "remote_peer", "pings_ms", "identify",
//       "echoed"}, then stays connected, serving, until stdin closes.

import './polyfill.mjs'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { ping } from '@libp2p/ping'
import { identify, identifyPush } from '@libp2p/identify'
import { multiaddr } from '@multiformats/multiaddr'

const ECHO = '/echo/1.0.0'
const RESET = '/interop/reset/1.0.0'

function emit (object) {
  process.stdout.write(JSON.stringify(object) + '\n')
}

function fail (error) {
  process.stderr.write(`js node: ${error?.stack ?? error}\n`)
  process.exit(1)
}

async function start (listen) {
  const node = await createLibp2p({
    addresses: { listen: listen ? ['/ip4/127.0.0.1/tcp/0'] : [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { ping: ping(), identify: identify(), identifyPush: identifyPush() }
  })
  // Echo: send back every chunk as it comes (waiting for the send buffer
  // to drain), then FIN once the dialer has sent its FIN. The tests run a
  // hundred echo streams at once each way: above js-libp2p's default caps
  // per protocol and connection (32 inbound, 64 outbound).
  await node.handle(ECHO, async (stream) => {
    try {
      for await (const chunk of stream) {
        if (!stream.send(chunk)) {
          await stream.onDrain()
        }
      }
      await stream.close()
    } catch (error) {
      stream.abort(error)
    }
  }, { maxInboundStreams: 256, maxOutboundStreams: 256 })
  // Reset: abort the stream (yamux RST) as soon as its first bytes arrive.
  await node.handle(RESET, async (stream) => {
    for await (const _ of stream) { // eslint-disable-line no-unused-vars
      stream.abort(new Error('interop: reset on purpose'))
      return
    }
  })
  return node
}

/** Deterministic bytes that differ per stream and per offset. */
function pattern (length, seed) {
  const bytes = new Uint8Array(length)
  let x = (seed * 2654435761 + 1) >>> 0
  for (let i = 0; i < length; i++) {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    bytes[i] = x & 0xff
  }
  return bytes
}

async function echo (connection, length, seed) {
  const stream = await connection.newStream(ECHO)
  const sent = pattern(length, seed)
  const received = new Uint8Array(length)
  let got = 0
  const reading = (async () => {
    for await (const chunk of stream) {
      const bytes = chunk.subarray()
      if (got + bytes.length > length) {
        throw new Error(`stream ${seed}: echoed more than ${length} bytes`)
      }
      received.set(bytes, got)
      got += bytes.length
    }
  })()
  const piece = 64 * 1024
  for (let at = 0; at < length; at += piece) {
    if (!stream.send(sent.subarray(at, Math.min(length, at + piece)))) {
      await stream.onDrain()
    }
  }
  await stream.close()
  await reading
  if (got !== length) {
    throw new Error(`stream ${seed}: ${got} of ${length} bytes echoed`)
  }
  for (let i = 0; i < length; i++) {
    if (received[i] !== sent[i]) {
      throw new Error(`stream ${seed}: byte ${i} differs`)
    }
  }
  return got
}

/** What identify learned about a peer, as the tests read it. */
function describe (info) {
  return {
    peer: info.peerId.toString(),
    agent_version: info.agentVersion,
    protocol_version: info.protocolVersion,
    protocols: info.protocols,
    listen_addrs: info.listenAddrs.map(String),
    observed_addr: info.observedAddr?.toString()
  }
}

async function listen () {
  const node = await start(true)
  node.addEventListener('peer:identify', (event) => {
    emit({ identified: describe(event.detail) })
  })
  // Identify pushes (and other changes) land in the peer store.
  node.addEventListener('peer:update', (event) => {
    const { peer } = event.detail
    emit({ updated: { peer: peer.id.toString(), protocols: peer.protocols } })
  })
  const addr = node.getMultiaddrs()[0]
  emit({ addr: addr.toString(), peer: node.peerId.toString() })
  process.stdin.resume()
  process.stdin.on('end', () => node.stop().then(() => process.exit(0), fail))
}

async function dial (addr, bytes, streams) {
  const node = await start(false)
  const target = multiaddr(addr)
  const connection = await node.dial(target)
  const pings = []
  for (let i = 0; i < 3; i++) {
    pings.push(await node.services.ping.ping(target))
  }
  const info = await node.services.identify.identify(connection)
  const echoed = await Promise.all(
    Array.from({ length: streams }, (_, i) => echo(connection, bytes, i + 1))
  )
  emit({
    local_peer: node.peerId.toString(),
    remote_peer: connection.remotePeer.toString(),
    pings_ms: pings,
    identify: describe(info),
    echoed
  })
  // Stay connected (the peer may open streams to us) until stdin closes.
  process.stdin.resume()
  await new Promise((resolve) => process.stdin.on('end', resolve))
  await node.stop()
  process.exit(0)
}

const [mode, ...args] = process.argv.slice(2)
if (mode === 'listen') {
  listen().catch(fail)
} else if (mode === 'dial' && args.length === 3) {
  dial(args[0], Number(args[1]), Number(args[2])).catch(fail)
} else {
  fail('usage: node.mjs listen | dial ADDR BYTES STREAMS')
}
