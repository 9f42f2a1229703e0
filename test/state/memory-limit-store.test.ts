import t from 'tap'
import { MemoryLimitStore } from '../../src/state/memory-limit-store.js'
import { manualClock } from '../helpers/clock.js'

const incr = async (store: MemoryLimitStore, key: string, timeWindow: number) =>
  await new Promise<{ current: number, ttl: number }>((resolve, reject) => {
    store.incr(key, (error, result) => { if (error !== null || result === undefined) reject(error); else resolve(result) }, timeWindow)
  })

t.test('each count is a snapshot: concurrent callers see their own number', async (t) => {
  const store = new MemoryLimitStore()
  const counts = await Promise.all([1, 2, 3, 4, 5].map(async () => (await incr(store, 'caller:a', 60_000)).current))
  t.same(counts, [1, 2, 3, 4, 5])
  const { ttl } = await incr(store, 'caller:a', 60_000)
  t.ok(ttl > 59_000 && ttl <= 60_000, 'the ttl counts down from the window start')
  t.equal((await incr(store, 'caller:b', 60_000)).current, 1, 'keys count apart')
})

t.test('a window ends after timeWindow and starts again at 1', async (t) => {
  const clock = manualClock()
  const store = new MemoryLimitStore(undefined, 10_000, clock.now)
  t.equal((await incr(store, 'k', 30)).current, 1)
  clock.advance(29)
  t.equal((await incr(store, 'k', 30)).current, 2, 'still inside the window')
  clock.advance(1)
  t.equal((await incr(store, 'k', 30)).current, 1)
})

t.test('bounded: above maxKeys the oldest window goes; a child store counts apart', async (t) => {
  const store = new MemoryLimitStore(undefined, 2)
  await incr(store, 'a', 60_000)
  await incr(store, 'b', 60_000)
  await incr(store, 'c', 60_000)
  t.equal((await incr(store, 'b', 60_000)).current, 2, 'b kept')
  t.equal((await incr(store, 'a', 60_000)).current, 1, 'a was dropped, so it starts again')
  const child = store.child()
  t.equal((await incr(child as MemoryLimitStore, 'b', 60_000)).current, 1)
})
