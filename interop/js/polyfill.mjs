// js-libp2p 3 targets Node.js 22; the one newer built-in it uses that Node
// 20 lacks is Promise.withResolvers (ES2024). Imported first by node.mjs.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve, reject
    const promise = new this((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}
