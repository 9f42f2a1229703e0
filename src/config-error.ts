export interface ConfigProblem { variable: string, problem: string }

/**
 * Configuration problems, every one found at once: each names its variable, never its value
 * (it may be a secret). The message has one line per problem.
 */
export class ConfigError extends Error {
  readonly problems: ConfigProblem[]
  /** The first variable at fault. */
  readonly variable: string

  constructor (variable: string, problem: string)
  constructor (problems: ConfigProblem[])
  constructor (variableOrProblems: string | ConfigProblem[], problem = '') {
    const problems = typeof variableOrProblems === 'string' ? [{ variable: variableOrProblems, problem }] : variableOrProblems
    super(problems.map((item) => `Invalid configuration: ${item.variable} ${item.problem}`).join('\n'))
    this.name = 'ConfigError'
    this.problems = problems
    this.variable = problems[0]?.variable ?? ''
  }
}
