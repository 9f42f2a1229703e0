/** `npm run policy -- …` / `node dist/policy/cli.js …`: the policy command (command.ts) as a process. */
import { runPolicyCommand } from './command.js'

process.exitCode = runPolicyCommand(process.argv.slice(2), {
  stdout: (text) => { process.stdout.write(text) },
  stderr: (text) => { process.stderr.write(text) }
})
