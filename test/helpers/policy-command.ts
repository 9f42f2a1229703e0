import { runPolicyCommand } from '../../src/policy/command.js'

/** `policy …` through the command's module (what `npm run policy` runs), its output collected. */
export function policyCommand (argv: string[]): { code: number, stdout: string, stderr: string } {
  const out = { code: 0, stdout: '', stderr: '' }
  out.code = runPolicyCommand(argv, { stdout: (text) => { out.stdout += text }, stderr: (text) => { out.stderr += text } })
  return out
}
