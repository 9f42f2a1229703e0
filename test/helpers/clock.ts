/** A clock the test moves by hand: a cooldown or expiry passes when the test says so, not after a sleep. */
export function manualClock (start = 1_000_000) {
  let time = start
  return {
    now: () => time,
    advance: (ms: number) => { time += ms }
  }
}
