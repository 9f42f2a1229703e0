import AjvCompiler from '@fastify/ajv-compiler'
import type { FastifySchemaCompiler } from 'fastify'
import { AJV_OPTIONS } from '../schemas.js'

type Validator = ((data: unknown) => boolean) & { errors?: unknown[] | null }
type HttpPart = 'params' | 'body' | 'querystring'

/**
 * Action routes validate with this compiler (Fastify's own, with the app's options), and it
 * remembers each route's validators, so a batch item is checked by exactly the schemas of its
 * single route.
 */
export function createActionValidators () {
  const compile = AjvCompiler()({}, { customOptions: { ...AJV_OPTIONS }, plugins: [] }) as unknown as (route: Parameters<FastifySchemaCompiler<unknown>>[0]) => Validator
  const validators = new Map<string, Validator>()
  const compiler: FastifySchemaCompiler<unknown> = (route) => {
    const validator = compile(route)
    validators.set(`${route.method ?? ''} ${route.url ?? ''} ${route.httpPart ?? ''}`, validator)
    return validator as ReturnType<FastifySchemaCompiler<unknown>>
  }
  /** As Fastify reports it: an error with `validation` and `validationContext`, or undefined when valid. */
  function validate (route: { method: string, url: string }, httpPart: HttpPart, data: unknown): (Error & { validation: unknown[], validationContext: HttpPart }) | undefined {
    const validator = validators.get(`${route.method} ${route.url} ${httpPart}`)
    if (validator === undefined || validator(data)) return undefined
    return Object.assign(new Error(`${httpPart} is not valid`), { validation: validator.errors ?? [], validationContext: httpPart })
  }
  return { compiler, validate }
}
