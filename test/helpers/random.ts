interface Tap { comment: (...message: unknown[]) => void }

/**
 * Random numbers in [0, 1) from a seed that the test log shows, so a failure at a random moment
 * can be run again at the same moments: `TEST_SEED=<seed> npx tap <file>`. Without TEST_SEED a
 * new seed is drawn. mulberry32: small, fast, and good enough to pick delays.
 */
export function seededRandom (t: Tap): () => number {
  const seed = process.env.TEST_SEED === undefined ? Math.floor(Math.random() * 2 ** 32) : Number(process.env.TEST_SEED) >>> 0
  t.comment(`random delays from seed ${seed} (TEST_SEED=${seed} repeats them)`)
  let state = seed
  return () => {
    state = (state + 0x6D2B79F5) >>> 0
    let z = state
    z = Math.imul(z ^ (z >>> 15), z | 1)
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61)
    return ((z ^ (z >>> 14)) >>> 0) / 4294967296
  }
}
