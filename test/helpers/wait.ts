import { setTimeout as sleep } from 'node:timers/promises'

/**
 * Waits until `check` holds, polling; on a busy machine this takes what it takes, up to
 * `timeoutMs`, and a timeout says what was awaited (and `describe()` what was seen instead).
 */
export async function waitFor (check: () => boolean | Promise<boolean>, what: string, options: { timeoutMs?: number, describe?: () => string } = {}): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000)
  for (;;) {
    if (await check()) return
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${options.timeoutMs ?? 30_000} ms waiting for ${what}${options.describe === undefined ? '' : `; got: ${options.describe()}`}`)
    }
    await sleep(20)
  }
}
